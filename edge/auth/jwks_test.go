package auth

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func b64b(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// jwkOf returns the JWK of a public key, with kid and (when not empty) alg.
func jwkOf(t testing.TB, kid, alg string, pub any) map[string]any {
	t.Helper()
	m := map[string]any{"kid": kid}
	if alg != "" {
		m["alg"] = alg
	}
	switch k := pub.(type) {
	case *rsa.PublicKey:
		m["kty"], m["n"], m["e"] = "RSA", b64b(k.N.Bytes()), b64b(big.NewInt(int64(k.E)).Bytes())
	case *ecdsa.PublicKey:
		e, err := k.ECDH()
		if err != nil {
			t.Fatal(err)
		}
		b := e.Bytes()[1:]
		n := len(b) / 2
		m["kty"], m["crv"], m["x"], m["y"] = "EC", k.Curve.Params().Name, b64b(b[:n]), b64b(b[n:])
	case ed25519.PublicKey:
		m["kty"], m["crv"], m["x"] = "OKP", "Ed25519", b64b(k)
	default:
		t.Fatalf("jwkOf: %T", pub)
	}
	return m
}

func jwksDoc(t testing.TB, keys ...map[string]any) []byte {
	t.Helper()
	if keys == nil {
		keys = []map[string]any{}
	}
	b, err := json.Marshal(map[string]any{"keys": keys})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// jwksServer serves a JWKS document that tests may change, or an error.
type jwksServer struct {
	*httptest.Server
	hits   atomic.Int64
	mu     sync.Mutex
	doc    []byte
	status int
}

func newJWKSServer(t testing.TB, doc []byte) *jwksServer {
	s := &jwksServer{doc: doc, status: http.StatusOK}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		s.mu.Lock()
		doc, status := s.doc, s.status
		s.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = w.Write(doc)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) set(status int, doc []byte) {
	s.mu.Lock()
	s.status, s.doc = status, doc
	s.mu.Unlock()
}

func newEC(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func es256(t testing.TB, k *ecdsa.PrivateKey, kid string) string {
	t.Helper()
	h := map[string]any{}
	if kid != "" {
		h["kid"] = kid
	}
	return sign(t, jwt.SigningMethodES256, k, claims("u1"), h)
}

func newClosing(t testing.TB, cfg Config) *Verifier {
	t.Helper()
	v := mustNew(t, cfg)
	t.Cleanup(func() { _ = v.Close() })
	return v
}

func wantOK(t testing.TB, v *Verifier, tok, what string) {
	t.Helper()
	if _, err := v.Verify(tok); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func wantReason(t testing.TB, v *Verifier, tok, reason, what string) {
	t.Helper()
	if _, err := v.Verify(tok); reasonOf(err) != reason {
		t.Fatalf("%s: got %v, want %s", what, err, reason)
	}
}

// eventually polls cond for up to 5 s.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting: %s", what)
}

func TestJWKSURLRotation(t *testing.T) {
	a, b := newEC(t), newEC(t)
	srv := newJWKSServer(t, jwksDoc(t, jwkOf(t, "a", "ES256", &a.PublicKey)))
	v := newClosing(t, Config{JWKSURL: srv.URL, JWKSRefresh: time.Hour, jwksMinForced: time.Millisecond})
	if n := srv.hits.Load(); n != 1 {
		t.Fatalf("New fetched %d times, want 1", n)
	}
	tokA, tokB := es256(t, a, "a"), es256(t, b, "b")
	wantOK(t, v, tokA, "old key")
	wantOK(t, v, es256(t, a, ""), "old key, no kid")

	// The new key is published: a token naming it works at once.
	srv.set(200, jwksDoc(t, jwkOf(t, "a", "ES256", &a.PublicKey), jwkOf(t, "b", "ES256", &b.PublicKey)))
	wantOK(t, v, tokB, "new kid (forced refresh)")
	wantOK(t, v, tokA, "old key during rotation")
	if n := srv.hits.Load(); n != 2 {
		t.Fatalf("server hits = %d, want 2", n)
	}

	// The old key is withdrawn: it works until the next refresh...
	srv.set(200, jwksDoc(t, jwkOf(t, "b", "ES256", &b.PublicKey)))
	wantOK(t, v, tokA, "old key before refresh")
	// ...which an unknown kid forces here, once the forced-refresh rate
	// limit (1 ms here) has passed since the refresh for "b": on a fast
	// machine both can fall within the same millisecond.
	time.Sleep(10 * time.Millisecond)
	wantReason(t, v, es256(t, newEC(t), "c"), ReasonInvalidSignature, "unknown key")
	wantReason(t, v, tokA, ReasonInvalidSignature, "withdrawn key")
	wantReason(t, v, es256(t, a, ""), ReasonInvalidSignature, "withdrawn key, no kid")
	wantOK(t, v, tokB, "new key")
	// Wrong algorithm for the published key.
	wantReason(t, v, sign(t, jwt.SigningMethodES384, keys().ec384, claims("u1"), map[string]any{"kid": "b"}),
		ReasonUnsupportedAlgorithm, "ES384 with only a P-256 key")
}

func TestJWKSPeriodicRefresh(t *testing.T) {
	a, b := newEC(t), newEC(t)
	srv := newJWKSServer(t, jwksDoc(t, jwkOf(t, "a", "", &a.PublicKey)))
	v := newClosing(t, Config{JWKSURL: srv.URL, JWKSRefresh: 20 * time.Millisecond})
	wantOK(t, v, es256(t, a, "a"), "key a")
	srv.set(200, jwksDoc(t, jwkOf(t, "b", "", &b.PublicKey)))
	// No kid: no forced refresh, only the periodic one picks b up.
	eventually(t, "periodic refresh", func() bool { _, err := v.Verify(es256(t, b, "")); return err == nil })
	wantReason(t, v, es256(t, a, ""), ReasonInvalidSignature, "key a after refresh")
}

func TestJWKSForcedRefreshRateLimit(t *testing.T) {
	a := newEC(t)
	srv := newJWKSServer(t, jwksDoc(t, jwkOf(t, "a", "ES256", &a.PublicKey)))
	v := newClosing(t, Config{JWKSURL: srv.URL, JWKSRefresh: time.Hour})
	unknown := es256(t, newEC(t), "unknown")
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() { wantReason(t, v, unknown, ReasonInvalidSignature, "unknown kid") })
	}
	wg.Wait()
	for range 5 {
		wantReason(t, v, unknown, ReasonInvalidSignature, "unknown kid")
	}
	if n := srv.hits.Load(); n != 2 {
		t.Fatalf("server hits = %d, want 2 (startup + one forced refresh per %s)", n, JWKSForcedRefreshInterval)
	}
	// Known kids never force a refresh.
	for range 5 {
		wantOK(t, v, es256(t, a, "a"), "known kid")
	}
	if n := srv.hits.Load(); n != 2 {
		t.Fatalf("server hits = %d after known kids, want 2", n)
	}

	// With a short interval, a later unknown kid refreshes again.
	srv2 := newJWKSServer(t, jwksDoc(t, jwkOf(t, "a", "ES256", &a.PublicKey)))
	v2 := newClosing(t, Config{JWKSURL: srv2.URL, JWKSRefresh: time.Hour, jwksMinForced: 200 * time.Millisecond})
	v2.Verify(unknown)
	v2.Verify(unknown)
	if n := srv2.hits.Load(); n != 2 {
		t.Fatalf("server hits = %d, want 2", n)
	}
	time.Sleep(250 * time.Millisecond)
	v2.Verify(unknown)
	v2.Verify(unknown)
	if n := srv2.hits.Load(); n != 3 {
		t.Fatalf("server hits = %d after the interval, want 3", n)
	}
}

func TestJWKSKeepsLastGoodSet(t *testing.T) {
	a := newEC(t)
	good := jwksDoc(t, jwkOf(t, "a", "ES256", &a.PublicKey))
	srv := newJWKSServer(t, good)
	var logs bytes.Buffer
	var logMu sync.Mutex
	logger := slog.New(slog.NewTextHandler(&lockedWriter{w: &logs, mu: &logMu}, nil))
	v := newClosing(t, Config{JWKSURL: srv.URL, JWKSRefresh: time.Hour, jwksMinForced: time.Millisecond, Logger: logger})
	tok := es256(t, a, "a")
	for _, c := range []struct {
		name   string
		status int
		doc    []byte
		err    string
	}{
		{"500", 500, []byte("oops"), "HTTP status 500"},
		{"garbage", 200, []byte("<html>"), "not a JSON object"},
		{"no keys", 200, []byte(`{"kes":[]}`), `no "keys" array`},
		{"bad key", 200, []byte(`{"keys":[{"kty":"EC","crv":"P-256","x":"AA","y":"AA","kid":"z"}]}`), `keys[0]: kid "z": invalid EC key`},
		{"too big", 200, append(append([]byte(`{"keys":[],"pad":"`), bytes.Repeat([]byte("x"), MaxJWKSSize)...), '"', '}'), "larger than"},
	} {
		srv.set(c.status, c.doc)
		err := v.jwks[0].refresh(context.Background())
		if err == nil || !strings.Contains(err.Error(), c.err) || !strings.Contains(err.Error(), "auth.jwt.jwks_url") {
			t.Errorf("%s: refresh error %v, want it to contain %q", c.name, err, c.err)
		}
		wantOK(t, v, tok, c.name+": last good key")
		// A forced refresh that fails is logged and changes nothing.
		wantReason(t, v, es256(t, newEC(t), "other-"+c.name), ReasonInvalidSignature, c.name)
	}
	logMu.Lock()
	if !strings.Contains(logs.String(), "keeping the last good key set") {
		t.Errorf("no failure logged: %s", logs.String())
	}
	logMu.Unlock()
}

type lockedWriter struct {
	w  *bytes.Buffer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func TestJWKSUnavailableAtStartup(t *testing.T) {
	a := newEC(t)
	srv := newJWKSServer(t, []byte("down"))
	srv.set(503, []byte("down"))
	var logs bytes.Buffer
	var logMu sync.Mutex
	logger := slog.New(slog.NewTextHandler(&lockedWriter{w: &logs, mu: &logMu}, nil))
	v := newClosing(t, Config{JWKSURL: srv.URL, Logger: logger, jwksMinForced: time.Hour})
	logMu.Lock()
	if !strings.Contains(logs.String(), "JWKS unavailable at startup") {
		t.Errorf("startup failure not logged: %s", logs.String())
	}
	logMu.Unlock()
	tok := es256(t, a, "") // no kid: no forced refresh
	wantReason(t, v, tok, ReasonUnsupportedAlgorithm, "no keys yet")
	srv.set(200, jwksDoc(t, jwkOf(t, "a", "ES256", &a.PublicKey)))
	// The background retry (1 s backoff) picks the keys up.
	eventually(t, "background retry", func() bool { _, err := v.Verify(tok); return err == nil })
	if n := srv.hits.Load(); n != 2 {
		t.Errorf("server hits = %d, want 2 (startup, one retry)", n)
	}

	// An unreachable URL does not block New beyond the fetch timeout.
	dead := httptest.NewServer(http.NotFoundHandler())
	url := dead.URL
	dead.Close()
	start := time.Now()
	v2 := newClosing(t, Config{JWKSURL: url})
	if d := time.Since(start); d > JWKSFetchTimeout+time.Second {
		t.Errorf("New took %s", d)
	}
	if err := v2.Close(); err != nil {
		t.Fatal(err)
	}
	_ = v2.Close() // idempotent
}

func TestJWKSFileReload(t *testing.T) {
	a, b := newEC(t), newEC(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "jwks.json")
	mtime := time.Now().Add(-time.Hour)
	write := func(doc []byte) {
		t.Helper()
		if err := os.WriteFile(path, doc, 0o600); err != nil {
			t.Fatal(err)
		}
		mtime = mtime.Add(time.Minute) // coarse file system clocks
		if err := os.Chtimes(path, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	write(jwksDoc(t, jwkOf(t, "a", "ES256", &a.PublicKey)))
	v := newClosing(t, Config{JWKSFile: path, jwksFileCheck: 10 * time.Millisecond})
	tokA, tokB := es256(t, a, "a"), es256(t, b, "b")
	wantOK(t, v, tokA, "key a")
	wantReason(t, v, tokB, ReasonInvalidSignature, "key b before reload")

	write(jwksDoc(t, jwkOf(t, "b", "ES256", &b.PublicKey)))
	eventually(t, "file reload", func() bool { _, err := v.Verify(tokB); return err == nil })
	wantReason(t, v, tokA, ReasonInvalidSignature, "key a after reload")

	// A broken version keeps the last good set.
	write([]byte(`{"keys": [`))
	loads := v.jwks[0].fetches.Load()
	eventually(t, "broken file read", func() bool { return v.jwks[0].fetches.Load() > loads })
	wantOK(t, v, tokB, "key b after a broken file")

	// A bad file at startup is a configuration error.
	for _, bad := range []string{filepath.Join(dir, "missing.json"), writeFile(t, dir, "bad.json", []byte(`{"keys":{}}`))} {
		if _, err := New(Config{JWKSFile: bad}); err == nil || !strings.Contains(err.Error(), "auth.jwt.jwks_file") {
			t.Errorf("JWKSFile %s: error %v, want one naming auth.jwt.jwks_file", bad, err)
		}
	}
}

func TestParseJWKS(t *testing.T) {
	k := keys()
	ok := jwksDoc(t,
		jwkOf(t, "rsa", "RS256", &k.rsa.PublicKey),
		jwkOf(t, "rsa-any", "", &k.rsa2.PublicKey),
		jwkOf(t, "ec", "ES256", &k.ec256.PublicKey),
		jwkOf(t, "ec384", "", &k.ec384.PublicKey),
		jwkOf(t, "ed", "EdDSA", k.ed.Public()),
		map[string]any{"kty": "oct", "k": "c2VjcmV0"},
		map[string]any{"kty": "RSA", "use": "enc", "n": "AQAB", "e": "AQAB"},
		map[string]any{"kty": "foo"},
	)
	set, err := parseJWKS(ok)
	if err != nil {
		t.Fatal(err)
	}
	if len(set.keys) != 5 {
		t.Fatalf("got %d keys, want 5", len(set.keys))
	}
	want := map[string]string{"rsa": "RS256", "rsa-any": "PS512", "ec": "ES256", "ec384": "ES384", "ed": "EdDSA"}
	for id, alg := range want {
		ks := set.byID[id]
		if len(ks) != 1 || !ks[0].fits(jwt.GetSigningMethod(alg)) {
			t.Errorf("key %s does not verify %s", id, alg)
		}
	}
	if set.byID["rsa"][0].fits(jwt.SigningMethodPS256) {
		t.Error(`key with "alg":"RS256" verifies PS256`)
	}
	if set.byID["rsa"][0].fits(jwt.SigningMethodHS256) {
		t.Error("RSA key verifies HS256")
	}

	// A declared RS256 key refuses PS256 tokens end to end.
	srv := newJWKSServer(t, jwksDoc(t, jwkOf(t, "rsa", "RS256", &k.rsa.PublicKey)))
	v := newClosing(t, Config{JWKSURL: srv.URL})
	wantOK(t, v, sign(t, jwt.SigningMethodRS256, k.rsa, claims("u1"), map[string]any{"kid": "rsa"}), "RS256")
	wantReason(t, v, sign(t, jwt.SigningMethodPS256, k.rsa, claims("u1"), map[string]any{"kid": "rsa"}),
		ReasonUnsupportedAlgorithm, "PS256 with an RS256 key")

	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	ec := jwkOf(t, "e", "", &k.ec256.PublicKey)
	with := func(m map[string]any, kv ...any) []byte {
		c := map[string]any{}
		for k, v := range m {
			c[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			if kv[i+1] == nil {
				delete(c, kv[i].(string))
			} else {
				c[kv[i].(string)] = kv[i+1]
			}
		}
		return jwksDoc(t, c)
	}
	otherY := jwkOf(t, "", "", &newEC(t).PublicKey)["y"]
	for _, c := range []struct {
		name string
		doc  []byte
		err  string
	}{
		{"empty", nil, "not a JSON object"},
		{"array", []byte(`[]`), "not a JSON object"},
		{"null keys", []byte(`{"keys":null}`), `no "keys" array`},
		{"keys object", []byte(`{"keys":{}}`), "not a JSON object"},
		{"key not object", []byte(`{"keys":[1]}`), "keys[0]: not a JSON Web Key object"},
		{"no kty", []byte(`{"keys":[{"kid":"x"}]}`), `keys[0]: kid "x": missing "kty"`},
		{"kty number", []byte(`{"keys":[{"kty":1}]}`), "keys[0]: not a JSON Web Key object"},
		{"ec no y", with(ec, "y", nil), `kid "e": invalid EC key`},
		{"ec off curve", with(ec, "y", otherY), `kid "e": invalid EC key`},
		{"ec bad base64", with(ec, "x", "!!!"), `kid "e": invalid EC key`},
		{"ec bad curve", with(ec, "crv", "P-224"), `kid "e": invalid EC key`},
		{"ec curve mismatch", with(ec, "crv", "P-384"), `kid "e": invalid EC key`},
		{"ec alg mismatch", with(ec, "alg", "ES384"), `"alg" "ES384" does not fit a EC key`},
		{"ec alg hmac", with(ec, "alg", "HS256"), `"alg" "HS256" does not fit`},
		{"ec private", with(ec, "d", "AAAA"), "private key material"},
		{"rsa small", jwksDoc(t, jwkOf(t, "s", "", &small.PublicKey)), "at least 2048 are required"},
		{"rsa no e", with(jwkOf(t, "r", "", &k.rsa.PublicKey), "e", nil), `kid "r": invalid RSA key`},
		{"rsa alg es", with(jwkOf(t, "r", "", &k.rsa.PublicKey), "alg", "ES256"), `"alg" "ES256" does not fit a RSA key`},
		{"okp x448", []byte(`{"keys":[{"kty":"OKP","crv":"X25519","x":"AAAA"}]}`), "unsupported OKP curve"},
		{"okp short", []byte(`{"keys":[{"kty":"OKP","crv":"Ed25519","x":"AAAA"}]}`), "invalid OKP key"},
	} {
		_, err := parseJWKS(c.doc)
		if err == nil || !strings.Contains(err.Error(), c.err) {
			t.Errorf("%s: error %v, want it to contain %q", c.name, err, c.err)
		}
	}
}

func TestNewJWKSConfigErrors(t *testing.T) {
	for _, c := range []struct {
		cfg Config
		err string
	}{
		{Config{JWKSURL: "ftp://x"}, "auth.jwt.jwks_url"},
		{Config{JWKSURL: "http://127.0.0.1:1", JWKSRefresh: -time.Second}, "auth.jwt.jwks_refresh"},
	} {
		if _, err := New(c.cfg); err == nil || !strings.Contains(err.Error(), c.err) {
			t.Errorf("%+v: error %v, want %q", c.cfg, err, c.err)
		}
	}
}

func FuzzParseJWKS(f *testing.F) {
	k := keys()
	f.Add(jwksDoc(f, jwkOf(f, "rsa", "RS256", &k.rsa.PublicKey), jwkOf(f, "ec", "", &k.ec384.PublicKey), jwkOf(f, "ed", "", k.ed.Public())))
	f.Add([]byte(`{"keys":[{"kty":"oct","k":"AA"}]}`))
	f.Add([]byte(`{"keys":[{"kty":"EC","crv":"P-256","x":"AA","y":"AA"}]}`))
	f.Add([]byte(`{"keys":[{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}`))
	f.Add([]byte(`{"keys":[{"kty":"RSA","n":"AQAB","e":"AQAB"}]}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, data []byte) {
		set, err := parseJWKS(data)
		if err != nil {
			if set != nil {
				t.Fatal("set with error")
			}
			return
		}
		for _, key := range set.keys {
			if len(key.algs) == 0 {
				t.Fatal("key without algorithms")
			}
			for _, alg := range key.algs {
				m := jwt.GetSigningMethod(alg)
				if m == nil || !keyFits(m, key.key) {
					t.Fatalf("key %T filed under %s", key.key, alg)
				}
			}
		}
	})
}
