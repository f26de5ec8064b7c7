package fanout

import _ "embed"

// The Lua scripts, one file each; redis_prelude.lua holds what they share
// (the generation check, a new epoch) and goes in front of each.
var (
	//go:embed redis_prelude.lua
	redisPreludeLua string
	//go:embed redis_publish.lua
	redisPublishLua string
	//go:embed redis_history.lua
	redisHistoryLua string
)

// redisPublishScript is the publish script: redis_prelude.lua followed by
// redis_publish.lua.
var redisPublishScript = redisPreludeLua + redisPublishLua

// RedisPublishScript returns the Lua source of the publish script. Every
// publish, Herald's own and those of backends writing to Redis directly,
// runs it; docs/redis.md describes its keys and arguments. It is
// fanout/redis_prelude.lua followed by fanout/redis_publish.lua.
func RedisPublishScript() string { return redisPublishScript }

// redisHistoryScript reads a channel's epoch, top offset and stream
// entries (see redis_history.lua): redis_prelude.lua followed by
// redis_history.lua.
var redisHistoryScript = redisPreludeLua + redisHistoryLua

// The per-user connection-count scripts (see redis_conns.go): admit a
// connection under the limit, renew a node's leases.
var (
	//go:embed redis_conn_acquire.lua
	connAcquireScript string
	//go:embed redis_conn_renew.lua
	connRenewScript string
)
