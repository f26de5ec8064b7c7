-- Herald script prelude: the functions shared by the scripts that read or
-- write a channel's meta hash. Herald puts this file in front of
-- redis_publish.lua and redis_history.lua; a backend running the publish
-- script sends this file followed by redis_publish.lua as one script
-- (fanout.RedisPublishScript() returns exactly that).
--
-- Generation: the meta hash's field g names the Redis process that last
-- wrote it (run_id, plus "@<node id>" in a cluster). A restart (from an
-- older snapshot or a truncated AOF) or a failover to a replica gives a new
-- process, whose data set may have gone back: offsets already handed out
-- would be handed out again for different messages. So when g is not the
-- current process, the channel starts a new epoch. Reading run_id (INFO)
-- costs more than the rest of the script, so a caller that knows the
-- generation passes it and the check is one string comparison; a caller
-- that does not (a backend, or a Herald node whose connection to the shard
-- was re-established) passes "" and the script reads it.

-- generation checks the caller's belief gen ("" for none) against the meta
-- hash's epoch and g. It returns the generation to write, the one it read
-- from the server ("" when the belief was trusted), and the epoch, nil when
-- the meta hash was written by another Redis process (its history may have
-- gone back).
local function generation(gen, epoch, g, cluster)
  local read = ''
  if gen == '' or (epoch and g ~= gen) or (cluster and string.sub(gen, -40) ~= redis.call('CLUSTER', 'MYID')) then
    read = string.match(redis.call('INFO', 'server'), 'run_id:(%x+)')
    if cluster then
      read = read .. '@' .. redis.call('CLUSTER', 'MYID')
    end
    gen = read
  end
  if epoch and g and g ~= gen then
    epoch = nil
  end
  return gen, read, epoch
end

-- new_epoch starts a new history: the epoch comes from the server clock
-- now (TIME; microseconds, wrapping every 4294 s, never 0) so a restarted
-- shard gets a different one.
local function new_epoch(now)
  local epoch = string.format('%d', (tonumber(now[1]) % 4294) * 1000000 + tonumber(now[2]))
  if epoch == '0' then
    epoch = '1'
  end
  return epoch
end
