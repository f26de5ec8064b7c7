package edge

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestLogsNeverContainSecrets runs connects (good, expired, forged),
// refreshes and publishes with debug JSON logs and checks that no token,
// HMAC secret or API key appears in them.
func TestLogsNeverContainSecrets(t *testing.T) {
	var logs syncBuffer
	cfg := testConfig()
	srv, err := New(context.Background(), cfg, slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	ts := &testServer{srv: srv, cfg: cfg, addr: ln.Addr().String(), done: make(chan error, 1)}
	go func() { ts.done <- srv.Serve(ln) }()
	defer ts.shutdown(t)

	good := token(t, "s1", time.Hour)
	expired := token(t, "s1", -time.Hour)
	forged, _ := signWith("not-the-secret-0123456789abcdef0123", "s1", time.Hour)
	c := ts.mustWS(t, q("token", good))
	readWS(t, c)
	_ = c.WriteMessage(1, []byte(`{"type":"refresh","token":"`+forged+`"}`))
	readWS(t, c)
	ts.dialWS(t, q("token", expired), nil)
	ts.dialWS(t, q("token", forged), nil)
	ts.openSSE(t, q("token", forged), "")
	ts.post(t, "/api/publish", "wrong-key-0123456789", `{"user_id":"s1","data":{}}`)
	ts.publishTo(t, "s1", `{"x":1}`)
	readWS(t, c)
	c.Close()
	time.Sleep(100 * time.Millisecond)

	out := logs.String()
	if !strings.Contains(out, "connection refused") {
		t.Fatal("expected refusal log lines")
	}
	for name, secret := range map[string]string{
		"good token": good, "expired token": expired, "forged token": forged,
		"hmac secret": testSecret, "api key": testAPIKey, "wrong api key": "wrong-key-0123456789",
		"token signature": good[strings.LastIndexByte(good, '.')+1:],
	} {
		if strings.Contains(out, secret) {
			t.Errorf("logs contain the %s", name)
		}
	}
}
