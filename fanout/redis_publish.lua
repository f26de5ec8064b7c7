-- Herald publish script: the only way messages enter a channel's history.
-- It runs after redis_prelude.lua, as one script with it. Herald and
-- external backends both run it (EVALSHA, falling back to EVAL),
-- so every publish is atomic: assign the next offset, append to the stream,
-- refresh TTLs, remember the idempotency key and fan out over pub/sub.
--
-- KEYS[1]  meta hash      <prefix><tag>meta:<channel>   (fields epoch, offset)
-- KEYS[2]  stream         <prefix><tag>hist:<channel>
-- KEYS[3]  optional idempotency key <prefix><tag>idem:<channel>|<key>
--          (pass 2 keys when the publish has no idempotency key)
-- ARGV[1]  pub/sub channel <prefix><tag>chan:<channel>
-- ARGV[2]  data, a JSON value
-- ARGV[3]  W3C traceparent, or ""
-- ARGV[4]  published-at in Unix nanoseconds; "" or "0" uses the server clock
-- ARGV[5]  history size (XADD MAXLEN ~)
-- ARGV[6]  history TTL in milliseconds (stream PEXPIRE)
-- ARGV[7]  meta TTL in milliseconds (meta PEXPIRE)
-- ARGV[8]  idempotency window in milliseconds
-- ARGV[9]  "1" to use SPUBLISH (Redis Cluster), anything else PUBLISH
-- ARGV[10] optional: the caller's belief of the server's generation (see
--          redis_prelude.lua), or "" / absent when it has none
-- <tag> is "" for independent shards and "{p<N>}" in cluster mode.
--
-- Returns {epoch, offset, duplicate, generation}: duplicate is 1 when
-- KEYS[3] was seen within the window, and then epoch/offset are the first
-- publish's. generation is the server's generation when this call read it
-- (INFO), "" when the caller's belief was used.
--
-- Generation: see redis_prelude.lua, which Herald (and a backend) puts in
-- front of this file; it defines generation and new_epoch.
local meta, stream, idem = KEYS[1], KEYS[2], KEYS[3]
local cluster = ARGV[9] == '1'
local gen = ARGV[10] or ''
if idem then
  local prev = redis.call('GET', idem)
  if prev then
    local e, o = string.match(prev, '^(%d+):(%d+)$')
    if e then
      return {tonumber(e), tonumber(o), 1, ''}
    end
  end
end
local now = redis.call('TIME')
local m = redis.call('HMGET', meta, 'epoch', 'offset', 'g')
local epoch, offset, g = m[1], tonumber(m[2] or '0'), m[3]
local read
gen, read, epoch = generation(gen, epoch, g, cluster)
if not epoch then
  -- A new history: any stream left without its meta hash belongs to an
  -- older history.
  epoch = new_epoch(now)
  redis.call('DEL', stream)
  offset = 0
end
offset = offset + 1
local off = string.format('%d', offset)
local ts = ARGV[4]
if ts == '' or ts == '0' then
  ts = now[1] .. string.format('%06d', tonumber(now[2])) .. '000'
end
-- XADD first: if it fails nothing has been written yet.
redis.call('XADD', stream, 'MAXLEN', '~', ARGV[5], off .. '-1', 'd', ARGV[2], 't', ts, 'p', ARGV[3])
if g == gen then
  redis.call('HSET', meta, 'epoch', epoch, 'offset', off)
else
  redis.call('HSET', meta, 'epoch', epoch, 'offset', off, 'g', gen)
end
redis.call('PEXPIRE', stream, ARGV[6])
redis.call('PEXPIRE', meta, ARGV[7])
if idem then
  redis.call('SET', idem, epoch .. ':' .. off, 'PX', ARGV[8], 'NX')
end
-- The traceparent's length goes before it, so no byte of it can shift the data.
-- (An empty one, the common case, skips formatting a number.)
local tplen = '0'
if ARGV[3] ~= '' then
  tplen = string.format('%d', #ARGV[3])
end
local payload = 'h2|' .. epoch .. '|' .. off .. '|' .. ts .. '|' .. tplen .. '|' .. ARGV[3] .. ARGV[2]
if ARGV[9] == '1' then
  redis.call('SPUBLISH', ARGV[1], payload)
else
  redis.call('PUBLISH', ARGV[1], payload)
end
return {tonumber(epoch), offset, 0, read}
