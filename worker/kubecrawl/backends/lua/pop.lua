-- Lease up to N requests, after reaping expired leases back into the queue. One round trip.
-- KEYS: 1 queue, 2 requests, 3 leases, 4 owners, 5 stats
-- ARGV: 1 n, 2 worker id, 3 lease ms, 4 max payload bytes, 5 max leases to reap,
--       6 now ms for lease deadlines ('' = the server clock; tests inject one: RedisBackend(clock=...))
-- Returns {reaped, rejected_huge, id1, payload1, id2, payload2, ...}
local now
if ARGV[6] ~= '' then
  now = tonumber(ARGV[6])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function score_of(raw)
  local ok, d = pcall(cjson.decode, raw)
  if ok and type(d) == 'table' and type(d.priority) == 'number' then return -d.priority end
  return 0
end

local reaped = 0
local expired = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now, 'LIMIT', 0, tonumber(ARGV[5]))
for _, id in ipairs(expired) do
  redis.call('ZREM', KEYS[3], id)
  redis.call('HDEL', KEYS[4], id)
  local raw = redis.call('HGET', KEYS[2], id)
  if raw then
    redis.call('ZADD', KEYS[1], score_of(raw), id)
    reaped = reaped + 1
  end
end
if reaped > 0 then redis.call('HINCRBY', KEYS[5], 'lease_expired', reaped) end

local out = {reaped, 0}
local rejected = 0
local max_bytes = tonumber(ARGV[4])
local deadline = now + tonumber(ARGV[3])
local popped = redis.call('ZPOPMIN', KEYS[1], tonumber(ARGV[1]))
for i = 1, #popped, 2 do
  local id = popped[i]
  local len = redis.call('HSTRLEN', KEYS[2], id)
  if len > max_bytes then
    -- hostile or broken: never ship it to a worker
    redis.call('HDEL', KEYS[2], id)
    rejected = rejected + 1
  elseif len > 0 then
    redis.call('ZADD', KEYS[3], deadline, id)
    redis.call('HSET', KEYS[4], id, ARGV[2])
    out[#out + 1] = id
    out[#out + 1] = redis.call('HGET', KEYS[2], id)
  end
  -- len == 0: the payload is gone (acked by a slower worker after a reap): nothing to do
end
if rejected > 0 then redis.call('HINCRBY', KEYS[5], 'rejected', rejected) end
out[2] = rejected
return out
