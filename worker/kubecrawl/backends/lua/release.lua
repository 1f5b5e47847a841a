-- Hand leased requests back to the queue: the given ids, or (mode 'all') every lease this worker owns.
-- Only leases still owned by this worker are touched (an expired lease may belong to another by now).
-- KEYS: 1 queue, 2 requests, 3 leases, 4 owners
-- ARGV: 1 worker id, 2 mode ('ids' | 'all'), 3.. ids
local function score_of(raw)
  local ok, d = pcall(cjson.decode, raw)
  if ok and type(d) == 'table' and type(d.priority) == 'number' then return -d.priority end
  return 0
end

local ids = {}
if ARGV[2] == 'all' then
  local flat = redis.call('HGETALL', KEYS[4])
  for i = 1, #flat, 2 do
    if flat[i + 1] == ARGV[1] then ids[#ids + 1] = flat[i] end
  end
else
  for i = 3, #ARGV do ids[#ids + 1] = ARGV[i] end
end

local n = 0
for _, id in ipairs(ids) do
  if redis.call('HGET', KEYS[4], id) == ARGV[1] then
    redis.call('ZREM', KEYS[3], id)
    redis.call('HDEL', KEYS[4], id)
    local raw = redis.call('HGET', KEYS[2], id)
    if raw then
      redis.call('ZADD', KEYS[1], score_of(raw), id)
      n = n + 1
    end
  end
end
return n
