package config_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/heraldrt/herald/config"
)

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
