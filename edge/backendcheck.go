package edge

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/heraldrt/herald/edge/auth"
	"github.com/heraldrt/herald/fanout"
)

// Refusal reasons of the backend check (the "error" of the 401 body).
const (
	// ReasonNoSession means the request carries none of the forwarded
	// cookies or headers, so there is nothing to ask the backend about.
	ReasonNoSession = "missing_session"
	// ReasonBackendRefused means the backend answered that the session is
	// not logged in (401 or 403).
	ReasonBackendRefused = "backend_refused"
	// ReasonBackendUnavailable means the backend did not answer in time,
	// failed, or answered something that is not a user.
	ReasonBackendUnavailable = "backend_unavailable"
)

// maxBackendAnswer bounds the backend's answer body.
const maxBackendAnswer = 64 << 10

// BackendChecker authenticates a connect request without a JWT by asking
// the application backend: it forwards the request's session cookie (and
// chosen headers) to auth.backend_check.url and accepts the user id the
// backend returns, e.g. the Django view in examples/python/herald_auth_view.py.
//
// The backend answers 200 with {"user_id": 42} (a string or an integer;
// the field name is configurable) and optionally "channels": [...] extra
// channels to grant; 401 or 403 refuses. Positive answers are cached for
// cache_ttl per distinct set of forwarded credentials; refusals and
// failures are never cached. A BackendChecker is safe for concurrent use.
type BackendChecker struct {
	cfg    auth.BackendCheckConfig
	client *http.Client
	log    *slog.Logger
	now    func() time.Time

	mu    sync.Mutex
	cache map[[32]byte]backendEntry
}

type backendEntry struct {
	claims  auth.Claims
	expires time.Time
}

// NewBackendChecker returns a checker for cfg, or nil when cfg.URL is
// empty (the check is disabled).
func NewBackendChecker(cfg auth.BackendCheckConfig, log *slog.Logger) (*BackendChecker, error) {
	if cfg.URL == "" {
		return nil, nil
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &BackendChecker{
		cfg: cfg,
		client: &http.Client{
			Timeout: cfg.Timeout,
			// A redirect (e.g. to a login page) is an answer, not a user.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		log:   log,
		now:   time.Now,
		cache: make(map[[32]byte]backendEntry),
	}, nil
}

// credentials returns the cookie and headers forwarded for ctx, and
// whether there is anything to forward.
func (b *BackendChecker) credentials(ctx *fasthttp.RequestCtx) (cookie string, headers [][2]string, ok bool) {
	if len(b.cfg.Cookies) == 1 && b.cfg.Cookies[0] == "*" {
		cookie = string(ctx.Request.Header.Peek("Cookie"))
	} else {
		var parts []string
		for _, name := range b.cfg.Cookies {
			if v := ctx.Request.Header.Cookie(name); len(v) > 0 {
				parts = append(parts, name+"="+string(v))
			}
		}
		cookie = strings.Join(parts, "; ")
	}
	for _, h := range b.cfg.Headers {
		if v := ctx.Request.Header.Peek(h); len(v) > 0 {
			headers = append(headers, [2]string{h, string(v)})
		}
	}
	return cookie, headers, cookie != "" || len(headers) > 0
}

// Check asks the backend who the user of ctx is. It returns the user's
// claims (ExpiresAt = now + session_ttl), or an *auth.Error whose Reason
// is ReasonNoSession, ReasonBackendRefused or ReasonBackendUnavailable;
// the edge answers those with 401.
func (b *BackendChecker) Check(ctx *fasthttp.RequestCtx) (auth.Claims, error) {
	cookie, headers, ok := b.credentials(ctx)
	if !ok {
		return auth.Claims{}, &auth.Error{Reason: ReasonNoSession, Err: errors.New("no token and no session cookie")}
	}
	h := sha256.New()
	h.Write([]byte(cookie))
	for _, kv := range headers {
		h.Write([]byte{0})
		h.Write([]byte(kv[0] + "\x00" + kv[1]))
	}
	var key [32]byte
	h.Sum(key[:0])
	now := b.now()
	if b.cfg.CacheTTL > 0 {
		b.mu.Lock()
		e, hit := b.cache[key]
		b.mu.Unlock()
		if hit && now.Before(e.expires) {
			e.claims.ExpiresAt = now.Add(b.cfg.SessionTTL)
			return e.claims, nil
		}
	}
	c, err := b.ask(cookie, headers)
	if err != nil {
		return auth.Claims{}, err
	}
	c.ExpiresAt = now.Add(b.cfg.SessionTTL)
	if b.cfg.CacheTTL > 0 && b.cfg.CacheSize > 0 {
		b.mu.Lock()
		if len(b.cache) >= b.cfg.CacheSize {
			for k, e := range b.cache {
				if !now.Before(e.expires) {
					delete(b.cache, k)
				}
			}
			for k := range b.cache { // still full: drop arbitrary entries
				if len(b.cache) < b.cfg.CacheSize {
					break
				}
				delete(b.cache, k)
			}
		}
		b.cache[key] = backendEntry{claims: c, expires: now.Add(b.cfg.CacheTTL)}
		b.mu.Unlock()
	}
	return c, nil
}

// ask performs one backend call.
func (b *BackendChecker) ask(cookie string, headers [][2]string) (auth.Claims, error) {
	unavailable := func(err error) (auth.Claims, error) {
		return auth.Claims{}, &auth.Error{Reason: ReasonBackendUnavailable, Err: err}
	}
	ctx, cancel := context.WithTimeout(context.Background(), b.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, b.cfg.URL, nil)
	if err != nil {
		return unavailable(fmt.Errorf("backend check request: %w", err))
	}
	if cookie != "" {
		req.Header.Set("Cookie", cookie)
	}
	for _, kv := range headers {
		req.Header.Set(kv[0], kv[1])
	}
	req.Header.Set("Accept", "application/json")
	resp, err := b.client.Do(req)
	if err != nil {
		return unavailable(fmt.Errorf("backend check %s: %w", b.cfg.URL, err))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBackendAnswer))
	if err != nil {
		return unavailable(fmt.Errorf("backend check %s: reading the answer: %w", b.cfg.URL, err))
	}
	switch {
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return auth.Claims{}, &auth.Error{Reason: ReasonBackendRefused, Err: fmt.Errorf("backend answered %d", resp.StatusCode)}
	case resp.StatusCode != http.StatusOK:
		return unavailable(fmt.Errorf("backend check %s: status %d", b.cfg.URL, resp.StatusCode))
	}
	return b.parse(body)
}

// parse reads the backend's 200 answer.
func (b *BackendChecker) parse(body []byte) (auth.Claims, error) {
	unavailable := func(format string, args ...any) (auth.Claims, error) {
		return auth.Claims{}, &auth.Error{Reason: ReasonBackendUnavailable, Err: fmt.Errorf("backend answer: "+format, args...)}
	}
	d := json.NewDecoder(bytes.NewReader(body))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		return unavailable("not a JSON object: %v", err)
	}
	raw, found := m[b.cfg.UserField]
	if !found || raw == nil {
		// {"user_id": null} is how a backend may say "anonymous".
		return auth.Claims{}, &auth.Error{Reason: ReasonBackendRefused, Err: fmt.Errorf("backend answer has no %q", b.cfg.UserField)}
	}
	var id string
	switch x := raw.(type) {
	case string:
		id = x
	case json.Number:
		f, err := strconv.ParseFloat(string(x), 64)
		if err != nil || f != math.Trunc(f) || math.Abs(f) > 1<<53 {
			return unavailable("%q is not an integer", x)
		}
		id = strconv.FormatInt(int64(f), 10)
	default:
		return unavailable("%q must be a string or an integer", b.cfg.UserField)
	}
	if err := auth.CheckUserID(id); err != nil {
		return unavailable("user id: %v", err)
	}
	c := auth.Claims{UserID: id}
	if list, ok := m["channels"].([]any); ok {
		if len(list) > auth.MaxChannels {
			return unavailable("more than %d channels", auth.MaxChannels)
		}
		for _, v := range list {
			ch, ok := v.(string)
			if !ok || !fanout.ValidChannel(ch) {
				return unavailable("invalid channel %v", v)
			}
			c.Channels = append(c.Channels, ch)
		}
	}
	return c, nil
}
