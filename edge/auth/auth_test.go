package auth

import (
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
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
)

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
