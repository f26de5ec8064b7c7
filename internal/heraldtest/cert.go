package heraldtest

import (
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"os"
	"testing"

	"github.com/heraldrt/herald/internal/testcert"
)

// Cert is a self-signed test certificate for 127.0.0.1 and localhost, with
// its key.
type Cert struct {
	// X509 is the parsed certificate (its SerialNumber tells renewals
	// apart).
	X509    *x509.Certificate
	certPEM []byte
	keyPEM  []byte
}

// NewCert makes a fresh self-signed ECDSA P-256 certificate named cn for
// 127.0.0.1 and localhost, valid from an hour ago for a day, with a random
// serial. It is its own CA, so a pool holding it (Pool) verifies it.
func NewCert(t testing.TB, cn string) Cert {
	t.Helper()
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		t.Fatal(err)
	}
	c := testcert.New(t, &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: cn},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:              []string{"localhost"},
	}, nil)
	return Cert{X509: c.X509, certPEM: c.CertPEM(), keyPEM: c.KeyPEM(t)}
}

// Write writes the key to keyFile and then the certificate to certFile as
// PEM, each through a temporary file renamed over the old one, the way
// certbot renews.
func (c Cert) Write(t testing.TB, certFile, keyFile string) {
	t.Helper()
	for _, f := range []struct {
		path string
		data []byte
		mode os.FileMode
	}{{keyFile, c.keyPEM, 0o600}, {certFile, c.certPEM, 0o644}} {
		tmp := f.path + ".new"
		if err := os.WriteFile(tmp, f.data, f.mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, f.path); err != nil {
			t.Fatal(err)
		}
	}
}

// Pool returns a certificate pool that trusts c.
func (c Cert) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(c.X509)
	return p
}
