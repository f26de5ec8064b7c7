package auth

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/heraldrt/herald/fanout"
)

// knownReasons are every Reason* code.
var knownReasons = map[string]bool{
	ReasonMissingToken: true, ReasonMalformedToken: true, ReasonUnsupportedAlgorithm: true,
	ReasonInvalidSignature: true, ReasonTokenExpired: true, ReasonTokenNotYetValid: true,
	ReasonMissingExp: true, ReasonMissingUser: true, ReasonInvalidAudience: true,
	ReasonInvalidIssuer: true, ReasonInvalidChannels: true,
}

// checkResult asserts the invariants of any Verify outcome: an accepted
// token has claims satisfying the documented rules, a refused one is an
// *Error with a known reason and no claims.
func checkResult(t *testing.T, c Claims, err error) {
	t.Helper()
	if err != nil {
		var ae *Error
		if !errors.As(err, &ae) || !knownReasons[ae.Reason] {
			t.Fatalf("error %v (%T) has no known reason", err, err)
		}
		if c.UserID != "" || c.Channels != nil || !c.ExpiresAt.IsZero() {
			t.Fatalf("claims %+v returned with error %v", c, err)
		}
		return
	}
	if c.UserID == "" || c.ExpiresAt.IsZero() {
		t.Fatalf("accepted token with claims %+v", c)
	}
	if err := checkUserID(c.UserID); err != nil {
		t.Fatalf("accepted user id %q: %v", c.UserID, err)
	}
	if len(c.Channels) > MaxChannels {
		t.Fatalf("accepted %d channels", len(c.Channels))
	}
	for _, ch := range c.Channels {
		if !fanout.ValidChannel(ch) {
			t.Fatalf("accepted channel %q", ch)
		}
	}
	if y := c.ExpiresAt.Year(); y < 1970 || y > 9999 {
		t.Fatalf("accepted ExpiresAt %v", c.ExpiresAt)
	}
}

// FuzzVerify feeds arbitrary strings to Verify; any token it accepts must
// carry a user id and an expiry.
func FuzzVerify(f *testing.F) {
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	edFile := writeFile(f, f.TempDir(), "ed.pem", pkixPEM(f, edKey.Public()))
	v := mustNew(f, Config{HMACSecret: testSecret, PublicKeyFiles: []string{edFile}})

	valid, err := Sign(testSecret, "HS256", "42", time.Hour, []string{"team:1"})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(valid)
	f.Add(sign(f, jwt.SigningMethodEdDSA, edKey, claims("7", "channels", "a,b"), map[string]any{"kid": "ed"}))
	f.Add(sign(f, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, claims("1"), nil))
	f.Add(b64(`{"alg":"none"}`) + "." + b64(`{"sub":"1","exp":99999999999}`) + ".")
	// Huge claims: close to MaxTokenLen, 40 channels, a long user id.
	chans := make([]string, 40)
	for i := range chans {
		chans[i] = fmt.Sprintf("team:%d", i)
	}
	f.Add(sign(f, jwt.SigningMethodHS256, []byte(testSecret), claims(strings.Repeat("u", 200),
		"channels", chans, "pad", strings.Repeat("x", MaxTokenLen/2)), nil))
	f.Add(sign(f, jwt.SigningMethodHS256, []byte(testSecret), claims("big", "channels", strings.Repeat("a,", 40)), nil))
	f.Add(hs256Raw(f, `{"alg":"HS256","crit":["x"]}`, `{"sub":"1","exp":1e400}`))
	f.Add(b64(`{"alg":"HS256"}`) + "." + b64(`{"sub":"x","exp":99999999999}`) + ".")
	f.Add("")
	f.Add("not.a.jwt")
	f.Add("....")
	f.Add("eyJ.eyJ.eyJ")
	f.Add("\x00\xff\x7f")
	f.Add(strings.Repeat("A", MaxTokenLen+1))

	f.Fuzz(func(t *testing.T, token string) {
		c, err := v.Verify(token)
		checkResult(t, c, err)
	})
}

// FuzzSignedClaims signs arbitrary claim sets with the HMAC secret, so the
// claim checks behind the signature (exp, nbf, iat, user, channels) are
// fuzzed too; any token Verify accepts must satisfy the documented rules.
func FuzzSignedClaims(f *testing.F) {
	v := mustNew(f, Config{HMACSecret: testSecret, UserClaim: "user_id", Leeway: time.Second})
	header := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`))
	exp := time.Now().Add(time.Hour).Unix()
	for _, p := range []string{
		fmt.Sprintf(`{"user_id":42,"exp":%d}`, exp),
		fmt.Sprintf(`{"user_id":"u@x","exp":%d,"channels":["a","b:c"]}`, exp),
		fmt.Sprintf(`{"user_id":4.5,"exp":%d,"channels":"a, b,,c"}`, exp),
		fmt.Sprintf(`{"user_id":1e3,"exp":%d.5,"nbf":0,"iat":1}`, exp),
		fmt.Sprintf(`{"user_id":"","exp":%d,"channels":[1,null]}`, exp),
		`{"user_id":"1","exp":1e400}`,
		`{"user_id":"1","exp":-1e300,"nbf":"x"}`,
		`{"user_id":"1"}`,
		`[]`,
		`null`,
		`{"user_id":"1","exp":99999999999} trailing`,
	} {
		f.Add([]byte(p))
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		signing := header + "." + base64.RawURLEncoding.EncodeToString(payload)
		sig, err := jwt.SigningMethodHS256.Sign(signing, []byte(testSecret))
		if err != nil {
			t.Fatal(err)
		}
		c, err := v.Verify(signing + "." + base64.RawURLEncoding.EncodeToString(sig))
		checkResult(t, c, err)
	})
}
