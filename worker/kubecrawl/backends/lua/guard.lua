-- Prepended to every script of the crawl (backends/redis.py): refuse to work on a store that lost data.
-- The crawl's epoch is written once, when the crawl is created (RedisBackend.open); every worker sends
-- the one it read at start-up. A store without it, or with another one, lost this crawl's state (Redis
-- restarted empty, or another crawl was created in its place): working on would report "complete"
-- with pages never fetched. The reason is kept in META 'lost' (sticky: every worker stops, and
-- `kubecrawl status` shows it) until an operator deletes it.
local function kc_guard(meta, epoch)
  if epoch == '' then return nil end
  local got = redis.call('HMGET', meta, 'epoch', 'lost')
  if got[2] then return redis.error_reply('KCLOST ' .. got[2]) end
  if got[1] ~= epoch then
    local why
    if got[1] then
      why = 'the crawl epoch is ' .. got[1] .. ', this worker started under ' .. epoch ..
        ': the crawl was created again in its place'
    else
      why = 'the crawl epoch ' .. epoch .. ' is gone: Redis restarted without the crawl state (persistence off?)'
    end
    redis.call('HSET', meta, 'lost', why)
    return redis.error_reply('KCLOST ' .. why)
  end
  return nil
end
