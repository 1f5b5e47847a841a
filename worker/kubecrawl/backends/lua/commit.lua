-- Apply the outcomes of many finished requests atomically, in one round trip:
-- dedup + enqueue new requests, content-dedup + XADD items, ack leases, add counters.
-- KEYS: 1 frontier, 2 requests, 3 leases, 4 owners, 5 items, 6 item_seen, 7 stats, 8 meta, 9 seen:ttl,
--       10 ready, 11 lease hosts, 12 hosts (the frontier's keys: see pop.lua),
--       13.. fingerprint keys (intset buckets or Bloom shards), referenced by index from ARGV
-- ARGV: 1 dedup ('set'|'bloom'), 2 item_dedup ('skip'|'update'|'off'), 3 token (worker id),
--       4 commit id (incarnation.seq), 5 nreq, 6 nitem, 7 nack, 8 nstat, 9 now ms for fingerprint ages
--       and slot times ('' = the server clock), 10 concurrency per host, 11 host queue key prefix,
--       12 the crawl epoch (guard.lua), 13 this worker's last commit ids as it knows them (comma-separated:
--       its last acknowledged one and any whose reply it never got; '' = none yet), then
--       nreq x {flag ('n'|'d'|'m': record the fingerprint only, nothing enqueued), key index,
--               member (int64 | comma-separated bit offsets), ttl ms ('' = none),
--               raw fingerprint, score, payload, download slot},
--       nitem x {key, content hash, json}, nack x {id, ms since its fetch was answered ('' = nothing sent),
--               the slot's robots.txt Crawl-delay ms ('' = none), the slot's AutoThrottle delay ms
--               ('' = none), hex prefix of the SHA1 of the payload as popped},
--       nstat x {name, increment}
-- Returns {enqueued, filtered, items stored, items duplicate, fingerprints marked}
-- (a replayed commit returns the first four only)
local dedup, item_dedup = ARGV[1], ARGV[2]
local nreq, nitem, nack, nstat = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
local F, REQ, LEASES, OWNERS, ITEMS, ITEM_SEEN, STATS, META, TTL, READY, LHOST = unpack(KEYS, 1, 11)
local per_host, prefix = tonumber(ARGV[10]), ARGV[11]
local HOSTS = KEYS[12]

local lost = kc_guard(META, ARGV[12])
if lost then return lost end

-- a retried commit whose first attempt did run (reply lost with the connection) is applied once;
-- the commit id is <process incarnation>.<seq>, so a restarted worker (same worker id, seq from 1)
-- never matches its predecessor's last commit
local token_field = 'commit:' .. ARGV[3]
local last = redis.call('HGET', META, token_field)
local last_id
if last then
  local seq, e, f, s, d = string.match(last, '^([^|]+)|(%d+)|(%d+)|(%d+)|(%d+)$')
  if seq == ARGV[4] then return {tonumber(e), tonumber(f), tonumber(s), tonumber(d)} end
  last_id = seq
end
-- the store must still hold this worker's last acknowledged commit: if it does not, Redis lost
-- acknowledged writes (restored from an older snapshot, or failed over to a replica that was behind)
-- and this worker's memory of what it committed is wrong; the crawl must not go on as if complete
if ARGV[13] ~= '' and not (last_id and string.find(',' .. ARGV[13] .. ',', ',' .. last_id .. ',', 1, true)) then
  local why = 'worker ' .. ARGV[3] .. ' had commit ' .. ARGV[13] .. ' acknowledged but the store holds ' ..
    (last_id or 'none of its commits') ..
    ': Redis lost acknowledged writes (restored from an older snapshot, or a failover to a replica that was behind)'
  redis.call('HSET', META, 'lost', why)
  return redis.error_reply('KCLOST ' .. why)
end

local t = redis.call('TIME')
local server_now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
-- fingerprint ages follow the server clock unless the caller injects one (tests: RedisBackend(clock=...))
local now = server_now
if ARGV[9] ~= '' then now = tonumber(ARGV[9]) end
local has_ttl = redis.call('EXISTS', TTL) == 1

local function in_plain(key, member)
  if dedup == 'bloom' then
    for off in string.gmatch(member, '%d+') do
      if redis.call('GETBIT', key, off) == 0 then return false end
    end
    return true
  end
  return redis.call('SISMEMBER', key, member) == 1
end

local function add_plain(key, member)
  if dedup == 'bloom' then
    for off in string.gmatch(member, '%d+') do redis.call('SETBIT', key, off, 1) end
  else
    redis.call('SADD', key, member)
  end
end

local function stored_expiry(fp)
  if not has_ttl then return nil end
  local exp = redis.call('ZSCORE', TTL, fp)
  if exp then return tonumber(exp) end
  return nil
end

-- backends/base.py fingerprint_rule, with "never expires" = in the set/bloom key, an age = in seen:ttl
-- (the seen:ttl entry, when there is one, decides: a Bloom filter cannot forget a fingerprint)
local new_fps = 0
local function admit(key, member, ttl, fp)
  local exp = stored_expiry(fp)
  if exp then
    if exp > now then return false end
    -- its age has run out: admitted again, ageing from now (or, without an age, never expiring)
    if ttl == '' then
      redis.call('ZREM', TTL, fp)
      add_plain(key, member)
    else
      redis.call('ZADD', TTL, now + tonumber(ttl), fp)
    end
    return true
  end
  if in_plain(key, member) then
    if ttl == '' then return false end
    -- first seen without an age, now asked for with one: filtered, and ageing from now
    if dedup ~= 'bloom' then redis.call('SREM', key, member) end
    redis.call('ZADD', TTL, now + tonumber(ttl), fp)
    has_ttl = true
    return false
  end
  if ttl == '' then
    add_plain(key, member)
  else
    redis.call('ZADD', TTL, now + tonumber(ttl), fp)
    has_ttl = true
  end
  new_fps = new_fps + 1
  return true
end

-- a download slot with work and a free concurrency slot is in READY at its next-allowed time
local touched = {}
-- per slot, requests that entered (enqueued) or left (acked) the frontier: HOSTS moves once per slot
local pending = {}
local function schedule(host)
  local busy = tonumber(redis.call('HGET', F, 'b:' .. host) or '0')
  if busy < per_host and redis.call('ZCARD', prefix .. host) > 0 then
    redis.call('ZADD', READY, tonumber(redis.call('HGET', F, 'n:' .. host) or '0'), host)
  else
    redis.call('ZREM', READY, host)
  end
end

local seq = tonumber(redis.call('HGET', META, 'seq') or '0')
local enqueued, filtered, stored, dup, marked = 0, 0, 0, 0, 0
local i = 14
for _ = 1, nreq do
  local flag, kidx, member, ttl, fp, score, payload, host =
    ARGV[i], tonumber(ARGV[i + 1]), ARGV[i + 2], ARGV[i + 3], ARGV[i + 4], ARGV[i + 5], ARGV[i + 6], ARGV[i + 7]
  i = i + 8
  if flag == 'm' then
    if admit(KEYS[kidx], member, ttl, fp) then marked = marked + 1 end
  elseif flag == 'd' or admit(KEYS[kidx], member, ttl, fp) then
    seq = seq + 1
    local id = string.format('%012d', seq)
    redis.call('HSET', REQ, id, payload)
    redis.call('ZADD', prefix .. host, tonumber(score), id)
    touched[host] = true
    pending[host] = (pending[host] or 0) + 1
    enqueued = enqueued + 1
  else
    filtered = filtered + 1
  end
end
if enqueued > 0 then
  redis.call('HSET', META, 'seq', string.format('%d', seq))
  redis.call('HINCRBY', F, 'queued', enqueued)
end

for _ = 1, nitem do
  local key, chash, data = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  i = i + 3
  local ok
  if item_dedup == 'off' then
    ok = true
  elseif item_dedup == 'update' then
    ok = redis.call('HGET', ITEM_SEEN, key) ~= chash
    if ok then redis.call('HSET', ITEM_SEEN, key, chash) end
  else
    ok = redis.call('SADD', ITEM_SEEN, key) == 1
  end
  if ok then
    -- k: the content key (hex: stream entries stay text for every reader), for idempotent sinks;
    -- v: the entry's envelope version (feeds/stream.py ITEM_WIRE_VERSION; readers take none as 1)
    local hexkey = string.gsub(key, '.', function(c) return string.format('%02x', string.byte(c)) end)
    redis.call('XADD', ITEMS, '*', 'j', data, 'k', hexkey, 'v', '1')
    stored = stored + 1
  else
    dup = dup + 1
  end
end

local stale = 0
for _ = 1, nack do
  local id, ago, cd, td, h = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4]
  i = i + 5
  if redis.call('HGET', OWNERS, id) == ARGV[3] then
    redis.call('HDEL', REQ, id)
    redis.call('HDEL', OWNERS, id)
    redis.call('ZREM', LEASES, id)
    local host = redis.call('HGET', LHOST, id) or ''
    redis.call('HDEL', LHOST, id)
    if redis.call('HINCRBY', F, 'b:' .. host, -1) <= 0 then redis.call('HDEL', F, 'b:' .. host) end
    local wf = 'w:' .. ARGV[3] .. '|' .. host
    if redis.call('HINCRBY', F, wf, -1) <= 0 then redis.call('HDEL', F, wf) end
    pending[host] = (pending[host] or 0) - 1
    local d = redis.call('HGET', F, 'd:' .. host)
    if cd ~= '' then
      -- robots.txt Crawl-delay: a floor under this slot's delay from now on, for every worker
      redis.call('HSET', F, 'c:' .. host, cd)
      if not d or tonumber(d) < tonumber(cd) then
        d = cd
        redis.call('HSET', F, 'd:' .. host, cd)
      end
    end
    if td ~= '' then
      -- the AutoThrottle delay this worker adapted: another floor, for every worker (the last one wins)
      redis.call('HSET', F, 't:' .. host, td)
      if not d or tonumber(d) < tonumber(td) then
        d = td
        redis.call('HSET', F, 'd:' .. host, td)
      end
    end
    if d and ago ~= '' then
      -- the next request may start the chosen delay after this one's fetch was answered
      local cur = tonumber(redis.call('HGET', F, 'n:' .. host) or '0')
      redis.call('HSET', F, 'n:' .. host, math.max(cur, now - tonumber(ago) + tonumber(d)))
    end
    touched[host] = true
  else
    -- not this worker's lease (any more): it expired and was reaped (perhaps leased again by another
    -- worker, whose lease runs its course), or the store was rolled back and the id now names another
    -- request. Only the very request this worker fetched is dropped, so its requeued copy is skipped;
    -- anything else is left alone (an ack naming a lease nobody holds changes nothing)
    local raw = redis.call('HGET', REQ, id)
    if raw and h ~= '' and string.sub(redis.sha1hex(raw), 1, #h) == h then
      redis.call('HDEL', REQ, id)
    else
      stale = stale + 1
    end
  end
end
for host in pairs(touched) do schedule(host) end
for host, n in pairs(pending) do
  if n ~= 0 and tonumber(redis.call('ZINCRBY', HOSTS, n, host)) <= 0 then redis.call('ZREM', HOSTS, host) end
end

local pages = 0
for _ = 1, nstat do
  local k, v = ARGV[i], tonumber(ARGV[i + 1])
  i = i + 2
  redis.call('HINCRBY', STATS, k, v)
  if k == 'pages' then pages = v end
end
local counters = {enqueued = enqueued, filtered = filtered, items = stored, items_duplicate = dup, seen = new_fps,
  stale_acks = stale}
for k, v in pairs(counters) do
  if v > 0 then redis.call('HINCRBY', STATS, k, v) end
end

-- pages per minute: the current and the previous whole minute of the server clock
if pages > 0 then
  local minute = math.floor(server_now / 60000)
  local cur = tonumber(redis.call('HGET', STATS, 'pm:minute') or '0')
  if cur ~= minute then
    local prev = 0
    if cur == minute - 1 then prev = tonumber(redis.call('HGET', STATS, 'pm:cur') or '0') end
    redis.call('HSET', STATS, 'pm:minute', minute, 'pm:prev', prev, 'pm:cur', 0)
  end
  redis.call('HINCRBY', STATS, 'pm:cur', pages)
end

redis.call('HSET', META, token_field, ARGV[4] .. '|' .. enqueued .. '|' .. filtered .. '|' .. stored .. '|' .. dup)
return {enqueued, filtered, stored, dup, marked}
