-- Hand leased requests back to their host queues: the given ids, or (mode 'all') every lease this
-- worker owns. Only leases still owned by this worker are touched (an expired lease may belong to
-- another by now). Each frees its host's concurrency slot (see pop.lua for the frontier's keys).
-- KEYS: 1 frontier, 2 ready, 3 requests, 4 leases, 5 owners, 6 lease hosts, 7 meta, 8 hosts
-- ARGV: 1 worker id, 2 mode ('ids' | 'all'), 3 concurrency per host, 4 host queue key prefix,
--       5 the crawl epoch (guard.lua), 6.. ids
local F, READY, REQ, LEASES, OWNERS, LHOST, META, HOSTS = unpack(KEYS, 1, 8)
local lost = kc_guard(META, ARGV[5])
if lost then return lost end
local per_host, prefix = tonumber(ARGV[3]), ARGV[4]
local function score_of(raw)
  local ok, d = pcall(cjson.decode, raw)
  if ok and type(d) == 'table' and type(d.priority) == 'number' then return -d.priority end
  return 0
end

local function schedule(host)
  local busy = tonumber(redis.call('HGET', F, 'b:' .. host) or '0')
  if busy < per_host and redis.call('ZCARD', prefix .. host) > 0 then
    redis.call('ZADD', READY, tonumber(redis.call('HGET', F, 'n:' .. host) or '0'), host)
  else
    redis.call('ZREM', READY, host)
  end
end

local ids = {}
if ARGV[2] == 'all' then
  local flat = redis.call('HGETALL', OWNERS)
  for i = 1, #flat, 2 do
    if flat[i + 1] == ARGV[1] then ids[#ids + 1] = flat[i] end
  end
else
  for i = 6, #ARGV do ids[#ids + 1] = ARGV[i] end
end

local n = 0
for _, id in ipairs(ids) do
  if redis.call('HGET', OWNERS, id) == ARGV[1] then
    redis.call('ZREM', LEASES, id)
    redis.call('HDEL', OWNERS, id)
    local host = redis.call('HGET', LHOST, id) or ''
    redis.call('HDEL', LHOST, id)
    if redis.call('HINCRBY', F, 'b:' .. host, -1) <= 0 then redis.call('HDEL', F, 'b:' .. host) end
    local wf = 'w:' .. ARGV[1] .. '|' .. host
    if redis.call('HINCRBY', F, wf, -1) <= 0 then redis.call('HDEL', F, wf) end
    local raw = redis.call('HGET', REQ, id)
    if raw then
      redis.call('ZADD', prefix .. host, score_of(raw), id)
      redis.call('HINCRBY', F, 'queued', 1)
      n = n + 1
    elseif tonumber(redis.call('ZINCRBY', HOSTS, -1, host)) <= 0 then
      redis.call('ZREM', HOSTS, host)
    end
    schedule(host)
  end
end
return n
