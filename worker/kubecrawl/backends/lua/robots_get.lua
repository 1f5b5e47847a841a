-- robots_get: one origin's stored robots.txt entry (docs/contracts.md §3), never one past a size bound
-- (a hostile entry is not sent over the network).
-- KEYS[1] the robots HASH; ARGV[1] the origin, ARGV[2] the largest entry to return, in bytes.
-- Reply: {0} when absent, {size} when larger than ARGV[2], else {size, entry}.
local n = redis.call('HSTRLEN', KEYS[1], ARGV[1])
if n == 0 or n > tonumber(ARGV[2]) then
  return {n}
end
return {n, redis.call('HGET', KEYS[1], ARGV[1])}
