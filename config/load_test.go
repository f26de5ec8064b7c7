package config_test

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/heraldrt/herald/config"
)

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
