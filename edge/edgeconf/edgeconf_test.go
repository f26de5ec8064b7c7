package edgeconf

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/heraldrt/herald/internal/confkey"
	"github.com/heraldrt/herald/protocols"
)

func TestTrustedProxyNets(t *testing.T) {
	nets := Limits{TrustedProxies: []string{"10.0.0.0/8", "192.168.1.7", "::1", "2001:db8::/32"}}.TrustedProxyNets()
	var got []string
	for _, n := range nets {
		got = append(got, n.String())
	}
	want := []string{"10.0.0.0/8", "192.168.1.7/32", "::1/128", "2001:db8::/32"}
	if !slices.Equal(got, want) {
		t.Fatalf("nets %q, want %q", got, want)
	}
}

// Each section's defaults validate (the api key aside, which has none),
// and each problem names its full key.
func TestValidate(t *testing.T) {
	api := DefaultAPI(time.Minute)
	api.Key = strings.Repeat("k", 16)
	for name, err := range map[string]error{"server": DefaultServer().Validate(), "api": api.Validate(),
		"limits": DefaultLimits().Validate(), "admin": Admin{}.Validate()} {
		if err != nil {
			t.Errorf("%s defaults: %v", name, err)
		}
	}
	for _, tc := range []struct {
		err error
		key string
	}{
		{Server{Listen: "nope", ReadBufferSize: 4096, HandshakeTimeout: time.Second, ShutdownTimeout: time.Second, TLS: TLS{ReloadCheck: time.Second}}.Validate(), "server.listen"},
		{func() error {
			s := DefaultServer()
			s.AllowedOrigins = []string{"http://example.com:*"}
			return s.Validate()
		}(), "server.allowed_origins"},
		{func() error { s := DefaultServer(); s.AllowedOrigins = []string{"example.com"}; return s.Validate() }(), "server.allowed_origins"},
		{func() error { s := DefaultServer(); s.TLS.CertFile = "x.pem"; return s.Validate() }(), "server.tls.cert_file"},
		{DefaultAPI(time.Minute).Validate(), "api.key"},
		{Admin{Key: "short"}.Validate(), "admin.key"},
		{Admin{Listen: "nope"}.Validate(), "admin.listen"},
		{func() error { l := DefaultLimits(); l.PerUserPolicy = "drop"; return l.Validate() }(), "limits.per_user_policy"},
		{func() error { l := DefaultLimits(); l.ClientBurst = 0; return l.Validate() }(), "limits.client_burst"},
	} {
		var ke *confkey.Error
		if !errors.As(tc.err, &ke) || ke.Key != tc.key {
			t.Errorf("got %v, want an error for %s", tc.err, tc.key)
		}
	}
	if !LoopbackHost("LOCALHOST") || !LoopbackHost("::1") || LoopbackHost("example.com") {
		t.Error("LoopbackHost")
	}
}

// Session carries every per-connection limit into the sessions' Config.
func TestLimitsSession(t *testing.T) {
	l := Limits{ClientRate: 1, ClientBurst: 2, IdleTimeout: 3, MaxLifetime: 4, TokenExpiringLead: 5}
	c := l.Session(protocols.Config{MaxQueue: 7})
	if c.ClientRate != 1 || c.ClientBurst != 2 || c.IdleTimeout != 3 || c.MaxLifetime != 4 || c.TokenExpiringLead != 5 || c.MaxQueue != 7 {
		t.Fatalf("Session: %+v", c)
	}
}
