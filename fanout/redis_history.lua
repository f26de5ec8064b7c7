-- Herald history script (after redis_prelude.lua, as one script with it):
-- reads a channel's epoch, top offset and the stream entries from ARGV[1]
-- on, atomically. It creates the channel's meta hash (a new epoch, offset
-- 0) when it is missing, exactly as the publish script would, so the top a
-- new subscriber adopts stays valid for the first publish instead of
-- turning it into a spurious epoch change. Like the publish script, it
-- starts a new epoch when the meta hash was written by another Redis
-- process (see generation in redis_prelude.lua).
--
-- KEYS[1] meta, KEYS[2] stream; ARGV[1] first offset wanted ("0": top
-- only), ARGV[2] count ("0": all), ARGV[3] meta TTL in ms, ARGV[4] the
-- caller's belief of the generation or "", ARGV[5] "1" in a cluster.
-- Returns {epoch, top, entries, generation read or ""}.
local cluster = ARGV[5] == '1'
local m = redis.call('HMGET', KEYS[1], 'epoch', 'offset', 'g')
local epoch, top, g = m[1], m[2], m[3]
local gen, read
gen, read, epoch = generation(ARGV[4], epoch, g, cluster)
if not epoch then
  epoch = new_epoch(redis.call('TIME'))
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'epoch', epoch, 'offset', '0', 'g', gen)
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  return {tonumber(epoch), 0, {}, read}
end
if not g then
  redis.call('HSET', KEYS[1], 'g', gen)
end
if ARGV[1] == '0' then
  return {tonumber(epoch), tonumber(top or '0'), {}, read}
end
local r
if ARGV[2] ~= '0' then
  r = redis.call('XRANGE', KEYS[2], ARGV[1], '+', 'COUNT', ARGV[2])
else
  r = redis.call('XRANGE', KEYS[2], ARGV[1], '+')
end
return {tonumber(epoch), tonumber(top or '0'), r, read}
