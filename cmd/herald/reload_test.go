package main

import (
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/heraldrt/herald/edge/auth"
	"github.com/heraldrt/herald/internal/heraldtest"
)

const (
	reloadSecretA = "reload-secret-A-0123456789abcdef0123456789"
	reloadSecretB = "reload-secret-B-0123456789abcdef0123456789"
)

// reloadConfig is a config file for the reload tests.
func reloadConfig(perUser int, secret, origins, level, listen, extra string) string {
	return `server:
  listen: "` + listen + `"
  allowed_origins: [` + origins + `]
  shutdown_timeout: 5s
  reconnect_window: 0s
auth:
  jwt:
    hmac_secret: "` + secret + `"
api:
  key: "` + heraldtest.APIKey + `"
limits:
  per_user: ` + itoa(perUser) + `
log:
  level: ` + level + `
` + extra
}

func itoa(n int) string {
	if n < 0 {
		return "-" + itoa(-n)
	}
	if n < 10 {
		return string(rune('0' + n))
	}
	return itoa(n/10) + string(rune('0'+n%10))
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil { // atomically, as editors and ConfigMaps do
		t.Fatal(err)
	}
}

// dialAs connects a WebSocket with a token signed by secret; origin may be
// empty. It returns the handshake status.
func dialAs(t *testing.T, addr, secret, user, origin string) (*websocket.Conn, int) {
	t.Helper()
	tok, err := auth.Sign(secret, "HS256", user, time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	h := http.Header{}
	if origin != "" {
		h.Set("Origin", origin)
	}
	c, resp, err := (&websocket.Dialer{HandshakeTimeout: 10 * time.Second}).Dial("ws://"+addr+"/ws/notifications/?token="+tok, h)
	status := 0
	if resp != nil {
		status = resp.StatusCode
	}
	if err == nil {
		t.Cleanup(func() { c.Close() })
		return c, status
	}
	return nil, status
}

// TestReloadOnSIGHUP runs the real binary, changes its config file and
// sends SIGHUP: a lower limits.per_user applies to new connections while
// the user's existing ones stay connected and keep receiving; a new
// allowed origin, a new HMAC secret and the debug log level take effect;
// a changed server.listen is reported as needing a restart and kept; then
// an invalid config is refused with the reason and the running one kept.
func TestReloadOnSIGHUP(t *testing.T) {
	bin := heraldtest.Build(t, heraldtest.LDFlags(t, "v0.0.0-reload"))
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "herald.yaml")
	writeFile(t, cfgPath, reloadConfig(3, reloadSecretA, "", "info", "127.0.0.1:0", ""))
	p := heraldtest.Start(t, bin, nil, "--config", cfgPath)

	var old []*websocket.Conn
	for range 3 {
		c, status := dialAs(t, p.Addr, reloadSecretA, "42", "")
		if c == nil {
			t.Fatalf("connect %d of user 42: status %d", len(old)+1, status)
		}
		old = append(old, c)
	}
	if _, status := dialAs(t, p.Addr, reloadSecretA, "9", "https://app.example"); status != http.StatusForbidden {
		t.Fatalf("a foreign Origin before the reload: status %d, want 403", status)
	}

	writeFile(t, cfgPath, reloadConfig(1, reloadSecretB, `"https://app.example"`, "debug", "127.0.0.1:1", ""))
	p.Signal(t, syscall.SIGHUP)
	p.WaitLog(t, `msg="config reloaded" trigger=SIGHUP`, 10*time.Second)
	logs := p.Logs()
	if !strings.Contains(logs, `msg="config key changed but needs a restart; keeping the running value" key=server.listen`) {
		t.Fatalf("server.listen change not reported:\n%s", logs)
	}
	for _, k := range []string{"limits.per_user", "server.allowed_origins", "auth.jwt.hmac_secret", "log.level"} {
		if !strings.Contains(logs, k) {
			t.Errorf("reload log does not list %s as applied:\n%s", k, logs)
		}
	}
	if strings.Contains(logs, reloadSecretB) || strings.Contains(logs, reloadSecretA) {
		t.Fatal("a secret reached the log")
	}

	// The three old connections are still there and receive.
	heraldtest.Publish(t, p.Addr, `{"user_id":"42","data":{"type":"after_reload"}}`)
	for i, c := range old {
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		for {
			_, b, err := c.ReadMessage()
			if err != nil {
				t.Fatalf("old connection %d of user 42 after the reload: %v", i, err)
			}
			if strings.Contains(string(b), "after_reload") {
				break
			}
		}
	}
	// New connections get the new limit: user 42 is over it, user 7 gets one.
	if c, status := dialAs(t, p.Addr, reloadSecretB, "42", ""); c != nil || status != http.StatusTooManyRequests {
		t.Fatalf("a 4th connection of user 42 after lowering per_user to 1: status %d, want 429", status)
	}
	if c, status := dialAs(t, p.Addr, reloadSecretB, "7", ""); c == nil {
		t.Fatalf("user 7's first connection: status %d", status)
	}
	if c, status := dialAs(t, p.Addr, reloadSecretB, "7", ""); c != nil || status != http.StatusTooManyRequests {
		t.Fatalf("user 7's second connection: status %d, want 429", status)
	}
	// The new secret signs valid tokens, the old one no longer does; the new
	// origin is allowed; the listener did not move.
	if c, status := dialAs(t, p.Addr, reloadSecretA, "8", ""); c != nil || status != http.StatusUnauthorized {
		t.Fatalf("a token signed with the removed secret: status %d, want 401", status)
	}
	if c, status := dialAs(t, p.Addr, reloadSecretB, "9", "https://app.example"); c == nil {
		t.Fatalf("the newly allowed Origin: status %d", status)
	}
	// Debug logging is on: a malformed request is logged at debug level.
	conn, err := net.Dial("tcp", p.Addr)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = conn.Write([]byte("NOT HTTP\r\n\r\n"))
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, _ = conn.Read(make([]byte, 512))
	conn.Close()
	p.WaitLog(t, "level=DEBUG", 10*time.Second)

	// An invalid config is refused with its reason; the running one stays.
	writeFile(t, cfgPath, reloadConfig(-1, reloadSecretB, "", "info", "127.0.0.1:0", "stream:\n  ws_ping_interval: 25\n"))
	p.Signal(t, syscall.SIGHUP)
	p.WaitLog(t, `msg="config reload failed; keeping the running config" trigger=SIGHUP`, 10*time.Second)
	logs = p.Logs()
	failed := logs[strings.LastIndex(logs, "config reload failed"):]
	if !strings.Contains(failed, "stream.ws_ping_interval") {
		t.Errorf("the refusal does not name stream.ws_ping_interval: %s", failed)
	}
	writeFile(t, cfgPath, reloadConfig(-1, reloadSecretB, "", "info", "127.0.0.1:0", ""))
	p.Signal(t, syscall.SIGHUP)
	p.WaitLogN(t, `msg="config reload failed; keeping the running config" trigger=SIGHUP`, 2, 10*time.Second)
	logs = p.Logs()
	if failed := logs[strings.LastIndex(logs, "config reload failed"):]; !strings.Contains(failed, "limits.per_user") {
		t.Errorf("the refusal does not name limits.per_user: %s", failed)
	}
	if c, status := dialAs(t, p.Addr, reloadSecretB, "7", ""); c != nil || status != http.StatusTooManyRequests {
		t.Fatalf("after a refused reload user 7's second connection: status %d, want 429 (per_user still 1)", status)
	}
	c10, status := dialAs(t, p.Addr, reloadSecretB, "10", "https://app.example")
	if c10 == nil {
		t.Fatalf("after a refused reload the allowed Origin: status %d", status)
	}
	heraldtest.Publish(t, p.Addr, `{"user_id":"10","data":{"type":"still_serving"}}`)
	heraldtest.ReadUntil(t, c10, "still_serving", 10*time.Second)
}

// TestReloadOnFileChange turns on config.watch: editing the file applies
// a new limit without a signal; a broken file is refused and logged.
func TestReloadOnFileChange(t *testing.T) {
	bin := heraldtest.Build(t, heraldtest.LDFlags(t, "v0.0.0-reload"))
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "herald.yaml")
	watch := "config:\n  watch: true\n  watch_interval: 200ms\n"
	writeFile(t, cfgPath, reloadConfig(2, reloadSecretA, "", "info", "127.0.0.1:0", watch))
	p := heraldtest.Start(t, bin, nil, "--config", cfgPath)
	a, _ := dialAs(t, p.Addr, reloadSecretA, "5", "")
	b, _ := dialAs(t, p.Addr, reloadSecretA, "5", "")
	if a == nil || b == nil {
		t.Fatal("user 5's two connections under per_user 2")
	}

	writeFile(t, cfgPath, reloadConfig(1, reloadSecretA, "", "info", "127.0.0.1:0", watch))
	p.WaitLog(t, `msg="config reloaded" trigger="file changed" applied=[limits.per_user]`, 10*time.Second)
	if c, status := dialAs(t, p.Addr, reloadSecretA, "6", ""); c == nil {
		t.Fatalf("user 6's first connection: %d", status)
	}
	if c, status := dialAs(t, p.Addr, reloadSecretA, "6", ""); c != nil || status != http.StatusTooManyRequests {
		t.Fatalf("user 6's second connection after per_user 1: status %d, want 429", status)
	}
	heraldtest.Publish(t, p.Addr, `{"user_id":"5","data":{"type":"still_here"}}`)
	heraldtest.ReadUntil(t, a, "still_here", 10*time.Second)
	heraldtest.ReadUntil(t, b, "still_here", 10*time.Second)

	writeFile(t, cfgPath, "limits: [this is not a mapping\n")
	p.WaitLog(t, `msg="config reload failed; keeping the running config" trigger="file changed"`, 10*time.Second)
	writeFile(t, cfgPath, reloadConfig(3, reloadSecretA, "", "info", "127.0.0.1:0", watch))
	p.WaitLogN(t, `applied=[limits.per_user]`, 2, 10*time.Second)
	if c, status := dialAs(t, p.Addr, reloadSecretA, "6", ""); c == nil {
		t.Fatalf("user 6's second connection after per_user 3: status %d", status)
	}
}
