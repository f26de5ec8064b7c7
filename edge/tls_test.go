package edge

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/heraldrt/herald/config"
)

// writeCert writes a fresh self-signed certificate for 127.0.0.1 named cn,
// and its key, to certFile and keyFile the way certbot renews: new files
// renamed over the old ones. It returns the certificate's serial number.
func writeCert(t *testing.T, certFile, keyFile, cn string) *big.Int {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []struct {
		path string
		pem  *pem.Block
	}{{keyFile, &pem.Block{Type: "PRIVATE KEY", Bytes: kder}}, {certFile, &pem.Block{Type: "CERTIFICATE", Bytes: der}}} {
		tmp := f.path + ".new"
		if err := os.WriteFile(tmp, pem.EncodeToMemory(f.pem), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, f.path); err != nil {
			t.Fatal(err)
		}
	}
	return serial
}

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
	old := writeCert(t, certFile, keyFile, "old")
	ts := startServer(t, func(c *config.Config) {
		c.Server.TLS = config.TLS{CertFile: certFile, KeyFile: keyFile, ReloadCheck: check}
	})
	if got := servedSerial(t, ts.addr); got.Cmp(old) != 0 {
		t.Fatalf("served serial %v, want the initial %v", got, old)
	}
	// An mtime in the same second as the first files must still count.
	renewed := writeCert(t, certFile, keyFile, "renewed")
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
