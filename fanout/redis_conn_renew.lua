-- Herald connection-count script: renew a node's connection leases.
-- KEYS = set, leases; ARGV = lease ms, conns... It extends the leases of
-- the given connections, re-adding any that vanished (a shard restart), and
-- returns how many the user now holds.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lease = tonumber(ARGV[1])
for i = 2, #ARGV do
  redis.call('ZADD', KEYS[1], 'NX', now, ARGV[i])
  redis.call('HSET', KEYS[2], ARGV[i], now + lease)
end
redis.call('PEXPIRE', KEYS[1], lease * 2)
redis.call('PEXPIRE', KEYS[2], lease * 2)
return redis.call('ZCARD', KEYS[1])
