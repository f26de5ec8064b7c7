package auth

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
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
	const leeway = time.Second
	v := mustNew(f, Config{HMACSecret: testSecret, UserClaim: "user_id", Leeway: leeway})
	header := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`))
	now := time.Now().Unix()
	exp := now + 3600
	for _, p := range []string{
		fmt.Sprintf(`{"user_id":"1","exp":%d}`, now-60),
		fmt.Sprintf(`{"user_id":"1","exp":%d}`, now-3),
		fmt.Sprintf(`{"user_id":"1","exp":%d,"nbf":%d}`, exp, now+60),
		fmt.Sprintf(`{"user_id":"1","exp":%d,"nbf":%d}`, exp, now-60),
		fmt.Sprintf(`{"user_id":"1","exp":%d,"nbf":%d.9}`, exp, now),
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
		t0 := time.Now()
		c, err := v.Verify(signing + "." + base64.RawURLEncoding.EncodeToString(sig))
		t1 := time.Now()
		checkResult(t, c, err)
		checkTimes(t, payload, c, err, t0, t1, leeway)
	})
}

// checkTimes compares a Verify outcome with the clock: the payload's exp and
// nbf, read here independently, must explain an acceptance (exp after now,
// nbf not after now, within the leeway) and an expired or not-yet-valid
// refusal. t0 and t1 bracket the Verify call; claims have whole-second
// precision, hence the one-second slack.
func checkTimes(t *testing.T, payload []byte, c Claims, err error, t0, t1 time.Time, leeway time.Duration) {
	t.Helper()
	const slack = time.Second
	var claims map[string]any
	d := json.NewDecoder(bytes.NewReader(payload))
	d.UseNumber()
	perr := d.Decode(&claims)
	num := func(k string) (time.Time, bool, bool) { // value, present, numeric
		v, ok := claims[k]
		if !ok {
			return time.Time{}, false, false
		}
		n, isNum := v.(json.Number)
		if !isNum {
			return time.Time{}, true, false
		}
		f, ferr := n.Float64()
		if ferr != nil || math.IsInf(f, 0) || math.IsNaN(f) || math.Abs(f) > 1e15 {
			return time.Time{}, true, false
		}
		sec, frac := math.Modf(f)
		return time.Unix(int64(sec), int64(frac*1e9)), true, true
	}
	if err == nil {
		if perr != nil || claims == nil {
			t.Fatalf("accepted a payload that is not a JSON object: %q (%v)", payload, perr)
		}
		exp, _, ok := num("exp")
		if !ok {
			t.Fatalf("accepted without a numeric exp: %q", payload)
		}
		if !t0.Before(exp.Add(leeway + slack)) {
			t.Fatalf("accepted at %v a token that expired at %v (leeway %s)", t0, exp, leeway)
		}
		if d := c.ExpiresAt.Sub(exp); d > slack || d < -slack {
			t.Fatalf("ExpiresAt %v, exp claim %v", c.ExpiresAt, exp)
		}
		if nbf, present, ok := num("nbf"); present {
			if !ok {
				t.Fatalf("accepted with a non-numeric nbf: %q", payload)
			}
			if nbf.After(t1.Add(leeway + slack)) {
				t.Fatalf("accepted at %v a token not valid before %v (leeway %s)", t1, nbf, leeway)
			}
		}
		return
	}
	var ae *Error
	errors.As(err, &ae)
	switch ae.Reason {
	case ReasonTokenExpired:
		exp, _, ok := num("exp")
		if !ok || exp.Add(leeway).After(t1.Add(slack)) {
			t.Fatalf("refused as expired at %v with exp %v (leeway %s): %q", t1, exp, leeway, payload)
		}
	case ReasonTokenNotYetValid:
		nbf, _, ok := num("nbf")
		if !ok || !nbf.After(t0.Add(leeway-slack)) {
			t.Fatalf("refused as not yet valid at %v with nbf %v (leeway %s): %q", t0, nbf, leeway, payload)
		}
	}
}
