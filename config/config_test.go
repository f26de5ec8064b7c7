package config_test

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/heraldrt/herald/config"
)

const (
	testSecret = "test-hmac-secret-0123456789abcdef-xyz" // 37 bytes
	testAPIKey = "test-api-key-0123456789"
)

// secretEnv supplies the two required secrets, as a deployment would.
var secretEnv = []string{
	"HERALD_AUTH__JWT__HMAC_SECRET=" + testSecret,
	"HERALD_API__KEY=" + testAPIKey,
}

// writeYAML writes a config file into a fresh temporary directory.
func writeYAML(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "herald.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// load parses args with config.Flags and loads with environ.
func load(t *testing.T, args []string, environ ...string) (config.Config, error) {
	t.Helper()
	fs := config.Flags()
	if err := fs.Parse(args); err != nil {
		t.Fatalf("parse %q: %v", args, err)
	}
	return config.Load(fs, environ)
}

// mustLoad is load that fails the test on error.
func mustLoad(t *testing.T, args []string, environ ...string) config.Config {
	t.Helper()
	cfg, err := load(t, args, environ...)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return cfg
}

// keyErrors returns the Key of every *config.KeyError in err's tree, in
// order.
func keyErrors(err error) []string {
	var keys []string
	var walk func(error)
	walk = func(err error) {
		if ke, ok := err.(*config.KeyError); ok {
			keys = append(keys, ke.Key)
			return
		}
		switch u := err.(type) {
		case interface{ Unwrap() []error }:
			for _, e := range u.Unwrap() {
				walk(e)
			}
		case interface{ Unwrap() error }:
			if e := u.Unwrap(); e != nil {
				walk(e)
			}
		}
	}
	if err != nil {
		walk(err)
	}
	return keys
}

// valid returns Default() with the two required secrets set.
func valid() config.Config {
	c := config.Default()
	c.Auth.JWT.HMACSecret = testSecret
	c.API.Key = testAPIKey
	return c
}

const fileYAML = `
server:
  listen: "127.0.0.1:7000"
  handshake_timeout: 3s
  allowed_origins: ["https://app.example", "https://admin.example"]
auth:
  jwt:
    hmac_secret: "file-secret-0123456789abcdef-0123456789"
    audience: herald
    leeway: 1m30s
    user_claim: user_id
  cookie_name: sess
api:
  key: "file-api-key-0123456789"
fanout:
  broker: redis
  redis:
    shards: ["r1:6379", "r2:6379"]
    password: "file-redis-pw"
    tls:
      enabled: true
      server_name: redis.internal
    meta_ttl: 48h
history:
  size: 50
  ttl: 2m
stream:
  ws_ping_interval: 10s
  ws_read_timeout: 25s
  coalesce: ["progress:id"]
limits:
  per_user: 3
  per_user_policy: evict_oldest
  per_ip_rate: 2.5
  trusted_proxies: ["10.0.0.0/8", "192.168.1.1"]
  max_lifetime: 1h
log:
  level: warn
  format: json
dev:
  enabled: true
`

func TestLoadFile(t *testing.T) {
	p := writeYAML(t, fileYAML)
	cfg := mustLoad(t, []string{"--config", p})

	def := config.Default()
	checks := []struct {
		key       string
		got, want any
	}{
		{"server.listen", cfg.Server.Listen, "127.0.0.1:7000"},
		{"server.handshake_timeout", cfg.Server.HandshakeTimeout, 3 * time.Second},
		{"server.allowed_origins", fmt.Sprint(cfg.Server.AllowedOrigins), "[https://app.example https://admin.example]"},
		{"server.read_buffer_size (default)", cfg.Server.ReadBufferSize, def.Server.ReadBufferSize},
		{"server.shutdown_timeout (default)", cfg.Server.ShutdownTimeout, def.Server.ShutdownTimeout},
		{"auth.jwt.hmac_secret", cfg.Auth.JWT.HMACSecret, "file-secret-0123456789abcdef-0123456789"},
		{"auth.jwt.audience", cfg.Auth.JWT.Audience, "herald"},
		{"auth.jwt.leeway", cfg.Auth.JWT.Leeway, 90 * time.Second},
		{"auth.jwt.user_claim", cfg.Auth.JWT.UserClaim, "user_id"},
		{"auth.cookie_name", cfg.Auth.CookieName, "sess"},
		{"auth.query_param (default)", cfg.Auth.QueryParam, "token"},
		{"api.key", cfg.API.Key, "file-api-key-0123456789"},
		{"api.idempotency_window (default)", cfg.API.IdempotencyWindow, 5 * time.Minute},
		{"fanout.broker", cfg.Fanout.Broker, "redis"},
		{"fanout.redis.shards", fmt.Sprint(cfg.Fanout.Redis.Shards), "[r1:6379 r2:6379]"},
		{"fanout.redis.password", cfg.Fanout.Redis.Password, "file-redis-pw"},
		{"fanout.redis.tls.enabled", cfg.Fanout.Redis.TLS.Enabled, true},
		{"fanout.redis.tls.server_name", cfg.Fanout.Redis.TLS.ServerName, "redis.internal"},
		{"fanout.redis.meta_ttl", cfg.Fanout.Redis.MetaTTL, 48 * time.Hour},
		{"fanout.redis.prefix (default)", cfg.Fanout.Redis.Prefix, "herald:"},
		{"fanout.redis.dial_timeout (default)", cfg.Fanout.Redis.DialTimeout, 2 * time.Second},
		{"history.size", cfg.History.Size, 50},
		{"history.ttl", cfg.History.TTL, 2 * time.Minute},
		{"stream.ws_ping_interval", cfg.Stream.WSPingInterval, 10 * time.Second},
		{"stream.ws_read_timeout", cfg.Stream.WSReadTimeout, 25 * time.Second},
		{"stream.ws_read_limit (default)", cfg.Stream.WSReadLimit, int64(64 << 10)},
		{"stream.coalesce", fmt.Sprint(cfg.Stream.CoalesceRules()), "map[progress:id]"},
		{"limits.per_user", cfg.Limits.PerUser, 3},
		{"limits.per_user_policy", cfg.Limits.PerUserPolicy, "evict_oldest"},
		{"limits.per_ip_rate", cfg.Limits.PerIPRate, 2.5},
		{"limits.per_ip_burst (default)", cfg.Limits.PerIPBurst, 20},
		{"limits.trusted_proxies", fmt.Sprint(cfg.Limits.TrustedProxies), "[10.0.0.0/8 192.168.1.1]"},
		{"limits.max_lifetime", cfg.Limits.MaxLifetime, time.Hour},
		{"limits.token_expiring_lead (default)", cfg.Limits.TokenExpiringLead, 30 * time.Second},
		{"log.level", cfg.Log.Level, "warn"},
		{"log.format", cfg.Log.Format, "json"},
		{"dev.enabled", cfg.Dev.Enabled, true},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %#v, want %#v", c.key, c.got, c.want)
		}
	}
}

func TestLoadEnv(t *testing.T) {
	p := writeYAML(t, fileYAML)
	cfg := mustLoad(t, []string{"--config", p},
		"HERALD_SERVER__LISTEN=127.0.0.1:18000",
		"HERALD_FANOUT__REDIS__SHARDS=a:1,b:2",
		"HERALD_HISTORY__TTL=30s",
		"HERALD_HISTORY__SIZE=7",
		"HERALD_AUTH__JWT__LEEWAY=250ms",
		"HERALD_STREAM__COALESCE= t1:m1 , t2:m2 ,",
		"HERALD_LIMITS__TRUSTED_PROXIES=172.16.0.0/12",
		"HERALD_SERVER__ALLOWED_ORIGINS=*",
		"HERALD_SERVER__ALLOW_ANY_ORIGIN_WITH_CREDENTIALS=true",
		"HERALD_LIMITS__PER_IP_RATE=0.5",
		"HERALD_DEV__ENABLED=false",
		"HERALD_FANOUT__REDIS__TLS__ENABLED=false",
		// Not Herald's: ignored.
		"PATH=/usr/bin",
		"SERVER__LISTEN=0.0.0.0:1",
		"HERALDX_LOG__LEVEL=error",
		"HERALD_NO_EQUALS_SIGN",
	)
	checks := []struct {
		key       string
		got, want any
	}{
		{"server.listen", cfg.Server.Listen, "127.0.0.1:18000"},
		{"fanout.redis.shards", fmt.Sprint(cfg.Fanout.Redis.Shards), "[a:1 b:2]"},
		{"history.ttl", cfg.History.TTL, 30 * time.Second},
		{"history.size", cfg.History.Size, 7},
		{"auth.jwt.leeway", cfg.Auth.JWT.Leeway, 250 * time.Millisecond},
		{"stream.coalesce", fmt.Sprint(cfg.Stream.Coalesce), "[t1:m1 t2:m2]"},
		{"limits.trusted_proxies (one item)", fmt.Sprint(cfg.Limits.TrustedProxies), "[172.16.0.0/12]"},
		{"server.allowed_origins (one item)", fmt.Sprint(cfg.Server.AllowedOrigins), "[*]"},
		{"limits.per_ip_rate", cfg.Limits.PerIPRate, 0.5},
		{"dev.enabled", cfg.Dev.Enabled, false},
		{"fanout.redis.tls.enabled", cfg.Fanout.Redis.TLS.Enabled, false},
		// Keys the environment does not name keep the file's values.
		{"log.level (file)", cfg.Log.Level, "warn"},
		{"auth.jwt.hmac_secret (file)", cfg.Auth.JWT.HMACSecret, "file-secret-0123456789abcdef-0123456789"},
		{"fanout.redis.tls.server_name (file)", cfg.Fanout.Redis.TLS.ServerName, "redis.internal"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %#v, want %#v", c.key, c.got, c.want)
		}
	}
}

// Scalar values are taken verbatim: a comma in a secret does not make it a
// list, and surrounding spaces are kept.
func TestLoadEnvScalarWithComma(t *testing.T) {
	secret := "s3cr,et-0123456789abcdef-0123456789, x"
	apiKey := "key,with,commas-0123"
	password := "p@ss,word"
	cfg := mustLoad(t, nil,
		"HERALD_AUTH__JWT__HMAC_SECRET="+secret,
		"HERALD_API__KEY="+apiKey,
		"HERALD_FANOUT__REDIS__PASSWORD="+password,
		"HERALD_AUTH__JWT__AUDIENCE=a,b",
	)
	if cfg.Auth.JWT.HMACSecret != secret {
		t.Errorf("hmac_secret = %q, want %q", cfg.Auth.JWT.HMACSecret, secret)
	}
	if cfg.API.Key != apiKey {
		t.Errorf("api.key = %q, want %q", cfg.API.Key, apiKey)
	}
	if cfg.Fanout.Redis.Password != password {
		t.Errorf("fanout.redis.password = %q, want %q", cfg.Fanout.Redis.Password, password)
	}
	if cfg.Auth.JWT.Audience != "a,b" {
		t.Errorf("auth.jwt.audience = %q, want %q", cfg.Auth.JWT.Audience, "a,b")
	}
}

// Every list key takes a comma-separated list from the environment.
func TestLoadEnvLists(t *testing.T) {
	cfg := mustLoad(t, nil, append(slices.Clone(secretEnv),
		"HERALD_FANOUT__BROKER=redis",
		"HERALD_FANOUT__REDIS__CLUSTER=c1:7000, c2:7000",
		"HERALD_AUTH__JWT__PUBLIC_KEY_FILES=/keys/a.pem,/keys/b.pem",
		"HERALD_SERVER__ALLOWED_ORIGINS=https://a.example,https://b.example",
		"HERALD_LIMITS__TRUSTED_PROXIES=10.0.0.0/8,::1",
		"HERALD_STREAM__COALESCE=a:b,c:d",
	)...)
	for key, c := range map[string]struct{ got, want []string }{
		"fanout.redis.cluster":       {cfg.Fanout.Redis.Cluster, []string{"c1:7000", "c2:7000"}},
		"auth.jwt.public_key_files":  {cfg.Auth.JWT.PublicKeyFiles, []string{"/keys/a.pem", "/keys/b.pem"}},
		"server.allowed_origins":     {cfg.Server.AllowedOrigins, []string{"https://a.example", "https://b.example"}},
		"limits.trusted_proxies":     {cfg.Limits.TrustedProxies, []string{"10.0.0.0/8", "::1"}},
		"stream.coalesce":            {cfg.Stream.Coalesce, []string{"a:b", "c:d"}},
		"fanout.redis.shards (none)": {cfg.Fanout.Redis.Shards, nil},
	} {
		if !slices.Equal(c.got, c.want) {
			t.Errorf("%s = %q, want %q", key, c.got, c.want)
		}
	}
}

// An empty list variable clears the list instead of making a one-element
// list holding "".
func TestLoadEnvEmptyList(t *testing.T) {
	p := writeYAML(t, fileYAML)
	cfg := mustLoad(t, []string{"--config", p},
		"HERALD_LIMITS__TRUSTED_PROXIES=",
		"HERALD_SERVER__ALLOWED_ORIGINS=",
		"HERALD_STREAM__COALESCE=",
		"HERALD_FANOUT__BROKER=memory",
		"HERALD_FANOUT__REDIS__SHARDS=",
	)
	for key, l := range map[string][]string{
		"limits.trusted_proxies": cfg.Limits.TrustedProxies,
		"server.allowed_origins": cfg.Server.AllowedOrigins,
		"stream.coalesce":        cfg.Stream.Coalesce,
		"fanout.redis.shards":    cfg.Fanout.Redis.Shards,
	} {
		if len(l) != 0 {
			t.Errorf("%s = %q, want empty", key, l)
		}
	}
}

func TestLoadFlags(t *testing.T) {
	p := writeYAML(t, fileYAML)
	env := []string{
		"HERALD_SERVER__LISTEN=127.0.0.1:18000",
		"HERALD_FANOUT__REDIS__SHARDS=a:1,b:2",
		"HERALD_LOG__FORMAT=text",
	}
	cfg := mustLoad(t, []string{"--config", p, "--server.listen", "127.0.0.1:9",
		"--fanout.redis.shards=x:1,y:2", "--fanout.redis.shards=z:3", "--log.level=error", "--dev.enabled=false"}, env...)
	checks := []struct {
		key       string
		got, want any
	}{
		{"server.listen (flag over env)", cfg.Server.Listen, "127.0.0.1:9"},
		{"fanout.redis.shards (flag over env)", fmt.Sprint(cfg.Fanout.Redis.Shards), "[x:1 y:2 z:3]"},
		{"log.level (flag over file)", cfg.Log.Level, "error"},
		{"dev.enabled (flag over file)", cfg.Dev.Enabled, false},
		{"log.format (env; flag not set)", cfg.Log.Format, "text"},
		{"fanout.broker (file; flag not set)", cfg.Fanout.Broker, "redis"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %#v, want %#v", c.key, c.got, c.want)
		}
	}

	// Flags left unset never override, even with their zero defaults.
	cfg = mustLoad(t, []string{"--config", p}, env...)
	if cfg.Server.Listen != "127.0.0.1:18000" || !cfg.Dev.Enabled || cfg.Log.Level != "warn" {
		t.Errorf("unset flags overrode: listen %q, dev %v, level %q", cfg.Server.Listen, cfg.Dev.Enabled, cfg.Log.Level)
	}
}

// Flags that are not configuration keys (the `herald token` command adds
// some) do not disturb loading.
func TestLoadExtraFlags(t *testing.T) {
	fs := config.Flags()
	sub := fs.String("sub", "", "user id")
	fs.Duration("ttl", time.Hour, "token lifetime")
	if err := fs.Parse([]string{"--sub", "42", "--ttl", "5m"}); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(fs, secretEnv)
	if err != nil {
		t.Fatal(err)
	}
	if *sub != "42" || cfg.Auth.JWT.HMACSecret != testSecret {
		t.Fatalf("sub %q, secret %q", *sub, cfg.Auth.JWT.HMACSecret)
	}
}

// defaults < file < env < flags, one key at a time.
func TestLoadPrecedence(t *testing.T) {
	tests := []struct {
		name              string
		file, env, flag   bool
		listen, logFormat string
	}{
		{name: "defaults", listen: "0.0.0.0:8000"},
		{name: "file", file: true, listen: "127.0.0.1:1001"},
		{name: "env", env: true, listen: "127.0.0.1:1002"},
		{name: "flag", flag: true, listen: "127.0.0.1:1003"},
		{name: "file+env", file: true, env: true, listen: "127.0.0.1:1002"},
		{name: "file+flag", file: true, flag: true, listen: "127.0.0.1:1003"},
		{name: "env+flag", env: true, flag: true, listen: "127.0.0.1:1003"},
		{name: "file+env+flag", file: true, env: true, flag: true, listen: "127.0.0.1:1003"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			body := "log:\n  level: info\n"
			if tc.file {
				body += "server:\n  listen: 127.0.0.1:1001\n"
			}
			args := []string{"--config", writeYAML(t, body)}
			env := slices.Clone(secretEnv)
			if tc.env {
				env = append(env, "HERALD_SERVER__LISTEN=127.0.0.1:1002")
			}
			if tc.flag {
				args = append(args, "--server.listen", "127.0.0.1:1003")
			}
			if got := mustLoad(t, args, env...).Server.Listen; got != tc.listen {
				t.Fatalf("server.listen = %q, want %q", got, tc.listen)
			}
		})
	}
}

func TestLoadFileErrors(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "absent.yaml")
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"named file missing", []string{"--config", missing}, missing},
		{"named file missing (= form)", []string{"--config=" + missing}, "absent.yaml"},
		{"empty file name", []string{"--config="}, "config file"},
		{"not YAML", []string{"--config", writeYAML(t, "server: [unclosed\n")}, "config file"},
		{"YAML not a map", []string{"--config", writeYAML(t, "- a\n- b\n")}, "config file"},
		{"directory", []string{"--config", dir}, dir},
		{"bad duration", []string{"--config", writeYAML(t, "history:\n  ttl: soon\n")}, "ttl"},
		{"bad number", []string{"--config", writeYAML(t, "history:\n  size: many\n")}, "size"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := load(t, tc.args, secretEnv...)
			if err == nil {
				t.Fatal("Load succeeded")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not mention %q", err, tc.want)
			}
		})
	}
}

func TestLoadEnvErrors(t *testing.T) {
	for _, env := range []string{
		"HERALD_HISTORY__TTL=soon",
		"HERALD_HISTORY__SIZE=many",
		"HERALD_DEV__ENABLED=maybe",
	} {
		t.Run(env, func(t *testing.T) {
			if _, err := load(t, nil, append(slices.Clone(secretEnv), env)...); err == nil {
				t.Fatal("Load succeeded")
			}
		})
	}
}

// Without --config the default path (configs/herald.yaml, relative to the
// working directory) is optional: here it does not exist, and the
// environment supplies everything required.
func TestLoadDefaultFileMissing(t *testing.T) {
	if _, err := os.Stat("configs/herald.yaml"); err == nil {
		t.Skip("configs/herald.yaml exists in the package directory")
	}
	cfg := mustLoad(t, nil, secretEnv...)
	want := valid()
	if got, w := fmt.Sprintf("%+v", cfg), fmt.Sprintf("%+v", want); got != w {
		t.Fatalf("config\n%s\nwant\n%s", got, w)
	}

	// Without the secrets, validation names both keys.
	_, err := load(t, nil)
	if keys := keyErrors(err); !slices.Equal(keys, []string{"auth.jwt.hmac_secret", "api.key"}) {
		t.Fatalf("keys %q from %v", keys, err)
	}
}

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

func TestDefault(t *testing.T) {
	c := config.Default()
	err := c.Validate()
	if got := keyErrors(err); !slices.Equal(got, []string{"auth.jwt.hmac_secret", "api.key"}) {
		t.Fatalf("Default().Validate() keys %q (%v), want the two secrets", got, err)
	}
	c.Auth.JWT.HMACSecret = testSecret
	c.API.Key = testAPIKey
	if err := c.Validate(); err != nil {
		t.Fatalf("Default() with secrets: %v", err)
	}
}

func TestMasked(t *testing.T) {
	c := valid()
	c.Fanout.Redis.Password = "redis-pw"
	c.Fanout.Redis.Username = "herald"
	c.Auth.JWT.Audience = "aud"
	m := c.Masked()
	for key, got := range map[string]string{
		"auth.jwt.hmac_secret":  m.Auth.JWT.HMACSecret,
		"api.key":               m.API.Key,
		"fanout.redis.password": m.Fanout.Redis.Password,
	} {
		if got != "******" {
			t.Errorf("Masked %s = %q", key, got)
		}
	}
	for _, s := range []string{testSecret, testAPIKey, "redis-pw"} {
		if strings.Contains(fmt.Sprintf("%+v", m), s) {
			t.Errorf("masked config still contains %q", s)
		}
	}
	// Non-secrets are untouched, and so is the original.
	if m.Fanout.Redis.Username != "herald" || m.Auth.JWT.Audience != "aud" || m.Server.Listen != c.Server.Listen {
		t.Errorf("Masked changed non-secrets: %+v", m)
	}
	if c.Auth.JWT.HMACSecret != testSecret || c.API.Key != testAPIKey || c.Fanout.Redis.Password != "redis-pw" {
		t.Error("Masked modified its receiver")
	}
	// Unset secrets stay empty, so "not configured" remains visible.
	e := config.Default().Masked()
	if e.Auth.JWT.HMACSecret != "" || e.API.Key != "" || e.Fanout.Redis.Password != "" {
		t.Errorf("Masked filled empty secrets: %+v", e)
	}
}

// The repository's dev config is complete and valid on its own.
func TestRepoDevConfig(t *testing.T) {
	cfg := mustLoad(t, []string{"--config", "../configs/dev.yaml"})
	if cfg.Server.Listen != "127.0.0.1:8000" || !cfg.Dev.Enabled || cfg.Log.Level != "debug" || cfg.Fanout.Broker != "memory" {
		t.Errorf("dev config: %+v", cfg.Masked())
	}
	if len(cfg.Auth.JWT.HMACSecret) < 32 || len(cfg.API.Key) < 16 {
		t.Errorf("dev secrets too short: %d, %d bytes", len(cfg.Auth.JWT.HMACSecret), len(cfg.API.Key))
	}
	if r := cfg.Stream.CoalesceRules(); r["oracle_upload_progress"] != "transaction_id" {
		t.Errorf("coalesce rules %v", r)
	}
}

// The repository's reference config documents the defaults: it needs the
// secrets from the environment and then equals Default().
func TestRepoHeraldConfig(t *testing.T) {
	args := []string{"--config", "../configs/herald.yaml"}
	_, err := load(t, args)
	if keys := keyErrors(err); !slices.Equal(keys, []string{"auth.jwt.hmac_secret", "api.key"}) {
		t.Fatalf("without secrets: keys %q (%v)", keys, err)
	}
	cfg := mustLoad(t, args, secretEnv...)
	// %+v prints nil and empty slices alike, as they behave alike.
	if got, want := fmt.Sprintf("%+v", cfg), fmt.Sprintf("%+v", valid()); got != want {
		t.Fatalf("configs/herald.yaml differs from Default():\n got %s\nwant %s", got, want)
	}
}
