-- Apply the outcomes of many finished requests atomically, in one round trip:
-- dedup + enqueue new requests, content-dedup + XADD items, ack leases, add counters.
-- KEYS: 1 queue, 2 requests, 3 leases, 4 owners, 5 items, 6 item_seen, 7 stats, 8 meta, 9 seen:ttl,
--       10.. fingerprint keys (intset buckets or Bloom shards), referenced by index from ARGV
-- ARGV: 1 dedup ('set'|'bloom'), 2 item_dedup ('skip'|'update'|'off'), 3 token (worker id), 4 commit id (incarnation.seq),
--       5 nreq, 6 nitem, 7 nack, 8 nstat, 9 now ms for fingerprint ages ('' = the server clock), then
--       nreq x {flag ('n'|'d'), key index, member (int64 | comma-separated bit offsets), ttl ms ('' = none),
--               raw fingerprint, score, payload},
--       nitem x {key, content hash, json}, nack x {id}, nstat x {name, increment}
-- Returns {enqueued, filtered, items stored, items duplicate}
local dedup, item_dedup = ARGV[1], ARGV[2]
local nreq, nitem, nack, nstat = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
local Q, REQ, LEASES, OWNERS, ITEMS, ITEM_SEEN, STATS, META, TTL = unpack(KEYS, 1, 9)

-- a retried commit whose first attempt did run (reply lost with the connection) is applied once;
-- the commit id is <process incarnation>.<seq>, so a restarted worker (same worker id, seq from 1)
-- never matches its predecessor's last commit
local token_field = 'commit:' .. ARGV[3]
local last = redis.call('HGET', META, token_field)
if last then
  local seq, e, f, s, d = string.match(last, '^([^|]+)|(%d+)|(%d+)|(%d+)|(%d+)$')
  if seq == ARGV[4] then return {tonumber(e), tonumber(f), tonumber(s), tonumber(d)} end
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

local seq = tonumber(redis.call('HGET', META, 'seq') or '0')
local enqueued, filtered, stored, dup = 0, 0, 0, 0
local i = 10
for _ = 1, nreq do
  local flag, kidx, member, ttl, fp, score, payload =
    ARGV[i], tonumber(ARGV[i + 1]), ARGV[i + 2], ARGV[i + 3], ARGV[i + 4], ARGV[i + 5], ARGV[i + 6]
  i = i + 7
  if flag == 'd' or admit(KEYS[kidx], member, ttl, fp) then
    seq = seq + 1
    local id = string.format('%012d', seq)
    redis.call('HSET', REQ, id, payload)
    redis.call('ZADD', Q, tonumber(score), id)
    enqueued = enqueued + 1
  else
    filtered = filtered + 1
  end
end
if enqueued > 0 then redis.call('HSET', META, 'seq', string.format('%d', seq)) end

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
    redis.call('XADD', ITEMS, '*', 'j', data, 'k', key)  -- k: the content key, for idempotent sinks
    stored = stored + 1
  else
    dup = dup + 1
  end
end

for _ = 1, nack do
  local id = ARGV[i]
  i = i + 1
  redis.call('ZREM', LEASES, id)
  redis.call('HDEL', OWNERS, id)
  redis.call('HDEL', REQ, id)
  redis.call('ZREM', Q, id)
end

local pages = 0
for _ = 1, nstat do
  local k, v = ARGV[i], tonumber(ARGV[i + 1])
  i = i + 2
  redis.call('HINCRBY', STATS, k, v)
  if k == 'pages' then pages = v end
end
local counters = {enqueued = enqueued, filtered = filtered, items = stored, items_duplicate = dup, seen = new_fps}
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
return {enqueued, filtered, stored, dup}
