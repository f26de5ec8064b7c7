// Package testcert makes throwaway certificates for tests: a fresh ECDSA
// P-256 key and a certificate for it, self-signed or signed by another
// test certificate, valid from an hour ago for a day. It depends on the
// standard library only, so any test helper package can use it.
package testcert

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"testing"
	"time"
)

// Cert is a test certificate with its private key.
type Cert struct {
	// X509 is the parsed certificate.
	X509 *x509.Certificate
	// Key is the certificate's private key.
	Key *ecdsa.PrivateKey
}

// New makes a fresh key and a certificate for it from tmpl, signed by
// parent's key, or self-signed when parent is nil. It sets tmpl's
// NotBefore and NotAfter (an hour ago, a day from now) and fails t on any
// error.
func New(t testing.TB, tmpl *x509.Certificate, parent *Cert) Cert {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("testcert: key for %s: %v", tmpl.Subject.CommonName, err)
	}
	now := time.Now()
	tmpl.NotBefore, tmpl.NotAfter = now.Add(-time.Hour), now.Add(24*time.Hour)
	issuer, signer := tmpl, key
	if parent != nil {
		issuer, signer = parent.X509, parent.Key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, issuer, &key.PublicKey, signer)
	if err != nil {
		t.Fatalf("testcert: %s certificate: %v", tmpl.Subject.CommonName, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("testcert: parse %s certificate: %v", tmpl.Subject.CommonName, err)
	}
	return Cert{X509: cert, Key: key}
}

// CertPEM returns the certificate as a PEM "CERTIFICATE" block.
func (c Cert) CertPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.X509.Raw})
}

// KeyPEM returns the private key as a PEM "PRIVATE KEY" block (PKCS #8).
func (c Cert) KeyPEM(t testing.TB) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(c.Key)
	if err != nil {
		t.Fatalf("testcert: key of %s: %v", c.X509.Subject.CommonName, err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}
