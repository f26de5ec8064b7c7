// Package auth authenticates the browsers that connect to Herald.
//
// A connection carries a JWT issued by the application backend, in the
// query string, an "Authorization: Bearer" header or a cookie. A Verifier
// finds it, checks its signature with the configured HMAC secret or public
// keys, checks exp (required), nbf, iat, aud and iss, and extracts the user
// id and the extra channels the token grants.
//
// Algorithms are derived from the configured keys: HS256/384/512 need
// auth.jwt.hmac_secret, RS*/PS* an RSA public key, ES256/384/512 an ECDSA
// key on P-256/P-384/P-521, EdDSA an Ed25519 key. A token whose algorithm has
// no configured key, "none" included, is refused before any signature check,
// and a token is only ever checked against keys of its algorithm's family,
// so an RSA public key can never be used as an HMAC secret.
//
// Every refusal is an *Error whose Reason is a short stable code (the
// Reason* constants) meant for logs, metrics and the JSON error body.
package auth

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
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

// algKeys are the keys that verify one algorithm: the HMAC secret for the
// HS family, public keys for the others.
type algKeys struct {
	hmac []byte
	set  jwt.VerificationKeySet
	byID map[string]jwt.VerificationKey
}

// Verifier verifies tokens. Build it with New; it is safe for concurrent
// use.
type Verifier struct {
	cfg    Config
	parser *jwt.Parser
	algs   map[string]*algKeys // by JWS "alg"; only algorithms with a key
}

// New builds a Verifier from cfg, applying the defaults and loading the key
// files. Errors name the offending configuration key.
func New(cfg Config) (*Verifier, error) {
	if cfg.Leeway == 0 {
		cfg.Leeway = DefaultLeeway
	}
	if cfg.Leeway < 0 {
		return nil, fmt.Errorf("auth.jwt.leeway: must not be negative, got %s", cfg.Leeway)
	}
	if cfg.UserClaim == "" {
		cfg.UserClaim = "sub"
	}
	if cfg.CookieName == "" {
		cfg.CookieName = "herald_token"
	}
	if cfg.QueryParam == "" {
		cfg.QueryParam = "token"
	}
	if cfg.HMACSecret == "" && len(cfg.PublicKeyFiles) == 0 {
		return nil, errors.New("auth.jwt: configure hmac_secret or public_key_files")
	}
	if cfg.HMACSecret != "" && len(cfg.HMACSecret) < MinSecretLen {
		return nil, fmt.Errorf("auth.jwt.hmac_secret: must be at least %d bytes, got %d", MinSecretLen, len(cfg.HMACSecret))
	}
	cfg.PublicKeyFiles = slices.Clone(cfg.PublicKeyFiles)

	v := &Verifier{cfg: cfg, algs: make(map[string]*algKeys)}
	bucket := func(alg string) *algKeys {
		ks := v.algs[alg]
		if ks == nil {
			ks = &algKeys{byID: make(map[string]jwt.VerificationKey)}
			v.algs[alg] = ks
		}
		return ks
	}
	if cfg.HMACSecret != "" {
		for _, alg := range []string{"HS256", "HS384", "HS512"} {
			bucket(alg).hmac = []byte(cfg.HMACSecret)
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
	methods := make([]string, 0, len(v.algs))
	for alg := range v.algs {
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
	return v, nil
}

var (
	errNoKey    = errors.New("no key configured for this algorithm")
	errCritical = errors.New(`"crit" header parameters are not supported`)
)

// keyFunc picks the verification key(s) for a token. The parser has
// already refused algorithms without a key (WithValidMethods); keyFunc
// checks again by method type: an HMAC method only ever gets the HMAC
// secret and the other methods only public keys that fit them (keyFits,
// also enforced by New when it files keys under algorithms), so a public
// key is never used as an HMAC secret. The "kid" header is only a map key:
// it selects the key file of that id when that key fits the token's
// algorithm; otherwise every key of the algorithm is tried.
func (v *Verifier) keyFunc(t *jwt.Token) (any, error) {
	if _, ok := t.Header["crit"]; ok {
		return nil, errCritical
	}
	ks := v.algs[t.Method.Alg()]
	if ks == nil {
		return nil, errNoKey
	}
	if _, ok := t.Method.(*jwt.SigningMethodHMAC); ok {
		if ks.hmac == nil {
			return nil, errNoKey
		}
		return ks.hmac, nil
	}
	if kid, ok := t.Header["kid"].(string); ok {
		if k, ok := ks.byID[kid]; ok && keyFits(t.Method, k) {
			return k, nil
		}
	}
	switch len(ks.set.Keys) {
	case 0:
		return nil, errNoKey
	case 1:
		if k := ks.set.Keys[0]; keyFits(t.Method, k) {
			return k, nil
		}
		return nil, errNoKey
	}
	return ks.set, nil
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
		if tok == nil || tok.Method == nil || v.algs[tok.Method.Alg()] == nil {
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
