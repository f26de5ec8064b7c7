package auth

import (
	"errors"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

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
