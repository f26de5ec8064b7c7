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
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/valyala/fasthttp"

	"github.com/heraldrt/herald/fanout"
)

// Reasons are the stable codes of *Error. They appear in logs, metrics
// labels and the "error" field of the JSON body of a refused connection.
const (
	// ReasonMissingToken means the request carries no token.
	ReasonMissingToken = "missing_token"
	// ReasonMalformedToken means the token is not a well-formed JWS, is
	// longer than MaxTokenLen, has a "crit" header, or has a registered
	// claim (exp, nbf, iat, aud, iss) of the wrong type or out of range.
	ReasonMalformedToken = "malformed_token"
	// ReasonUnsupportedAlgorithm means the token's "alg" is missing,
	// "none", unknown, or of a family with no configured key.
	ReasonUnsupportedAlgorithm = "unsupported_algorithm"
	// ReasonInvalidSignature means the signature verifies with no
	// configured key of the token's algorithm.
	ReasonInvalidSignature = "invalid_signature"
	// ReasonTokenExpired means "exp" is past, beyond the leeway.
	ReasonTokenExpired = "token_expired"
	// ReasonTokenNotYetValid means "nbf" or "iat" is in the future, beyond
	// the leeway.
	ReasonTokenNotYetValid = "token_not_yet_valid"
	// ReasonMissingExp means the token has no "exp" claim.
	ReasonMissingExp = "missing_exp"
	// ReasonMissingUser means the user claim is absent, empty, not a
	// string or integer, longer than MaxUserIDLen, or has characters
	// outside [A-Za-z0-9_-.@=+].
	ReasonMissingUser = "missing_user"
	// ReasonInvalidAudience means an audience is configured and "aud" is
	// absent or lacks it.
	ReasonInvalidAudience = "invalid_audience"
	// ReasonInvalidIssuer means an issuer is configured and "iss" is
	// absent or differs.
	ReasonInvalidIssuer = "invalid_issuer"
	// ReasonInvalidChannels means the "channels" claim is not a list of
	// valid channel names (fanout.ValidChannel) or has more than
	// MaxChannels entries.
	ReasonInvalidChannels = "invalid_channels"
	// ReasonWrongTokenType means the token's "typ" header or its "typ" or
	// "token_type" claim names a refused type (Config.RefusedTokenTypes): a
	// refresh token is not an access token.
	ReasonWrongTokenType = "wrong_token_type"
)

// DefaultRefusedTokenTypes are the token types refused when
// Config.RefusedTokenTypes is nil: refresh tokens (simplejwt marks them
// "token_type": "refresh").
var DefaultRefusedTokenTypes = []string{"refresh", "refresh_token"}

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

// maxNumericDate bounds exp, nbf and iat (seconds, either side of the
// epoch): the last second of year 9999. Larger values overflow time.Time
// conversions.
const maxNumericDate = 253402300799

// Error is a refused token. Verify and Authenticate return it as *Error.
type Error struct {
	// Reason is one of the Reason* constants.
	Reason string
	// Err is the detail, for logs; it may be nil.
	Err error
}

// Error returns the reason followed by the detail.
func (e *Error) Error() string {
	if e.Err == nil {
		return e.Reason
	}
	return e.Reason + ": " + e.Err.Error()
}

// Unwrap returns the detail error.
func (e *Error) Unwrap() error { return e.Err }

func fail(reason string, err error) *Error { return &Error{Reason: reason, Err: err} }

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

// Claims is what Herald takes from a verified token.
type Claims struct {
	// UserID identifies the user: 1 to MaxUserIDLen bytes of
	// [A-Za-z0-9_-.@=+]. The connection receives the channel
	// "user:<UserID>".
	UserID string
	// Channels are the extra channels the token's "channels" claim grants,
	// each a valid fanout channel name, in token order without repeats;
	// nil when the claim is absent.
	Channels []string
	// ExpiresAt is the token's "exp"; the connection ends then.
	ExpiresAt time.Time
}

// Source says where TokenFromRequest found a token.
type Source string

// Token sources.
const (
	// SourceNone means no token was found.
	SourceNone Source = ""
	// SourceQuery is the Config.QueryParam query parameter.
	SourceQuery Source = "query"
	// SourceHeader is an "Authorization: Bearer" header.
	SourceHeader Source = "header"
	// SourceCookie is the Config.CookieName cookie.
	SourceCookie Source = "cookie"
)

// algKeys are the key-file public keys that verify one algorithm.
type algKeys struct {
	set  jwt.VerificationKeySet
	byID map[string]jwt.VerificationKey
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

// hmacKey is one HMAC secret and its id.
type hmacKey struct {
	id  string
	key []byte
}

// HMACKeyID returns the key id of an HMAC secret: the first 8 hex digits
// of its SHA-256. A token whose header "kid" is this id is only checked
// against this secret (see Config.HMACSecrets). The id reveals nothing
// useful about a secret of MinSecretLen bytes or more.
func HMACKeyID(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:4])
}

// asymmetricAlgs are the algorithms a JWKS key may enable.
var asymmetricAlgs = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}

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

var (
	errNoKey    = errors.New("no key configured for this algorithm")
	errCritical = errors.New(`"crit" header parameters are not supported`)
)

// keyFunc picks the verification key(s) for a token. The parser has
// already refused algorithms that can have no key (WithValidMethods);
// keyFunc checks again by method type: an HMAC method only ever gets the
// HMAC secrets and the other methods only public keys that fit them
// (keyFits, also enforced by New when it files keys under algorithms, and
// jwk.fits for JWKS keys, which also honours a key's declared "alg"), so a
// public key is never used as an HMAC secret and JWKS "oct" keys are never
// used at all. The "kid" header is only a map key: it selects the HMAC
// secret, key file or JWKS keys of that id that fit the token's algorithm;
// an unknown kid forces a (rate limited) JWKS URL refresh; when the kid is
// still unknown, or absent, every key of the algorithm is tried.
func (v *Verifier) keyFunc(t *jwt.Token) (any, error) {
	if _, ok := t.Header["crit"]; ok {
		return nil, errCritical
	}
	kid, _ := t.Header["kid"].(string)
	if _, ok := t.Method.(*jwt.SigningMethodHMAC); ok {
		switch len(v.hmacs) {
		case 0:
			return nil, errNoKey
		case 1:
			return v.hmacs[0].key, nil
		}
		if kid != "" {
			for _, h := range v.hmacs {
				if h.id == kid {
					return h.key, nil
				}
			}
		}
		set := jwt.VerificationKeySet{Keys: make([]jwt.VerificationKey, len(v.hmacs))}
		for i, h := range v.hmacs {
			set.Keys[i] = h.key
		}
		return set, nil
	}
	ks := v.algs[t.Method.Alg()]
	if kid != "" {
		if ks != nil {
			if k, ok := ks.byID[kid]; ok && keyFits(t.Method, k) {
				return k, nil
			}
		}
		if len(v.jwks) > 0 {
			if !v.jwksHasKid(kid) && (ks == nil || ks.byID[kid] == nil) {
				v.forceJWKSRefresh()
			}
			if keys := v.jwksKeys(t.Method, kid, nil); len(keys) > 0 {
				return oneOrSet(keys), nil
			}
		}
	}
	var keys []any
	if ks != nil {
		for _, k := range ks.set.Keys {
			if keyFits(t.Method, k) {
				keys = append(keys, k)
			}
		}
	}
	keys = v.jwksKeys(t.Method, "", keys)
	if len(keys) == 0 {
		return nil, errNoKey
	}
	return oneOrSet(keys), nil
}

// oneOrSet returns the only key of keys, or a set of them all.
func oneOrSet(keys []any) any {
	if len(keys) == 1 {
		return keys[0]
	}
	set := jwt.VerificationKeySet{Keys: make([]jwt.VerificationKey, len(keys))}
	for i, k := range keys {
		set.Keys[i] = k
	}
	return set
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

// checkType refuses a token whose type is one of Config.RefusedTokenTypes.
func (v *Verifier) checkType(tok *jwt.Token, mc jwt.MapClaims) error {
	refused := v.cfg.RefusedTokenTypes
	if refused == nil {
		refused = DefaultRefusedTokenTypes
	}
	if len(refused) == 0 {
		return nil
	}
	check := func(where string, val any) error {
		s, ok := val.(string)
		if !ok {
			return nil
		}
		for _, r := range refused {
			if strings.EqualFold(s, r) {
				return fmt.Errorf("%s %q is a refused token type (a refresh token is not an access token)", where, s)
			}
		}
		return nil
	}
	if err := check(`header "typ"`, tok.Header["typ"]); err != nil {
		return err
	}
	if err := check(`claim "typ"`, mc["typ"]); err != nil {
		return err
	}
	return check(`claim "token_type"`, mc["token_type"])
}

// classify maps a jwt parse error to an *Error. tok and mc are what the
// parser managed to decode.
func (v *Verifier) classify(tok *jwt.Token, mc jwt.MapClaims, err error) *Error {
	switch {
	case errors.Is(err, errCritical):
		return fail(ReasonMalformedToken, err)
	case errors.Is(err, errNoKey):
		return fail(ReasonUnsupportedAlgorithm, err)
	case errors.Is(err, jwt.ErrTokenMalformed):
		return fail(ReasonMalformedToken, err)
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		// "alg" missing or not a known algorithm.
		return fail(ReasonUnsupportedAlgorithm, err)
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		// The parser reports an algorithm outside WithValidMethods (such
		// as "none") as a bad signature too.
		if tok == nil || tok.Method == nil || !v.methods[tok.Method.Alg()] {
			return fail(ReasonUnsupportedAlgorithm, err)
		}
		return fail(ReasonInvalidSignature, err)
	}
	// The signature is good; the claims are not. A numeric date of the
	// wrong type or out of range is malformed whatever else failed: the
	// library's float-to-int64 conversion of such values is platform
	// dependent (1e19 seconds becomes a date in the distant past on
	// amd64), so an expiry or not-before verdict on them would be an
	// accident.
	for _, name := range [...]string{"exp", "nbf", "iat"} {
		if derr := dateInRange(mc, name); derr != nil {
			return fail(ReasonMalformedToken, errors.Join(derr, err))
		}
	}
	// Validation reports every failed check, the most basic one wins.
	missing := errors.Is(err, jwt.ErrTokenRequiredClaimMissing)
	switch {
	case missing && absentDate(mc, "exp"):
		return fail(ReasonMissingExp, err)
	case errors.Is(err, jwt.ErrTokenExpired):
		return fail(ReasonTokenExpired, err)
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return fail(ReasonTokenNotYetValid, err)
	case errors.Is(err, jwt.ErrTokenInvalidAudience), missing && v.cfg.Audience != "" && absentAudience(mc):
		return fail(ReasonInvalidAudience, err)
	case errors.Is(err, jwt.ErrTokenInvalidIssuer), missing && v.cfg.Issuer != "":
		return fail(ReasonInvalidIssuer, err)
	}
	// A registered claim of the wrong type.
	return fail(ReasonMalformedToken, err)
}

// absentDate reports whether the numeric date claim name is absent.
func absentDate(mc jwt.MapClaims, name string) bool {
	_, ok := mc[name]
	return !ok
}

// absentAudience reports whether "aud" is absent or empty.
func absentAudience(mc jwt.MapClaims) bool {
	aud, err := mc.GetAudience()
	return err == nil && (len(aud) == 0 || len(aud) == 1 && aud[0] == "")
}

// dateInRange checks that the numeric date claim name, when present, is
// within ±maxNumericDate seconds: the jwt library's conversion of larger
// values (1e400 decodes to +Inf) to time.Time is not well defined.
func dateInRange(mc jwt.MapClaims, name string) error {
	raw, ok := mc[name]
	if !ok {
		return nil
	}
	var f float64
	switch x := raw.(type) {
	case json.Number:
		var err error
		if f, err = x.Float64(); err != nil {
			return fmt.Errorf("claim %q: %w", name, err)
		}
	case float64:
		f = x
	default:
		return fmt.Errorf("claim %q is not a number", name)
	}
	if math.IsNaN(f) || math.Abs(f) > maxNumericDate {
		return fmt.Errorf("claim %q is out of range", name)
	}
	return nil
}

// userID converts the user claim to a user id: a string, or an integral
// JSON number written in decimal without exponent or fraction.
func userID(raw any) (string, error) {
	var id string
	switch x := raw.(type) {
	case nil:
		return "", errors.New("absent")
	case string:
		id = x
	case json.Number:
		s := string(x)
		if strings.ContainsAny(s, ".eE") {
			// 42.0 or 4.2e1: accept only exact integers.
			f, err := strconv.ParseFloat(s, 64)
			if err != nil || f != math.Trunc(f) || math.Abs(f) > 1<<53 {
				return "", fmt.Errorf("number %s is not an integer", s)
			}
			s = strconv.FormatInt(int64(f), 10)
		}
		id = s
	default:
		return "", fmt.Errorf("must be a string or an integer, got %s", jsonType(raw))
	}
	if err := checkUserID(id); err != nil {
		return "", err
	}
	return id, nil
}

// CheckUserID reports why id cannot be a token's user id (the rules
// documented on Claims.UserID), or nil when it can. The publish API uses it
// so that no message goes to a user channel no token can ever open.
func CheckUserID(id string) error { return checkUserID(id) }

// checkUserID enforces the UserID rules documented on Claims.
func checkUserID(id string) error {
	if id == "" {
		return errors.New("empty")
	}
	if len(id) > MaxUserIDLen {
		return fmt.Errorf("%d bytes, longer than %d", len(id), MaxUserIDLen)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '_' || c == '-' || c == '.' || c == '@' || c == '=' || c == '+':
		default:
			return fmt.Errorf("character %q at offset %d is not allowed (use [A-Za-z0-9_-.@=+])", c, i)
		}
	}
	return nil
}

// channels converts the "channels" claim: an array of strings, or one
// comma-separated string whose entries are trimmed and whose empty entries
// are skipped. Repeats are dropped.
func channels(raw any) ([]string, error) {
	var list []string
	switch x := raw.(type) {
	case nil:
		return nil, nil
	case string:
		for s := range strings.SplitSeq(x, ",") {
			if s = strings.TrimSpace(s); s != "" {
				list = append(list, s)
			}
		}
	case []any:
		if len(x) > MaxChannels {
			return nil, fmt.Errorf("%d channels, more than %d", len(x), MaxChannels)
		}
		for i, e := range x {
			s, ok := e.(string)
			if !ok {
				return nil, fmt.Errorf("channels[%d] is %s, not a string", i, jsonType(e))
			}
			list = append(list, s)
		}
	default:
		return nil, fmt.Errorf("channels must be an array of strings or a comma-separated string, got %s", jsonType(raw))
	}
	if err := checkChannels(list); err != nil {
		return nil, err
	}
	out := list[:0]
	for _, s := range list {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
}

// checkChannels enforces the Channels rules documented on Claims.
func checkChannels(list []string) error {
	if len(list) > MaxChannels {
		return fmt.Errorf("%d channels, more than %d", len(list), MaxChannels)
	}
	for _, s := range list {
		if !fanout.ValidChannel(s) {
			return fmt.Errorf("invalid channel name %q", s)
		}
	}
	return nil
}

// jsonType names the JSON type of a decoded value, for error messages.
func jsonType(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "a string"
	case json.Number, float64:
		return "a number"
	case bool:
		return "a boolean"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}

// TokenFromRequest finds the request's token and says where: the
// Config.QueryParam query parameter first, then an "Authorization: Bearer"
// header (scheme matched case-insensitively), then the Config.CookieName
// cookie. Empty values are skipped. It returns "", SourceNone when there is
// no token.
func (v *Verifier) TokenFromRequest(ctx *fasthttp.RequestCtx) (string, Source) {
	if t := ctx.QueryArgs().Peek(v.cfg.QueryParam); len(t) > 0 {
		return string(t), SourceQuery
	}
	if t := bearer(ctx.Request.Header.Peek(fasthttp.HeaderAuthorization)); len(t) > 0 {
		return string(t), SourceHeader
	}
	if t := ctx.Request.Header.Cookie(v.cfg.CookieName); len(t) > 0 {
		return string(t), SourceCookie
	}
	return "", SourceNone
}

// bearer returns the credentials of an "Authorization: Bearer <token>"
// header value, or nil for another scheme.
func bearer(h []byte) []byte {
	const scheme = "bearer"
	h = bytes.TrimLeft(h, " \t")
	if len(h) <= len(scheme) || !bytes.EqualFold(h[:len(scheme)], []byte(scheme)) {
		return nil
	}
	if h[len(scheme)] != ' ' && h[len(scheme)] != '\t' {
		return nil
	}
	return bytes.Trim(h[len(scheme):], " \t")
}

// Authenticate finds the request's token with TokenFromRequest and verifies
// it. A request without a token yields an *Error with ReasonMissingToken.
func (v *Verifier) Authenticate(ctx *fasthttp.RequestCtx) (Claims, Source, error) {
	tok, src := v.TokenFromRequest(ctx)
	if tok == "" {
		return Claims{}, src, fail(ReasonMissingToken, fmt.Errorf(
			"send a token in the %q query parameter, an Authorization: Bearer header, or the %q cookie",
			v.cfg.QueryParam, v.cfg.CookieName))
	}
	c, err := v.Verify(tok)
	if err != nil {
		return Claims{}, src, err
	}
	return c, src, nil
}

// Sign makes an HMAC-signed token for development and tests (the `herald
// token` command). alg is HS256, HS384 or HS512; secret must be at least
// MinSecretLen bytes. The token has "sub" = userID, "iat" = now, "exp" =
// now+ttl (a negative ttl makes an expired token) and, when channels is
// not empty, "channels". userID and channels must satisfy the rules Verify
// applies.
func Sign(secret, alg string, userID string, ttl time.Duration, channels []string) (string, error) {
	m, ok := jwt.GetSigningMethod(alg).(*jwt.SigningMethodHMAC)
	if !ok {
		return "", fmt.Errorf("sign: %q is not an HMAC algorithm (use HS256, HS384 or HS512)", alg)
	}
	if secret == "" {
		return "", errors.New("sign: no HMAC secret configured (auth.jwt.hmac_secret)")
	}
	if len(secret) < MinSecretLen {
		return "", fmt.Errorf("sign: HMAC secret must be at least %d bytes, got %d", MinSecretLen, len(secret))
	}
	if err := checkUserID(userID); err != nil {
		return "", fmt.Errorf("sign: user id %q: %w", userID, err)
	}
	if err := checkChannels(channels); err != nil {
		return "", fmt.Errorf("sign: %w", err)
	}
	now := time.Now()
	claims := jwt.MapClaims{"sub": userID, "iat": now.Unix(), "exp": now.Add(ttl).Unix()}
	if len(channels) > 0 {
		claims["channels"] = channels
	}
	s, err := jwt.NewWithClaims(m, claims).SignedString([]byte(secret))
	if err != nil {
		return "", fmt.Errorf("sign: %w", err)
	}
	return s, nil
}
