-- Herald connection-count script: admit a connection under the per-user limit.
-- KEYS = set, leases; ARGV = conn, limit, evict (0/1), lease ms, liveness
-- key prefix, liveness ttl ms. Returns {admitted 0/1, victim conn or ""}.
-- It refreshes the caller's own liveness key, so a connection admitted
-- before the first heartbeat is not taken for dead.
-- (Liveness keys sit in the keys' partition in cluster mode: same slot.)
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local conn, limit, evict, lease = ARGV[1], tonumber(ARGV[2]), ARGV[3] == '1', tonumber(ARGV[4])
local alive = ARGV[5]
local me = string.match(conn, '^(.*)%.[^.]*$')
if me then
  redis.call('SET', alive .. me, '1', 'PX', ARGV[6])
end
local live = {}
local l = redis.call('HGETALL', KEYS[2])
for i = 1, #l, 2 do
  local node = string.match(l[i], '^(.*)%.[^.]*$')
  local up = true
  if node then
    up = live[node]
    if up == nil then
      up = redis.call('GET', alive .. node) ~= false
      live[node] = up
    end
  end
  if tonumber(l[i + 1]) < now or not up then
    redis.call('HDEL', KEYS[2], l[i])
    redis.call('ZREM', KEYS[1], l[i])
  end
end
local victim = ''
if limit > 0 and redis.call('ZSCORE', KEYS[1], conn) == false and redis.call('ZCARD', KEYS[1]) >= limit then
  if not evict then
    return {0, ''}
  end
  victim = redis.call('ZRANGE', KEYS[1], 0, 0)[1]
  redis.call('ZREM', KEYS[1], victim)
  redis.call('HDEL', KEYS[2], victim)
end
redis.call('ZADD', KEYS[1], 'NX', now, conn)
redis.call('HSET', KEYS[2], conn, now + lease)
redis.call('PEXPIRE', KEYS[1], lease * 2)
redis.call('PEXPIRE', KEYS[2], lease * 2)
return {1, victim}
