package fanout

import (
	"fmt"
	"time"

	"github.com/redis/rueidis"
)

// Redis Sentinel: the sentinel section and the watcher that rebuilds a
// shard's pub/sub connection when its master set fails over.

// RedisSentinelConfig configures Redis Sentinel: each shard is a master set
// (a master and its replicas) that the sentinels monitor and fail over.
// Herald asks the sentinels for each set's current master, follows their
// +switch-master announcements and re-checks every RefreshInterval.
type RedisSentinelConfig struct {
	// MasterSets are the master set names ("sentinel monitor <name> ..."),
	// one per shard. Like fanout.redis.shards, their order decides which
	// shard holds a channel and must be the same everywhere.
	MasterSets []string `koanf:"master_sets"`
	// Addrs are the sentinels, "host:port"; one reachable sentinel is
	// enough, the others are discovered.
	Addrs []string `koanf:"addrs"`
	// Username and Password authenticate to the sentinels (their own
	// "requirepass"/ACL); fanout.redis.username and password authenticate
	// to the masters.
	Username string `koanf:"username"`
	// Password is the sentinels' password (see Username).
	Password string `koanf:"password"`
	// TLS configures TLS to the sentinels (independent of fanout.redis.tls,
	// which applies to the masters).
	TLS RedisTLSConfig `koanf:"tls"`
	// RefreshInterval is how often the sentinels are asked for the master
	// even without an announcement (default 2s), so a missed +switch-master
	// event delays recovery by at most this long.
	RefreshInterval time.Duration `koanf:"refresh_interval"`
}

// enabled reports whether sentinel mode is configured.
func (s RedisSentinelConfig) enabled() bool { return len(s.MasterSets) > 0 || len(s.Addrs) > 0 }

// sentinelWatchInterval is how often a Sentinel shard's current master is
// compared with the one its pub/sub connection was opened on.
const sentinelWatchInterval = 200 * time.Millisecond

// watchSentinelMasters ends a Sentinel shard's pub/sub session when the
// client has switched to another master (a failover), so that it subscribes
// again on the new master at once instead of when its probe fails: a frozen
// or partitioned old master may keep the connection open but silent, and a
// demoted one only relays what it still replicates.
func (b *RedisBroker) watchSentinelMasters() {
	if !b.cfg.Sentinel.enabled() {
		return
	}
	for _, s := range b.subs {
		b.wg.Add(1)
		go func() {
			defer b.wg.Done()
			t := time.NewTicker(sentinelWatchInterval)
			defer t.Stop()
			last := masterAddr(s.client)
			for {
				select {
				case <-b.ctx.Done():
					return
				case <-t.C:
				}
				cur := masterAddr(s.client)
				if cur != last && last != "" {
					select {
					case s.broken <- fmt.Errorf("redis %s: master moved from %s to %s", s.name, last, cur):
					default:
					}
					select {
					case s.retryNow <- struct{}{}:
					default:
					}
				}
				last = cur
			}
		}()
	}
}

// masterAddr is the address a Sentinel client currently sends commands to.
func masterAddr(c rueidis.Client) string {
	for addr := range c.Nodes() {
		return addr
	}
	return ""
}
