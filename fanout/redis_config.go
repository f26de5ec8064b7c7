package fanout

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"

	"github.com/heraldrt/herald/internal/confkey"
)

// RedisConfig configures the Redis broker (section "fanout.redis"). Zero
// values mean the defaults of DefaultRedisConfig. Exactly one of Shards,
// Cluster and Sentinel must be set.
type RedisConfig struct {
	// Shards are independent Redis servers, "host:port". Each channel lives
	// on the shard ShardIndex picks.
	Shards []string `koanf:"shards"`
	// Cluster are seed addresses of a Redis Cluster. Channels are grouped
	// into Partitions hash-tagged partitions and use sharded pub/sub.
	Cluster []string `koanf:"cluster"`
	// Sentinel makes every shard a master set monitored by Redis Sentinel
	// (instead of Shards): Herald asks the sentinels for each set's master
	// and follows failovers.
	Sentinel RedisSentinelConfig `koanf:"sentinel"`
	// Username and Password authenticate to Redis (ACL or requirepass).
	Username string `koanf:"username"`
	// Password is the Redis password (see Username).
	Password string `koanf:"password"`
	// TLS configures TLS to every Redis node.
	TLS RedisTLSConfig `koanf:"tls"`
	// Prefix starts every Redis key and channel name Herald uses (default
	// "herald:"). It must not contain "{", "}" or "|".
	Prefix string `koanf:"prefix"`
	// DialTimeout bounds connecting to a node (default 2s).
	DialTimeout time.Duration `koanf:"dial_timeout"`
	// CommandTimeout bounds each Redis command, subscription confirmation
	// and probe (default 2s).
	CommandTimeout time.Duration `koanf:"command_timeout"`
	// Partitions is the number of hash-tagged partitions in cluster mode
	// (default 16); each node opens one pub/sub connection per partition.
	// Changing it remaps channels to new keys (a new epoch for each).
	Partitions int `koanf:"partitions"`
	// HistorySize is the approximate number of messages retained per
	// channel (XADD MAXLEN ~; default 100). Set from history.size.
	HistorySize int `koanf:"-"`
	// HistoryTTL is how long a channel's history survives without publishes,
	// and the age after which a message is no longer resumable (default
	// 10m). Set from history.ttl.
	HistoryTTL time.Duration `koanf:"-"`
	// Retention, when set, gives per-channel size and TTL (history.retention
	// rules); zero values fall back to HistorySize and HistoryTTL.
	Retention Retention `koanf:"-"`
	// MetaTTL is how long a channel's epoch and offset survive without
	// publishes (default 7 days). It must be much longer than HistoryTTL so
	// idle channels keep their epoch; it is raised to HistoryTTL if lower.
	MetaTTL time.Duration `koanf:"meta_ttl"`
	// IdempotencyWindow is how long an idempotency key is remembered
	// (default 5m).
	IdempotencyWindow time.Duration `koanf:"-"`
	// QueueSize is the capacity of each shard's inbound message queue
	// (default 65536). Messages arriving while it is full are counted in
	// RedisStats.Dropped and re-read from the stream.
	QueueSize int `koanf:"queue_size"`
	// ProbeInterval is how often an idle pub/sub connection is probed by a
	// round trip through Redis (default 5s).
	ProbeInterval time.Duration `koanf:"probe_interval"`
}

// applyDefaults sets each zero field to its default (DefaultRedisConfig,
// DefaultHistorySize, ...).
func (c *RedisConfig) applyDefaults() {
	d := DefaultRedisConfig()
	if c.Prefix == "" {
		c.Prefix = d.Prefix
	}
	if c.DialTimeout <= 0 {
		c.DialTimeout = d.DialTimeout
	}
	if c.CommandTimeout <= 0 {
		c.CommandTimeout = d.CommandTimeout
	}
	if c.Partitions <= 0 {
		c.Partitions = d.Partitions
	}
	if c.HistorySize <= 0 {
		c.HistorySize = DefaultHistorySize
	}
	if c.HistoryTTL <= 0 {
		c.HistoryTTL = DefaultHistoryTTL
	}
	if c.MetaTTL <= 0 {
		c.MetaTTL = d.MetaTTL
	}
	if c.MetaTTL < c.HistoryTTL {
		c.MetaTTL = c.HistoryTTL
	}
	if c.IdempotencyWindow <= 0 {
		c.IdempotencyWindow = DefaultIdempotencyWindow
	}
	if c.QueueSize <= 0 {
		c.QueueSize = d.QueueSize
	}
	if c.ProbeInterval <= 0 {
		c.ProbeInterval = d.ProbeInterval
	}
	if c.Sentinel.RefreshInterval == 0 {
		c.Sentinel.RefreshInterval = d.Sentinel.RefreshInterval
	}
}

// check applies Config.Validate's fanout.redis rules (topology,
// addresses, prefix, credentials, TLS files) for NewRedis.
func (c *RedisConfig) check() error {
	var l confkey.List
	c.validateKeys(&l)
	if err := l.Err(); err != nil {
		return fmt.Errorf("fanout: %w", err)
	}
	return nil
}

// connectShards creates one client per independent shard or Sentinel master
// set. A shard that is merely unreachable is retried in the background (its
// channels are unavailable meanwhile) unless no shard is reachable; a
// refused password or certificate stops the start, naming the shard, since
// retrying cannot fix it. A Sentinel master set must be resolvable at start.
func (b *RedisBroker) connectShards(base rueidis.ClientOption, tlsConf *tls.Config) error {
	cfg := b.cfg
	sentinel := cfg.Sentinel.enabled()
	n := len(cfg.Shards)
	if sentinel {
		n = len(cfg.Sentinel.MasterSets)
	}
	var refused []error
	if tlsConf != nil && !sentinel {
		refused = tlsPreflight(cfg.Shards, tlsConf, base.Dialer)
	}
	sentinelTLS, err := cfg.Sentinel.TLS.Build()
	if err != nil {
		return fmt.Errorf("fanout: redis sentinel: %w", err)
	}
	var errs []error
	for i := range n {
		o := base
		var name, desc string
		if sentinel {
			set := cfg.Sentinel.MasterSets[i]
			o.InitAddress = append([]string(nil), cfg.Sentinel.Addrs...)
			o.Sentinel = rueidis.SentinelOption{
				MasterSet:               set,
				Username:                cfg.Sentinel.Username,
				Password:                cfg.Sentinel.Password,
				TLSConfig:               sentinelTLS,
				Dialer:                  o.Dialer,
				ClientName:              o.ClientName,
				TopologyRefreshInterval: cfg.Sentinel.RefreshInterval,
			}
			name = "sentinel:" + set
			desc = fmt.Sprintf("redis shard %d (sentinel master set %s via %s)", i, set, strings.Join(cfg.Sentinel.Addrs, ","))
		} else {
			addr := cfg.Shards[i]
			o.InitAddress = []string{addr}
			o.ForceSingleClient = true
			name = addr
			desc = fmt.Sprintf("redis shard %d (%s)", i, addr)
		}
		if refused != nil && refused[i] != nil {
			b.closeClients()
			return fmt.Errorf("fanout: %s: %w (check fanout.redis.tls)", desc, refused[i])
		}
		dials := new(atomic.Uint64)
		c, err := rueidis.NewClient(countDials(o, dials))
		if err != nil && tlsConf != nil && !sentinel && !refusedByRedis(err) {
			// A busy server may send its refusal after the preflight's
			// short wait: look again, longer, before calling it unreachable.
			if rerr := tlsCheck(cfg.Shards[i], tlsConf, o.Dialer, max(o.Dialer.Timeout, time.Second)); rerr != nil {
				if c != nil {
					c.Close()
				}
				b.closeClients()
				return fmt.Errorf("fanout: %s: %w (check fanout.redis.tls)", desc, rerr)
			}
		}
		if err != nil && (c == nil || refusedByRedis(err)) {
			if c != nil {
				c.Close()
			}
			b.closeClients()
			return fmt.Errorf("fanout: %s: %w%s", desc, err, refusalHint(err, sentinel))
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", desc, err))
		}
		b.clients = append(b.clients, c)
		b.subs = append(b.subs, b.newSub(name, c, cfg.Prefix, dials))
	}
	if len(errs) == n {
		b.closeClients()
		return fmt.Errorf("fanout: no redis shard reachable: %w", errors.Join(errs...))
	}
	return nil
}

// refusedByRedis reports whether err is a refusal that retrying cannot fix:
// a rejected password or user, a missing permission, or a TLS certificate
// or protocol mismatch (either side).
func refusedByRedis(err error) bool {
	var re *rueidis.RedisError
	if errors.As(err, &re) {
		msg := re.Error()
		for _, p := range []string{"WRONGPASS", "NOAUTH", "NOPERM", "ERR AUTH", "ERR invalid password", "ERR Client sent AUTH"} {
			if strings.HasPrefix(msg, p) {
				return true
			}
		}
		return false
	}
	return isTLSRefusal(err)
}

// refusalHint names the configuration keys to check for a refusal.
func refusalHint(err error, sentinel bool) string {
	switch {
	case isTLSRefusal(err) && sentinel:
		return " (check fanout.redis.tls for the master, fanout.redis.sentinel.tls for the sentinels)"
	case isTLSRefusal(err):
		return " (check fanout.redis.tls)"
	case refusedByRedis(err) && sentinel:
		return " (check fanout.redis.username/password for the master, fanout.redis.sentinel.username/password for the sentinels)"
	case refusedByRedis(err):
		return " (check fanout.redis.username/password)"
	case sentinel && strings.Contains(err.Error(), "No such master"):
		return " (check fanout.redis.sentinel.master_sets)"
	}
	return ""
}

// countDials makes o's client count every connection it opens in dials:
// a new connection may reach another Redis process (a restart, a
// failover), so the generation a node read before it is no longer trusted
// (see redisSub.belief).
func countDials(o rueidis.ClientOption, dials *atomic.Uint64) rueidis.ClientOption {
	next := o.DialCtxFn
	o.DialCtxFn = func(ctx context.Context, dst string, d *net.Dialer, conf *tls.Config) (net.Conn, error) {
		dials.Add(1)
		if next != nil {
			return next(ctx, dst, d, conf)
		}
		if conf != nil {
			return (&tls.Dialer{NetDialer: d, Config: conf}).DialContext(ctx, "tcp", dst)
		}
		return d.DialContext(ctx, "tcp", dst)
	}
	return o
}
