// Package auth authenticates the browsers that connect to Herald.
//
// A connection carries a JWT issued by the application backend, in the
// query string, an "Authorization: Bearer" header or a cookie. A Verifier
// finds it, checks its signature with the configured HMAC secret or public
// keys, checks exp (required), nbf, iat, aud and iss, and extracts the user
// id and the extra channels the token grants.
//
// Algorithms are derived from the configured keys: HS256/384/512 need
// auth.jwt.hmac_secret or hmac_secrets, RS*/PS* an RSA public key,
// ES256/384/512 an ECDSA key on P-256/P-384/P-521, EdDSA an Ed25519 key.
// Public keys come from PEM files and from a JSON Web Key Set URL or file
// that is refreshed in the background (jwks.go), so that keys can rotate
// without logging anybody out. A token whose algorithm has
// no configured key, "none" included, is refused before any signature check,
// and a token is only ever checked against keys of its algorithm's family,
// so an RSA public key can never be used as an HMAC secret.
//
// Every refusal is an *Error whose Reason is a short stable code (the
// Reason* constants) meant for logs, metrics and the JSON error body.
package auth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

const (
	// MaxTokenLen is the longest token accepted, in bytes. Longer tokens
	// are refused as malformed before any decoding.
	MaxTokenLen = 8 << 10
	// MaxChannels is the most channels one token's "channels" claim may
	// grant.
	MaxChannels = 32
	// MaxUserIDLen is the longest user id accepted, in bytes.
	MaxUserIDLen = 128
	// MinSecretLen is the shortest HMAC secret accepted, in bytes.
	MinSecretLen = 32
	// DefaultLeeway is the clock skew tolerated when Config.Leeway is zero.
	DefaultLeeway = 5 * time.Second
)

// Config configures token verification. Zero values mean the documented
// defaults.
type Config struct {
	// HMACSecret enables HS256, HS384 and HS512. When set it must be at
	// least MinSecretLen bytes.
	HMACSecret string
	// HMACSecrets are additional HMAC secrets that verify tokens but are
	// never used by Sign, such as the previous secret while secrets
	// rotate. Each must be at least MinSecretLen bytes. The id of a secret
	// (see HMACKeyID) is the first 8 hex digits of its SHA-256: a token
	// whose header "kid" equals a secret's id is checked against that
	// secret only, any other HS* token against HMACSecret and then each of
	// HMACSecrets in turn.
	HMACSecrets []string
	// JWKSURL is an http(s) URL serving a JSON Web Key Set whose RSA, EC
	// and Ed25519 keys verify RS*/PS*, ES* and EdDSA tokens ("oct" keys
	// are ignored; a key with "alg" verifies only that algorithm). It is
	// fetched by New (at most JWKSFetchTimeout; on failure New still
	// succeeds, logs, and retries in the background), then every
	// JWKSRefresh, and at once (at most once per
	// JWKSForcedRefreshInterval) when a token names a "kid" it lacks. A
	// failed refresh keeps the last good key set. Call Close to stop the
	// refreshes.
	JWKSURL string
	// JWKSRefresh is the refresh interval of JWKSURL; zero means
	// DefaultJWKSRefresh.
	JWKSRefresh time.Duration
	// JWKSFile is a JSON Web Key Set file used like JWKSURL. It must be
	// valid when New runs; it is reloaded when its modification time or
	// size changes, checked every JWKSFileCheckInterval; a bad new version
	// keeps the last good key set.
	JWKSFile string
	// Logger receives JWKS refresh errors and reloads; nil discards them.
	Logger *slog.Logger
	// PublicKeyFiles are PEM files holding a public key ("PUBLIC KEY" or
	// "RSA PUBLIC KEY") or a certificate; the first such block of a file is
	// used. An RSA key (at least 2048 bits) enables RS256/384/512 and
	// PS256/384/512, an ECDSA key ES256 (P-256), ES384 (P-384) or ES512
	// (P-521), an Ed25519 key EdDSA. A key's id is its file's base name
	// without extension; a token whose header "kid" equals it is checked
	// against that key only, any other token against every key of its
	// algorithm. Ids must be unique.
	PublicKeyFiles []string
	// Audience, when set, must be one of the token's "aud" values.
	Audience string
	// Issuer, when set, must equal the token's "iss".
	Issuer string
	// Leeway is the clock skew tolerated on exp, nbf and iat. Zero means
	// DefaultLeeway; it must not be negative (use 1ns for "none").
	Leeway time.Duration
	// UserClaim names the claim holding the user id; default "sub" (use
	// "user_id" for djangorestframework-simplejwt tokens). The claim may be
	// a string or an integral JSON number.
	UserClaim string
	// CookieName is the cookie a token may be sent in; default
	// "herald_token".
	CookieName string
	// QueryParam is the query parameter a token may be sent in; default
	// "token".
	QueryParam string
	// RefusedTokenTypes are token types refused (compared without regard
	// to case with the "typ" header and the "typ" and "token_type"
	// claims); nil means DefaultRefusedTokenTypes, empty refuses none.
	RefusedTokenTypes []string

	// For tests: zero means JWKSForcedRefreshInterval and
	// JWKSFileCheckInterval.
	jwksMinForced, jwksFileCheck time.Duration
}

// Verifier verifies tokens. Build it with New; it is safe for concurrent
// use.
type Verifier struct {
	cfg     Config
	parser  *jwt.Parser
	algs    map[string]*algKeys // by JWS "alg"; only algorithms with a key file
	hmacs   []hmacKey           // HMACSecret first, then HMACSecrets
	methods map[string]bool     // algorithms the parser accepts

	log  *slog.Logger
	jwks []*jwksSource
	stop context.CancelFunc
	wg   sync.WaitGroup
}

// New builds a Verifier from cfg, applying the defaults and loading the key
// files and key sets. Errors name the offending configuration key. When
// cfg has a JWKSURL or JWKSFile, call Close to stop their background
// refresh.
func New(cfg Config) (*Verifier, error) {
	if cfg.Leeway == 0 {
		cfg.Leeway = DefaultLeeway
	}
	if cfg.Leeway < 0 {
		return nil, fmt.Errorf("auth.jwt.leeway: must not be negative, got %s", cfg.Leeway)
	}
	if cfg.UserClaim == "" {
		cfg.UserClaim = DefaultUserClaim
	}
	if cfg.CookieName == "" {
		cfg.CookieName = DefaultCookieName
	}
	if cfg.QueryParam == "" {
		cfg.QueryParam = DefaultQueryParam
	}
	if cfg.JWKSRefresh == 0 {
		cfg.JWKSRefresh = DefaultJWKSRefresh
	}
	if cfg.JWKSRefresh < 0 {
		return nil, fmt.Errorf("auth.jwt.jwks_refresh: must not be negative, got %s", cfg.JWKSRefresh)
	}
	if cfg.jwksMinForced == 0 {
		cfg.jwksMinForced = JWKSForcedRefreshInterval
	}
	if cfg.jwksFileCheck == 0 {
		cfg.jwksFileCheck = JWKSFileCheckInterval
	}
	if cfg.HMACSecret == "" && len(cfg.HMACSecrets) == 0 && len(cfg.PublicKeyFiles) == 0 && cfg.JWKSURL == "" && cfg.JWKSFile == "" {
		return nil, errors.New("auth.jwt: configure hmac_secret or public_key_files (or hmac_secrets, jwks_url, jwks_file)")
	}
	if cfg.HMACSecret != "" && len(cfg.HMACSecret) < MinSecretLen {
		return nil, fmt.Errorf("auth.jwt.hmac_secret: must be at least %d bytes, got %d", MinSecretLen, len(cfg.HMACSecret))
	}
	for i, s := range cfg.HMACSecrets {
		if len(s) < MinSecretLen {
			return nil, fmt.Errorf("auth.jwt.hmac_secrets[%d]: must be at least %d bytes, got %d", i, MinSecretLen, len(s))
		}
	}
	if cfg.JWKSURL != "" && !strings.HasPrefix(cfg.JWKSURL, "https://") && !strings.HasPrefix(cfg.JWKSURL, "http://") {
		return nil, fmt.Errorf("auth.jwt.jwks_url: must be an http:// or https:// URL, got %q", cfg.JWKSURL)
	}
	cfg.PublicKeyFiles = slices.Clone(cfg.PublicKeyFiles)
	cfg.HMACSecrets = slices.Clone(cfg.HMACSecrets)

	v := &Verifier{cfg: cfg, algs: make(map[string]*algKeys), methods: make(map[string]bool), log: cfg.Logger}
	if v.log == nil {
		v.log = slog.New(slog.DiscardHandler)
	}
	bucket := func(alg string) *algKeys {
		ks := v.algs[alg]
		if ks == nil {
			ks = &algKeys{byID: make(map[string]jwt.VerificationKey)}
			v.algs[alg] = ks
		}
		return ks
	}
	for _, s := range append([]string{cfg.HMACSecret}, cfg.HMACSecrets...) {
		if s == "" || slices.ContainsFunc(v.hmacs, func(h hmacKey) bool { return string(h.key) == s }) {
			continue
		}
		v.hmacs = append(v.hmacs, hmacKey{id: HMACKeyID(s), key: []byte(s)})
	}
	if len(v.hmacs) > 0 {
		for _, alg := range []string{"HS256", "HS384", "HS512"} {
			v.methods[alg] = true
		}
	}
	ids := make(map[string]int)
	for i, path := range cfg.PublicKeyFiles {
		k, err := loadPublicKey(path)
		if err != nil {
			return nil, fmt.Errorf("auth.jwt.public_key_files[%d]: %s: %w", i, path, err)
		}
		if j, dup := ids[k.id]; dup {
			return nil, fmt.Errorf("auth.jwt.public_key_files[%d]: %s: key id %q is already used by public_key_files[%d]", i, path, k.id, j)
		}
		ids[k.id] = i
		for _, alg := range k.algs {
			if !keyFits(jwt.GetSigningMethod(alg), k.key) {
				return nil, fmt.Errorf("auth.jwt.public_key_files[%d]: %s: internal error: %T cannot verify %s", i, path, k.key, alg)
			}
			ks := bucket(alg)
			ks.set.Keys = append(ks.set.Keys, k.key)
			ks.byID[k.id] = k.key
		}
	}
	for alg := range v.algs {
		v.methods[alg] = true
	}
	if cfg.JWKSURL != "" || cfg.JWKSFile != "" {
		// The key sets change: accept every asymmetric algorithm here and
		// let keyFunc refuse those without a key.
		for _, alg := range asymmetricAlgs {
			v.methods[alg] = true
		}
	}
	methods := make([]string, 0, len(v.methods))
	for alg := range v.methods {
		methods = append(methods, alg)
	}
	slices.Sort(methods)

	opts := []jwt.ParserOption{
		jwt.WithValidMethods(methods),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(cfg.Leeway),
		jwt.WithIssuedAt(),
		jwt.WithJSONNumber(),
	}
	if cfg.Audience != "" {
		opts = append(opts, jwt.WithAudience(cfg.Audience))
	}
	if cfg.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(cfg.Issuer))
	}
	v.parser = jwt.NewParser(opts...)
	if err := v.startJWKS(&cfg); err != nil {
		return nil, err
	}
	return v, nil
}

// Verify checks token and returns its claims. A refused token yields an
// *Error.
func (v *Verifier) Verify(token string) (Claims, error) {
	if token == "" {
		return Claims{}, fail(ReasonMissingToken, errors.New("empty token"))
	}
	if len(token) > MaxTokenLen {
		return Claims{}, fail(ReasonMalformedToken, fmt.Errorf("token is %d bytes, longer than %d", len(token), MaxTokenLen))
	}
	mc := jwt.MapClaims{}
	tok, err := v.parser.ParseWithClaims(token, mc, v.keyFunc)
	if err != nil {
		return Claims{}, v.classify(tok, mc, err)
	}
	for _, name := range [...]string{"exp", "nbf", "iat"} {
		if err := dateInRange(mc, name); err != nil {
			return Claims{}, fail(ReasonMalformedToken, err)
		}
	}
	exp, err := mc.GetExpirationTime()
	if err != nil || exp == nil {
		return Claims{}, fail(ReasonMissingExp, err)
	}
	if err := v.checkType(tok, mc); err != nil {
		return Claims{}, fail(ReasonWrongTokenType, err)
	}
	var c Claims
	c.ExpiresAt = exp.Time
	if c.UserID, err = userID(mc[v.cfg.UserClaim]); err != nil {
		return Claims{}, fail(ReasonMissingUser, fmt.Errorf("claim %q: %w", v.cfg.UserClaim, err))
	}
	if c.Channels, err = channels(mc["channels"]); err != nil {
		return Claims{}, fail(ReasonInvalidChannels, err)
	}
	return c, nil
}
