package protocols

import (
	"strings"
	"time"

	"github.com/heraldrt/herald/internal/confkey"
)

// StreamConfig is the "stream" configuration section: the settings of
// client connections. Config turns it into the sessions' Config.
type StreamConfig struct {
	// WriteTimeout, WSPingInterval, WSReadTimeout, WSReadLimit,
	// SSEHeartbeat, SSERetry, MaxQueue and MaxQueueBytes are the Config
	// fields of the same names.
	WriteTimeout   time.Duration `koanf:"write_timeout"`
	WSPingInterval time.Duration `koanf:"ws_ping_interval"`
	WSReadTimeout  time.Duration `koanf:"ws_read_timeout"`
	WSReadLimit    int64         `koanf:"ws_read_limit"`
	SSEHeartbeat   time.Duration `koanf:"sse_heartbeat"`
	SSERetry       time.Duration `koanf:"sse_retry"`
	MaxQueue       int           `koanf:"max_queue"`
	MaxQueueBytes  int           `koanf:"max_queue_bytes"`
	// Writers is the size of the node's writer pool (NewWriters).
	Writers int `koanf:"writers"`
	// Coalesce lists "type:member" rules: when a connection's queue is
	// full, a message whose payload has that "type" replaces a queued one
	// with the same value of member (e.g.
	// "oracle_upload_progress:transaction_id").
	Coalesce []string `koanf:"coalesce"`
	// UserIDString sends connection_established's user_id as a JSON string
	// even when the id is an integer (which is otherwise sent as a number,
	// as the Django Channels guide's consumer sends self.user.id).
	UserIDString bool `koanf:"user_id_string"`
}

// CoalesceRules parses stream.coalesce into type → member.
func (s StreamConfig) CoalesceRules() map[string]string {
	if len(s.Coalesce) == 0 {
		return nil
	}
	out := make(map[string]string, len(s.Coalesce))
	for _, r := range s.Coalesce {
		if typ, member, ok := strings.Cut(r, ":"); ok {
			out[typ] = member
		}
	}
	return out
}

// DefaultStreamConfig returns the section's defaults; Config.Defaults
// fills a zero field from them too.
func DefaultStreamConfig() StreamConfig {
	return StreamConfig{
		WriteTimeout:   10 * time.Second,
		WSPingInterval: 25 * time.Second,
		WSReadTimeout:  60 * time.Second,
		WSReadLimit:    64 << 10,
		SSEHeartbeat:   15 * time.Second,
		SSERetry:       2 * time.Second,
		MaxQueue:       1024,
		MaxQueueBytes:  4 << 20,
		Writers:        64,
	}
}

// Config returns the sessions' Config for the section. The fields that
// come from the limits section (ClientRate, ClientBurst, IdleTimeout,
// MaxLifetime, TokenExpiringLead) are left for the caller to set; call
// Defaults on the result.
func (s StreamConfig) Config() Config {
	return Config{
		WriteTimeout:   s.WriteTimeout,
		WSPingInterval: s.WSPingInterval,
		WSReadTimeout:  s.WSReadTimeout,
		WSReadLimit:    s.WSReadLimit,
		SSEHeartbeat:   s.SSEHeartbeat,
		SSERetry:       s.SSERetry,
		MaxQueue:       s.MaxQueue,
		MaxQueueBytes:  s.MaxQueueBytes,
		Coalesce:       s.CoalesceRules(),
		UserIDString:   s.UserIDString,
	}
}

// Validate checks the section (key "stream") and returns every problem as
// a *confkey.Error naming its full key (stream.ws_read_timeout, ...).
func (s StreamConfig) Validate() error {
	var l confkey.List
	l.Between("stream.write_timeout", s.WriteTimeout, 100*time.Millisecond, 10*time.Minute, false)
	l.Between("stream.ws_ping_interval", s.WSPingInterval, time.Second, time.Hour, false)
	if s.WSReadTimeout <= s.WSPingInterval {
		l.Add("stream.ws_read_timeout", "must be longer than stream.ws_ping_interval (%s)", s.WSPingInterval)
	} else {
		l.Between("stream.ws_read_timeout", s.WSReadTimeout, time.Second, 24*time.Hour, false)
	}
	if s.WSReadLimit < 256 || s.WSReadLimit > 64<<20 {
		l.Add("stream.ws_read_limit", "must be between 256 and 67108864 bytes, got %d", s.WSReadLimit)
	}
	l.Between("stream.sse_heartbeat", s.SSEHeartbeat, 100*time.Millisecond, time.Hour, false)
	l.Between("stream.sse_retry", s.SSERetry, 100*time.Millisecond, time.Hour, false)
	if s.MaxQueue < 1 || s.MaxQueue > 1_000_000 {
		l.Add("stream.max_queue", "must be between 1 and 1000000, got %d", s.MaxQueue)
	}
	if s.MaxQueueBytes < 1024 || s.MaxQueueBytes > 1<<30 {
		l.Add("stream.max_queue_bytes", "must be between 1024 and 1073741824, got %d", s.MaxQueueBytes)
	}
	if s.Writers < 1 || s.Writers > 4096 {
		l.Add("stream.writers", "must be between 1 and 4096, got %d", s.Writers)
	}
	for _, r := range s.Coalesce {
		if typ, member, ok := strings.Cut(r, ":"); !ok || typ == "" || member == "" {
			l.Add("stream.coalesce", "rule %q must be \"type:member\"", r)
		}
	}
	return l.Err()
}
