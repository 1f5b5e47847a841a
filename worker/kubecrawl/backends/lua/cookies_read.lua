-- A shared cookie jar's contents, unless the reader's copy is current (docs/distributed.md, "Shared sessions").
-- KEYS[1] the jar's HASH; ARGV[1] the version the reader holds ('' = none).
-- Reply {version} when unchanged, else {version, HGETALL of the jar}.
local v = redis.call('HGET', KEYS[1], 'v') or '0'
if v == ARGV[1] then
  return {v}
end
return {v, redis.call('HGETALL', KEYS[1])}
