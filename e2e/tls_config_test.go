package e2e

import (
	"crypto/tls"
	"net/http"
	"testing"

	"github.com/heraldrt/herald/config"
	"github.com/heraldrt/herald/internal/heraldtest"
)

// TestTLSFromConfig: server.tls.cert_file/key_file make Serve speak TLS.
func TestTLSFromConfig(t *testing.T) {
	certFile, keyFile, pool := selfSigned(t)
	n := startHerald(t, func(c *config.Config) {
		c.Server.TLS.CertFile, c.Server.TLS.KeyFile = certFile, keyFile
	}, nil)
	n.TLS = true
	c := tlsClient(&tls.Config{RootCAs: pool})
	resp, err := c.Get(n.URL() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("https /healthz: %d", resp.StatusCode)
	}
	s := openSSE(t, c, n.URL()+"/sse/notifications/?token="+heraldtest.Token(t, "42"), nil)
	if _, m := s.NextJSON(t, 5e9); m["type"] != "connection_established" {
		t.Fatalf("first event %v", m)
	}
}
