package edge

import (
	"fmt"
	"log/slog"
	"strings"

	"github.com/heraldrt/herald/config"
	"github.com/heraldrt/herald/edge/auth"
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
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	prev := *s.cur.Load()
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
	if newAuth != nil {
		old := s.authv.Swap(newAuth)
		old.Close()
	}
	s.orig.Store(newOriginSet(next.Server.AllowedOrigins))
	s.adm.setLimits(next.Limits)
	s.setRetention(next.History)
	env := *s.env.Load()
	env.Config = streamConfig(next)
	s.env.Store(&env)
	if s.ingest != nil && changedUnder(res.Applied, "compat.channels_redis.types") {
		s.ingest.SetTypes(next.Compat.ChannelsRedis.Types)
	}
	s.cur.Store(&next)
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

// current returns the config in effect.
func (s *Server) current() config.Config { return *s.cur.Load() }

// verifier returns the token verifier in effect.
func (s *Server) verifier() *auth.Verifier { return s.authv.Load() }

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
