-- Changes to a shared cookie jar, with the jar's bounds (docs/distributed.md, "Shared sessions").
-- KEYS[1] the jar's HASH: field 'v' version, 't' cookies held, 'n:<domain>' cookies of a domain,
-- 'c:<identity>' one cookie's JSON (identity: JSON [domain, path, name]).
-- ARGV[1] cookies per domain, ARGV[2] cookies in all, then quadruples op, identity, json, domain:
--   s: set (a new cookie past a bound is refused and counted), d: delete (Set-Cookie with Max-Age=0),
--   x: delete if the stored JSON is still this one (an expired cookie, never a fresher copy).
-- Reply {version after, refused}.
local jar = KEYS[1]
local per_domain, total = tonumber(ARGV[1]), tonumber(ARGV[2])
local changed, refused = 0, 0
for i = 3, #ARGV, 4 do
  local op, f, value, domain = ARGV[i], 'c:' .. ARGV[i + 1], ARGV[i + 2], 'n:' .. ARGV[i + 3]
  local old = redis.call('HGET', jar, f)
  if op == 's' then
    if old then
      if old ~= value then
        redis.call('HSET', jar, f, value)
        changed = changed + 1
      end
    elseif tonumber(redis.call('HGET', jar, 't') or '0') >= total
        or tonumber(redis.call('HGET', jar, domain) or '0') >= per_domain then
      refused = refused + 1
    else
      redis.call('HSET', jar, f, value)
      redis.call('HINCRBY', jar, 't', 1)
      redis.call('HINCRBY', jar, domain, 1)
      changed = changed + 1
    end
  elseif old and (op == 'd' or old == value) then
    redis.call('HDEL', jar, f)
    redis.call('HINCRBY', jar, 't', -1)
    if redis.call('HINCRBY', jar, domain, -1) <= 0 then
      redis.call('HDEL', jar, domain)
    end
    changed = changed + 1
  end
end
local v
if changed > 0 then
  v = redis.call('HINCRBY', jar, 'v', 1)
else
  v = tonumber(redis.call('HGET', jar, 'v') or '0')
end
return {tostring(v), refused}
