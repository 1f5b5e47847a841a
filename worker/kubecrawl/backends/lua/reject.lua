-- Drop leased requests whose payload failed validation, free their host slots, and count them.
-- KEYS: 1 frontier, 2 ready, 3 requests, 4 leases, 5 owners, 6 lease hosts, 7 stats, 8 meta, 9 hosts
-- ARGV: 1 concurrency per host, 2 host queue key prefix, 3 the crawl epoch (guard.lua), 4.. ids
local F, READY, REQ, LEASES, OWNERS, LHOST, STATS, META, HOSTS = unpack(KEYS, 1, 9)
local lost = kc_guard(META, ARGV[3])
if lost then return lost end
local per_host, prefix = tonumber(ARGV[1]), ARGV[2]
local n = 0
for i = 4, #ARGV do
  local id = ARGV[i]
  redis.call('HDEL', REQ, id)
  local owner = redis.call('HGET', OWNERS, id)
  redis.call('HDEL', OWNERS, id)
  if redis.call('ZREM', LEASES, id) == 1 then
    local host = redis.call('HGET', LHOST, id) or ''
    redis.call('HDEL', LHOST, id)
    if redis.call('HINCRBY', F, 'b:' .. host, -1) <= 0 then redis.call('HDEL', F, 'b:' .. host) end
    if owner then
      local wf = 'w:' .. owner .. '|' .. host
      if redis.call('HINCRBY', F, wf, -1) <= 0 then redis.call('HDEL', F, wf) end
    end
    if tonumber(redis.call('ZINCRBY', HOSTS, -1, host)) <= 0 then redis.call('ZREM', HOSTS, host) end
    local busy = tonumber(redis.call('HGET', F, 'b:' .. host) or '0')
    if busy < per_host and redis.call('ZCARD', prefix .. host) > 0 then
      redis.call('ZADD', READY, tonumber(redis.call('HGET', F, 'n:' .. host) or '0'), host)
    end
  end
  n = n + 1
end
redis.call('HINCRBY', STATS, 'rejected', n)
return n
