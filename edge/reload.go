package edge

import (
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/heraldrt/herald/config"
	"github.com/heraldrt/herald/edge/auth"
	"github.com/heraldrt/herald/fanout"
	"github.com/heraldrt/herald/internal/glob"
	"github.com/heraldrt/herald/protocols"
)

// Live reload. A reload (SIGHUP, or a changed config file with
// config.watch) hands Reload a freshly loaded and validated config. The
// keys listed by liveKey take effect at once — for the connects,
// publishes and messages that follow; connections already open keep
// running and are never dropped by a reload. Other keys need a restart:
// they keep their running value and Reload names them.

// liveKey reports whether key can change without a restart.
func liveKey(key string) bool {
	for _, p := range []string{
		"log.level", // applied by the caller, which owns the log handler
		"config.",   // the watcher's own settings, read by the caller
		"server.allowed_origins",
		"limits.",
		"history.retention",
		"auth.jwt.", "auth.cookie_name", "auth.query_param",
		"compat.channels_redis.types",
	} {
		if key == p || (strings.HasSuffix(p, ".") && strings.HasPrefix(key, p)) {
			return true
		}
	}
	// Every stream setting but the writer pool's size (new sessions).
	return strings.HasPrefix(key, "stream.") && key != "stream.writers"
}

// ReloadResult says what a reload did.
type ReloadResult struct {
	// Applied are the changed keys now in effect.
	Applied []string
	// Restart are the changed keys that need a restart; they keep their
	// running values.
	Restart []string
}

// Reload puts next's live keys in effect and keeps the running values of
// the others (reported in Restart). next must be validated. It fails, and
// changes nothing, when a new setting cannot be built (a JWT key file that
// vanished since validation, ...).
func (s *Server) Reload(next config.Config) (ReloadResult, error) {
	s.live.mu.Lock()
	defer s.live.mu.Unlock()
	prev := s.live.config()
	var res ReloadResult
	for _, key := range config.Diff(prev, next) {
		if liveKey(key) {
			res.Applied = append(res.Applied, key)
			continue
		}
		res.Restart = append(res.Restart, key)
		config.CopyKey(&next, prev, key)
	}
	if len(res.Applied) == 0 {
		return res, nil
	}
	var newAuth *auth.Verifier
	if changedUnder(res.Applied, "auth.") {
		v, err := newVerifier(next, s.log)
		if err != nil {
			return ReloadResult{}, fmt.Errorf("reload: auth: %w", err)
		}
		newAuth = v
	}
	// Everything is built: switch.
	s.live.swap(next, newAuth)
	s.adm.setLimits(next.Limits)
	if s.ingest != nil && changedUnder(res.Applied, "compat.channels_redis.types") {
		s.ingest.SetTypes(next.Compat.ChannelsRedis.Types)
	}
	return res, nil
}

func changedUnder(keys []string, prefix string) bool {
	for _, k := range keys {
		if strings.HasPrefix(k, prefix) {
			return true
		}
	}
	return false
}

// liveConfig is the node's config in effect and what the node derives
// from it: the token verifier, the sessions' environment, the allowed
// origins and the history retention rules. New stores the first values;
// Reload, serialised by mu, builds everything it needs first and then
// swaps the values in (swap), so a reload that fails changes nothing.
// Readers — connect, history, deliver and the brokers' retention lookup on
// publish — take each value with one atomic load and never lock; a reader
// that takes two values during a reload may get one from each side of it,
// which is as if it had raced the reload by a moment.
type liveConfig struct {
	mu      sync.Mutex                    // serialises Reload; readers never take it
	cfg     atomic.Pointer[config.Config] // the config in effect (after reloads)
	verif   atomic.Pointer[auth.Verifier] // the token verifier
	env     atomic.Pointer[protocols.Env] // new sessions take the current one
	origins atomic.Pointer[originSet]     // server.allowed_origins
	rules   atomic.Pointer[[]fanout.RetentionRule]
}

// config returns the config in effect.
func (l *liveConfig) config() config.Config { return *l.cfg.Load() }

// verifier returns the token verifier in effect.
func (l *liveConfig) verifier() *auth.Verifier { return l.verif.Load() }

// swap puts next in effect: its origins, retention rules and stream
// settings, and newAuth as the verifier unless it is nil (the old one is
// closed). The caller holds mu.
func (l *liveConfig) swap(next config.Config, newAuth *auth.Verifier) {
	if newAuth != nil {
		l.verif.Swap(newAuth).Close()
	}
	l.origins.Store(newOriginSet(next.Server.AllowedOrigins))
	l.setRetention(next.History)
	env := *l.env.Load()
	env.Config = streamConfig(next)
	l.env.Store(&env)
	l.cfg.Store(&next)
}

// retention turns history.retention rules into the brokers' per-channel
// retention (0, 0 when no rule matches).
func (l *liveConfig) retention(ch string) (int, time.Duration) {
	for _, r := range *l.rules.Load() {
		if glob.Match(r.Pattern, ch) {
			return r.Size, r.TTL
		}
	}
	return 0, 0
}

// setRetention puts history.retention (validated at load) in effect for
// the publishes that follow.
func (l *liveConfig) setRetention(cfg fanout.HistoryConfig) {
	rules, _ := cfg.RetentionRules()
	l.rules.Store(&rules)
}

// lifetime is the node's sessions from first number to last goodbye, and
// its shutdown.
type lifetime struct {
	nextID   atomic.Uint64  // numbers this node's sessions
	running  sync.WaitGroup // sessions whose read loop runs
	draining atomic.Bool    // Shutdown has begun
	done     chan struct{}  // closed by Shutdown; stops housekeeping
}

// originSet is server.allowed_origins, normalised.
type originSet struct {
	set map[string]bool
	any bool
}

func newOriginSet(origins []string) *originSet {
	o := &originSet{set: make(map[string]bool, len(origins))}
	for _, v := range origins {
		if v == "*" {
			o.any = true
			continue
		}
		if host, ok := strings.CutSuffix(v, ":*"); ok {
			// A loopback port wildcard (validated by config): any port.
			o.set[strings.ToLower(host)+":*"] = true
			continue
		}
		if n, ok := normalOrigin(v); ok {
			o.set[n] = true
		}
	}
	return o
}

func newVerifier(cfg config.Config, log *slog.Logger) (*auth.Verifier, error) {
	return auth.New(cfg.Auth.Config(log.With("component", "auth")))
}

// streamConfig is the sessions' settings from cfg: the stream section and
// the per-connection limits.
func streamConfig(cfg config.Config) protocols.Config {
	return cfg.Limits.Session(cfg.Stream.Config()).Defaults()
}
