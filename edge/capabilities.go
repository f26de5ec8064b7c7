package edge

import (
	"github.com/heraldrt/herald/fanout"
)

// brokerCaps are the optional capabilities of the node's broker (see
// fanout/capabilities.go), resolved once by newBroker from the concrete
// broker it built. A nil field means the broker has no such capability and
// the node does without: per-node connection counting, preferences in the
// node's memory only, no shard list, no history listing, always ready.
type brokerCaps struct {
	health fanout.HealthChecker
	recent fanout.RecentReader
	shards fanout.ShardReporter
	conns  fanout.ConnCounter
	prefs  fanout.PreferenceStore
	// redis is the Redis broker, for its metrics; nil with any other.
	redis *fanout.RedisBroker
}

// memoryCaps are the memory broker's capabilities.
func memoryCaps(b *fanout.MemoryBroker) brokerCaps {
	return brokerCaps{health: b, recent: b}
}

// redisCaps are the Redis broker's capabilities: all of them.
func redisCaps(b *fanout.RedisBroker) brokerCaps {
	return brokerCaps{health: b, recent: b, shards: b, conns: b, prefs: b, redis: b}
}
