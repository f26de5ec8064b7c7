package edge

import (
	"crypto/tls"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/heraldrt/herald/config"
	"github.com/heraldrt/herald/edge/edgeconf"
	"github.com/heraldrt/herald/internal/heraldtest"
)

// servedSerial makes a TLS handshake with addr and returns the serial of
// the certificate it presents.
func servedSerial(t *testing.T, addr string) *big.Int {
	t.Helper()
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatalf("tls dial: %v", err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].SerialNumber
}

// TestTLSRenewedCertificateServed: the README's promise that renewed
// certificate files are picked up without a restart. The pair is replaced
// on disk; within server.tls.reload_check (shortened here) new handshakes
// present the new certificate, and until then the old one.
func TestTLSRenewedCertificateServed(t *testing.T) {
	const check = 300 * time.Millisecond
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "fullchain.pem"), filepath.Join(dir, "privkey.pem")
	oldCert := heraldtest.NewCert(t, "old")
	oldCert.Write(t, certFile, keyFile)
	old := oldCert.X509.SerialNumber
	ts := startServer(t, func(c *config.Config) {
		c.Server.TLS = edgeconf.TLS{CertFile: certFile, KeyFile: keyFile, ReloadCheck: check}
	})
	if got := servedSerial(t, ts.addr); got.Cmp(old) != 0 {
		t.Fatalf("served serial %v, want the initial %v", got, old)
	}
	// An mtime in the same second as the first files must still count.
	renewedCert := heraldtest.NewCert(t, "renewed")
	renewedCert.Write(t, certFile, keyFile)
	renewed := renewedCert.X509.SerialNumber
	later := time.Now().Add(2 * time.Second)
	for _, f := range []string{certFile, keyFile} {
		if err := os.Chtimes(f, later, later); err != nil {
			t.Fatal(err)
		}
	}
	replaced := time.Now()
	for {
		got := servedSerial(t, ts.addr)
		if got.Cmp(renewed) == 0 {
			t.Logf("renewed certificate served %s after the files changed (reload_check %s)", time.Since(replaced), check)
			break
		}
		if got.Cmp(old) != 0 {
			t.Fatalf("served serial %v, neither the old nor the renewed one", got)
		}
		// Generous for a loaded machine, still far below the default 1m.
		if time.Since(replaced) > check+10*time.Second {
			t.Fatalf("renewed certificate not served %s after the files changed (reload_check %s)", time.Since(replaced), check)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
