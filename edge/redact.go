package edge

import (
	"context"
	"fmt"
	"log/slog"
	"regexp"
	"sort"
	"strings"

	"github.com/heraldrt/herald/config"
)

// Every log line of a node passes through one redactor: New wraps the
// logger it is given, so the server's own lines, fasthttp's (its Logger
// and the ErrorHandler for requests it cannot parse, which may quote the
// raw request), the auth, backend-check, protocol and channels_redis lines
// all lose API keys, admin keys, tokens (query, header, cookie) and
// session cookies before they are written.

// redactor scrubs secrets from log text.
type redactor struct {
	literals []string          // configured secrets, longest first
	patterns []redactPattern   // generic shapes of credentials
	names    *strings.Replacer // nil: no literals
}

type redactPattern struct {
	re   *regexp.Regexp
	repl string
}

const redacted = "[redacted]"

// newRedactor builds the redactor for cfg: its own secrets verbatim, and
// the shapes of credentials a request may carry.
func newRedactor(cfg config.Config) *redactor {
	r := &redactor{}
	for _, s := range append([]string{cfg.API.Key, cfg.Admin.Key, cfg.Auth.JWT.HMACSecret, cfg.Fanout.Redis.Password}, cfg.Auth.JWT.HMACSecrets...) {
		if len(s) >= 8 {
			r.literals = append(r.literals, s)
		}
	}
	sort.Slice(r.literals, func(i, j int) bool { return len(r.literals[i]) > len(r.literals[j]) })
	if len(r.literals) > 0 {
		var pairs []string
		for _, l := range r.literals {
			pairs = append(pairs, l, redacted)
		}
		r.names = strings.NewReplacer(pairs...)
	}
	// Query parameters and cookies that carry credentials: the configured
	// ones and the usual names.
	params := []string{"token", "access_token", "id_token", "refresh_token", "jwt", "api_key", "apikey", "key", "admin_key", "auth", "password", "secret", "session", "sessionid", "csrftoken", "csrfmiddlewaretoken"}
	params = append(params, cfg.Auth.QueryParam, cfg.Auth.CookieName)
	params = append(params, cfg.Auth.BackendCheck.Cookies...)
	var quoted []string
	for _, p := range params {
		if p != "" && p != "*" {
			quoted = append(quoted, regexp.QuoteMeta(p))
		}
	}
	names := strings.Join(quoted, "|")
	// A value ends at a delimiter, or at an escaped CR/LF or quote when
	// the text is a %q-quoted request.
	const value = `(?:[^\s&;,"'\\]|\\[^rn"\\])*`
	r.patterns = []redactPattern{
		// Header lines (raw or quoted requests): the whole value.
		{regexp.MustCompile(`(?i)\b(authorization|proxy-authorization|x-api-key|x-admin-key|x-auth-token|x-csrftoken|cookie|set-cookie)(\s*:\s*)(?:[^\r\n"\\]|\\[^rn"])*`), "${1}${2}" + redacted},
		// Schemes with credentials anywhere.
		{regexp.MustCompile(`(?i)\b(bearer|apikey)(\s+)[A-Za-z0-9._~+/=-]{8,}`), "${1}${2}" + redacted},
		// name=value in queries, forms and cookies.
		{regexp.MustCompile(`(?i)(^|[?&;,\s"'\\]|%3[bB]|%26)(` + names + `)(=|%3[dD])` + value), "${1}${2}${3}" + redacted},
		// Anything shaped like a JWT (header.payload.signature), also cut
		// at either end as in a truncated quote of a request.
		{regexp.MustCompile(`eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]*)?`), redacted},
		{regexp.MustCompile(`[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{16,}\.[A-Za-z0-9_-]{16,}`), redacted},
	}
	return r
}

// String returns s without secrets.
func (r *redactor) String(s string) string {
	if r.names != nil {
		s = r.names.Replace(s)
	}
	for _, p := range r.patterns {
		s = p.re.ReplaceAllString(s, p.repl)
	}
	return s
}

// value redacts one log attribute value: strings, errors and Stringers
// become redacted strings, groups are redacted member by member.
func (r *redactor) value(v slog.Value) slog.Value {
	v = v.Resolve()
	switch v.Kind() {
	case slog.KindString:
		return slog.StringValue(r.String(v.String()))
	case slog.KindGroup:
		as := v.Group()
		out := make([]slog.Attr, len(as))
		for i, a := range as {
			out[i] = slog.Attr{Key: a.Key, Value: r.value(a.Value)}
		}
		return slog.GroupValue(out...)
	case slog.KindAny:
		switch x := v.Any().(type) {
		case error:
			return slog.StringValue(r.String(x.Error()))
		case fmt.Stringer:
			return slog.StringValue(r.String(x.String()))
		case []byte:
			return slog.StringValue(r.String(string(x)))
		case []string:
			out := make([]string, len(x))
			for i, s := range x {
				out[i] = r.String(s)
			}
			return slog.AnyValue(out)
		case string:
			return slog.StringValue(r.String(x))
		}
	}
	return v
}

// redactHandler is the slog.Handler every node log line goes through.
type redactHandler struct {
	next slog.Handler
	r    *redactor
}

// redactLogger wraps log so that nothing it writes carries a secret.
func redactLogger(log *slog.Logger, r *redactor) *slog.Logger {
	if _, ok := log.Handler().(*redactHandler); ok {
		return log
	}
	return slog.New(&redactHandler{next: log.Handler(), r: r})
}

func (h *redactHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.next.Enabled(ctx, l)
}

func (h *redactHandler) Handle(ctx context.Context, rec slog.Record) error {
	out := slog.NewRecord(rec.Time, rec.Level, h.r.String(rec.Message), rec.PC)
	rec.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(slog.Attr{Key: a.Key, Value: h.r.value(a.Value)})
		return true
	})
	return h.next.Handle(ctx, out)
}

func (h *redactHandler) WithAttrs(as []slog.Attr) slog.Handler {
	out := make([]slog.Attr, len(as))
	for i, a := range as {
		out[i] = slog.Attr{Key: a.Key, Value: h.r.value(a.Value)}
	}
	return &redactHandler{next: h.next.WithAttrs(out), r: h.r}
}

func (h *redactHandler) WithGroup(name string) slog.Handler {
	return &redactHandler{next: h.next.WithGroup(name), r: h.r}
}
