-- Move requests queued by a worker from before the per-host frontier (one ZSET 'queue' for all hosts)
-- into their download slots' queues. Idempotent: an id another worker already moved is skipped.
-- KEYS: 1 old queue, 2 frontier, 3 ready, 4 requests, 5 hosts (see pop.lua)
-- ARGV: 1 concurrency per host, 2 host queue key prefix, then triples {id, score, slot}
local OLD, F, READY, REQ, HOSTS = unpack(KEYS, 1, 5)
local per_host, prefix = tonumber(ARGV[1]), ARGV[2]
local touched, moved = {}, 0
for i = 3, #ARGV, 3 do
  local id, score, slot = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  if redis.call('ZREM', OLD, id) == 1 and redis.call('HEXISTS', REQ, id) == 1 then
    redis.call('ZADD', prefix .. slot, tonumber(score), id)
    touched[slot] = (touched[slot] or 0) + 1
    moved = moved + 1
  end
end
if moved > 0 then redis.call('HINCRBY', F, 'queued', moved) end
for slot, n in pairs(touched) do
  redis.call('ZINCRBY', HOSTS, n, slot)
  local busy = tonumber(redis.call('HGET', F, 'b:' .. slot) or '0')
  if busy < per_host then
    redis.call('ZADD', READY, tonumber(redis.call('HGET', F, 'n:' .. slot) or '0'), slot)
  end
end
return moved
