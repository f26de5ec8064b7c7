package edge

import (
	"slices"
	"testing"
	"time"
)

func TestLiveKeys(t *testing.T) {
	for key, live := range map[string]bool{
		"log.level": true, "log.format": false, "server.allowed_origins": true, "server.listen": false,
		"server.tls.cert_file": false, "limits.per_user": true, "limits.per_ip_rate": true, "limits.trusted_proxies": true,
		"stream.coalesce": true, "stream.max_queue": true, "stream.writers": false, "history.retention": true,
		"history.size": false, "auth.jwt.hmac_secret": true, "auth.jwt.jwks_url": true, "auth.backend_check.url": false,
		"fanout.broker": false, "fanout.redis.shards": false, "compat.channels_redis.types": true,
		"compat.channels_redis.hosts": false, "admin.key": false, "api.key": false, "config.watch": true,
	} {
		if liveKey(key) != live {
			t.Errorf("liveKey(%q) = %v, want %v", key, !live, live)
		}
	}
}

// TestReloadAppliesLiveKeys reloads an in-process node and checks that
// every live setting reaches the part that uses it, and that keys needing
// a restart keep their running values.
func TestReloadAppliesLiveKeys(t *testing.T) {
	ts := startServer(t, nil)
	s := ts.srv
	oldEnv := s.live.env.Load()
	next := s.live.config()
	next.Limits.PerUser = 1
	next.Limits.PerIP = 7
	next.Stream.Coalesce = []string{"progress:transaction_id"}
	next.Stream.MaxQueue = 99
	next.History.Retention = []string{"audit:*=5/1h"}
	next.Server.AllowedOrigins = []string{"https://app.example"}
	next.Fanout.Broker = "redis"
	next.Fanout.Redis.Shards = []string{"127.0.0.1:1"}
	next.Stream.Writers = 3
	res, err := s.Reload(next)
	if err != nil {
		t.Fatal(err)
	}
	wantApplied := []string{"server.allowed_origins", "stream.max_queue", "stream.coalesce", "history.retention", "limits.per_user", "limits.per_ip"}
	wantRestart := []string{"fanout.broker", "fanout.redis.shards", "stream.writers"}
	slices.Sort(res.Applied)
	slices.Sort(wantApplied)
	slices.Sort(res.Restart)
	slices.Sort(wantRestart)
	if !slices.Equal(res.Applied, wantApplied) || !slices.Equal(res.Restart, wantRestart) {
		t.Fatalf("applied %v restart %v, want %v and %v", res.Applied, res.Restart, wantApplied, wantRestart)
	}
	if got := s.adm.cfg(); got.PerUser != 1 || got.PerIP != 7 {
		t.Errorf("admission limits %+v", got.Limits)
	}
	env := s.live.env.Load()
	if env == oldEnv || env.Config.MaxQueue != 99 || env.Config.Coalesce["progress"] != "transaction_id" {
		t.Errorf("sessions' config %+v", env.Config)
	}
	if oldEnv.Config.MaxQueue == 99 {
		t.Error("the running sessions' config was changed in place")
	}
	if env.Writers != oldEnv.Writers {
		t.Error("the writer pool was replaced")
	}
	if size, ttl := s.live.retention("audit:9"); size != 5 || ttl != time.Hour {
		t.Errorf("retention for audit:9 = %d/%s", size, ttl)
	}
	if n, _ := normalOrigin("https://app.example"); !s.live.origins.Load().set[n] || s.live.origins.Load().any {
		o := s.live.origins.Load()
		t.Errorf("origins %+v", o)
	}
	cur := s.live.config()
	if cur.Fanout.Broker != "memory" || len(cur.Fanout.Redis.Shards) != 0 || cur.Stream.Writers == 3 {
		t.Errorf("restart-only keys changed: broker %q shards %v writers %d", cur.Fanout.Broker, cur.Fanout.Redis.Shards, cur.Stream.Writers)
	}
	// Reloading the same config changes nothing.
	if res, err := s.Reload(cur); err != nil || len(res.Applied)+len(res.Restart) != 0 {
		t.Fatalf("a no-op reload: %+v, %v", res, err)
	}
	// A JWT setting that cannot be built fails the reload and keeps the verifier.
	v := s.live.verifier()
	bad := s.live.config()
	bad.Auth.JWT.PublicKeyFiles = []string{"/nonexistent/key.pem"}
	if _, err := s.Reload(bad); err == nil {
		t.Fatal("a reload with a missing key file succeeded")
	}
	if s.live.verifier() != v || len(s.live.config().Auth.JWT.PublicKeyFiles) != 0 {
		t.Fatal("a failed reload changed the running config")
	}
}
