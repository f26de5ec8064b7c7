package config_test

import (
	"errors"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/heraldrt/herald/config"
)

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*config.Config)
		keys   []string // every KeyError.Key expected, in order; nil: valid
	}{
		{name: "valid", mutate: func(*config.Config) {}},
		{name: "listen without port", mutate: func(c *config.Config) { c.Server.Listen = "localhost" }, keys: []string{"server.listen"}},
		{name: "listen empty", mutate: func(c *config.Config) { c.Server.Listen = "" }, keys: []string{"server.listen"}},
		{name: "listen port only", mutate: func(c *config.Config) { c.Server.Listen = ":8000" }},
		{name: "listen IPv6", mutate: func(c *config.Config) { c.Server.Listen = "[::1]:8000" }},
		{name: "read buffer too small", mutate: func(c *config.Config) { c.Server.ReadBufferSize = 512 }, keys: []string{"server.read_buffer_size"}},
		{name: "handshake timeout zero", mutate: func(c *config.Config) { c.Server.HandshakeTimeout = 0 }, keys: []string{"server.handshake_timeout"}},
		{name: "reconnect window negative", mutate: func(c *config.Config) { c.Server.ReconnectWindow = -1 }, keys: []string{"server.reconnect_window"}},
		{name: "hmac secret 31 bytes", mutate: func(c *config.Config) { c.Auth.JWT.HMACSecret = strings.Repeat("s", 31) }, keys: []string{"auth.jwt.hmac_secret"}},
		{name: "hmac secret 32 bytes", mutate: func(c *config.Config) { c.Auth.JWT.HMACSecret = strings.Repeat("s", 32) }},
		{name: "no secret, no key files", mutate: func(c *config.Config) { c.Auth.JWT.HMACSecret = "" }, keys: []string{"auth.jwt.hmac_secret"}},
		{name: "key files instead of secret", mutate: func(c *config.Config) {
			c.Auth.JWT.HMACSecret = ""
			c.Auth.JWT.PublicKeyFiles = []string{"/etc/herald/rsa.pem"}
		}},
		{name: "short secret with key files", mutate: func(c *config.Config) {
			c.Auth.JWT.HMACSecret = "short"
			c.Auth.JWT.PublicKeyFiles = []string{"/etc/herald/rsa.pem"}
		}, keys: []string{"auth.jwt.hmac_secret"}},
		{name: "negative leeway", mutate: func(c *config.Config) { c.Auth.JWT.Leeway = -time.Second }, keys: []string{"auth.jwt.leeway"}},
		{name: "empty user claim", mutate: func(c *config.Config) { c.Auth.JWT.UserClaim = "" }, keys: []string{"auth.jwt.user_claim"}},
		{name: "empty query param", mutate: func(c *config.Config) { c.Auth.QueryParam = "" }, keys: []string{"auth.query_param"}},
		{name: "api key 15 chars", mutate: func(c *config.Config) { c.API.Key = strings.Repeat("k", 15) }, keys: []string{"api.key"}},
		{name: "api key 16 chars", mutate: func(c *config.Config) { c.API.Key = strings.Repeat("k", 16) }},
		{name: "api key empty", mutate: func(c *config.Config) { c.API.Key = "" }, keys: []string{"api.key"}},
		{name: "max body too small", mutate: func(c *config.Config) { c.API.MaxBodyBytes = 10 }, keys: []string{"api.max_body_bytes"}},
		{name: "max batch zero", mutate: func(c *config.Config) { c.API.MaxBatch = 0 }, keys: []string{"api.max_batch"}},
		{name: "broker kafka", mutate: func(c *config.Config) { c.Fanout.Broker = "kafka" }, keys: []string{"fanout.broker"}},
		{name: "broker empty", mutate: func(c *config.Config) { c.Fanout.Broker = "" }, keys: []string{"fanout.broker"}},
		{name: "redis without shards", mutate: func(c *config.Config) { c.Fanout.Broker = "redis" }, keys: []string{"fanout.redis.shards"}},
		{name: "redis with shards", mutate: func(c *config.Config) {
			c.Fanout.Broker = "redis"
			c.Fanout.Redis.Shards = []string{"127.0.0.1:6379"}
		}},
		{name: "redis with cluster", mutate: func(c *config.Config) {
			c.Fanout.Broker = "redis"
			c.Fanout.Redis.Cluster = []string{"127.0.0.1:7000"}
		}},
		{name: "redis with shards and cluster", mutate: func(c *config.Config) {
			c.Fanout.Broker = "redis"
			c.Fanout.Redis.Shards = []string{"127.0.0.1:6379"}
			c.Fanout.Redis.Cluster = []string{"127.0.0.1:7000"}
		}, keys: []string{"fanout.redis.cluster"}},
		{name: "history size zero", mutate: func(c *config.Config) { c.History.Size = 0 }, keys: []string{"history.size"}},
		{name: "history ttl zero", mutate: func(c *config.Config) { c.History.TTL = 0 }, keys: []string{"history.ttl"}},
		{name: "ws_read_timeout equal to ping", mutate: func(c *config.Config) { c.Stream.WSReadTimeout = c.Stream.WSPingInterval }, keys: []string{"stream.ws_read_timeout"}},
		{name: "ws_read_timeout below ping", mutate: func(c *config.Config) { c.Stream.WSReadTimeout = time.Second }, keys: []string{"stream.ws_read_timeout"}},
		{name: "ws ping zero", mutate: func(c *config.Config) { c.Stream.WSPingInterval = 0 }, keys: []string{"stream.ws_ping_interval"}},
		{name: "ws read limit small", mutate: func(c *config.Config) { c.Stream.WSReadLimit = 100 }, keys: []string{"stream.ws_read_limit"}},
		{name: "writers zero", mutate: func(c *config.Config) { c.Stream.Writers = 0 }, keys: []string{"stream.writers"}},
		{name: "coalesce without member", mutate: func(c *config.Config) { c.Stream.Coalesce = []string{"ok:id", "progress:", "bare"} }, keys: []string{"stream.coalesce", "stream.coalesce"}},
		{name: "per user negative", mutate: func(c *config.Config) { c.Limits.PerUser = -1 }, keys: []string{"limits.per_user"}},
		{name: "client rate negative", mutate: func(c *config.Config) { c.Limits.ClientRate = -1 }, keys: []string{"limits.client_rate"}},
		{name: "client rate NaN", mutate: func(c *config.Config) { c.Limits.ClientRate = math.NaN() }, keys: []string{"limits.client_rate"}},
		{name: "client rate off", mutate: func(c *config.Config) { c.Limits.ClientRate, c.Limits.ClientBurst = 0, 0 }},
		{name: "client burst zero", mutate: func(c *config.Config) { c.Limits.ClientBurst = 0 }, keys: []string{"limits.client_burst"}},
		{name: "per user policy", mutate: func(c *config.Config) { c.Limits.PerUserPolicy = "drop" }, keys: []string{"limits.per_user_policy"}},
		{name: "per ip rate without burst", mutate: func(c *config.Config) {
			c.Limits.PerIPRate = 1
			c.Limits.PerIPBurst = 0
		}, keys: []string{"limits.per_ip_burst"}},
		{name: "trusted proxy not an IP", mutate: func(c *config.Config) { c.Limits.TrustedProxies = []string{"10.0.0.0/8", "::1", "proxy.local"} }, keys: []string{"limits.trusted_proxies"}},
		{name: "log level verbose", mutate: func(c *config.Config) { c.Log.Level = "verbose" }, keys: []string{"log.level"}},
		{name: "log level upper case", mutate: func(c *config.Config) { c.Log.Level = "INFO" }, keys: []string{"log.level"}},
		{name: "log format xml", mutate: func(c *config.Config) { c.Log.Format = "xml" }, keys: []string{"log.format"}},
		{name: "several problems", mutate: func(c *config.Config) {
			c.Server.Listen = "nope"
			c.API.Key = "short"
			c.Log.Level = "loud"
		}, keys: []string{"server.listen", "api.key", "log.level"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := valid()
			tc.mutate(&c)
			err := c.Validate()
			if tc.keys == nil {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Validate succeeded")
			}
			var ke *config.KeyError
			if !errors.As(err, &ke) {
				t.Fatalf("no *config.KeyError in %v", err)
			}
			if ke.Key != tc.keys[0] {
				t.Errorf("errors.As found key %q, want %q", ke.Key, tc.keys[0])
			}
			if !strings.HasPrefix(ke.Error(), "config "+ke.Key+": ") || ke.Msg == "" {
				t.Errorf("KeyError.Error() = %q", ke.Error())
			}
			if got := keyErrors(err); !slices.Equal(got, tc.keys) {
				t.Errorf("keys %q, want %q (%v)", got, tc.keys, err)
			}
		})
	}
}

// Load returns Validate's errors as they are.
func TestLoadValidationErrors(t *testing.T) {
	tests := []struct {
		name string
		env  []string
		args []string
		key  string
	}{
		{name: "bad listen (flag)", args: []string{"--server.listen", "nonsense"}, key: "server.listen"},
		{name: "short hmac secret", env: []string{"HERALD_AUTH__JWT__HMAC_SECRET=too-short"}, key: "auth.jwt.hmac_secret"},
		{name: "short api key", env: []string{"HERALD_API__KEY=short"}, key: "api.key"},
		{name: "broker kafka", env: []string{"HERALD_FANOUT__BROKER=kafka"}, key: "fanout.broker"},
		{name: "redis broker without shards", args: []string{"--fanout.broker", "redis"}, key: "fanout.redis.shards"},
		{name: "ws_read_timeout <= ws_ping_interval", env: []string{"HERALD_STREAM__WS_READ_TIMEOUT=25s"}, key: "stream.ws_read_timeout"},
		{name: "bad log level", args: []string{"--log.level", "trace"}, key: "log.level"},
		{name: "bad log format", env: []string{"HERALD_LOG__FORMAT=logfmt"}, key: "log.format"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := load(t, tc.args, append(slices.Clone(secretEnv), tc.env...)...)
			var ke *config.KeyError
			if !errors.As(err, &ke) {
				t.Fatalf("got %v, want a *config.KeyError", err)
			}
			if got := keyErrors(err); !slices.Equal(got, []string{tc.key}) {
				t.Fatalf("keys %q, want [%s] (%v)", got, tc.key, err)
			}
		})
	}
}
