-- robots_put: store one origin's robots.txt entry and end this worker's claim on fetching it.
-- KEYS[1] the robots HASH, KEYS[2] the origin's claim key; ARGV[1] the origin, ARGV[2] the entry (JSON),
-- ARGV[3] this worker's id (the claim is deleted only if it is still this worker's).
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
if redis.call('GET', KEYS[2]) == ARGV[3] then
  redis.call('DEL', KEYS[2])
end
return 1
