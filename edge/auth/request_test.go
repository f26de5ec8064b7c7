package auth

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

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
