package auth

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/heraldrt/herald/internal/confkey"
)

// Each problem of the auth section names its full key.
func TestSettingsValidate(t *testing.T) {
	ok := DefaultSettings()
	ok.JWT.HMACSecret = strings.Repeat("s", MinSecretLen)
	if err := ok.Validate(); err != nil {
		t.Fatalf("defaults with a secret: %v", err)
	}
	for _, tc := range []struct {
		mutate func(*Settings)
		key    string
	}{
		{func(s *Settings) { s.JWT.HMACSecret = "" }, "auth.jwt.hmac_secret"},
		{func(s *Settings) { s.JWT.HMACSecret = "short" }, "auth.jwt.hmac_secret"},
		{func(s *Settings) { s.JWT.HMACSecrets = []string{strings.Repeat("s", 32), "short"} }, "auth.jwt.hmac_secrets[1]"},
		{func(s *Settings) { s.JWT.JWKSURL = "ftp://keys" }, "auth.jwt.jwks_url"},
		{func(s *Settings) { s.JWT.Leeway = -1 }, "auth.jwt.leeway"},
		{func(s *Settings) { s.JWT.UserClaim = "" }, "auth.jwt.user_claim"},
		{func(s *Settings) { s.QueryParam = "" }, "auth.query_param"},
		{func(s *Settings) { s.BackendCheck.URL = "ftp://x" }, "auth.backend_check.url"},
		{func(s *Settings) { s.BackendCheck.URL, s.BackendCheck.Timeout = "http://app/whoami", 0 }, "auth.backend_check.timeout"},
	} {
		s := ok
		s.JWT.HMACSecrets = nil
		tc.mutate(&s)
		var ke *confkey.Error
		if err := s.Validate(); !errors.As(err, &ke) || ke.Key != tc.key {
			t.Errorf("got %v, want an error for %s", err, tc.key)
		}
	}
	if err := (BackendCheckConfig{}).Validate(); err != nil {
		t.Errorf("backend check off: %v", err)
	}
}

// Settings.Config carries every field of the section, and the section's
// defaults are the ones New applies to an empty Config.
func TestSettingsConfig(t *testing.T) {
	s := DefaultSettings()
	s.JWT = JWTConfig{HMACSecret: "a", HMACSecrets: []string{"b"}, JWKSURL: "c", JWKSRefresh: 1, JWKSFile: "d",
		PublicKeyFiles: []string{"e"}, Audience: "f", Issuer: "g", Leeway: 2, UserClaim: "h", RefusedTokenTypes: []string{"i"}}
	s.CookieName, s.QueryParam = "j", "k"
	c := s.Config(nil)
	cv := reflect.ValueOf(c)
	jt := reflect.TypeFor[JWTConfig]()
	jv := reflect.ValueOf(s.JWT)
	for i := range jt.NumField() {
		name := jt.Field(i).Name
		if got := cv.FieldByName(name); !got.IsValid() || !reflect.DeepEqual(got.Interface(), jv.Field(i).Interface()) {
			t.Errorf("Config().%s = %v, want %v", name, got, jv.Field(i))
		}
	}
	if c.CookieName != "j" || c.QueryParam != "k" {
		t.Errorf("cookie/query %q %q", c.CookieName, c.QueryParam)
	}

	v, err := New(Config{HMACSecret: strings.Repeat("s", MinSecretLen)})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	d := DefaultSettings()
	if v.cfg.Leeway != d.JWT.Leeway || v.cfg.UserClaim != d.JWT.UserClaim || v.cfg.JWKSRefresh != d.JWT.JWKSRefresh ||
		v.cfg.CookieName != d.CookieName || v.cfg.QueryParam != d.QueryParam {
		t.Errorf("New's defaults %+v differ from DefaultSettings %+v", v.cfg, d)
	}
	if !slices.Equal(DefaultRefusedTokenTypes, d.JWT.RefusedTokenTypes) {
		t.Errorf("refused types %v, want %v", d.JWT.RefusedTokenTypes, DefaultRefusedTokenTypes)
	}
}
