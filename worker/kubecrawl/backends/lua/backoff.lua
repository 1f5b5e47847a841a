-- A site asked a download slot to slow down (429, or 503 with Retry-After): no worker gets a request
-- of it before now + the wait. Raises the slot's next-allowed time ('n:'slot in FRONTIER, never
-- lowers it) and, if the slot is in READY (work queued, a free concurrency slot), re-scores it there;
-- otherwise the ack or release that frees it schedules it at 'n:' (pop.lua). One round trip.
-- KEYS: 1 frontier, 2 ready, 3 meta
-- ARGV: 1 slot, 2 wait ms, 3 now ms ('' = the server clock), 4 the crawl epoch (guard.lua),
--       5 concurrency per host, 6 host queue key prefix
-- Returns the slot's next-allowed time, ms from now
local F, READY, META = KEYS[1], KEYS[2], KEYS[3]
local lost = kc_guard(META, ARGV[4])
if lost then return lost end
local now
if ARGV[3] ~= '' then
  now = tonumber(ARGV[3])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local host, per_host, prefix = ARGV[1], tonumber(ARGV[5]), ARGV[6]
local until_ms = now + tonumber(ARGV[2])
local cur = tonumber(redis.call('HGET', F, 'n:' .. host) or '0')
if until_ms > cur then
  redis.call('HSET', F, 'n:' .. host, until_ms)
  cur = until_ms
end
local busy = tonumber(redis.call('HGET', F, 'b:' .. host) or '0')
if busy < per_host and redis.call('ZCARD', prefix .. host) > 0 then
  redis.call('ZADD', READY, cur, host)
end
return cur - now
