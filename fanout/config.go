package fanout

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/heraldrt/herald/internal/confkey"
)

// Config is the "fanout" configuration section: which broker a node uses
// and the Redis broker's settings.
type Config struct {
	// Broker is "memory" (one node) or "redis" (many nodes).
	Broker string `koanf:"broker"`
	// Redis configures the Redis broker.
	Redis RedisConfig `koanf:"redis"`
}

// History and idempotency defaults shared by both brokers (and by the
// history.size, history.ttl and api.idempotency_window keys).
const (
	// DefaultHistorySize is how many messages a channel retains.
	DefaultHistorySize = 100
	// DefaultHistoryTTL is how long a retained message stays resumable.
	DefaultHistoryTTL = 10 * time.Minute
	// DefaultIdempotencyWindow is how long an idempotency key is
	// remembered.
	DefaultIdempotencyWindow = 5 * time.Minute
)

// DefaultConfig returns the section's defaults: the memory broker, and the
// Redis broker's defaults for when it is chosen.
func DefaultConfig() Config {
	return Config{Broker: "memory", Redis: DefaultRedisConfig()}
}

// DefaultRedisConfig returns the Redis broker's defaults; NewRedis fills
// a zero field of its RedisConfig from them. No topology is set, and the
// fields set from other sections (HistorySize, HistoryTTL,
// IdempotencyWindow) are left zero: NewRedis defaults them to
// DefaultHistorySize, DefaultHistoryTTL and DefaultIdempotencyWindow.
func DefaultRedisConfig() RedisConfig {
	return RedisConfig{
		Prefix:         "herald:",
		DialTimeout:    2 * time.Second,
		CommandTimeout: 2 * time.Second,
		Partitions:     16,
		MetaTTL:        7 * 24 * time.Hour,
		QueueSize:      65536,
		ProbeInterval:  5 * time.Second,
		Sentinel:       RedisSentinelConfig{RefreshInterval: 2 * time.Second},
	}
}

// Validate checks the section (key "fanout") and returns every problem as
// a *confkey.Error naming its full key (fanout.redis.shards, ...). The
// Redis topology is checked only for the redis broker; the Redis timeouts
// always.
func (c Config) Validate() error {
	var l confkey.List
	switch c.Broker {
	case "memory":
	case "redis":
		c.Redis.validateKeys(&l)
	default:
		l.Add("fanout.broker", "must be memory or redis, got %q", c.Broker)
	}
	l.Between("fanout.redis.dial_timeout", c.Redis.DialTimeout, 10*time.Millisecond, time.Minute, false)
	l.Between("fanout.redis.command_timeout", c.Redis.CommandTimeout, 10*time.Millisecond, time.Minute, false)
	l.Between("fanout.redis.probe_interval", c.Redis.ProbeInterval, 100*time.Millisecond, 5*time.Minute, false)
	return l.Err()
}

// validateKeys checks fanout.redis for the redis broker: exactly one
// topology (shards, cluster or sentinel), addresses, the key prefix, the
// sentinel section, credentials and the TLS files. NewRedis applies it
// too.
func (r RedisConfig) validateKeys(l *confkey.List) {
	sentinel := r.Sentinel.enabled()
	n := 0
	for _, set := range []bool{len(r.Shards) > 0, len(r.Cluster) > 0, sentinel} {
		if set {
			n++
		}
	}
	switch {
	case n == 0:
		l.Add("fanout.redis.shards", "set shards, fanout.redis.cluster or fanout.redis.sentinel for the redis broker")
	case n > 1 && len(r.Cluster) > 0:
		l.Add("fanout.redis.cluster", "shards, cluster and sentinel are mutually exclusive")
	case n > 1:
		l.Add("fanout.redis.sentinel", "shards and sentinel are mutually exclusive (sentinel.master_sets lists the shards)")
	}
	hostPorts := func(key string, addrs []string) {
		for i, a := range addrs {
			if _, _, err := net.SplitHostPort(a); err != nil {
				l.Add(fmt.Sprintf("%s[%d]", key, i), "%q is not host:port", a)
			}
		}
	}
	if strings.ContainsAny(r.Prefix, "{}|") {
		l.Add("fanout.redis.prefix", "%q must not contain '{', '}' or '|'", r.Prefix)
	}
	hostPorts("fanout.redis.shards", r.Shards)
	hostPorts("fanout.redis.cluster", r.Cluster)
	if sentinel {
		s := r.Sentinel
		if len(s.MasterSets) == 0 {
			l.Add("fanout.redis.sentinel.master_sets", "list one master set name per shard")
		}
		seen := make(map[string]bool, len(s.MasterSets))
		for i, m := range s.MasterSets {
			switch {
			case m == "" || strings.ContainsAny(m, " \t\r\n"):
				l.Add(fmt.Sprintf("fanout.redis.sentinel.master_sets[%d]", i), "%q is not a master set name", m)
			case seen[m]:
				l.Add(fmt.Sprintf("fanout.redis.sentinel.master_sets[%d]", i), "%q is listed twice", m)
			}
			seen[m] = true
		}
		if len(s.Addrs) == 0 {
			l.Add("fanout.redis.sentinel.addrs", "list at least one sentinel host:port")
		}
		hostPorts("fanout.redis.sentinel.addrs", s.Addrs)
		if s.RefreshInterval < 0 {
			l.Add("fanout.redis.sentinel.refresh_interval", "must not be negative, got %s", s.RefreshInterval)
		}
		if s.Password == "" && s.Username != "" {
			l.Add("fanout.redis.sentinel.password", "set a password with fanout.redis.sentinel.username")
		}
		s.TLS.validateKeys("fanout.redis.sentinel.tls", l)
	}
	if r.Password == "" && r.Username != "" {
		l.Add("fanout.redis.password", "set a password with fanout.redis.username")
	}
	r.TLS.validateKeys("fanout.redis.tls", l)
}

// validateKeys checks an enabled TLS section under key.
func (t RedisTLSConfig) validateKeys(key string, l *confkey.List) {
	if !t.Enabled {
		return
	}
	if (t.CertFile == "") != (t.KeyFile == "") {
		l.Add(key+".cert_file", "set both %s.cert_file and key_file, or neither", key)
	}
	filesOK := true
	for _, kf := range [][2]string{
		{key + ".ca_file", t.CAFile}, {key + ".cert_file", t.CertFile}, {key + ".key_file", t.KeyFile},
	} {
		if kf[1] != "" {
			if _, err := os.Stat(kf[1]); err != nil {
				l.Add(kf[0], "%v", err)
				filesOK = false
			}
		}
	}
	if filesOK && (t.CertFile == "") == (t.KeyFile == "") {
		if _, err := t.Build(); err != nil {
			l.Add(key, "%v", err)
		}
	}
}

// Sections are the configuration sections a broker is built from: the
// "fanout" section, the "history" section, the idempotency window
// (api.idempotency_window) and the per-channel retention lookup (nil: every
// channel keeps History.Size messages for History.TTL). Memory and Redis
// turn them into the chosen broker's config.
type Sections struct {
	// Fanout is the "fanout" section: the broker and its Redis settings.
	Fanout Config
	// History is the "history" section: size and TTL of every channel's
	// history.
	History HistoryConfig
	// IdempotencyWindow is how long an idempotency key is remembered.
	IdempotencyWindow time.Duration
	// Retention gives per-channel size and TTL (history.retention rules,
	// which a reload may change); zero values fall back to History.
	Retention Retention
}

// Memory returns the memory broker's config for s.
func (s Sections) Memory() MemoryConfig {
	return MemoryConfig{
		HistorySize:       s.History.Size,
		HistoryTTL:        s.History.TTL,
		IdempotencyWindow: s.IdempotencyWindow,
		Retention:         s.Retention,
	}
}

// Redis returns the Redis broker's config for s: fanout.redis with the
// history settings.
func (s Sections) Redis() RedisConfig {
	rc := s.Fanout.Redis
	rc.HistorySize = s.History.Size
	rc.HistoryTTL = s.History.TTL
	rc.IdempotencyWindow = s.IdempotencyWindow
	rc.Retention = s.Retention
	return rc
}

// HistoryConfig is the "history" configuration section: the per-channel
// history both brokers keep for resume (Sections sets MemoryConfig's and
// RedisConfig's HistorySize and HistoryTTL from it).
type HistoryConfig struct {
	// Size is how many messages each channel keeps.
	Size int `koanf:"size"`
	// TTL is how long a message stays resumable.
	TTL time.Duration `koanf:"ttl"`
	// Retention overrides size and TTL for channels matching a pattern:
	// "pattern=size/ttl" ("user:*=200/24h", "broadcast=20/", "audit:*=/1h");
	// the first matching rule wins, an empty part keeps the default.
	Retention []string `koanf:"retention"`
}

// RetentionRule is one parsed history.retention entry; a zero Size or TTL
// keeps the default.
type RetentionRule struct {
	// Pattern is the channel glob the rule applies to.
	Pattern string
	// Size is the history size of matching channels.
	Size int
	// TTL is the history TTL of matching channels.
	TTL time.Duration
}

// RetentionRules parses history.retention.
func (h HistoryConfig) RetentionRules() ([]RetentionRule, error) {
	var out []RetentionRule
	for i, r := range h.Retention {
		pat, spec, ok := strings.Cut(r, "=")
		sizeStr, ttlStr, ok2 := strings.Cut(spec, "/")
		if !ok || !ok2 || pat == "" {
			return nil, fmt.Errorf("history.retention[%d]: %q must be \"pattern=size/ttl\"", i, r)
		}
		rule := RetentionRule{Pattern: pat}
		if sizeStr != "" {
			n, err := strconv.Atoi(sizeStr)
			if err != nil || n < 1 || n > 1_000_000 {
				return nil, fmt.Errorf("history.retention[%d]: size %q must be 1..1000000", i, sizeStr)
			}
			rule.Size = n
		}
		if ttlStr != "" {
			d, err := time.ParseDuration(ttlStr)
			if err != nil || d <= 0 {
				return nil, fmt.Errorf("history.retention[%d]: ttl %q must be a positive duration", i, ttlStr)
			}
			rule.TTL = d
		}
		out = append(out, rule)
	}
	return out, nil
}

// DefaultHistoryConfig returns the history section's defaults.
func DefaultHistoryConfig() HistoryConfig {
	return HistoryConfig{Size: DefaultHistorySize, TTL: DefaultHistoryTTL}
}

// Validate checks the history section and returns every problem as a
// *confkey.Error naming its full key.
func (h HistoryConfig) Validate() error {
	var l confkey.List
	if h.Size < 1 || h.Size > 1_000_000 {
		l.Add("history.size", "must be between 1 and 1000000, got %d", h.Size)
	}
	l.Between("history.ttl", h.TTL, time.Second, 30*24*time.Hour, false)
	if _, err := h.RetentionRules(); err != nil {
		l.Append(&confkey.Error{Key: "history.retention", Msg: err.Error()})
	}
	return l.Err()
}
