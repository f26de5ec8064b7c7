package compat

import (
	"strings"
	"testing"
)

func TestRules(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Groups = []string{"broadcast=broadcast", "team_{id}_news=team:{id}", "announcements = news"}
	rs, err := cfg.Rules()
	if err != nil {
		t.Fatal(err)
	}
	rules, err := compileRules(rs)
	if err != nil {
		t.Fatal(err)
	}
	for ch, g := range map[string]string{
		"user:42": "user_42", "user:a.b-c_d": "user_a.b-c_d", "broadcast": "broadcast",
		"team:7": "team_7_news", "news": "announcements",
	} {
		if got, ok := groupFor(rules, ch); !ok || got != g {
			t.Errorf("groupFor(%q) = %q %v, want %q", ch, got, ok, g)
		}
		if got, ok := channelFor(rules, g); !ok || got != ch {
			t.Errorf("channelFor(%q) = %q %v, want %q", g, got, ok, ch)
		}
	}
	for _, ch := range []string{"user:", "user:a@b", "user:" + strings.Repeat("x", 100), "other", "team:"} {
		if g, ok := groupFor(rules, ch); ok {
			t.Errorf("groupFor(%q) = %q, want no group", ch, g)
		}
	}
	for _, g := range []string{"user_", "teams", "user_x y"} {
		if ch, ok := channelFor(rules, g); ok {
			t.Errorf("channelFor(%q) = %q, want none", g, ch)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	ok := DefaultConfig()
	ok.Enabled = true
	if err := ok.Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	for name, mutate := range map[string]func(*Config){
		"layer":      func(c *Config) { c.Layer = "rabbit" },
		"hosts":      func(c *Config) { c.Hosts = nil },
		"host url":   func(c *Config) { c.Hosts = []string{"http://x:1"} },
		"rule":       func(c *Config) { c.Groups = []string{"broadcast"} },
		"rule id":    func(c *Config) { c.Groups = []string{"a_{id}=b"} },
		"style":      func(c *Config) { c.JSONStyle = "pretty" },
		"inbox":      func(c *Config) { c.Inbox = "a!b" },
		"capacity":   func(c *Config) { c.Capacity = 0 },
		"expiry":     func(c *Config) { c.Expiry = 0 },
		"lease":      func(c *Config) { c.LeaseTTL = 0 },
		"messagekey": func(c *Config) { c.MessageKey = "" },
	} {
		c := ok
		mutate(&c)
		err := c.Validate()
		if err == nil || !strings.HasPrefix(err.Error(), "config compat.channels_redis.") {
			t.Errorf("%s: %v, want a keyed error", name, err)
		}
	}
	off := Config{}
	if err := off.Validate(); err != nil {
		t.Errorf("disabled section validated: %v", err)
	}
	if _, err := NewIngest(Config{Layer: "x"}, nil, testLog(t)); err == nil {
		t.Error("NewIngest accepted an invalid config")
	}
}
