package edge

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/heraldrt/herald/config"
	"github.com/heraldrt/herald/edge/auth"
)

// connectCtx is a connect request carrying cookie (may be empty).
func connectCtx(cookie string) *fasthttp.RequestCtx {
	var ctx fasthttp.RequestCtx
	ctx.Request.SetRequestURI("/ws/notifications/")
	if cookie != "" {
		ctx.Request.Header.Set("Cookie", cookie)
	}
	return &ctx
}

func reasonOf(err error) string {
	var ae *auth.Error
	if errors.As(err, &ae) {
		return ae.Reason
	}
	return fmt.Sprint(err)
}

func newChecker(t *testing.T, url string, mutate func(*auth.BackendCheckConfig)) *BackendChecker {
	t.Helper()
	cfg := auth.DefaultBackendCheckConfig()
	cfg.URL = url
	if mutate != nil {
		mutate(&cfg)
	}
	b, err := NewBackendChecker(cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestBackendCheckAnswers covers the answers a backend can give, the
// timeout, and the positive-only cache, against a stub backend.
func TestBackendCheckAnswers(t *testing.T) {
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		c, _ := r.Cookie("sessionid")
		if r.Header.Get("X-Extra") != "" {
			w.Write([]byte(`{"user_id":"hdr-` + r.Header.Get("X-Extra") + `"}`))
			return
		}
		switch {
		case c == nil:
			w.WriteHeader(401)
		case c.Value == "good":
			w.Write([]byte(`{"user_id": 42, "channels": ["team:7"]}`))
		case c.Value == "str":
			w.Write([]byte(`{"user_id": "u-9"}`))
		case c.Value == "anon":
			w.Write([]byte(`{"user_id": null}`))
		case c.Value == "forbidden":
			w.WriteHeader(403)
		case c.Value == "slow":
			time.Sleep(500 * time.Millisecond)
			w.Write([]byte(`{"user_id": 1}`))
		case c.Value == "badid":
			w.Write([]byte(`{"user_id": "a b"}`))
		case c.Value == "redirect":
			http.Redirect(w, r, "/login/", http.StatusFound)
		default:
			w.WriteHeader(500)
		}
	}))
	defer srv.Close()
	b := newChecker(t, srv.URL, func(c *auth.BackendCheckConfig) {
		c.Timeout = 200 * time.Millisecond
		c.Headers = []string{"X-Extra"}
	})
	cases := []struct {
		cookie, user, reason string
	}{
		{"sessionid=good; other=x", "42", ""},
		{"sessionid=str", "u-9", ""},
		{"", "", ReasonNoSession},
		{"unrelated=1", "", ReasonNoSession},
		{"sessionid=anon", "", ReasonBackendRefused},
		{"sessionid=forbidden", "", ReasonBackendRefused},
		{"sessionid=nope", "", ReasonBackendUnavailable},
		{"sessionid=slow", "", ReasonBackendUnavailable},
		{"sessionid=badid", "", ReasonBackendUnavailable},
		{"sessionid=redirect", "", ReasonBackendUnavailable},
	}
	for _, c := range cases {
		start := time.Now()
		got, err := b.Check(connectCtx(c.cookie))
		if c.reason != "" {
			if reasonOf(err) != c.reason {
				t.Errorf("cookie %q: err %v, want reason %s", c.cookie, err, c.reason)
			}
			if time.Since(start) > time.Second {
				t.Errorf("cookie %q: took %s, the timeout is 200ms", c.cookie, time.Since(start))
			}
			continue
		}
		if err != nil || got.UserID != c.user || time.Until(got.ExpiresAt) < 59*time.Minute {
			t.Errorf("cookie %q: %+v %v, want user %s", c.cookie, got, err, c.user)
		}
	}
	ctx := connectCtx("")
	ctx.Request.Header.Set("X-Extra", "7")
	if got, err := b.Check(ctx); err != nil || got.UserID != "hdr-7" {
		t.Errorf("forwarded header: %+v %v", got, err)
	}
	// Positive answers are cached; refusals are not.
	before := calls.Load()
	for range 3 {
		if got, err := b.Check(connectCtx("sessionid=good")); err != nil || got.UserID != "42" || len(got.Channels) != 1 {
			t.Fatalf("cached: %+v %v", got, err)
		}
		b.Check(connectCtx("sessionid=forbidden"))
	}
	if n := calls.Load() - before; n != 3 {
		t.Errorf("%d backend calls for 3 cached + 3 refused checks, want 3", n)
	}
	b.now = func() time.Time { return time.Now().Add(time.Minute) }
	b.Check(connectCtx("sessionid=good"))
	if n := calls.Load() - before; n != 4 {
		t.Errorf("cache entry outlived cache_ttl")
	}
	if b2, err := NewBackendChecker(auth.BackendCheckConfig{}, testLogger(t)); b2 != nil || err != nil {
		t.Errorf("empty URL: %v %v, want disabled", b2, err)
	}
}

// djangoSite runs a real Django project (Debian's python3-django) with
// examples/python/herald_auth_view.py, logs a real user in, and returns the
// auth view's URL, the user's id, its session cookie value, and a function
// that stops Django (also run at cleanup).
func djangoSite(t *testing.T) (url, uid, session string, stop func()) {
	t.Helper()
	py := ""
	for _, p := range []string{"/usr/bin/python3", "python3"} {
		if exec.Command(p, "-c", "import django").Run() == nil {
			py = p
			break
		}
	}
	if py == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("python3-django is not installed")
		}
		t.Skip("python3-django is not installed")
	}
	dir := t.TempDir()
	run := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(py, args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "DJANGO_SETTINGS_MODULE=proj.settings", "PYTHONPATH="+dir)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	run("-m", "django", "startproject", "proj", dir)
	view, err := os.ReadFile("../examples/python/herald_auth_view.py")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "herald_auth_view.py"), view, 0o644); err != nil {
		t.Fatal(err)
	}
	urls := "from django.urls import path\nfrom herald_auth_view import herald_auth\nurlpatterns = [path(\"herald/auth/\", herald_auth)]\n"
	if err := os.WriteFile(filepath.Join(dir, "proj", "urls.py"), []byte(urls), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(filepath.Join(dir, "proj", "settings.py"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("\nALLOWED_HOSTS = ['127.0.0.1', 'localhost']\n")
	f.Close()
	run("manage.py", "migrate", "-v", "0")
	out := run("manage.py", "shell", "-c", `
from django.contrib.auth.models import User
from django.test import Client
u = User.objects.create_user("alice", password="s3cret-pass")
c = Client()
assert c.login(username="alice", password="s3cret-pass")
print(u.pk, c.cookies["sessionid"].value)`)
	if _, err := fmt.Sscan(strings.TrimSpace(out), &uid, &session); err != nil || session == "" {
		t.Fatalf("login output %q: %v", out, err)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	server := exec.Command(py, "manage.py", "runserver", addr, "--noreload")
	server.Dir = dir
	server.Env = append(os.Environ(), "PYTHONPATH="+dir)
	if err := server.Start(); err != nil {
		t.Fatal(err)
	}
	stopped := false
	stop = func() {
		if !stopped {
			stopped = true
			server.Process.Kill()
			server.Wait()
		}
	}
	t.Cleanup(stop)
	for deadline := time.Now().Add(20 * time.Second); ; {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("runserver did not start")
		}
		time.Sleep(50 * time.Millisecond)
	}

	return "http://" + addr + "/herald/auth/", uid, session, stop
}

// TestBackendCheckDjango runs a real Django project with
// examples/python/herald_auth_view.py, logs a real user in to get a real
// session cookie, and checks Herald admits it as that user, refuses a
// forged session, and refuses when Django is down.
func TestBackendCheckDjango(t *testing.T) {
	url, uid, session, stop := djangoSite(t)
	b := newChecker(t, url, nil)
	got, err := b.Check(connectCtx("sessionid=" + session + "; theme=dark"))
	if err != nil || got.UserID != uid {
		t.Fatalf("real session: %+v %v, want user %s", got, err, uid)
	}
	if _, err := b.Check(connectCtx("sessionid=forged0123456789abcdefghijklmnop")); reasonOf(err) != ReasonBackendRefused {
		t.Errorf("forged session: %v, want %s", err, ReasonBackendRefused)
	}
	if _, err := b.Check(connectCtx("")); reasonOf(err) != ReasonNoSession {
		t.Errorf("no cookie: %v", err)
	}
	stop()
	// Cached: the logged-in user is still admitted for cache_ttl; others
	// are refused because Django does not answer.
	if got, err := b.Check(connectCtx("sessionid=" + session)); err != nil || got.UserID != uid {
		t.Errorf("cached session after Django stopped: %+v %v", got, err)
	}
	if _, err := b.Check(connectCtx("sessionid=another-session-abcdefghijkl")); reasonOf(err) != ReasonBackendUnavailable {
		t.Errorf("Django down: %v, want %s", err, ReasonBackendUnavailable)
	}
}

// TestDjangoSessionCookieConnect: the Django Channels path end to end. A
// browser that sends only its Django session cookie (no token) connects
// over WebSocket and SSE; Herald asks the real Django (auth.backend_check)
// who it is, and the connection is that user's: it is announced as that
// user and receives what is published to them. A forged cookie and no
// cookie are refused with 401 and the reason.
func TestDjangoSessionCookieConnect(t *testing.T) {
	url, uid, session, _ := djangoSite(t)
	ts := startServer(t, func(c *config.Config) { c.Auth.BackendCheck.URL = url })
	cookie := http.Header{"Cookie": {"sessionid=" + session + "; theme=dark"}}

	ws, resp, err := ts.dialWS(t, "", cookie)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("ws with the session cookie: %v (status %d)", err, status)
	}
	if m := readWSJSON(t, ws); m["type"] != "connection_established" || fmt.Sprint(m["user_id"]) != uid {
		t.Fatalf("ws: first message %v, want user %s", m, uid)
	}
	req, _ := http.NewRequest("GET", "http://"+ts.addr+"/sse/notifications/", nil)
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Cookie", cookie.Get("Cookie"))
	sresp, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Do(req)
	if err != nil || sresp.StatusCode != 200 {
		t.Fatalf("sse with the session cookie: %v %v", err, sresp)
	}
	sse := newSSEClient(sresp)
	t.Cleanup(func() { sresp.Body.Close() })
	if _, m := sse.nextJSON(t); m["type"] != "connection_established" || fmt.Sprint(m["user_id"]) != uid {
		t.Fatalf("sse: first event %v, want user %s", m, uid)
	}
	ts.publishTo(t, uid, `{"type":"hello","n":1}`)
	if got := string(readWS(t, ws)); got != `{"type":"hello","n":1}` {
		t.Fatalf("ws got %s", got)
	}
	if ev := sse.next(t); ev.Data != `{"type":"hello","n":1}` {
		t.Fatalf("sse got %s", ev.Data)
	}

	forged := http.Header{"Cookie": {"sessionid=forged0123456789abcdefghijklmnop"}}
	refusedBoth(t, ts, "", forged, 401, ReasonBackendRefused)
	refusedBoth(t, ts, "", nil, 401, ReasonNoSession)
}
