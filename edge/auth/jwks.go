package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"
)

// JWKS limits and defaults.
const (
	// DefaultJWKSRefresh is the periodic refresh interval of a JWKS URL
	// when Config.JWKSRefresh is zero.
	DefaultJWKSRefresh = 5 * time.Minute
	// JWKSFetchTimeout bounds one fetch of a JWKS URL, the first one in New
	// included.
	JWKSFetchTimeout = 5 * time.Second
	// MaxJWKSSize is the largest JWKS document accepted, in bytes.
	MaxJWKSSize = 1 << 20
	// JWKSForcedRefreshInterval is the shortest time between two refreshes
	// of a JWKS URL forced by tokens with an unknown "kid".
	JWKSForcedRefreshInterval = 30 * time.Second
	// JWKSFileCheckInterval is how often the modification time of
	// Config.JWKSFile is checked.
	JWKSFileCheckInterval = 10 * time.Second
)

// jwk is one usable verification key from a JWKS document.
type jwk struct {
	id   string   // "kid"; may be empty
	key  any      // *rsa.PublicKey, *ecdsa.PublicKey or ed25519.PublicKey
	algs []string // JWS algorithms the key may verify
}

// fits reports whether k may verify a token of method m: m's algorithm is
// one of k's and k is of the type m needs.
func (k *jwk) fits(m jwt.SigningMethod) bool {
	return slices.Contains(k.algs, m.Alg()) && keyFits(m, k.key)
}

// jwkSet is an immutable parsed JWKS document.
type jwkSet struct {
	keys []*jwk
	byID map[string][]*jwk
}

func newJWKSet(keys []*jwk) *jwkSet {
	s := &jwkSet{keys: keys, byID: make(map[string][]*jwk)}
	for _, k := range keys {
		if k.id != "" {
			s.byID[k.id] = append(s.byID[k.id], k)
		}
	}
	return s
}

// parseJWKS parses a JSON Web Key Set (RFC 7517) and returns its
// verification keys. The document must be a JSON object with a "keys"
// array of objects. Keys whose "kty" Herald does not verify with ("oct"
// HMAC keys, which must never come from a public key set, and unknown
// types) and keys whose "use" is not "sig" are ignored. Any other key must
// be a valid RSA (n, e; at least 2048 bits), EC (crv P-256, P-384 or P-521,
// x, y, a point on the curve) or OKP Ed25519 (x) public key, must not hold
// private members, and its "alg", when present, must be one the key
// verifies; otherwise the whole document is refused, so that a broken
// document never replaces a good one.
func parseJWKS(data []byte) (*jwkSet, error) {
	var doc struct {
		Keys *[]json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("JWKS is not a JSON object: %w", err)
	}
	if doc.Keys == nil {
		return nil, errors.New(`JWKS has no "keys" array`)
	}
	var out []*jwk
	for i, raw := range *doc.Keys {
		k, err := parseJWK(raw)
		if err != nil {
			return nil, fmt.Errorf("JWKS keys[%d]: %w", i, err)
		}
		if k != nil {
			out = append(out, k)
		}
	}
	return newJWKSet(out), nil
}

// parseJWK parses one key of a JWKS; it returns nil, nil for a key to
// ignore.
func parseJWK(raw json.RawMessage) (*jwk, error) {
	var m jwkset.JWKMarshal
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("not a JSON Web Key object: %w", err)
	}
	where := ""
	if m.KID != "" {
		where = fmt.Sprintf("kid %q: ", m.KID)
	}
	switch m.KTY {
	case jwkset.KtyRSA, jwkset.KtyEC, jwkset.KtyOKP:
	case "":
		return nil, fmt.Errorf(`%smissing "kty"`, where)
	default:
		return nil, nil // "oct" and unknown key types
	}
	if m.USE != "" && m.USE != jwkset.UseSig {
		return nil, nil
	}
	if m.D != "" || m.P != "" || m.Q != "" || m.DP != "" || m.DQ != "" || m.QI != "" || len(m.OTH) > 0 {
		return nil, fmt.Errorf("%sholds private key material; publish public keys only", where)
	}
	if m.KTY == jwkset.KtyOKP && m.CRV != jwkset.CrvEd25519 {
		return nil, fmt.Errorf("%sunsupported OKP curve %q (want Ed25519)", where, m.CRV)
	}
	// Certificates (x5c, x5u) are not used: only the key parameters are,
	// and remote x5u fetching is never wanted here.
	m.X5C, m.X5U, m.X5T, m.X5TS256 = nil, "", "", ""
	j, err := jwkset.NewJWKFromMarshal(m, jwkset.JWKMarshalOptions{}, jwkset.JWKValidateOptions{})
	if err != nil {
		return nil, fmt.Errorf("%sinvalid %s key: %w", where, m.KTY, err)
	}
	key := j.Key()
	algs, err := keyAlgorithms(key)
	if err != nil {
		return nil, fmt.Errorf("%s%w", where, err)
	}
	if m.ALG != "" {
		alg := string(m.ALG)
		if !slices.Contains(algs, alg) {
			return nil, fmt.Errorf("%s\"alg\" %q does not fit a %s key (it verifies %v)", where, alg, m.KTY, algs)
		}
		algs = []string{alg}
	}
	return &jwk{id: m.KID, key: key, algs: algs}, nil
}

// jwksSource keeps the last good key set of a JWKS URL or file up to date.
type jwksSource struct {
	name   string // configuration key, for logs: auth.jwt.jwks_url or auth.jwt.jwks_file
	where  string // the URL or path
	log    *slog.Logger
	load   func(ctx context.Context) ([]byte, error)
	set    atomic.Pointer[jwkSet]
	client *http.Client

	// Forced refreshes (URL only).
	minForced time.Duration
	mu        sync.Mutex
	lastForce time.Time
	inflight  chan struct{} // closed when the running forced refresh ends

	fetches atomic.Int64 // loads attempted, for tests
}

// keys returns the current set; never nil.
func (s *jwksSource) keys() *jwkSet {
	if p := s.set.Load(); p != nil {
		return p
	}
	return &jwkSet{}
}

// refresh loads and parses the document and, when it is good, makes it the
// current set. A failure keeps the previous set.
func (s *jwksSource) refresh(ctx context.Context) error {
	s.fetches.Add(1)
	data, err := s.load(ctx)
	if err == nil {
		var set *jwkSet
		if set, err = parseJWKS(data); err == nil {
			s.set.Store(set)
			return nil
		}
	}
	return fmt.Errorf("%s: %s: %w", s.name, s.where, err)
}

// forceRefresh refreshes a URL source for a token with an unknown kid, at
// most once per minForced; callers arriving while such a refresh runs wait
// for it (bounded by JWKSFetchTimeout).
func (s *jwksSource) forceRefresh() {
	s.mu.Lock()
	if wait := s.inflight; wait != nil {
		s.mu.Unlock()
		<-wait
		return
	}
	if !s.lastForce.IsZero() && time.Since(s.lastForce) < s.minForced {
		s.mu.Unlock()
		return
	}
	s.lastForce = time.Now()
	done := make(chan struct{})
	s.inflight = done
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.inflight = nil
		s.mu.Unlock()
		close(done)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), JWKSFetchTimeout)
	defer cancel()
	if err := s.refresh(ctx); err != nil {
		s.log.Warn("JWKS refresh for unknown kid failed; keeping the last good key set", "err", err)
	}
}

// fetchURL returns a load function that GETs url.
func fetchURL(client *http.Client, url string) func(ctx context.Context) ([]byte, error) {
	return func(ctx context.Context) ([]byte, error) {
		ctx, cancel := context.WithTimeout(ctx, JWKSFetchTimeout)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Accept", "application/jwk-set+json, application/json")
		resp, err := client.Do(req)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
			return nil, fmt.Errorf("HTTP status %s", resp.Status)
		}
		data, err := io.ReadAll(io.LimitReader(resp.Body, MaxJWKSSize+1))
		if err != nil {
			return nil, err
		}
		if len(data) > MaxJWKSSize {
			return nil, fmt.Errorf("JWKS is larger than %d bytes", MaxJWKSSize)
		}
		return data, nil
	}
}

// readFile returns a load function that reads path.
func readFile(path string) func(context.Context) ([]byte, error) {
	return func(context.Context) ([]byte, error) {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		data, err := io.ReadAll(io.LimitReader(f, MaxJWKSSize+1))
		if err != nil {
			return nil, err
		}
		if len(data) > MaxJWKSSize {
			return nil, fmt.Errorf("JWKS is larger than %d bytes", MaxJWKSSize)
		}
		return data, nil
	}
}

// runURL refreshes a URL source every interval until ctx ends. While the
// source has never loaded it retries sooner, backing off from one second
// up to interval.
func (s *jwksSource) runURL(ctx context.Context, interval time.Duration, loaded bool) {
	backoff := time.Second
	for {
		wait := interval
		if !loaded {
			wait = min(backoff, interval)
			backoff *= 2
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		if err := s.refresh(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			s.log.Warn("JWKS refresh failed; keeping the last good key set", "err", err)
			continue
		}
		if !loaded {
			s.log.Info("JWKS loaded", "source", s.name, "url", s.where, "keys", len(s.keys().keys))
		}
		loaded = true
	}
}

// runFile reloads a file source whenever its modification time or size
// changes, checking every interval, until ctx ends.
func (s *jwksSource) runFile(ctx context.Context, interval time.Duration, mod time.Time, size int64) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		fi, err := os.Stat(s.where)
		if err != nil {
			s.log.Warn("JWKS file check failed; keeping the last good key set", "source", s.name, "path", s.where, "err", err)
			continue
		}
		if fi.ModTime().Equal(mod) && fi.Size() == size {
			continue
		}
		mod, size = fi.ModTime(), fi.Size()
		if err := s.refresh(ctx); err != nil {
			s.log.Warn("JWKS file reload failed; keeping the last good key set", "err", err)
			continue
		}
		s.log.Info("JWKS file reloaded", "path", s.where, "keys", len(s.keys().keys))
	}
}

// startJWKS sets up cfg's JWKS URL and file sources. It fails only on a
// bad file: an unreachable or broken URL starts with an empty set and is
// retried in the background.
func (v *Verifier) startJWKS(cfg *Config) error {
	if cfg.JWKSURL == "" && cfg.JWKSFile == "" {
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	v.stop = cancel
	if cfg.JWKSFile != "" {
		s := &jwksSource{name: "auth.jwt.jwks_file", where: cfg.JWKSFile, log: v.log, load: readFile(cfg.JWKSFile)}
		fi, err := os.Stat(cfg.JWKSFile)
		if err == nil {
			err = s.refresh(ctx)
		}
		if err != nil {
			cancel()
			return fmt.Errorf("auth.jwt.jwks_file: %w", err)
		}
		v.jwks = append(v.jwks, s)
		v.wg.Go(func() { s.runFile(ctx, cfg.jwksFileCheck, fi.ModTime(), fi.Size()) })
	}
	if cfg.JWKSURL != "" {
		client := &http.Client{Timeout: JWKSFetchTimeout}
		s := &jwksSource{name: "auth.jwt.jwks_url", where: cfg.JWKSURL, log: v.log,
			load: fetchURL(client, cfg.JWKSURL), client: client, minForced: cfg.jwksMinForced}
		loaded := true
		if err := s.refresh(ctx); err != nil {
			loaded = false
			v.log.Error("JWKS unavailable at startup; starting without its keys and retrying in the background", "err", err)
		}
		v.jwks = append(v.jwks, s)
		v.wg.Go(func() { s.runURL(ctx, cfg.JWKSRefresh, loaded) })
	}
	return nil
}

// Close stops the background refresh of the JWKS sources and waits for it
// to end. It is safe to call more than once; the Verifier keeps verifying
// with the last key sets.
func (v *Verifier) Close() error {
	if v.stop != nil {
		v.stop()
	}
	v.wg.Wait()
	return nil
}

// jwksKeys returns the JWKS keys that fit m: those with id kid when kid is
// not empty, else all.
func (v *Verifier) jwksKeys(m jwt.SigningMethod, kid string, dst []any) []any {
	for _, s := range v.jwks {
		set := s.keys()
		list := set.keys
		if kid != "" {
			list = set.byID[kid]
		}
		for _, k := range list {
			if k.fits(m) {
				dst = append(dst, k.key)
			}
		}
	}
	return dst
}

// jwksHasKid reports whether any JWKS holds a key with id kid, whatever
// its algorithm.
func (v *Verifier) jwksHasKid(kid string) bool {
	for _, s := range v.jwks {
		if len(s.keys().byID[kid]) > 0 {
			return true
		}
	}
	return false
}

// forceJWKSRefresh refreshes the URL sources (rate limited) for an unknown
// kid.
func (v *Verifier) forceJWKSRefresh() {
	for _, s := range v.jwks {
		if s.client != nil {
			s.forceRefresh()
		}
	}
}
