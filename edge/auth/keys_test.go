package auth

import (
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"
)

func TestKeyID(t *testing.T) {
	for path, want := range map[string]string{
		"/etc/herald/keys/2024-01.pem": "2024-01",
		"rsa.pub":                      "rsa",
		"a.b.pem":                      "a.b",
		"noext":                        "noext",
		"dir.d/key":                    "key",
	} {
		if got := keyID(path); got != want {
			t.Errorf("keyID(%q) = %q, want %q", path, got, want)
		}
	}
}

func TestKeyFits(t *testing.T) {
	k := keys()
	tests := []struct {
		alg  string
		key  any
		want bool
	}{
		{"RS256", &k.rsa.PublicKey, true},
		{"PS512", &k.rsa.PublicKey, true},
		{"RS256", &k.ec256.PublicKey, false},
		{"ES256", &k.ec256.PublicKey, true},
		{"ES256", &k.ec384.PublicKey, false},
		{"ES384", &k.ec384.PublicKey, true},
		{"ES512", &k.ec256.PublicKey, false},
		{"EdDSA", k.ed.Public(), true},
		{"EdDSA", &k.rsa.PublicKey, false},
		{"HS256", &k.rsa.PublicKey, false},
		{"HS256", []byte(testSecret), false},
		{"none", &k.rsa.PublicKey, false},
	}
	for _, tc := range tests {
		if got := keyFits(jwt.GetSigningMethod(tc.alg), tc.key); got != tc.want {
			t.Errorf("keyFits(%s, %T) = %v, want %v", tc.alg, tc.key, got, tc.want)
		}
	}
}

func TestHMACSecrets(t *testing.T) {
	oldS := "old-secret-0123456789abcdef-0123456789"
	newS := testSecret
	tok := func(secret, kid string) string {
		h := map[string]any{}
		if kid != "" {
			h["kid"] = kid
		}
		return sign(t, jwt.SigningMethodHS256, []byte(secret), claims("u1"), h)
	}
	v := mustNew(t, Config{HMACSecret: newS, HMACSecrets: []string{oldS}})
	wantOK(t, v, tok(newS, ""), "new secret")
	wantOK(t, v, tok(oldS, ""), "old secret")
	wantOK(t, v, tok(newS, HMACKeyID(newS)), "new secret with its kid")
	wantOK(t, v, tok(oldS, HMACKeyID(oldS)), "old secret with its kid")
	wantOK(t, v, tok(oldS, "unrelated-kid"), "old secret with another kid")
	wantReason(t, v, tok(oldS, HMACKeyID(newS)), ReasonInvalidSignature, "kid selects the other secret only")
	wantReason(t, v, tok("third-secret-0123456789abcdef-01234567", ""), ReasonInvalidSignature, "unknown secret")

	// Rotation done: the old secret is removed.
	v2 := mustNew(t, Config{HMACSecret: newS})
	wantReason(t, v2, tok(oldS, ""), ReasonInvalidSignature, "removed secret")
	wantOK(t, v2, tok(newS, ""), "new secret alone")

	// Verification-only secrets, without a primary.
	wantOK(t, mustNew(t, Config{HMACSecrets: []string{oldS, newS}}), tok(newS, ""), "hmac_secrets only")

	if id := HMACKeyID(newS); len(id) != 8 {
		t.Errorf("HMACKeyID = %q, want 8 hex digits", id)
	}
	_, err := New(Config{HMACSecret: newS, HMACSecrets: []string{oldS, "short"}})
	if err == nil || !strings.Contains(err.Error(), "auth.jwt.hmac_secrets[1]") {
		t.Errorf("short secret: error %v, want one naming auth.jwt.hmac_secrets[1]", err)
	}
	// HMAC tokens are never checked against JWKS keys, nor asymmetric ones
	// against secrets.
	a := newEC(t)
	srv := newJWKSServer(t, jwksDoc(t, jwkOf(t, "a", "", &a.PublicKey),
		map[string]any{"kty": "oct", "kid": "h", "k": b64b([]byte(oldS))}))
	v3 := newClosing(t, Config{JWKSURL: srv.URL})
	wantReason(t, v3, tok(oldS, "h"), ReasonUnsupportedAlgorithm, "oct JWKS key ignored")
	wantOK(t, v3, es256(t, a, "a"), "EC key next to an oct key")
}
