package fanout

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/heraldrt/herald/internal/confkey"
)

// The section's defaults validate; each problem names its full key.
func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	for _, tc := range []struct {
		mutate func(*Config)
		key    string
	}{
		{func(c *Config) { c.Broker = "kafka" }, "fanout.broker"},
		{func(c *Config) { c.Broker = "redis" }, "fanout.redis.shards"},
		{func(c *Config) { c.Broker, c.Redis.Shards = "redis", []string{"nohost"} }, "fanout.redis.shards[0]"},
		{func(c *Config) { c.Redis.DialTimeout = 0 }, "fanout.redis.dial_timeout"},
		{func(c *Config) { c.Broker, c.Redis.Shards, c.Redis.Prefix = "redis", []string{"a:1"}, "a{b}" }, "fanout.redis.prefix"},
		{func(c *Config) { c.Broker, c.Redis.Shards, c.Redis.Username = "redis", []string{"a:1"}, "u" }, "fanout.redis.password"},
		{func(c *Config) {
			c.Broker, c.Redis.Sentinel.Addrs = "redis", []string{"127.0.0.1:26379"}
		}, "fanout.redis.sentinel.master_sets"},
	} {
		c := DefaultConfig()
		tc.mutate(&c)
		var ke *confkey.Error
		if err := c.Validate(); !errors.As(err, &ke) || ke.Key != tc.key {
			t.Errorf("got %v, want an error for %s", err, tc.key)
		}
	}
}

// NewRedis's zero-value defaults are DefaultRedisConfig's, plus the
// history defaults the history section sets.
func TestRedisApplyDefaults(t *testing.T) {
	var got RedisConfig
	got.applyDefaults()
	want := DefaultRedisConfig()
	want.HistorySize, want.HistoryTTL, want.IdempotencyWindow = DefaultHistorySize, DefaultHistoryTTL, DefaultIdempotencyWindow
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("applyDefaults:\n got %+v\nwant %+v", got, want)
	}
	m := MemoryConfig{}
	m.applyDefaults()
	if m.HistorySize != 100 || m.HistoryTTL != 10*time.Minute || m.IdempotencyWindow != 5*time.Minute {
		t.Fatalf("memory defaults %+v", m)
	}
}

// The history section: defaults validate, rules parse, problems name
// their keys.
func TestHistoryConfig(t *testing.T) {
	h := DefaultHistoryConfig()
	if err := h.Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	h.Retention = []string{"user:*=200/24h", "broadcast=20/", "audit:*=/1h"}
	rules, err := h.RetentionRules()
	want := []RetentionRule{{"user:*", 200, 24 * time.Hour}, {"broadcast", 20, 0}, {"audit:*", 0, time.Hour}}
	if err != nil || !reflect.DeepEqual(rules, want) {
		t.Fatalf("rules %+v %v, want %+v", rules, err, want)
	}
	for _, tc := range []struct {
		mutate func(*HistoryConfig)
		key    string
	}{
		{func(h *HistoryConfig) { h.Size = 0 }, "history.size"},
		{func(h *HistoryConfig) { h.TTL = 0 }, "history.ttl"},
		{func(h *HistoryConfig) { h.Retention = []string{"user:*"} }, "history.retention"},
	} {
		h := DefaultHistoryConfig()
		tc.mutate(&h)
		var ke *confkey.Error
		if err := h.Validate(); !errors.As(err, &ke) || ke.Key != tc.key {
			t.Errorf("got %v, want an error for %s", err, tc.key)
		}
	}
}

// Sections hands each broker the history section, the idempotency window
// and the retention lookup, and the Redis broker its fanout.redis keys.
func TestSectionsConfig(t *testing.T) {
	sec := Sections{
		Fanout:            Config{Broker: "redis", Redis: RedisConfig{Shards: []string{"a:1"}, Prefix: "p:", QueueSize: 7}},
		History:           HistoryConfig{Size: 12, TTL: time.Hour, Retention: []string{"x=1/"}},
		IdempotencyWindow: 3 * time.Minute,
		Retention:         func(string) (int, time.Duration) { return 9, time.Second },
	}
	m := sec.Memory()
	if m.HistorySize != 12 || m.HistoryTTL != time.Hour || m.IdempotencyWindow != 3*time.Minute {
		t.Fatalf("memory config %+v", m)
	}
	if size, ttl := m.retention("c"); size != 9 || ttl != time.Second {
		t.Fatalf("memory retention %d %s, want 9 1s", size, ttl)
	}
	r := sec.Redis()
	if r.HistorySize != 12 || r.HistoryTTL != time.Hour || r.IdempotencyWindow != 3*time.Minute ||
		r.Prefix != "p:" || r.QueueSize != 7 || !reflect.DeepEqual(r.Shards, []string{"a:1"}) {
		t.Fatalf("redis config %+v", r)
	}
	if size, ttl := r.Retention.of("c", r.HistorySize, r.HistoryTTL); size != 9 || ttl != time.Second {
		t.Fatalf("redis retention %d %s, want 9 1s", size, ttl)
	}
	if sec.Fanout.Redis.HistorySize != 0 {
		t.Fatal("Redis changed the fanout section it was given")
	}
	sec.Retention = nil
	m = sec.Memory()
	if size, ttl := m.retention("c"); size != 12 || ttl != time.Hour {
		t.Fatalf("no retention: %d %s, want the history section's 12 1h", size, ttl)
	}
}
