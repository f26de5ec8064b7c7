package auth

import (
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/valyala/fasthttp"
)

const testSecret = "test-secret-0123456789abcdef-0123456789"

// testKeys are generated once per test binary: RSA generation is slow
// under the race detector.
type testKeys struct {
	rsa, rsa2, rsaOther *rsa.PrivateKey
	ec256, ec384        *ecdsa.PrivateKey
	ed                  ed25519.PrivateKey
}

var keys = sync.OnceValue(func() *testKeys {
	var k testKeys
	var err error
	for _, p := range []**rsa.PrivateKey{&k.rsa, &k.rsa2, &k.rsaOther} {
		if *p, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(err)
		}
	}
	if k.ec256, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		panic(err)
	}
	if k.ec384, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader); err != nil {
		panic(err)
	}
	if _, k.ed, err = ed25519.GenerateKey(rand.Reader); err != nil {
		panic(err)
	}
	return &k
})

// pkixPEM encodes pub as a "PUBLIC KEY" PEM block.
func pkixPEM(t testing.TB, pub any) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// writeFile writes data to dir/name and returns the path.
func writeFile(t testing.TB, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// sign signs claims with method and key, adding header fields.
func sign(t testing.TB, m jwt.SigningMethod, key any, claims jwt.MapClaims, header map[string]any) string {
	t.Helper()
	tok := jwt.NewWithClaims(m, claims)
	for k, v := range header {
		tok.Header[k] = v
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// b64 is base64url without padding, as JWS uses.
func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

// hs256Raw signs a raw header and payload with HS256 and testSecret, for
// tokens jwt.NewWithClaims cannot produce.
func hs256Raw(t testing.TB, header, payload string) string {
	t.Helper()
	signing := b64(header) + "." + b64(payload)
	sig, err := jwt.SigningMethodHS256.Sign(signing, []byte(testSecret))
	if err != nil {
		t.Fatal(err)
	}
	return signing + "." + base64.RawURLEncoding.EncodeToString(sig)
}

// claims returns valid claims for user sub (omitted when nil) expiring in
// an hour, with extra claims merged (a nil value deletes a claim).
func claims(sub any, extra ...any) jwt.MapClaims {
	now := time.Now()
	c := jwt.MapClaims{"iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}
	if sub != nil {
		c["sub"] = sub
	}
	for i := 0; i+1 < len(extra); i += 2 {
		k := extra[i].(string)
		if extra[i+1] == nil {
			delete(c, k)
		} else {
			c[k] = extra[i+1]
		}
	}
	return c
}

func reasonOf(err error) string {
	var ae *Error
	if errors.As(err, &ae) {
		return ae.Reason
	}
	return fmt.Sprintf("not an *auth.Error: %v", err)
}

func mustNew(t testing.TB, cfg Config) *Verifier {
	t.Helper()
	v, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestVerify(t *testing.T) {
	k := keys()
	dir := t.TempDir()
	rsaFile := writeFile(t, dir, "rsa-main.pem", pkixPEM(t, &k.rsa.PublicKey))
	rsa2File := writeFile(t, dir, "rsa2.pem", pem.EncodeToMemory(&pem.Block{
		Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&k.rsa2.PublicKey)}))
	ec256File := writeFile(t, dir, "ec256.pem", pkixPEM(t, &k.ec256.PublicKey))
	ec384File := writeFile(t, dir, "ec384.pub", pkixPEM(t, &k.ec384.PublicKey))
	edFile := writeFile(t, dir, "ed.pem", pkixPEM(t, k.ed.Public()))

	verifiers := map[string]*Verifier{
		"all": mustNew(t, Config{HMACSecret: testSecret,
			PublicKeyFiles: []string{rsaFile, rsa2File, ec256File, ec384File, edFile}}),
		"hmac":     mustNew(t, Config{HMACSecret: testSecret}),
		"rsa":      mustNew(t, Config{PublicKeyFiles: []string{rsaFile}}),
		"hmac+rsa": mustNew(t, Config{HMACSecret: testSecret, PublicKeyFiles: []string{rsaFile}}),
		"ec256":    mustNew(t, Config{PublicKeyFiles: []string{ec256File}}),
		"user_id":  mustNew(t, Config{HMACSecret: testSecret, UserClaim: "user_id"}),
		"aud+iss":  mustNew(t, Config{HMACSecret: testSecret, Audience: "herald", Issuer: "https://app.example"}),
		"leeway1m": mustNew(t, Config{HMACSecret: testSecret, Leeway: time.Minute}),
	}

	now := time.Now()
	hs := func(c jwt.MapClaims) string { return sign(t, jwt.SigningMethodHS256, []byte(testSecret), c, nil) }
	rsaPEM := pkixPEM(t, &k.rsa.PublicKey)
	rsa2PEM, err := os.ReadFile(rsa2File)
	if err != nil {
		t.Fatal(err)
	}
	validHS := hs(claims("42"))
	parts := strings.Split(validHS, ".")
	many := make([]any, 33)
	for i := range many {
		many[i] = fmt.Sprint("c", i)
	}
	uid129 := strings.Repeat("u", 129)

	tests := []struct {
		name     string
		verifier string
		token    string
		reason   string   // "" when the token must be accepted
		user     string   // expected UserID when accepted
		channels []string // expected Channels when accepted
	}{
		// Accepted, per algorithm.
		{name: "HS256", verifier: "all", token: validHS, user: "42"},
		{name: "HS384", verifier: "all", token: sign(t, jwt.SigningMethodHS384, []byte(testSecret), claims("u-1"), nil), user: "u-1"},
		{name: "HS512", verifier: "all", token: sign(t, jwt.SigningMethodHS512, []byte(testSecret), claims("u.2@x=+"), nil), user: "u.2@x=+"},
		{name: "RS256", verifier: "all", token: sign(t, jwt.SigningMethodRS256, k.rsa, claims("7"), nil), user: "7"},
		{name: "RS512", verifier: "rsa", token: sign(t, jwt.SigningMethodRS512, k.rsa, claims("7"), nil), user: "7"},
		{name: "PS256", verifier: "rsa", token: sign(t, jwt.SigningMethodPS256, k.rsa, claims("7"), nil), user: "7"},
		{name: "RS256 PKCS1 key file", verifier: "all", token: sign(t, jwt.SigningMethodRS256, k.rsa2, claims("8"), nil), user: "8"},
		{name: "ES256", verifier: "all", token: sign(t, jwt.SigningMethodES256, k.ec256, claims("9"), nil), user: "9"},
		{name: "ES384", verifier: "all", token: sign(t, jwt.SigningMethodES384, k.ec384, claims("9"), nil), user: "9"},
		{name: "EdDSA", verifier: "all", token: sign(t, jwt.SigningMethodEdDSA, k.ed, claims("10"), nil), user: "10"},

		// kid selects a key file by base name; unknown kids try every key.
		{name: "PS256, two RSA keys", verifier: "all", token: sign(t, jwt.SigningMethodPS256, k.rsa2, claims("p"), nil), user: "p"},
		{name: "ES256 with kid", verifier: "all", token: sign(t, jwt.SigningMethodES256, k.ec256, claims("e"), map[string]any{"kid": "ec256"}), user: "e"},
		{name: "kid selects first RSA key", verifier: "all", token: sign(t, jwt.SigningMethodRS256, k.rsa, claims("1"), map[string]any{"kid": "rsa-main"}), user: "1"},
		{name: "kid matches", verifier: "all", token: sign(t, jwt.SigningMethodRS256, k.rsa2, claims("1"), map[string]any{"kid": "rsa2"}), user: "1"},
		{name: "kid names another key", verifier: "all", token: sign(t, jwt.SigningMethodRS256, k.rsa2, claims("1"), map[string]any{"kid": "rsa-main"}), reason: ReasonInvalidSignature},
		{name: "kid unknown, first key", verifier: "all", token: sign(t, jwt.SigningMethodRS256, k.rsa, claims("1"), map[string]any{"kid": "retired-2023"}), user: "1"},
		{name: "kid unknown, no key fits", verifier: "all", token: sign(t, jwt.SigningMethodRS256, k.rsaOther, claims("1"), map[string]any{"kid": "nope"}), reason: ReasonInvalidSignature},
		{name: "kid unknown", verifier: "all", token: sign(t, jwt.SigningMethodRS256, k.rsa2, claims("1"), map[string]any{"kid": "nope"}), user: "1"},
		{name: "kid is a path", verifier: "all", token: sign(t, jwt.SigningMethodRS256, k.rsa2, claims("1"), map[string]any{"kid": "../../etc/passwd"}), user: "1"},
		{name: "kid of another family", verifier: "all", token: sign(t, jwt.SigningMethodES256, k.ec256, claims("1"), map[string]any{"kid": "rsa-main"}), user: "1"},
		{name: "kid not a string", verifier: "all", token: sign(t, jwt.SigningMethodEdDSA, k.ed, claims("1"), map[string]any{"kid": 5}), user: "1"},

		// Algorithms.
		{name: "alg none", verifier: "all", token: sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, claims("1"), nil), reason: ReasonUnsupportedAlgorithm},
		{name: "alg none, hand-built, empty signature", verifier: "all", token: b64(`{"alg":"none"}`) + "." + b64(fmt.Sprintf(`{"sub":"1","exp":%d}`, now.Add(time.Hour).Unix())) + ".", reason: ReasonUnsupportedAlgorithm},
		{name: "alg none, hand-built, HMAC only", verifier: "hmac", token: b64(`{"alg":"none","typ":"JWT"}`) + "." + parts[1] + ".", reason: ReasonUnsupportedAlgorithm},
		{name: "alg None", verifier: "all", token: b64(`{"alg":"None"}`) + "." + parts[1] + ".", reason: ReasonUnsupportedAlgorithm},
		{name: "alg none with signature", verifier: "hmac", token: b64(`{"alg":"none"}`) + "." + parts[1] + "." + parts[2], reason: ReasonUnsupportedAlgorithm},
		{name: "alg unknown", verifier: "all", token: b64(`{"alg":"HS999"}`) + "." + parts[1] + "." + parts[2], reason: ReasonUnsupportedAlgorithm},
		{name: "alg missing", verifier: "all", token: b64(`{"typ":"JWT"}`) + "." + parts[1] + "." + parts[2], reason: ReasonUnsupportedAlgorithm},
		{name: "alg not a string", verifier: "all", token: b64(`{"alg":256}`) + "." + parts[1] + "." + parts[2], reason: ReasonUnsupportedAlgorithm},
		{name: "key confusion: HS256 with RSA PEM as secret", verifier: "rsa", token: sign(t, jwt.SigningMethodHS256, rsaPEM, claims("1"), nil), reason: ReasonUnsupportedAlgorithm},
		{name: "key confusion: HS256 with RSA PEM, kid of the RSA key", verifier: "rsa", token: sign(t, jwt.SigningMethodHS256, rsaPEM, claims("1"), map[string]any{"kid": "rsa-main"}), reason: ReasonUnsupportedAlgorithm},
		{name: "key confusion: HS512 with PKCS1 PEM as secret", verifier: "rsa", token: sign(t, jwt.SigningMethodHS512, rsa2PEM, claims("1"), nil), reason: ReasonUnsupportedAlgorithm},
		{name: "key confusion: HS256 with DER as secret", verifier: "rsa", token: sign(t, jwt.SigningMethodHS256, x509.MarshalPKCS1PublicKey(&k.rsa.PublicKey), claims("1"), nil), reason: ReasonUnsupportedAlgorithm},
		{name: "key confusion with an HMAC secret configured", verifier: "hmac+rsa", token: sign(t, jwt.SigningMethodHS256, rsaPEM, claims("1"), nil), reason: ReasonInvalidSignature},
		{name: "RS256 without RSA key", verifier: "hmac", token: sign(t, jwt.SigningMethodRS256, k.rsa, claims("1"), nil), reason: ReasonUnsupportedAlgorithm},
		{name: "HS256 without secret", verifier: "ec256", token: validHS, reason: ReasonUnsupportedAlgorithm},
		{name: "ES384 with only a P-256 key", verifier: "ec256", token: sign(t, jwt.SigningMethodES384, k.ec384, claims("1"), nil), reason: ReasonUnsupportedAlgorithm},
		{name: "EdDSA without Ed25519 key", verifier: "rsa", token: sign(t, jwt.SigningMethodEdDSA, k.ed, claims("1"), nil), reason: ReasonUnsupportedAlgorithm},

		// Signatures.
		{name: "wrong secret", verifier: "hmac", token: sign(t, jwt.SigningMethodHS256, []byte("another-secret-0123456789abcdef-0123"), claims("1"), nil), reason: ReasonInvalidSignature},
		{name: "wrong RSA key", verifier: "rsa", token: sign(t, jwt.SigningMethodRS256, k.rsaOther, claims("1"), nil), reason: ReasonInvalidSignature},
		{name: "wrong RSA key, several configured", verifier: "all", token: sign(t, jwt.SigningMethodRS256, k.rsaOther, claims("1"), nil), reason: ReasonInvalidSignature},
		{name: "tampered payload", verifier: "hmac", token: parts[0] + "." + b64(`{"sub":"admin","exp":9999999999}`) + "." + parts[2], reason: ReasonInvalidSignature},
		{name: "signature stripped", verifier: "hmac", token: parts[0] + "." + parts[1] + ".", reason: ReasonInvalidSignature},

		// Time claims.
		{name: "expired", verifier: "hmac", token: hs(claims("1", "exp", now.Add(-time.Minute).Unix(), "iat", now.Add(-time.Hour).Unix())), reason: ReasonTokenExpired},
		{name: "expired within leeway", verifier: "hmac", token: hs(claims("1", "exp", now.Add(-2*time.Second).Unix(), "iat", now.Add(-time.Hour).Unix())), user: "1"},
		{name: "expired within configured leeway", verifier: "leeway1m", token: hs(claims("1", "exp", now.Add(-30*time.Second).Unix())), user: "1"},
		{name: "nbf in future", verifier: "hmac", token: hs(claims("1", "nbf", now.Add(time.Minute).Unix())), reason: ReasonTokenNotYetValid},
		{name: "nbf within leeway", verifier: "hmac", token: hs(claims("1", "nbf", now.Add(2*time.Second).Unix())), user: "1"},
		{name: "iat in future", verifier: "hmac", token: hs(claims("1", "iat", now.Add(time.Minute).Unix())), reason: ReasonTokenNotYetValid},
		{name: "missing exp", verifier: "hmac", token: hs(claims("1", "exp", nil)), reason: ReasonMissingExp},
		{name: "exp not a number", verifier: "hmac", token: hs(claims("1", "exp", "tomorrow")), reason: ReasonMalformedToken},
		{name: "exp beyond year 9999", verifier: "hmac", token: hs(claims("1", "exp", 1e15)), reason: ReasonMalformedToken},
		{name: "exp far future (1e19)", verifier: "hmac", token: hs256Raw(t, `{"alg":"HS256"}`, `{"sub":"1","exp":1e19}`), reason: ReasonMalformedToken},
		{name: "exp far past (-1e15)", verifier: "hmac", token: hs(claims("1", "exp", -1e15)), reason: ReasonMalformedToken},
		{name: "nbf beyond year 9999", verifier: "hmac", token: hs(claims("1", "nbf", 1e18)), reason: ReasonMalformedToken},
		{name: "iat beyond year 9999", verifier: "hmac", token: hs(claims("1", "iat", 1e18)), reason: ReasonMalformedToken},
		{name: "nbf not a number, token expired", verifier: "hmac", token: hs(claims("1", "nbf", "x", "exp", now.Add(-time.Hour).Unix())), reason: ReasonMalformedToken},
		{name: "exp fractional", verifier: "hmac", token: hs(claims("1", "exp", float64(now.Add(time.Hour).Unix())+0.5)), user: "1"},

		// User claim.
		{name: "missing sub", verifier: "hmac", token: hs(claims(nil)), reason: ReasonMissingUser},
		{name: "empty sub", verifier: "hmac", token: hs(claims("")), reason: ReasonMissingUser},
		{name: "sub with colon", verifier: "hmac", token: hs(claims("a:b")), reason: ReasonMissingUser},
		{name: "sub with slash", verifier: "hmac", token: hs(claims("a/b")), reason: ReasonMissingUser},
		{name: "sub with space", verifier: "hmac", token: hs(claims("a b")), reason: ReasonMissingUser},
		{name: "sub not ASCII", verifier: "hmac", token: hs(claims("ü")), reason: ReasonMissingUser},
		{name: "sub 128 bytes", verifier: "hmac", token: hs(claims(uid129[:128])), user: uid129[:128]},
		{name: "sub 129 bytes", verifier: "hmac", token: hs(claims(uid129)), reason: ReasonMissingUser},
		{name: "sub boolean", verifier: "hmac", token: hs(claims(true)), reason: ReasonMissingUser},
		{name: "sub number", verifier: "hmac", token: hs(claims(42)), user: "42"},
		{name: "user_id 42", verifier: "user_id", token: hs(claims(nil, "user_id", 42)), user: "42"},
		{name: "user_id string", verifier: "user_id", token: hs(claims(nil, "user_id", "abc")), user: "abc"},
		{name: "user_id 4.5", verifier: "user_id", token: hs(claims(nil, "user_id", 4.5)), reason: ReasonMissingUser},
		{name: "user_id 42.0", verifier: "user_id", token: hs256Raw(t, `{"alg":"HS256"}`, fmt.Sprintf(`{"user_id":42.0,"exp":%d}`, now.Add(time.Hour).Unix())), user: "42"},
		{name: "user_id 1e3", verifier: "user_id", token: hs256Raw(t, `{"alg":"HS256"}`, fmt.Sprintf(`{"user_id":1e3,"exp":%d}`, now.Add(time.Hour).Unix())), user: "1000"},
		{name: "user_id 1e300", verifier: "user_id", token: hs256Raw(t, `{"alg":"HS256"}`, fmt.Sprintf(`{"user_id":1e300,"exp":%d}`, now.Add(time.Hour).Unix())), reason: ReasonMissingUser},
		{name: "user_id big integer", verifier: "user_id", token: hs256Raw(t, `{"alg":"HS256"}`, fmt.Sprintf(`{"user_id":123456789012345678901234567890,"exp":%d}`, now.Add(time.Hour).Unix())), user: "123456789012345678901234567890"},
		{name: "user_id negative", verifier: "user_id", token: hs(claims(nil, "user_id", -3)), user: "-3"},
		{name: "user_id empty", verifier: "user_id", token: hs(claims(nil, "user_id", "")), reason: ReasonMissingUser},
		{name: "user_id with space", verifier: "user_id", token: hs(claims(nil, "user_id", "a b")), reason: ReasonMissingUser},
		{name: "user_id object", verifier: "user_id", token: hs(claims(nil, "user_id", map[string]any{"id": 1})), reason: ReasonMissingUser},
		{name: "user_id array", verifier: "user_id", token: hs(claims(nil, "user_id", []int{42})), reason: ReasonMissingUser},
		{name: "user_id absent (sub ignored)", verifier: "user_id", token: hs(claims("42")), reason: ReasonMissingUser},
		{name: "user_id null", verifier: "user_id", token: hs256Raw(t, `{"alg":"HS256"}`, fmt.Sprintf(`{"user_id":null,"exp":%d}`, now.Add(time.Hour).Unix())), reason: ReasonMissingUser},

		// Audience and issuer.
		{name: "aud and iss match", verifier: "aud+iss", token: hs(claims("1", "aud", "herald", "iss", "https://app.example")), user: "1"},
		{name: "aud list contains", verifier: "aud+iss", token: hs(claims("1", "aud", []string{"api", "herald"}, "iss", "https://app.example")), user: "1"},
		{name: "aud mismatch", verifier: "aud+iss", token: hs(claims("1", "aud", "api", "iss", "https://app.example")), reason: ReasonInvalidAudience},
		{name: "aud missing", verifier: "aud+iss", token: hs(claims("1", "iss", "https://app.example")), reason: ReasonInvalidAudience},
		{name: "aud not a string", verifier: "aud+iss", token: hs(claims("1", "aud", 7, "iss", "https://app.example")), reason: ReasonInvalidAudience},
		{name: "iss mismatch", verifier: "aud+iss", token: hs(claims("1", "aud", "herald", "iss", "https://evil.example")), reason: ReasonInvalidIssuer},
		{name: "iss missing", verifier: "aud+iss", token: hs(claims("1", "aud", "herald")), reason: ReasonInvalidIssuer},
		{name: "aud ignored when not configured", verifier: "hmac", token: hs(claims("1", "aud", "anything", "iss", "whoever")), user: "1"},
		{name: "expired wins over aud", verifier: "aud+iss", token: hs(claims("1", "exp", now.Add(-time.Hour).Unix(), "iat", now.Add(-2*time.Hour).Unix())), reason: ReasonTokenExpired},
		{name: "missing exp wins over aud", verifier: "aud+iss", token: hs(claims("1", "exp", nil)), reason: ReasonMissingExp},

		// Channels.
		{name: "channels array", verifier: "hmac", token: hs(claims("1", "channels", []string{"team:1", "news"})), user: "1", channels: []string{"team:1", "news"}},
		{name: "channels comma string", verifier: "hmac", token: hs(claims("1", "channels", " team:1, news,,a/b ")), user: "1", channels: []string{"team:1", "news", "a/b"}},
		{name: "channels repeats dropped", verifier: "hmac", token: hs(claims("1", "channels", []string{"a", "b", "a"})), user: "1", channels: []string{"a", "b"}},
		{name: "channels empty array", verifier: "hmac", token: hs(claims("1", "channels", []string{})), user: "1"},
		{name: "channels null", verifier: "hmac", token: hs256Raw(t, `{"alg":"HS256"}`, fmt.Sprintf(`{"sub":"1","channels":null,"exp":%d}`, now.Add(time.Hour).Unix())), user: "1"},
		{name: "channels 32", verifier: "hmac", token: hs(claims("1", "channels", many[:32])), user: "1", channels: func() []string {
			out := make([]string, 32)
			for i := range out {
				out[i] = many[i].(string)
			}
			return out
		}()},
		{name: "channels 33", verifier: "hmac", token: hs(claims("1", "channels", many)), reason: ReasonInvalidChannels},
		{name: "channels 33 as string", verifier: "hmac", token: hs(claims("1", "channels", strings.Repeat("c,", 33))), reason: ReasonInvalidChannels},
		{name: "channel with space", verifier: "hmac", token: hs(claims("1", "channels", []string{"ok", "not ok"})), reason: ReasonInvalidChannels},
		{name: "channel empty", verifier: "hmac", token: hs(claims("1", "channels", []string{""})), reason: ReasonInvalidChannels},
		{name: "channel too long", verifier: "hmac", token: hs(claims("1", "channels", []string{strings.Repeat("x", 201)})), reason: ReasonInvalidChannels},
		{name: "channels number", verifier: "hmac", token: hs(claims("1", "channels", 5)), reason: ReasonInvalidChannels},
		{name: "channels mixed array", verifier: "hmac", token: hs(claims("1", "channels", []any{"a", 1})), reason: ReasonInvalidChannels},

		// Malformed.
		{name: "empty", verifier: "hmac", token: "", reason: ReasonMissingToken},
		{name: "longer than 8KiB", verifier: "hmac", token: hs(claims("1", "pad", strings.Repeat("x", MaxTokenLen))), reason: ReasonMalformedToken},
		{name: "one segment", verifier: "hmac", token: "abc", reason: ReasonMalformedToken},
		{name: "not.a.jwt", verifier: "hmac", token: "not.a.jwt", reason: ReasonMalformedToken},
		{name: "dots", verifier: "hmac", token: "..", reason: ReasonMalformedToken},
		{name: "four segments", verifier: "hmac", token: validHS + ".x", reason: ReasonMalformedToken},
		{name: "JWE shape", verifier: "hmac", token: "a.b.c.d.e", reason: ReasonMalformedToken},
		{name: "header not JSON", verifier: "hmac", token: b64("nope") + "." + parts[1] + "." + parts[2], reason: ReasonMalformedToken},
		{name: "payload not JSON", verifier: "hmac", token: parts[0] + "." + b64("nope") + "." + parts[2], reason: ReasonMalformedToken},
		{name: "payload an array", verifier: "hmac", token: parts[0] + "." + b64("[1]") + "." + parts[2], reason: ReasonMalformedToken},
		{name: "signature not base64", verifier: "hmac", token: parts[0] + "." + parts[1] + ".!!!", reason: ReasonMalformedToken},
		{name: "padded base64", verifier: "hmac", token: parts[0] + "=." + parts[1] + "." + parts[2], reason: ReasonMalformedToken},
		{name: "whitespace", verifier: "hmac", token: " " + validHS, reason: ReasonMalformedToken},
		{name: "garbage word", verifier: "hmac", token: "garbage", reason: ReasonMalformedToken},
		{name: "bearer prefix kept", verifier: "hmac", token: "Bearer " + validHS, reason: ReasonMalformedToken},
		{name: "JSON instead of JWS", verifier: "hmac", token: `{"alg":"HS256","sub":"1"}`, reason: ReasonMalformedToken},
		{name: "standard base64 alphabet", verifier: "hmac", token: parts[0] + "." + parts[1] + "." + strings.NewReplacer("-", "+", "_", "/").Replace(parts[2]) + "+/", reason: ReasonMalformedToken},
		{name: "binary junk", verifier: "hmac", token: "\x00\xff.\x01.\x02", reason: ReasonMalformedToken},
		{name: "crit header", verifier: "hmac", token: sign(t, jwt.SigningMethodHS256, []byte(testSecret), claims("1"), map[string]any{"crit": []string{"b64"}, "b64": false}), reason: ReasonMalformedToken},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := verifiers[tc.verifier]
			if v == nil {
				t.Fatalf("no verifier %q", tc.verifier)
			}
			c, err := v.Verify(tc.token)
			if tc.reason != "" {
				if err == nil {
					t.Fatalf("accepted %+v, want %s", c, tc.reason)
				}
				if got := reasonOf(err); got != tc.reason {
					t.Fatalf("reason %s (%v), want %s", got, err, tc.reason)
				}
				if c.UserID != "" || c.Channels != nil || !c.ExpiresAt.IsZero() {
					t.Fatalf("claims %+v returned with an error", c)
				}
				return
			}
			if err != nil {
				t.Fatalf("refused: %v", err)
			}
			if c.UserID != tc.user {
				t.Errorf("UserID %q, want %q", c.UserID, tc.user)
			}
			if !slices.Equal(c.Channels, tc.channels) {
				t.Errorf("Channels %q, want %q", c.Channels, tc.channels)
			}
			if c.ExpiresAt.IsZero() {
				t.Error("ExpiresAt is zero")
			}
		})
	}
}

func TestVerifyExpiresAt(t *testing.T) {
	v := mustNew(t, Config{HMACSecret: testSecret})
	exp := time.Now().Add(90 * time.Minute).Truncate(time.Second)
	c, err := v.Verify(sign(t, jwt.SigningMethodHS256, []byte(testSecret), claims("1", "exp", exp.Unix()), nil))
	if err != nil {
		t.Fatal(err)
	}
	if !c.ExpiresAt.Equal(exp) {
		t.Fatalf("ExpiresAt %v, want %v", c.ExpiresAt, exp)
	}
}

func TestVerifyOutOfRangeExpNeverAccepted(t *testing.T) {
	v := mustNew(t, Config{HMACSecret: testSecret})
	for _, exp := range []string{"1e400", "-1e400", "1e19", "9223372036854775807", "-9223372036854775808"} {
		tok := hs256Raw(t, `{"alg":"HS256"}`, `{"sub":"1","exp":`+exp+`}`)
		c, err := v.Verify(tok)
		if err == nil {
			t.Errorf("exp %s accepted: %+v", exp, c)
		} else if got := reasonOf(err); got != ReasonMalformedToken {
			t.Errorf("exp %s: reason %s (%v), want %s", exp, got, err, ReasonMalformedToken)
		}
	}
}

// A token of exactly MaxTokenLen bytes is verified; one byte more is not.
func TestVerifyMaxTokenLen(t *testing.T) {
	v := mustNew(t, Config{HMACSecret: testSecret})
	var tok string
	// Raw base64 lengths skip every fourth value, so vary two fields.
	for n := MaxTokenLen / 2; tok == "" && n < MaxTokenLen; n++ {
		for _, sub := range []string{"1", "12", "123"} {
			if s := sign(t, jwt.SigningMethodHS256, []byte(testSecret), claims(sub, "pad", strings.Repeat("x", n)), nil); len(s) == MaxTokenLen {
				tok = s
				break
			}
		}
	}
	if tok == "" {
		t.Fatal("could not build a token of MaxTokenLen bytes")
	}
	if _, err := v.Verify(tok); err != nil {
		t.Fatalf("token of %d bytes: %v", len(tok), err)
	}
	if _, err := v.Verify(tok + "A"); reasonOf(err) != ReasonMalformedToken || !strings.Contains(err.Error(), "longer than") {
		t.Fatalf("token of %d bytes: %v", len(tok)+1, err)
	}
}

func TestVerifyDefaultLeeway(t *testing.T) {
	v := mustNew(t, Config{HMACSecret: testSecret})
	now := time.Now()
	for _, tc := range []struct {
		ago    time.Duration
		reason string
	}{
		{0, ""},
		{-3 * time.Second, ""},
		{-10 * time.Second, ReasonTokenExpired},
	} {
		tok := sign(t, jwt.SigningMethodHS256, []byte(testSecret), claims("1", "exp", now.Add(tc.ago).Unix(), "iat", now.Add(-time.Hour).Unix()), nil)
		_, err := v.Verify(tok)
		if tc.reason == "" && err != nil || tc.reason != "" && reasonOf(err) != tc.reason {
			t.Errorf("exp %v from now: %v, want %q", tc.ago, err, tc.reason)
		}
	}
}

func TestVerifyConcurrent(t *testing.T) {
	k := keys()
	ed := writeFile(t, t.TempDir(), "ed.pem", pkixPEM(t, k.ed.Public()))
	v := mustNew(t, Config{HMACSecret: testSecret, PublicKeyFiles: []string{ed}})
	toks := []string{
		sign(t, jwt.SigningMethodHS256, []byte(testSecret), claims("1", "channels", []string{"a", "b"}), nil),
		sign(t, jwt.SigningMethodEdDSA, k.ed, claims("2"), nil),
		"garbage",
	}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 50 {
				tok := toks[(i+j)%len(toks)]
				c, err := v.Verify(tok)
				if (tok == "garbage") != (err != nil) {
					t.Errorf("token %d: %+v %v", (i+j)%len(toks), c, err)
				}
			}
		})
	}
	wg.Wait()
}

func TestError(t *testing.T) {
	v := mustNew(t, Config{HMACSecret: testSecret})
	_, err := v.Verify("not.a.jwt")
	var ae *Error
	if !errors.As(err, &ae) || ae.Reason != ReasonMalformedToken {
		t.Fatalf("got %#v", err)
	}
	if !strings.HasPrefix(err.Error(), ReasonMalformedToken+": ") {
		t.Errorf("Error() = %q", err.Error())
	}
	if !errors.Is(err, jwt.ErrTokenMalformed) {
		t.Errorf("Unwrap does not reach jwt.ErrTokenMalformed: %v", err)
	}
	if got := (&Error{Reason: ReasonMissingToken}).Error(); got != ReasonMissingToken {
		t.Errorf("Error() without detail = %q", got)
	}
}

// reqCtx builds a request with uri, an Authorization header (when auth is
// not empty) and cookies (name, value pairs).
func reqCtx(uri, auth string, cookies ...string) *fasthttp.RequestCtx {
	var ctx fasthttp.RequestCtx
	ctx.Request.SetRequestURI(uri)
	if auth != "" {
		ctx.Request.Header.Set("Authorization", auth)
	}
	for i := 0; i+1 < len(cookies); i += 2 {
		ctx.Request.Header.SetCookie(cookies[i], cookies[i+1])
	}
	return &ctx
}

func TestTokenFromRequest(t *testing.T) {
	def := mustNew(t, Config{HMACSecret: testSecret})
	custom := mustNew(t, Config{HMACSecret: testSecret, QueryParam: "jwt", CookieName: "sess"})
	tests := []struct {
		name    string
		v       *Verifier
		ctx     *fasthttp.RequestCtx
		token   string
		source  Source
		comment string
	}{
		{name: "none", v: def, ctx: reqCtx("/ws", ""), source: SourceNone},
		{name: "query", v: def, ctx: reqCtx("/ws?token=q1&x=y", ""), token: "q1", source: SourceQuery},
		{name: "query percent-encoded", v: def, ctx: reqCtx("/ws?token=a%2Eb", ""), token: "a.b", source: SourceQuery},
		{name: "empty query falls through", v: def, ctx: reqCtx("/ws?token=", "Bearer h1"), token: "h1", source: SourceHeader},
		{name: "bearer", v: def, ctx: reqCtx("/ws", "Bearer h1"), token: "h1", source: SourceHeader},
		{name: "bearer lower case", v: def, ctx: reqCtx("/ws", "bearer h1"), token: "h1", source: SourceHeader},
		{name: "bearer upper case, extra spaces", v: def, ctx: reqCtx("/ws", "BEARER   h1  "), token: "h1", source: SourceHeader},
		{name: "bearer tab", v: def, ctx: reqCtx("/ws", "Bearer\th1"), token: "h1", source: SourceHeader},
		{name: "bearer without token", v: def, ctx: reqCtx("/ws", "Bearer   ", "herald_token", "c1"), token: "c1", source: SourceCookie},
		{name: "bearer glued", v: def, ctx: reqCtx("/ws", "Bearerh1"), source: SourceNone},
		{name: "basic scheme ignored", v: def, ctx: reqCtx("/ws", "Basic dXNlcjpwYXNz"), source: SourceNone},
		{name: "cookie", v: def, ctx: reqCtx("/ws", "", "other", "x", "herald_token", "c1"), token: "c1", source: SourceCookie},
		{name: "query beats header and cookie", v: def, ctx: reqCtx("/ws?token=q1", "Bearer h1", "herald_token", "c1"), token: "q1", source: SourceQuery},
		{name: "header beats cookie", v: def, ctx: reqCtx("/ws", "Bearer h1", "herald_token", "c1"), token: "h1", source: SourceHeader},
		{name: "custom names", v: custom, ctx: reqCtx("/ws?token=ignored&jwt=q2", ""), token: "q2", source: SourceQuery},
		{name: "custom cookie", v: custom, ctx: reqCtx("/ws?token=ignored", "", "herald_token", "ignored", "sess", "c2"), token: "c2", source: SourceCookie},
		{name: "notifications path, query", v: def, ctx: reqCtx("/ws/notifications/?token=q1", "Bearer h1", "herald_token", "c1"), token: "q1", source: SourceQuery},
		{name: "notifications path, header", v: def, ctx: reqCtx("/ws/notifications/", "Bearer h1", "herald_token", "c1"), token: "h1", source: SourceHeader},
		{name: "notifications path, cookie", v: def, ctx: reqCtx("/ws/notifications/", "", "herald_token", "c1"), token: "c1", source: SourceCookie},
		{name: "bearer lower case beats cookie", v: def, ctx: reqCtx("/sse/notifications/", "bearer h1", "herald_token", "c1"), token: "h1", source: SourceHeader},
		{name: "other query parameter ignored", v: def, ctx: reqCtx("/ws?access_token=q1&tokens=q2", ""), source: SourceNone},
		{name: "custom query beats header", v: custom, ctx: reqCtx("/ws?jwt=q2", "Bearer h1", "sess", "c2"), token: "q2", source: SourceQuery},
		{name: "custom names ignore defaults", v: custom, ctx: reqCtx("/ws?token=q1", "", "herald_token", "c1"), source: SourceNone},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tok, src := tc.v.TokenFromRequest(tc.ctx)
			if tok != tc.token || src != tc.source {
				t.Fatalf("got %q from %q, want %q from %q", tok, src, tc.token, tc.source)
			}
		})
	}
}

func TestAuthenticate(t *testing.T) {
	v := mustNew(t, Config{HMACSecret: testSecret})
	good, err := Sign(testSecret, "HS256", "42", time.Hour, []string{"team:1"})
	if err != nil {
		t.Fatal(err)
	}
	expired, err := Sign(testSecret, "HS256", "42", -time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		ctx    *fasthttp.RequestCtx
		source Source
		reason string
	}{
		{"missing", reqCtx("/ws", ""), SourceNone, ReasonMissingToken},
		{"query", reqCtx("/ws?token="+good, ""), SourceQuery, ""},
		{"header", reqCtx("/ws", "Bearer "+good), SourceHeader, ""},
		{"cookie", reqCtx("/ws", "", "herald_token", good), SourceCookie, ""},
		{"expired in cookie", reqCtx("/ws", "", "herald_token", expired), SourceCookie, ReasonTokenExpired},
		{"garbage in header", reqCtx("/ws", "Bearer x.y.z"), SourceHeader, ReasonMalformedToken},
		{"notifications path", reqCtx("/ws/notifications/?token="+good, ""), SourceQuery, ""},
		{"lower-case bearer", reqCtx("/ws/notifications/", "bearer "+good), SourceHeader, ""},
		// The first source found is the one verified; the others are
		// not tried.
		{"good query over expired header", reqCtx("/ws?token="+good, "Bearer "+expired, "herald_token", expired), SourceQuery, ""},
		{"expired query over good header", reqCtx("/ws?token="+expired, "Bearer "+good, "herald_token", good), SourceQuery, ReasonTokenExpired},
		{"garbage header over good cookie", reqCtx("/ws", "Bearer junk", "herald_token", good), SourceHeader, ReasonMalformedToken},
		{"non-bearer header, good cookie", reqCtx("/ws", "Basic dXNlcjpwYXNz", "herald_token", good), SourceCookie, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, src, err := v.Authenticate(tc.ctx)
			if src != tc.source {
				t.Errorf("source %q, want %q", src, tc.source)
			}
			if tc.reason != "" {
				if got := reasonOf(err); got != tc.reason {
					t.Fatalf("reason %s (%v), want %s", got, err, tc.reason)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.UserID != "42" || !slices.Equal(c.Channels, []string{"team:1"}) {
				t.Fatalf("claims %+v", c)
			}
		})
	}

	t.Run("custom names", func(t *testing.T) {
		cv := mustNew(t, Config{HMACSecret: testSecret, QueryParam: "access_token", CookieName: "sess"})
		for _, tc := range []struct {
			ctx    *fasthttp.RequestCtx
			source Source
			reason string
		}{
			{reqCtx("/ws/notifications/?access_token="+good, ""), SourceQuery, ""},
			{reqCtx("/ws/notifications/", "", "sess", good), SourceCookie, ""},
			{reqCtx("/ws/notifications/?token="+good, "", "herald_token", good), SourceNone, ReasonMissingToken},
		} {
			c, src, err := cv.Authenticate(tc.ctx)
			got := ""
			if err != nil {
				got = reasonOf(err)
			}
			if src != tc.source || got != tc.reason {
				t.Errorf("%s: source %q, err %v; want %q, %q", tc.ctx.URI(), src, err, tc.source, tc.reason)
			}
			if tc.reason == "" && c.UserID != "42" {
				t.Errorf("%s: claims %+v", tc.ctx.URI(), c)
			}
			if tc.reason == ReasonMissingToken && (!strings.Contains(err.Error(), `"access_token"`) || !strings.Contains(err.Error(), `"sess"`)) {
				t.Errorf("missing-token error does not name the custom sources: %v", err)
			}
		}
	})
}

func TestNew(t *testing.T) {
	k := keys()
	dir := t.TempDir()
	rsaFile := writeFile(t, dir, "rsa.pem", pkixPEM(t, &k.rsa.PublicKey))
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	privDER, err := x509.MarshalPKCS8PrivateKey(k.ec256)
	if err != nil {
		t.Fatal(err)
	}
	// A self-signed certificate for the P-256 key.
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "herald test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	certDER, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.ec256.PublicKey, k.ec256)
	if err != nil {
		t.Fatal(err)
	}
	certFile := writeFile(t, dir, "cert.crt", append([]byte("Bag Attributes: text before the block\n"),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: certDER})...))
	paramsFile := writeFile(t, dir, "params.pem", append(
		pem.EncodeToMemory(&pem.Block{Type: "EC PARAMETERS", Bytes: []byte{6, 8, 42, 134, 72, 206, 61, 3, 1, 7}}),
		pkixPEM(t, &k.ec256.PublicKey)...))
	// A self-signed RSA certificate, and RSA and EC private keys.
	rsaTmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "herald rsa"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	rsaCertDER, err := x509.CreateCertificate(rand.Reader, rsaTmpl, rsaTmpl, &k.rsa2.PublicKey, k.rsa2)
	if err != nil {
		t.Fatal(err)
	}
	rsaCertFile := writeFile(t, dir, "rsa-cert.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: rsaCertDER}))
	pkcs1File := writeFile(t, dir, "pkcs1.pem", pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&k.rsa.PublicKey)}))
	ecPrivDER, err := x509.MarshalECPrivateKey(k.ec256)
	if err != nil {
		t.Fatal(err)
	}
	p224, err := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	x25519, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	otherDir := filepath.Join(dir, "other")
	if err := os.Mkdir(otherDir, 0o700); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name    string
		cfg     Config
		wantErr []string // substrings of the error; nil for success
	}{
		{name: "no keys", cfg: Config{}, wantErr: []string{"auth.jwt: configure hmac_secret or public_key_files"}},
		{name: "short secret", cfg: Config{HMACSecret: "short"}, wantErr: []string{"auth.jwt.hmac_secret", "32 bytes", "got 5"}},
		{name: "31-byte secret", cfg: Config{HMACSecret: strings.Repeat("s", 31)}, wantErr: []string{"auth.jwt.hmac_secret"}},
		{name: "32-byte secret", cfg: Config{HMACSecret: strings.Repeat("s", 32)}},
		{name: "negative leeway", cfg: Config{HMACSecret: testSecret, Leeway: -time.Second}, wantErr: []string{"auth.jwt.leeway"}},
		{name: "missing file", cfg: Config{PublicKeyFiles: []string{filepath.Join(dir, "absent.pem")}},
			wantErr: []string{"auth.jwt.public_key_files[0]", "absent.pem", "no such file"}},
		{name: "second file bad", cfg: Config{PublicKeyFiles: []string{rsaFile, writeFile(t, dir, "junk.pem", []byte("hello"))}},
			wantErr: []string{"auth.jwt.public_key_files[1]", "junk.pem", "no PEM data"}},
		{name: "PEM not a key", cfg: Config{PublicKeyFiles: []string{writeFile(t, dir, "csr.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: []byte{1, 2}}))}},
			wantErr: []string{"auth.jwt.public_key_files[0]", "not a public key"}},
		{name: "PEM key bytes corrupt", cfg: Config{PublicKeyFiles: []string{writeFile(t, dir, "bad.pem", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: []byte("junk")}))}},
			wantErr: []string{"auth.jwt.public_key_files[0]", "parse public key"}},
		{name: "private key", cfg: Config{PublicKeyFiles: []string{writeFile(t, dir, "priv.pem", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: privDER}))}},
			wantErr: []string{"auth.jwt.public_key_files[0]", "private key"}},
		{name: "RSA private key", cfg: Config{PublicKeyFiles: []string{writeFile(t, dir, "rsa-priv.pem", pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k.rsa)}))}},
			wantErr: []string{"auth.jwt.public_key_files[0]", "rsa-priv.pem", `"RSA PRIVATE KEY" is a private key`}},
		{name: "EC private key before the public key", cfg: Config{PublicKeyFiles: []string{writeFile(t, dir, "ec-both.pem", append(
			pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: ecPrivDER}), pkixPEM(t, &k.ec256.PublicKey)...))}},
			wantErr: []string{"auth.jwt.public_key_files[0]", "private key"}},
		{name: "private key as second file", cfg: Config{PublicKeyFiles: []string{rsaFile, writeFile(t, dir, "priv2.pem", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: privDER}))}},
			wantErr: []string{"auth.jwt.public_key_files[1]", "private key"}},
		{name: "P-224 key", cfg: Config{PublicKeyFiles: []string{writeFile(t, dir, "p224.pem", pkixPEM(t, &p224.PublicKey))}},
			wantErr: []string{"auth.jwt.public_key_files[0]", "P-224"}},
		{name: "X25519 key", cfg: Config{PublicKeyFiles: []string{writeFile(t, dir, "x25519.pem", pkixPEM(t, x25519.PublicKey()))}},
			wantErr: []string{"auth.jwt.public_key_files[0]", "unsupported key type"}},
		{name: "empty file", cfg: Config{PublicKeyFiles: []string{writeFile(t, dir, "empty.pem", nil)}},
			wantErr: []string{"auth.jwt.public_key_files[0]", "no PEM data"}},
		{name: "directory", cfg: Config{PublicKeyFiles: []string{otherDir}},
			wantErr: []string{"auth.jwt.public_key_files[0]"}},
		{name: "secret too short with valid key file", cfg: Config{HMACSecret: "short", PublicKeyFiles: []string{rsaFile}},
			wantErr: []string{"auth.jwt.hmac_secret"}},
		{name: "RSA key too small", cfg: Config{PublicKeyFiles: []string{writeFile(t, dir, "small.pem", pkixPEM(t, &small.PublicKey))}},
			wantErr: []string{"auth.jwt.public_key_files[0]", "1024 bits"}},
		{name: "duplicate key id", cfg: Config{PublicKeyFiles: []string{rsaFile, writeFile(t, otherDir, "rsa.pub", pkixPEM(t, k.ed.Public()))}},
			wantErr: []string{"auth.jwt.public_key_files[1]", `key id "rsa"`, "public_key_files[0]"}},
		{name: "certificate", cfg: Config{PublicKeyFiles: []string{certFile}}},
		{name: "RSA certificate", cfg: Config{PublicKeyFiles: []string{rsaCertFile}}},
		{name: "RSA PUBLIC KEY (PKCS #1)", cfg: Config{PublicKeyFiles: []string{pkcs1File}}},
		{name: "every kind", cfg: Config{HMACSecret: testSecret, PublicKeyFiles: []string{rsaCertFile, pkcs1File, certFile, writeFile(t, dir, "ed.pem", pkixPEM(t, k.ed.Public()))}}},
		{name: "EC parameters block skipped", cfg: Config{PublicKeyFiles: []string{paramsFile}}},
		{name: "RSA only", cfg: Config{PublicKeyFiles: []string{rsaFile}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v, err := New(tc.cfg)
			if tc.wantErr == nil {
				if err != nil || v == nil {
					t.Fatalf("New: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("New succeeded")
			}
			for _, s := range tc.wantErr {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not contain %q", err, s)
				}
			}
		})
	}

	// The certificate's key verifies ES256 tokens.
	v := mustNew(t, Config{PublicKeyFiles: []string{certFile}})
	if _, err := v.Verify(sign(t, jwt.SigningMethodES256, k.ec256, claims("1"), nil)); err != nil {
		t.Fatalf("certificate key: %v", err)
	}
	// Keys from a certificate and a PKCS #1 block are told apart by kid,
	// the file's base name.
	v = mustNew(t, Config{PublicKeyFiles: []string{rsaCertFile, pkcs1File}})
	for _, tc := range []struct {
		key    *rsa.PrivateKey
		kid    string
		reason string
	}{
		{k.rsa2, "rsa-cert", ""},
		{k.rsa, "pkcs1", ""},
		{k.rsa, "rsa-cert", ReasonInvalidSignature},
		{k.rsa2, "pkcs1", ReasonInvalidSignature},
		{k.rsa2, "", ""},
		{k.rsaOther, "", ReasonInvalidSignature},
	} {
		_, err := v.Verify(sign(t, jwt.SigningMethodRS256, tc.key, claims("1"), map[string]any{"kid": tc.kid}))
		got := ""
		if err != nil {
			got = reasonOf(err)
		}
		if got != tc.reason {
			t.Errorf("kid %q: %v, want %q", tc.kid, err, tc.reason)
		}
	}
}

func TestNewDoesNotKeepCallersSlice(t *testing.T) {
	k := keys()
	files := []string{writeFile(t, t.TempDir(), "ed.pem", pkixPEM(t, k.ed.Public()))}
	v := mustNew(t, Config{PublicKeyFiles: files})
	files[0] = "changed"
	if v.cfg.PublicKeyFiles[0] == "changed" {
		t.Fatal("Verifier aliases Config.PublicKeyFiles")
	}
}

func TestSign(t *testing.T) {
	v := mustNew(t, Config{HMACSecret: testSecret})
	for _, alg := range []string{"HS256", "HS384", "HS512"} {
		t.Run(alg, func(t *testing.T) {
			before := time.Now()
			tok, err := Sign(testSecret, alg, "user@example.com", time.Hour, []string{"team:1", "news"})
			after := time.Now()
			if err != nil {
				t.Fatal(err)
			}
			p, _, err := jwt.NewParser().ParseUnverified(tok, jwt.MapClaims{})
			if err != nil {
				t.Fatal(err)
			}
			if p.Method.Alg() != alg {
				t.Errorf("alg %s", p.Method.Alg())
			}
			mc := p.Claims.(jwt.MapClaims)
			for _, name := range []string{"sub", "iat", "exp", "channels"} {
				if _, ok := mc[name]; !ok {
					t.Errorf("claim %s missing", name)
				}
			}
			c, err := v.Verify(tok)
			if err != nil {
				t.Fatal(err)
			}
			if c.UserID != "user@example.com" || !slices.Equal(c.Channels, []string{"team:1", "news"}) {
				t.Fatalf("claims %+v", c)
			}
			// exp is whole seconds: now+ttl, truncated.
			if lo, hi := before.Add(time.Hour).Truncate(time.Second), after.Add(time.Hour); c.ExpiresAt.Before(lo) || c.ExpiresAt.After(hi) {
				t.Fatalf("ExpiresAt %v, want within [%v, %v]", c.ExpiresAt, lo, hi)
			}
		})
	}
	t.Run("no channels claim when empty", func(t *testing.T) {
		tok, err := Sign(testSecret, "HS256", "1", time.Hour, nil)
		if err != nil {
			t.Fatal(err)
		}
		p, _, _ := jwt.NewParser().ParseUnverified(tok, jwt.MapClaims{})
		if _, ok := p.Claims.(jwt.MapClaims)["channels"]; ok {
			t.Fatal("channels claim present")
		}
	})
	t.Run("negative ttl is expired", func(t *testing.T) {
		tok, err := Sign(testSecret, "HS256", "1", -time.Minute, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := v.Verify(tok); reasonOf(err) != ReasonTokenExpired {
			t.Fatalf("got %v", err)
		}
	})
	errs := []struct {
		name, secret, alg, user string
		channels                []string
		want                    string
	}{
		{"RSA alg", testSecret, "RS256", "1", nil, "not an HMAC algorithm"},
		{"unknown alg", testSecret, "XX", "1", nil, "not an HMAC algorithm"},
		{"none", testSecret, "none", "1", nil, "not an HMAC algorithm"},
		{"no secret", "", "HS256", "1", nil, "auth.jwt.hmac_secret"},
		{"short secret", "short", "HS256", "1", nil, "at least 32 bytes"},
		{"empty user", testSecret, "HS256", "", nil, "user id"},
		{"bad user", testSecret, "HS256", "a:b", nil, "user id"},
		{"bad channel", testSecret, "HS256", "1", []string{"a b"}, "invalid channel"},
		{"too many channels", testSecret, "HS256", "1", make([]string, 33), "more than 32"},
	}
	for _, tc := range errs {
		t.Run(tc.name, func(t *testing.T) {
			tok, err := Sign(tc.secret, tc.alg, tc.user, time.Hour, tc.channels)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %q, %v; want error containing %q", tok, err, tc.want)
			}
		})
	}
}

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

// TestRefusedTokenTypes: refresh tokens (simplejwt's "token_type":
// "refresh", a "typ" claim or header) are not access tokens; the list is
// configurable and empty refuses none.
func TestRefusedTokenTypes(t *testing.T) {
	exp := time.Now().Add(time.Hour).Unix()
	sign := func(claims jwt.MapClaims, typ string) string {
		tok := jwt.NewWithClaims(jwt.SigningMethodHS256, claims)
		if typ != "" {
			tok.Header["typ"] = typ
		}
		s, err := tok.SignedString([]byte(testSecret))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	def := mustNew(t, Config{HMACSecret: testSecret})
	none := mustNew(t, Config{HMACSecret: testSecret, RefusedTokenTypes: []string{}})
	custom := mustNew(t, Config{HMACSecret: testSecret, RefusedTokenTypes: []string{"id"}})
	cases := []struct {
		name                string
		tok                 string
		def, none, customOK bool
	}{
		{"access token_type", sign(jwt.MapClaims{"sub": "1", "exp": exp, "token_type": "access"}, ""), true, true, true},
		{"refresh token_type", sign(jwt.MapClaims{"sub": "1", "exp": exp, "token_type": "refresh"}, ""), false, true, true},
		{"REFRESH typ claim", sign(jwt.MapClaims{"sub": "1", "exp": exp, "typ": "REFRESH"}, ""), false, true, true},
		{"refresh_token typ header", sign(jwt.MapClaims{"sub": "1", "exp": exp}, "refresh_token"), false, true, true},
		{"JWT typ header", sign(jwt.MapClaims{"sub": "1", "exp": exp}, "JWT"), true, true, true},
		{"id token", sign(jwt.MapClaims{"sub": "1", "exp": exp, "typ": "id"}, ""), true, true, false},
		{"non-string token_type", sign(jwt.MapClaims{"sub": "1", "exp": exp, "token_type": 5}, ""), true, true, true},
	}
	for _, tc := range cases {
		for _, v := range []struct {
			name string
			v    *Verifier
			ok   bool
		}{{"default", def, tc.def}, {"none", none, tc.none}, {"custom", custom, tc.customOK}} {
			_, err := v.v.Verify(tc.tok)
			if (err == nil) != v.ok {
				t.Errorf("%s with %s list: err %v, want ok=%v", tc.name, v.name, err, v.ok)
			}
			var ae *Error
			if err != nil && (!errors.As(err, &ae) || ae.Reason != ReasonWrongTokenType) {
				t.Errorf("%s with %s list: reason %v", tc.name, v.name, err)
			}
		}
	}
}
