package fanout

import (
	"context"
	"time"
)

// Optional broker capabilities. A Broker publishes, subscribes and serves
// history; the interfaces below are what a broker may offer beyond that.
// The edge resolves them once, when it builds its broker, and treats a
// missing one as "this deployment has no such thing" (see each interface).
//
//	capability       MemoryBroker            RedisBroker
//	HealthChecker    yes (fails once closed) yes (per shard)
//	RecentReader     yes                     yes
//	ShardReporter    no: one node, no shards yes
//	ConnCounter      no: see ConnCounter     yes
//	PreferenceStore  no: see PreferenceStore yes

// HealthChecker is implemented by brokers that can tell whether they are
// currently usable (for /readyz).
type HealthChecker interface {
	// Healthy returns nil when the broker can publish and deliver.
	Healthy(ctx context.Context) error
}

// RecentReader is implemented by brokers that can list a channel's retained
// messages newest first, for the history API. It is optional: resume uses
// Broker.History.
type RecentReader interface {
	// Recent returns up to limit retained messages of channel with offsets
	// below before (0: from the newest), newest first, in the channel's
	// current epoch.
	Recent(ctx context.Context, channel string, before uint64, limit int) ([]*Message, error)
}

// ShardReporter is implemented by brokers spread over several servers, to
// report each one's state (for /readyz, the console and metrics).
type ShardReporter interface {
	// ShardHealth reports the state of every shard's pub/sub connection.
	ShardHealth() []ShardHealth
}

// ConnCounter counts a user's connections across all nodes, for the
// per-user connection limit. Connection ids are "<node>.<n>".
//
// The memory broker has none: it serves one node, whose own count of its
// connections is already exact, so the edge counts locally without it.
type ConnCounter interface {
	// AcquireConn registers connection conn of user if the user holds
	// fewer than limit connections (limit <= 0: no limit). At the limit
	// with evict set, the oldest connection is unregistered and returned as
	// victim (its node must close it); otherwise admitted is false. lease
	// is how long the registration lasts without RenewConns.
	AcquireConn(ctx context.Context, user, conn string, limit int, evict bool, lease time.Duration) (victim string, admitted bool, err error)
	// ReleaseConn unregisters connection conn of user.
	ReleaseConn(ctx context.Context, user, conn string) error
	// RenewConns extends the leases of this node's connections (user →
	// connection ids).
	RenewConns(ctx context.Context, conns map[string][]string, lease time.Duration) error
	// NodeAlive keeps node's connections counting; without it for
	// NodeAliveTTL they stop counting (a crashed node).
	NodeAlive(ctx context.Context, node string) error
	// NodeGone stops node's connections counting at once.
	NodeGone(ctx context.Context, node string) error
}

// PreferenceStore keeps users' notification preferences (an opaque string
// per user) where every node can read them.
//
// The memory broker has none: on a single node the edge's own cache of
// preferences is the only copy there needs to be, so it keeps them there.
type PreferenceStore interface {
	// SetPreferences stores user's preferences; "" deletes them.
	SetPreferences(ctx context.Context, user, prefs string) error
	// Preferences returns user's stored preferences ("" when none).
	Preferences(ctx context.Context, user string) (string, error)
}

// Compile-time checks of what each broker offers (the table above).
var (
	_ HealthChecker = (*MemoryBroker)(nil)
	_ RecentReader  = (*MemoryBroker)(nil)

	_ HealthChecker   = (*RedisBroker)(nil)
	_ RecentReader    = (*RedisBroker)(nil)
	_ ShardReporter   = (*RedisBroker)(nil)
	_ ConnCounter     = (*RedisBroker)(nil)
	_ PreferenceStore = (*RedisBroker)(nil)
)
