package auth

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/golang-jwt/jwt/v5"
)

// minRSABits is the smallest RSA modulus accepted for verification keys.
const minRSABits = 2048

// publicKey is one verification key loaded from auth.jwt.public_key_files.
type publicKey struct {
	// id is the file's base name without its extension; a token whose
	// header "kid" equals it is checked against this key first.
	id string
	// key is *rsa.PublicKey, *ecdsa.PublicKey or ed25519.PublicKey.
	key any
	// algs are the JWS algorithms this key verifies.
	algs []string
}

// keyID derives a key id from a key file's path: "keys/2024-01.pem" has
// the id "2024-01".
func keyID(path string) string {
	base := filepath.Base(path)
	return strings.TrimSuffix(base, filepath.Ext(base))
}

// loadPublicKey reads the PEM file at path and returns the first public key
// or certificate in it.
func loadPublicKey(path string) (publicKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return publicKey{}, err
	}
	key, err := parsePublicKeyPEM(data)
	if err != nil {
		return publicKey{}, err
	}
	algs, err := keyAlgorithms(key)
	if err != nil {
		return publicKey{}, err
	}
	return publicKey{id: keyID(path), key: key, algs: algs}, nil
}

// parsePublicKeyPEM returns the key of the first "PUBLIC KEY",
// "RSA PUBLIC KEY" or "CERTIFICATE" block in data. Parameter blocks are
// skipped; a private key is refused so that signing keys do not end up on
// the edge by mistake.
func parsePublicKeyPEM(data []byte) (any, error) {
	sawBlock := false
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		sawBlock = true
		switch block.Type {
		case "PUBLIC KEY":
			k, err := x509.ParsePKIXPublicKey(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("parse public key: %w", err)
			}
			return k, nil
		case "RSA PUBLIC KEY":
			k, err := x509.ParsePKCS1PublicKey(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("parse RSA public key: %w", err)
			}
			return k, nil
		case "CERTIFICATE":
			c, err := x509.ParseCertificate(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("parse certificate: %w", err)
			}
			return c.PublicKey, nil
		case "EC PARAMETERS":
			continue
		default:
			if strings.Contains(block.Type, "PRIVATE KEY") {
				return nil, fmt.Errorf("PEM block %q is a private key; configure the public key instead (openssl pkey -pubout)", block.Type)
			}
			return nil, fmt.Errorf("PEM block %q is not a public key or certificate", block.Type)
		}
	}
	if sawBlock {
		return nil, errors.New("no public key or certificate PEM block found")
	}
	return nil, errors.New("no PEM data found")
}

// keyAlgorithms returns the JWS algorithms a public key verifies, or an
// error for a key Herald does not accept.
func keyAlgorithms(key any) ([]string, error) {
	switch k := key.(type) {
	case *rsa.PublicKey:
		if bits := k.N.BitLen(); bits < minRSABits {
			return nil, fmt.Errorf("RSA key has %d bits, at least %d are required", bits, minRSABits)
		}
		return []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}, nil
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return []string{"ES256"}, nil
		case elliptic.P384():
			return []string{"ES384"}, nil
		case elliptic.P521():
			return []string{"ES512"}, nil
		}
		return nil, fmt.Errorf("unsupported elliptic curve %s", k.Curve.Params().Name)
	case ed25519.PublicKey:
		return []string{"EdDSA"}, nil
	}
	return nil, fmt.Errorf("unsupported key type %T (want RSA, ECDSA P-256/P-384/P-521 or Ed25519)", key)
}

// keyFits reports whether key is a public key of the type the signing
// method m verifies with (for ECDSA, on the curve m uses). It is false for
// HMAC methods: a public key is never an HMAC secret.
func keyFits(m jwt.SigningMethod, key any) bool {
	switch m := m.(type) {
	case *jwt.SigningMethodRSA, *jwt.SigningMethodRSAPSS:
		_, ok := key.(*rsa.PublicKey)
		return ok
	case *jwt.SigningMethodECDSA:
		k, ok := key.(*ecdsa.PublicKey)
		return ok && k.Curve.Params().BitSize == m.CurveBits
	case *jwt.SigningMethodEd25519:
		_, ok := key.(ed25519.PublicKey)
		return ok
	}
	return false
}
