-- Lease up to N requests from ready download slots, after reaping expired leases. One round trip.
-- The per-host frontier of backends/frontier.py: a host queue per slot (ZSET, score -priority, id
-- in arrival order), READY (ZSET host -> next-allowed ms) holding the slots that have work and a free
-- concurrency slot, and FRONTIER (HASH: 'queued' total, 'b:'host leased count, 'n:'host next-allowed
-- ms, 'd:'host the randomised delay chosen at its last pop, 'c:'host its robots.txt Crawl-delay ms,
-- 't:'host its AutoThrottle delay ms as last reported (429/503 backoffs raise 'n:'host: backoff.lua),
-- 'w:'worker'|'host the leases one worker holds of that slot, deleted at zero), and HOSTS (ZSET
-- host -> its queued + leased requests, removed at zero: the status reads its size and busiest
-- members without scanning every host).
-- KEYS: 1 frontier, 2 ready, 3 requests, 4 leases, 5 owners, 6 lease hosts, 7 stats, 8 meta, 9 hosts
-- ARGV: 1 n, 2 worker id, 3 lease ms, 4 max payload bytes, 5 max leases to reap,
--       6 now ms ('' = the server clock; tests inject one: RedisBackend(clock=...)),
--       7 concurrency per host, 8 delay ms, 9 random seed (an integer < 2^31), 10 host queue key prefix,
--       11 the crawl epoch (guard.lua), 12 the most leases of one slot this worker may hold (its
--       concurrency; 0 = no cap): fairness between workers when concurrency_per_host is above it
-- Returns {reaped, rejected_huge, ms until the next slot is ready (-1: none), id1, payload1, ...}
local lost = kc_guard(KEYS[8], ARGV[11])
if lost then return lost end
-- the first write is one Redis refuses at maxmemory (noeviction): an out-of-memory Redis fails the
-- pop before it leases anything, so a worker whose commits cannot be stored takes no leases either
redis.call('HINCRBY', KEYS[7], 'pops', 1)
local now
if ARGV[6] ~= '' then
  now = tonumber(ARGV[6])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local F, READY, REQ, LEASES, OWNERS, LHOST, STATS = unpack(KEYS, 1, 7)
local HOSTS = KEYS[9]
local per_host, delay, seed, prefix = tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9]), ARGV[10]
local me, cap = ARGV[2], tonumber(ARGV[12] or '0') or 0

-- a slot's queued + leased count in HOSTS changes only when a request enters or leaves the frontier
local function pend(host, n)
  if tonumber(redis.call('ZINCRBY', HOSTS, n, host)) <= 0 then redis.call('ZREM', HOSTS, host) end
end

-- the leases one worker holds of one slot (never a field at zero: memory stays with the leases)
local function unhold(owner, host)
  if not owner then return end
  local f = 'w:' .. owner .. '|' .. host
  if redis.call('HINCRBY', F, f, -1) <= 0 then redis.call('HDEL', F, f) end
end
local function held(host)
  return tonumber(redis.call('HGET', F, 'w:' .. me .. '|' .. host) or '0')
end

local function score_of(raw)
  local ok, d = pcall(cjson.decode, raw)
  if ok and type(d) == 'table' and type(d.priority) == 'number' then return -d.priority end
  return 0
end

-- delay x U(0.5, 1.5) from the caller's seed (a script's math.random is not random per call),
-- never under the slot's floors (Crawl-delay, AutoThrottle delay)
local function rand_delay(floor)
  seed = (seed * 1103515245 + 12345) % 2147483648
  return math.max(math.floor(delay * (0.5 + seed / 2147483648)), floor)
end

local function schedule(host)
  local busy = tonumber(redis.call('HGET', F, 'b:' .. host) or '0')
  if busy < per_host and redis.call('ZCARD', prefix .. host) > 0 then
    redis.call('ZADD', READY, tonumber(redis.call('HGET', F, 'n:' .. host) or '0'), host)
  else
    redis.call('ZREM', READY, host)
  end
end

local reaped = 0
local expired = redis.call('ZRANGEBYSCORE', LEASES, '-inf', now, 'LIMIT', 0, tonumber(ARGV[5]))
for _, id in ipairs(expired) do
  redis.call('ZREM', LEASES, id)
  local owner = redis.call('HGET', OWNERS, id)
  redis.call('HDEL', OWNERS, id)
  local host = redis.call('HGET', LHOST, id) or ''
  redis.call('HDEL', LHOST, id)
  if redis.call('HINCRBY', F, 'b:' .. host, -1) <= 0 then redis.call('HDEL', F, 'b:' .. host) end
  unhold(owner, host)
  local raw = redis.call('HGET', REQ, id)
  if raw then
    redis.call('ZADD', prefix .. host, score_of(raw), id)
    redis.call('HINCRBY', F, 'queued', 1)
    reaped = reaped + 1
  else
    pend(host, -1)
  end
  schedule(host)
end
if reaped > 0 then redis.call('HINCRBY', STATS, 'lease_expired', reaped) end

local out = {reaped, 0, -1}
local rejected, taken = 0, 0
local max_bytes = tonumber(ARGV[4])
local deadline = now + tonumber(ARGV[3])
local want = tonumber(ARGV[1])
-- ready slots are read a page at a time: a slot this worker may take no more of (its cap) stays in
-- READY for the others and at the front of the range, so the next page starts after those (skip);
-- there are at most (this worker's leases / cap) of them
local skip = 0
while want > 0 do
  local page = want
  local hosts = redis.call('ZRANGEBYSCORE', READY, '-inf', now, 'LIMIT', skip, page)
  for _, host in ipairs(hosts) do
    if want <= 0 then break end
    local k = math.min(per_host - tonumber(redis.call('HGET', F, 'b:' .. host) or '0'), want)
    if cap > 0 then k = math.min(k, cap - held(host)) end
    -- floors under the delay: robots.txt Crawl-delay ('c:') and the shared AutoThrottle delay ('t:'), ms
    local fl = redis.call('HMGET', F, 'c:' .. host, 't:' .. host)
    local floor = math.max(tonumber(fl[1] or '0'), tonumber(fl[2] or '0'))
    if delay > 0 or floor > 0 then k = math.min(k, 1) end
    local got = 0
    if k > 0 then
      local popped = redis.call('ZPOPMIN', prefix .. host, k)
      taken = taken + #popped / 2
      for i = 1, #popped, 2 do
        local id = popped[i]
        local len = redis.call('HSTRLEN', REQ, id)
        if len > max_bytes then
          -- hostile or broken: never ship it to a worker
          redis.call('HDEL', REQ, id)
          rejected = rejected + 1
          pend(host, -1)
        elseif len > 0 then
          redis.call('ZADD', LEASES, deadline, id)
          redis.call('HSET', OWNERS, id, ARGV[2])
          redis.call('HSET', LHOST, id, host)
          out[#out + 1] = id
          out[#out + 1] = redis.call('HGET', REQ, id)
          got = got + 1
        else
          -- the payload is gone (acked by a slower worker after a reap): it leaves the frontier
          pend(host, -1)
        end
      end
    end
    if got > 0 then
      redis.call('HINCRBY', F, 'b:' .. host, got)
      redis.call('HINCRBY', F, 'w:' .. me .. '|' .. host, got)
      want = want - got
      if delay > 0 or floor > 0 then
        local d = rand_delay(floor)
        redis.call('HSET', F, 'd:' .. host, d)
        local cur = tonumber(redis.call('HGET', F, 'n:' .. host) or '0')
        redis.call('HSET', F, 'n:' .. host, math.max(cur, now + d))
      end
    end
    schedule(host)
    -- still ready now (this worker's cap, or payloads rejected): the next page starts after it
    local sc = redis.call('ZSCORE', READY, host)
    if sc and tonumber(sc) <= now then skip = skip + 1 end
  end
  if #hosts < page then break end
end
if taken > 0 then redis.call('HINCRBY', F, 'queued', -taken) end
if rejected > 0 then redis.call('HINCRBY', STATS, 'rejected', rejected) end
out[2] = rejected
-- when the next slot this worker may take from is ready (one it holds its cap of is not one)
local at = 0
while true do
  local first = redis.call('ZRANGE', READY, at, at + 15, 'WITHSCORES')
  if not first[1] then break end
  local found = false
  for i = 1, #first, 2 do
    if cap <= 0 or held(first[i]) < cap then
      out[3] = math.max(0, tonumber(first[i + 1]) - now)
      found = true
      break
    end
  end
  if found or #first < 32 then break end
  at = at + 16
end
return out
