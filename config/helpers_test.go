package config_test

import (
	"os"
	"path/filepath"
	"testing"

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
