package compat_test

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/heraldrt/herald/config"
	"github.com/heraldrt/herald/edge"
	"github.com/heraldrt/herald/edge/auth"
)

const (
	secret = "test-secret-0123456789abcdef0123456789"
	apiKey = "test-api-key-0123456789"
)

// TestPythonHelpers runs examples/python's herald.publish and
// HeraldChannelLayer against an in-process Herald and reads the result as
// a browser would, over SSE.
func TestPythonHelpers(t *testing.T) {
	py := ""
	for _, p := range []string{"/usr/bin/python3", "python3"} {
		if exec.Command(p, "-c", "import asgiref").Run() == nil {
			py = p
			break
		}
	}
	if py == "" {
		t.Skip("no python3 with asgiref")
	}
	cfg := config.Default()
	cfg.Server.Listen = "127.0.0.1:0"
	cfg.Auth.JWT.HMACSecret = secret
	cfg.API.Key = apiKey
	cfg.Server.ReconnectWindow = 0
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	srv, err := edge.New(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", cfg.Server.Listen)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	base := "http://" + ln.Addr().String()

	tok, err := auth.Sign(secret, "HS256", "42", time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(base + "/sse/notifications/?token=" + tok)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if d, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				lines <- d
			}
		}
		close(lines)
	}()
	if first := <-lines; !strings.Contains(first, "connection_established") {
		t.Fatalf("first event %s", first)
	}

	cmd := exec.Command(py, "testdata/helper_send.py", base, apiKey, "42")
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helper_send.py: %v", err)
	}
	want := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(want) != 14 {
		t.Fatalf("script printed %d messages", len(want))
	}
	for i, w := range want {
		select {
		case got := <-lines:
			if got != w {
				t.Errorf("message %d:\n got %s\nwant %s", i, got, w)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("message %d not received", i)
		}
	}
}
