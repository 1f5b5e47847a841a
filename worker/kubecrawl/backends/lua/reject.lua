-- Drop leased requests whose payload failed validation, and count them.
-- KEYS: 1 queue, 2 requests, 3 leases, 4 owners, 5 stats
-- ARGV: ids
for _, id in ipairs(ARGV) do
  redis.call('ZREM', KEYS[1], id)
  redis.call('HDEL', KEYS[2], id)
  redis.call('ZREM', KEYS[3], id)
  redis.call('HDEL', KEYS[4], id)
end
redis.call('HINCRBY', KEYS[5], 'rejected', #ARGV)
return #ARGV
