package testcert

import (
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"testing"
)

// TestNewChain: a leaf signed by a self-signed CA verifies against a pool
// holding the CA, and its PEM pair loads as a TLS key pair.
func TestNewChain(t *testing.T) {
	ca := New(t, &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "test CA"},
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}, nil)
	leaf := New(t, &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "leaf"},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"localhost"},
	}, &ca)
	pool := x509.NewCertPool()
	pool.AddCert(ca.X509)
	if _, err := leaf.X509.Verify(x509.VerifyOptions{Roots: pool, DNSName: "localhost"}); err != nil {
		t.Fatalf("leaf does not verify against its CA: %v", err)
	}
	if _, err := ca.X509.Verify(x509.VerifyOptions{Roots: x509.NewCertPool()}); err == nil {
		t.Fatal("CA verified against an empty pool")
	}
	if _, err := tls.X509KeyPair(leaf.CertPEM(), leaf.KeyPEM(t)); err != nil {
		t.Fatalf("PEM pair does not load: %v", err)
	}
}
