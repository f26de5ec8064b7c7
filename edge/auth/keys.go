package auth

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
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

// algKeys are the key-file public keys that verify one algorithm.
type algKeys struct {
	set  jwt.VerificationKeySet
	byID map[string]jwt.VerificationKey
}

// hmacKey is one HMAC secret and its id.
type hmacKey struct {
	id  string
	key []byte
}

// HMACKeyID returns the key id of an HMAC secret: the first 8 hex digits
// of its SHA-256. A token whose header "kid" is this id is only checked
// against this secret (see Config.HMACSecrets). The id reveals nothing
// useful about a secret of MinSecretLen bytes or more.
func HMACKeyID(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:4])
}

// asymmetricAlgs are the algorithms a JWKS key may enable.
var asymmetricAlgs = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}

// keyFunc picks the verification key(s) for a token. The parser has
// already refused algorithms that can have no key (WithValidMethods);
// keyFunc checks again by method type: an HMAC method only ever gets the
// HMAC secrets and the other methods only public keys that fit them
// (keyFits, also enforced by New when it files keys under algorithms, and
// jwk.fits for JWKS keys, which also honours a key's declared "alg"), so a
// public key is never used as an HMAC secret and JWKS "oct" keys are never
// used at all. The "kid" header is only a map key: it selects the HMAC
// secret, key file or JWKS keys of that id that fit the token's algorithm;
// an unknown kid forces a (rate limited) JWKS URL refresh; when the kid is
// still unknown, or absent, every key of the algorithm is tried.
func (v *Verifier) keyFunc(t *jwt.Token) (any, error) {
	if _, ok := t.Header["crit"]; ok {
		return nil, errCritical
	}
	kid, _ := t.Header["kid"].(string)
	if _, ok := t.Method.(*jwt.SigningMethodHMAC); ok {
		switch len(v.hmacs) {
		case 0:
			return nil, errNoKey
		case 1:
			return v.hmacs[0].key, nil
		}
		if kid != "" {
			for _, h := range v.hmacs {
				if h.id == kid {
					return h.key, nil
				}
			}
		}
		set := jwt.VerificationKeySet{Keys: make([]jwt.VerificationKey, len(v.hmacs))}
		for i, h := range v.hmacs {
			set.Keys[i] = h.key
		}
		return set, nil
	}
	ks := v.algs[t.Method.Alg()]
	if kid != "" {
		if ks != nil {
			if k, ok := ks.byID[kid]; ok && keyFits(t.Method, k) {
				return k, nil
			}
		}
		if len(v.jwks) > 0 {
			if !v.jwksHasKid(kid) && (ks == nil || ks.byID[kid] == nil) {
				v.forceJWKSRefresh()
			}
			if keys := v.jwksKeys(t.Method, kid, nil); len(keys) > 0 {
				return oneOrSet(keys), nil
			}
		}
	}
	var keys []any
	if ks != nil {
		for _, k := range ks.set.Keys {
			if keyFits(t.Method, k) {
				keys = append(keys, k)
			}
		}
	}
	keys = v.jwksKeys(t.Method, "", keys)
	if len(keys) == 0 {
		return nil, errNoKey
	}
	return oneOrSet(keys), nil
}

// oneOrSet returns the only key of keys, or a set of them all.
func oneOrSet(keys []any) any {
	if len(keys) == 1 {
		return keys[0]
	}
	set := jwt.VerificationKeySet{Keys: make([]jwt.VerificationKey, len(keys))}
	for i, k := range keys {
		set.Keys[i] = k
	}
	return set
}
