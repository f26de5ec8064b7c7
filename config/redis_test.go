package config_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/heraldrt/herald/config"
	"github.com/heraldrt/herald/fanout"
)

// TestValidateRedis: every fanout.redis problem is reported under its own
// key (sentinel, TLS files, addresses).
func TestValidateRedis(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "ca.txt")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	sentinel := func(c *config.Config) {
		c.Fanout.Broker = "redis"
		c.Fanout.Redis.Sentinel.MasterSets = []string{"herald-a", "herald-b"}
		c.Fanout.Redis.Sentinel.Addrs = []string{"127.0.0.1:26379", "[::1]:26380"}
	}
	tests := []struct {
		name   string
		mutate func(*config.Config)
		keys   []string
	}{
		{name: "sentinel", mutate: sentinel},
		{name: "sentinel with auth", mutate: func(c *config.Config) {
			sentinel(c)
			c.Fanout.Redis.Sentinel.Username, c.Fanout.Redis.Sentinel.Password = "s", "pw"
			c.Fanout.Redis.Username, c.Fanout.Redis.Password = "herald", "pw2"
			c.Fanout.Redis.Sentinel.RefreshInterval = time.Second
		}},
		{name: "sentinel and shards", mutate: func(c *config.Config) {
			sentinel(c)
			c.Fanout.Redis.Shards = []string{"127.0.0.1:6379"}
		}, keys: []string{"fanout.redis.sentinel"}},
		{name: "sentinel and cluster", mutate: func(c *config.Config) {
			sentinel(c)
			c.Fanout.Redis.Cluster = []string{"127.0.0.1:7000"}
		}, keys: []string{"fanout.redis.cluster"}},
		{name: "sentinel without master sets", mutate: func(c *config.Config) {
			sentinel(c)
			c.Fanout.Redis.Sentinel.MasterSets = nil
		}, keys: []string{"fanout.redis.sentinel.master_sets"}},
		{name: "sentinel without addrs", mutate: func(c *config.Config) {
			sentinel(c)
			c.Fanout.Redis.Sentinel.Addrs = nil
		}, keys: []string{"fanout.redis.sentinel.addrs"}},
		{name: "sentinel bad names and addrs", mutate: func(c *config.Config) {
			sentinel(c)
			c.Fanout.Redis.Sentinel.MasterSets = []string{"a", "", "a", "b c"}
			c.Fanout.Redis.Sentinel.Addrs = []string{"127.0.0.1:26379", "nohost"}
		}, keys: []string{"fanout.redis.sentinel.master_sets[1]", "fanout.redis.sentinel.master_sets[2]",
			"fanout.redis.sentinel.master_sets[3]", "fanout.redis.sentinel.addrs[1]"}},
		{name: "sentinel tls ca missing", mutate: func(c *config.Config) {
			sentinel(c)
			c.Fanout.Redis.Sentinel.TLS = fanoutTLS(filepath.Join(dir, "none-ca.pem"), "", "")
		}, keys: []string{"fanout.redis.sentinel.tls.ca_file"}},
		{name: "sentinel negative refresh", mutate: func(c *config.Config) {
			sentinel(c)
			c.Fanout.Redis.Sentinel.RefreshInterval = -time.Second
		}, keys: []string{"fanout.redis.sentinel.refresh_interval"}},
		{name: "sentinel username without password", mutate: func(c *config.Config) {
			sentinel(c)
			c.Fanout.Redis.Sentinel.Username = "s"
		}, keys: []string{"fanout.redis.sentinel.password"}},
		{name: "shard not host:port", mutate: func(c *config.Config) {
			c.Fanout.Broker = "redis"
			c.Fanout.Redis.Shards = []string{"127.0.0.1:6379", "redis-b"}
		}, keys: []string{"fanout.redis.shards[1]"}},
		{name: "username without password", mutate: func(c *config.Config) {
			c.Fanout.Broker = "redis"
			c.Fanout.Redis.Shards = []string{"127.0.0.1:6379"}
			c.Fanout.Redis.Username = "herald"
		}, keys: []string{"fanout.redis.password"}},
		{name: "tls missing files", mutate: func(c *config.Config) {
			c.Fanout.Broker = "redis"
			c.Fanout.Redis.Shards = []string{"127.0.0.1:6379"}
			c.Fanout.Redis.TLS = fanoutTLS(filepath.Join(dir, "none-ca.pem"), filepath.Join(dir, "none.crt"), filepath.Join(dir, "none.key"))
		}, keys: []string{"fanout.redis.tls.ca_file", "fanout.redis.tls.cert_file", "fanout.redis.tls.key_file"}},
		{name: "tls cert without key", mutate: func(c *config.Config) {
			c.Fanout.Broker = "redis"
			c.Fanout.Redis.Shards = []string{"127.0.0.1:6379"}
			c.Fanout.Redis.TLS = fanoutTLS("", notPEM, "")
		}, keys: []string{"fanout.redis.tls.cert_file"}},
		{name: "tls ca not PEM", mutate: func(c *config.Config) {
			c.Fanout.Broker = "redis"
			c.Fanout.Redis.Shards = []string{"127.0.0.1:6379"}
			c.Fanout.Redis.TLS = fanoutTLS(notPEM, "", "")
		}, keys: []string{"fanout.redis.tls"}},
		{name: "compat tls ca missing", mutate: func(c *config.Config) {
			c.Compat.ChannelsRedis.Enabled = true
			c.Compat.ChannelsRedis.Hosts = []string{"rediss://u:p@127.0.0.1:6380"}
			c.Compat.ChannelsRedis.TLS.CAFile = filepath.Join(dir, "none-ca.pem")
		}, keys: []string{"compat.channels_redis.tls.ca_file"}},
		{name: "compat tls ca not PEM", mutate: func(c *config.Config) {
			c.Compat.ChannelsRedis.Enabled = true
			c.Compat.ChannelsRedis.Hosts = []string{"rediss://u:p@127.0.0.1:6380"}
			c.Compat.ChannelsRedis.TLS.CAFile = notPEM
		}, keys: []string{"compat.channels_redis.tls"}},
		{name: "tls disabled ignores files", mutate: func(c *config.Config) {
			c.Fanout.Broker = "redis"
			c.Fanout.Redis.Shards = []string{"127.0.0.1:6379"}
			c.Fanout.Redis.TLS = fanoutTLS(notPEM, "", "")
			c.Fanout.Redis.TLS.Enabled = false
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := valid()
			tc.mutate(&c)
			err := c.Validate()
			if got := keyErrors(err); !slices.Equal(got, tc.keys) {
				t.Errorf("keys %q, want %q (%v)", got, tc.keys, err)
			}
		})
	}
}

func fanoutTLS(ca, cert, key string) fanout.RedisTLSConfig {
	return fanout.RedisTLSConfig{Enabled: true, CAFile: ca, CertFile: cert, KeyFile: key}
}

// TestLoadSentinel: the sentinel section loads from YAML and environment
// variables (lists comma-separated), and Masked hides its password.
func TestLoadSentinel(t *testing.T) {
	path := writeYAML(t, `
fanout:
  broker: redis
  redis:
    sentinel:
      master_sets: [herald-a, herald-b]
      addrs: ["10.0.0.1:26379"]
      password: "sentinel-file-pw"
`)
	cfg := mustLoad(t, []string{"--config", path}, append(secretEnv,
		"HERALD_FANOUT__REDIS__SENTINEL__ADDRS=10.0.0.2:26379, 10.0.0.3:26379",
		"HERALD_FANOUT__REDIS__SENTINEL__REFRESH_INTERVAL=3s")...)
	s := cfg.Fanout.Redis.Sentinel
	if !slices.Equal(s.MasterSets, []string{"herald-a", "herald-b"}) || !slices.Equal(s.Addrs, []string{"10.0.0.2:26379", "10.0.0.3:26379"}) ||
		s.Password != "sentinel-file-pw" || s.RefreshInterval != 3*time.Second {
		t.Fatalf("sentinel = %+v", s)
	}
	if m := cfg.Masked(); strings.Contains(m.Fanout.Redis.Sentinel.Password, "sentinel-file-pw") {
		t.Fatalf("Masked kept the sentinel password: %+v", m.Fanout.Redis.Sentinel)
	}
}
