package edge

import (
	"io"
	"net"
	"testing"
	"time"

	"github.com/heraldrt/herald/config"
)

// TestIdleConnectionClosedSilently: a connection that sends nothing is
// closed at server.handshake_timeout without any response (it used to get
// an unsolicited 400 that a browser could later read as the answer to its
// request), on the main and the admin listener.
func TestIdleConnectionClosedSilently(t *testing.T) {
	const timeout = 300 * time.Millisecond
	ts := startServer(t, func(c *config.Config) {
		c.Server.HandshakeTimeout = timeout
		c.Admin.Key = "admin-key-0123456789"
	})
	aln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go ts.srv.ServeAdmin(aln)
	for name, addr := range map[string]string{"main": ts.addr, "admin": aln.Addr().String()} {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		b, err := io.ReadAll(c)
		c.Close()
		if len(b) != 0 || err != nil {
			t.Fatalf("%s: idle connection read %q (err %v), want EOF with no bytes", name, b, err)
		}
		if el := time.Since(start); el < timeout/2 || el > 5*time.Second {
			t.Fatalf("%s: closed after %s, want about %s", name, el, timeout)
		}
	}
}
