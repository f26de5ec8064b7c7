package compat

import (
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/heraldrt/herald/fanout"
	"github.com/heraldrt/herald/internal/confkey"
)

// Config is the "compat.channels_redis" section: the channels_redis
// compatibility ingest. The values mirror the Django CHANNEL_LAYERS entry
// of the application.
type Config struct {
	// Enabled starts the ingest.
	Enabled bool `koanf:"enabled"`
	// Layer is "core" (channels_redis.core.RedisChannelLayer, the default
	// layer) or "pubsub" (channels_redis.pubsub.RedisPubSubChannelLayer).
	Layer string `koanf:"layer"`
	// Hosts are the layer's Redis servers, in the same order as the
	// CHANNEL_LAYERS "hosts" list (the order decides which host holds
	// which group). Each is "redis://[user:password@]host:port[/db]",
	// "rediss://…" or "host:port".
	Hosts []string `koanf:"hosts"`
	// Prefix is the layer's "prefix" (default "asgi").
	Prefix string `koanf:"prefix"`
	// Expiry is the layer's "expiry": core messages older than this are
	// dropped (default 60s).
	Expiry time.Duration `koanf:"expiry"`
	// GroupExpiry is the layer's "group_expiry": group members not
	// refreshed for this long are dropped by group_send (default 24h).
	// Herald refreshes its memberships well before that.
	GroupExpiry time.Duration `koanf:"group_expiry"`
	// Capacity is the layer's "capacity" for Herald's inbox (default 100):
	// senders drop messages for a channel that holds this many. Herald
	// warns when its inbox backlog reaches it. Raise it on the Django side
	// with channel_capacity {"herald!*": N}.
	Capacity int `koanf:"capacity"`
	// UserGroup is the group name pattern of per-user groups; "{id}" stands
	// for the user id (default "user_{id}", i.e. Herald channel user:{id}).
	// Empty disables the per-user mapping.
	UserGroup string `koanf:"user_group"`
	// Groups are extra "group=channel" mappings, e.g. "broadcast=broadcast"
	// or "team_{id}=team:{id}" ("{id}" in both sides).
	Groups []string `koanf:"groups"`
	// MessageKey is the event key whose value is delivered (default
	// "message", as in {"type": "send_notification", "message": {...}}).
	// "*" delivers the whole event.
	MessageKey string `koanf:"message_key"`
	// Types, when not empty, lists the event "type" values delivered;
	// other events are counted and ignored.
	Types []string `koanf:"types"`
	// JSONStyle is "python" (the bytes Python's json.dumps produces with
	// default arguments, as a Channels consumer sent them) or "compact"
	// (no spaces, UTF-8 instead of \u escapes).
	JSONStyle string `koanf:"json_style"`
	// Inbox names Herald's channels in the core layer: Herald joins group
	// g as "<inbox>!<node>.<g>", so every node shares the inbox key
	// "<prefix><inbox>!" and each group_send is stored there once.
	Inbox string `koanf:"inbox"`
	// Linger keeps a group joined (core) or subscribed (pubsub) this long
	// after its last local subscriber left, so messages sent while a user
	// reloads a page still reach history (default 10m).
	Linger time.Duration `koanf:"linger"`
	// LeaseTTL bounds how long the inbox stays unread when the node
	// reading it dies (core; default 5s). One node per inbox key reads at a
	// time, which keeps each user's messages in order.
	LeaseTTL time.Duration `koanf:"lease_ttl"`
	// DedupeWindow is how long a pubsub message's fingerprint is
	// remembered to tell repeats from copies received by other nodes
	// (default 5m; keep it equal to api.idempotency_window: a node that
	// forgets a payload while the broker still holds its key takes a later
	// identical message for a copy, and one that remembers it longer than
	// the broker can disagree with a freshly started node).
	DedupeWindow time.Duration `koanf:"dedupe_window"`
	// MaxMessageBytes is the largest payload decoded (default 1 MiB).
	MaxMessageBytes int `koanf:"max_message_bytes"`
	// TLS configures TLS for rediss:// hosts (CA, client certificate,
	// server name); with TLS.Enabled every host uses TLS, "host:port" and
	// redis:// ones too.
	TLS fanout.RedisTLSConfig `koanf:"tls"`
	// DialTimeout and CommandTimeout bound Redis operations (2s each).
	DialTimeout    time.Duration `koanf:"dial_timeout"`
	CommandTimeout time.Duration `koanf:"command_timeout"`
}

// DefaultConfig returns the channels_redis defaults (those of
// channels_redis 4.x) and Herald's own; the ingest is off.
func DefaultConfig() Config {
	return Config{
		Layer:           "core",
		Hosts:           []string{"redis://127.0.0.1:6379"},
		Prefix:          "asgi",
		Expiry:          60 * time.Second,
		GroupExpiry:     24 * time.Hour,
		Capacity:        100,
		UserGroup:       "user_{id}",
		MessageKey:      "message",
		JSONStyle:       "python",
		Inbox:           "herald",
		Linger:          10 * time.Minute,
		LeaseTTL:        5 * time.Second,
		DedupeWindow:    5 * time.Minute,
		MaxMessageBytes: 1 << 20,
		DialTimeout:     2 * time.Second,
		CommandTimeout:  2 * time.Second,
	}
}

// GroupRule maps a channels group name pattern to a Herald channel
// pattern; either may contain one "{id}".
type GroupRule struct {
	Group   string
	Channel string
}

// Rules returns the user rule followed by the extra group rules, parsed.
func (c Config) Rules() ([]GroupRule, error) {
	var out []GroupRule
	if c.UserGroup != "" {
		out = append(out, GroupRule{Group: c.UserGroup, Channel: "user:{id}"})
	}
	for _, g := range c.Groups {
		group, channel, ok := strings.Cut(g, "=")
		group, channel = strings.TrimSpace(group), strings.TrimSpace(channel)
		if !ok || group == "" || channel == "" {
			return nil, fmt.Errorf("group rule %q must be \"group=channel\"", g)
		}
		out = append(out, GroupRule{Group: group, Channel: channel})
	}
	for _, r := range out {
		gi, ci := strings.Count(r.Group, "{id}"), strings.Count(r.Channel, "{id}")
		if gi > 1 || gi != ci {
			return nil, fmt.Errorf("group rule %s=%s: \"{id}\" must appear once on both sides or on neither", r.Group, r.Channel)
		}
	}
	return out, nil
}

// Validate checks the section and returns its first problem as a
// *confkey.Error naming the full key (compat.channels_redis.hosts, ...).
// It returns nil when the ingest is disabled.
func (c Config) Validate() error {
	if !c.Enabled {
		return nil
	}
	bad := func(k, format string, args ...any) error {
		return confkey.Errorf("compat.channels_redis."+k, format, args...)
	}
	switch c.Layer {
	case "core", "pubsub":
	default:
		return bad("layer", "must be core or pubsub, got %q", c.Layer)
	}
	if len(c.Hosts) == 0 {
		return bad("hosts", "list at least one Redis host, in CHANNEL_LAYERS order")
	}
	for _, h := range c.Hosts {
		if strings.Contains(h, "://") {
			u, err := url.Parse(h)
			if err != nil || (u.Scheme != "redis" && u.Scheme != "rediss") || u.Host == "" {
				return bad("hosts", "%q is not a redis:// or rediss:// URL", h)
			}
		} else if !strings.Contains(h, ":") {
			return bad("hosts", "%q is not host:port or a redis:// URL", h)
		}
	}
	if c.Prefix == "" {
		return bad("prefix", "must not be empty")
	}
	if c.Expiry < time.Second || c.GroupExpiry < time.Second {
		return bad("expiry", "expiry and group_expiry must be at least 1s")
	}
	if c.Capacity < 1 {
		return bad("capacity", "must be at least 1")
	}
	if _, err := c.Rules(); err != nil {
		return bad("groups", "%v", err)
	}
	if c.MessageKey == "" {
		return bad("message_key", "must not be empty (\"*\" delivers the whole event)")
	}
	switch c.JSONStyle {
	case "python", "compact":
	default:
		return bad("json_style", "must be python or compact, got %q", c.JSONStyle)
	}
	if c.Inbox == "" || strings.ContainsAny(c.Inbox, "!{}") {
		return bad("inbox", "must be a non-empty channel name without ! { }")
	}
	if c.Linger < 0 || c.LeaseTTL < time.Second || c.DedupeWindow < time.Second {
		return bad("linger", "linger must not be negative; lease_ttl and dedupe_window must be at least 1s")
	}
	if c.MaxMessageBytes < 1024 {
		return bad("max_message_bytes", "must be at least 1024")
	}
	if c.DialTimeout <= 0 || c.CommandTimeout <= 0 {
		return bad("command_timeout", "dial_timeout and command_timeout must be positive")
	}
	for _, kf := range [][2]string{{"tls.ca_file", c.TLS.CAFile}, {"tls.cert_file", c.TLS.CertFile}, {"tls.key_file", c.TLS.KeyFile}} {
		if kf[1] != "" {
			if _, err := os.Stat(kf[1]); err != nil {
				return bad(kf[0], "%v", err)
			}
		}
	}
	t := c.TLS
	t.Enabled = true
	if _, err := t.Build(); err != nil {
		return bad("tls", "%v", err)
	}
	return nil
}
