package fanout

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"
)

// RedisConfig configures the Redis broker (section "fanout.redis"). Zero
// values mean the defaults of DefaultRedisConfig. Exactly one of Shards and Cluster must be set.
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

func (c *RedisConfig) validate() error {
	switch {
	case strings.ContainsAny(c.Prefix, "{}|"):
		return fmt.Errorf("fanout: redis prefix %q must not contain '{', '}' or '|'", c.Prefix)
	}
	return c.validateTopology()
}

// RedisTLSConfig configures TLS to Redis.
type RedisTLSConfig struct {
	// Enabled turns TLS on.
	Enabled bool `koanf:"enabled"`
	// CAFile is a PEM bundle of CAs trusted for the server certificate; the
	// system pool when empty.
	CAFile string `koanf:"ca_file"`
	// CertFile and KeyFile are a PEM client certificate and key for mutual
	// TLS; both or neither.
	CertFile string `koanf:"cert_file"`
	// KeyFile is the client certificate's private key (see CertFile).
	KeyFile string `koanf:"key_file"`
	// InsecureSkipVerify disables server certificate verification (tests
	// only).
	InsecureSkipVerify bool `koanf:"insecure_skip_verify"`
	// ServerName overrides the name checked in the server certificate.
	ServerName string `koanf:"server_name"`
}

// Build returns the crypto/tls configuration, or nil when TLS is disabled.
// It fails when a file cannot be read or holds no usable certificate.
func (t RedisTLSConfig) Build() (*tls.Config, error) {
	if !t.Enabled {
		return nil, nil
	}
	conf := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: t.InsecureSkipVerify, ServerName: t.ServerName}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("redis tls ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("redis tls ca_file %s: no PEM certificates", t.CAFile)
		}
		conf.RootCAs = pool
	}
	if (t.CertFile == "") != (t.KeyFile == "") {
		return nil, errors.New("redis tls: set both cert_file and key_file, or neither")
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("redis tls client certificate: %w", err)
		}
		conf.Certificates = []tls.Certificate{cert}
	}
	return conf, nil
}

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

// validateTopology checks that exactly one of shards, cluster and sentinel
// is configured, and the sentinel section itself.
func (c *RedisConfig) validateTopology() error {
	n := 0
	for _, set := range []bool{len(c.Shards) > 0, len(c.Cluster) > 0, c.Sentinel.enabled()} {
		if set {
			n++
		}
	}
	switch {
	case n > 1:
		return errors.New("fanout: redis shards, cluster and sentinel are mutually exclusive")
	case n == 0:
		return errors.New("fanout: redis needs shards, cluster or sentinel addresses")
	case c.Sentinel.enabled():
		return c.Sentinel.validate()
	}
	return nil
}

func (s RedisSentinelConfig) validate() error {
	if len(s.MasterSets) == 0 {
		return errors.New("fanout: redis sentinel.master_sets: list one master set name per shard")
	}
	if len(s.Addrs) == 0 {
		return errors.New("fanout: redis sentinel.addrs: list at least one sentinel host:port")
	}
	seen := make(map[string]bool, len(s.MasterSets))
	for i, m := range s.MasterSets {
		if m == "" || strings.ContainsAny(m, " \t\r\n") {
			return fmt.Errorf("fanout: redis sentinel.master_sets[%d]: %q is not a master set name", i, m)
		}
		if seen[m] {
			return fmt.Errorf("fanout: redis sentinel.master_sets[%d]: %q is listed twice", i, m)
		}
		seen[m] = true
	}
	for i, a := range s.Addrs {
		if _, _, err := net.SplitHostPort(a); err != nil {
			return fmt.Errorf("fanout: redis sentinel.addrs[%d]: %q is not host:port", i, a)
		}
	}
	if s.RefreshInterval < 0 {
		return fmt.Errorf("fanout: redis sentinel.refresh_interval: must not be negative, got %s", s.RefreshInterval)
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

// tlsPreflight checks, concurrently, that every reachable shard completes
// a TLS handshake and keeps the connection open, returning one error per
// shard (nil: fine or unreachable). A server that checks client
// certificates under TLS 1.3 refuses one only after the handshake, with an
// alert the client may miss once it has written a command (the connection
// is then reset); reading before writing anything sees the alert.
func tlsPreflight(addrs []string, conf *tls.Config, dialer net.Dialer) []error {
	out := make([]error, len(addrs))
	var wg sync.WaitGroup
	for i, addr := range addrs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i] = tlsCheck(addr, conf, dialer, tlsPreflightWait)
		}()
	}
	wg.Wait()
	return out
}

// CheckRedisTLS tells why a TLS connection to the Redis server at addr
// fails: it completes a handshake and waits up to wait for the server to
// refuse the connection (TLS 1.3 servers refuse a client certificate only
// after the handshake). It returns nil when the server accepted, or when
// addr is unreachable or hung.
func CheckRedisTLS(addr string, conf *tls.Config, dialer net.Dialer, wait time.Duration) error {
	return tlsCheck(addr, conf, dialer, wait)
}

// tlsCheck dials addr, completes a TLS handshake and waits up to wait for
// the server to refuse the connection; nil when it did not (or when addr
// is unreachable).
func tlsCheck(addr string, conf *tls.Config, dialer net.Dialer, wait time.Duration) error {
	raw, err := dialer.Dial("tcp", addr)
	if err != nil {
		return nil // unreachable: not a refusal, retried later
	}
	defer raw.Close()
	c := conf.Clone()
	if c.ServerName == "" {
		c.ServerName, _, _ = net.SplitHostPort(addr)
	}
	tc := tls.Client(raw, c)
	timeout := dialer.Timeout
	if timeout <= 0 {
		timeout = 2 * time.Second
	}
	_ = tc.SetDeadline(time.Now().Add(timeout))
	if err := tc.Handshake(); err != nil {
		if ne := net.Error(nil); errors.As(err, &ne) && ne.Timeout() {
			return nil // a hung server is unavailable, not refusing
		}
		return fmt.Errorf("tls handshake: %w", err)
	}
	_ = tc.SetReadDeadline(time.Now().Add(wait))
	var one [1]byte
	_, err = tc.Read(one[:])
	if ne := net.Error(nil); errors.As(err, &ne) && ne.Timeout() {
		return nil // the server waits for a command: it accepted us
	}
	if err == nil {
		return errors.New("tls: the server spoke first")
	}
	return fmt.Errorf("tls: the server closed the connection after the handshake: %w", err)
}

// tlsPreflightWait is how long tlsCheck waits for a refusal after the
// handshake.
const tlsPreflightWait = 300 * time.Millisecond

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

func isTLSRefusal(err error) bool {
	var (
		unknownCA *x509.UnknownAuthorityError
		unknownV  x509.UnknownAuthorityError
		hostname  x509.HostnameError
		hostnameP *x509.HostnameError
		invalid   x509.CertificateInvalidError
		invalidP  *x509.CertificateInvalidError
		verify    *tls.CertificateVerificationError
		record    tls.RecordHeaderError
		op        *net.OpError
	)
	switch {
	case errors.As(err, &unknownCA), errors.As(err, &unknownV), errors.As(err, &hostname), errors.As(err, &hostnameP),
		errors.As(err, &invalid), errors.As(err, &invalidP), errors.As(err, &verify), errors.As(err, &record):
		return true
	case errors.As(err, &op) && op.Op == "remote error": // a TLS alert from the server, e.g. certificate required
		return true
	}
	return false
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
