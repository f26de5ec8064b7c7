package config

import (
	"fmt"
	"net/url"
	"time"

	"github.com/heraldrt/herald/compat"
)

// Compat configures the migration aids for applications that used Django
// Channels: ingesting channels_redis group_send traffic, so unchanged
// Celery code reaches Herald's clients.
type Compat struct {
	// ChannelsRedis reads the messages Django code sends with
	// channel_layer.group_send through channels_redis.
	ChannelsRedis compat.Config `koanf:"channels_redis"`
}

// BackendCheck configures authenticating connections with the
// application's own session (e.g. a Django session cookie) instead of a
// JWT: Herald asks the backend who the user is.
type BackendCheck struct {
	// URL is the backend endpoint called on connect (GET). An empty URL
	// disables the check.
	URL string `koanf:"url"`
	// Cookies lists the cookies forwarded (default sessionid and
	// csrftoken); "*" forwards the whole Cookie header.
	Cookies []string `koanf:"cookies"`
	// Headers lists request headers forwarded (e.g. Authorization,
	// X-Forwarded-For).
	Headers []string `koanf:"headers"`
	// Timeout bounds one backend call (default 2s); no answer in time
	// refuses the connection.
	Timeout time.Duration `koanf:"timeout"`
	// CacheTTL is how long a positive answer is reused for the same
	// credentials (default 30s; 0 disables caching).
	CacheTTL time.Duration `koanf:"cache_ttl"`
	// CacheSize bounds the cached answers (default 10000).
	CacheSize int `koanf:"cache_size"`
	// UserField is the JSON field of the answer holding the user id
	// (default "user_id").
	UserField string `koanf:"user_field"`
	// SessionTTL is the expiry given to sessions admitted this way, after
	// which the client reconnects and is checked again (default 1h).
	SessionTTL time.Duration `koanf:"session_ttl"`
}

// DefaultBackendCheck returns the backend check defaults (disabled).
func DefaultBackendCheck() BackendCheck {
	return BackendCheck{
		Cookies:    []string{"sessionid", "csrftoken"},
		Timeout:    2 * time.Second,
		CacheTTL:   30 * time.Second,
		CacheSize:  10000,
		UserField:  "user_id",
		SessionTTL: time.Hour,
	}
}

// Validate checks the section; key is its configuration key prefix
// ("auth.backend_check"). It returns nil when the check is disabled.
func (b BackendCheck) Validate(key string) error {
	if b.URL == "" {
		return nil
	}
	bad := func(k, format string, args ...any) error {
		return &KeyError{Key: key + "." + k, Msg: fmt.Sprintf(format, args...)}
	}
	u, err := url.Parse(b.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return bad("url", "%q is not an http(s) URL", b.URL)
	}
	if b.Timeout <= 0 {
		return bad("timeout", "must be positive")
	}
	if b.CacheTTL < 0 || b.CacheSize < 0 {
		return bad("cache_ttl", "cache_ttl and cache_size must not be negative")
	}
	if b.UserField == "" {
		return bad("user_field", "must not be empty")
	}
	if b.SessionTTL <= 0 {
		return bad("session_ttl", "must be positive")
	}
	return nil
}
