package auth

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

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
