package redistest

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/heraldrt/herald/internal/testcert"
)

// TLSFiles are PEM files made by NewTLS: a test CA, a server certificate
// it signed for 127.0.0.1 and localhost, and a client certificate it
// signed.
type TLSFiles struct {
	CA         string // CA certificate
	ServerCert string
	ServerKey  string
	ClientCert string
	ClientKey  string
}

// NewTLS makes a fresh CA and the certificates it signs, in t.TempDir().
// Two calls make two unrelated CAs.
func NewTLS(t testing.TB) TLSFiles {
	t.Helper()
	dir := t.TempDir()
	ca := testcert.New(t, &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "herald test CA " + strconv.FormatInt(time.Now().UnixNano(), 36)},
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}, nil)
	f := TLSFiles{
		CA:         filepath.Join(dir, "ca.pem"),
		ServerCert: filepath.Join(dir, "server.pem"),
		ServerKey:  filepath.Join(dir, "server-key.pem"),
		ClientCert: filepath.Join(dir, "client.pem"),
		ClientKey:  filepath.Join(dir, "client-key.pem"),
	}
	writeFile(t, f.CA, ca.CertPEM())
	leaf := func(serial int64, cn string, usage x509.ExtKeyUsage, certFile, keyFile string) {
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial),
			Subject:      pkix.Name{CommonName: cn},
			KeyUsage:     x509.KeyUsageDigitalSignature,
			ExtKeyUsage:  []x509.ExtKeyUsage{usage},
		}
		if usage == x509.ExtKeyUsageServerAuth {
			tmpl.DNSNames = []string{"localhost"}
			tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
		}
		c := testcert.New(t, tmpl, &ca)
		writeFile(t, certFile, c.CertPEM())
		writeFile(t, keyFile, c.KeyPEM(t))
	}
	leaf(2, "redis-server", x509.ExtKeyUsageServerAuth, f.ServerCert, f.ServerKey)
	leaf(3, "herald", x509.ExtKeyUsageClientAuth, f.ClientCert, f.ClientKey)
	return f
}

func writeFile(t testing.TB, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatalf("redistest: write %s: %v", path, err)
	}
}

// TLS makes Start open a TLS port too (Server.TLSAddr) with the server
// certificate of f, trusting f's CA for client certificates; with
// clientCerts set, clients must present one. The plain port stays open for
// the test's own commands (Do).
func TLS(f TLSFiles, clientCerts bool) Option {
	return func(o *options) {
		o.tls = true
		auth := "no"
		if clientCerts {
			auth = "yes"
		}
		o.args = append(o.args, "--tls-cert-file", f.ServerCert, "--tls-key-file", f.ServerKey,
			"--tls-ca-cert-file", f.CA, "--tls-auth-clients", auth)
	}
}

// TLSAddr returns the TLS listener's "127.0.0.1:port" (Start with TLS).
func (s *Server) TLSAddr() string { return "127.0.0.1:" + strconv.Itoa(s.tlsPort) }
