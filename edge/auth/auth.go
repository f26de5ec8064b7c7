// Package auth authenticates the users who connect to Herald: it finds a
// JWT in the request (query parameter, Authorization: Bearer, or cookie)
// and verifies it with the configured HMAC secret or public keys.
package auth

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/valyala/fasthttp"

	"github.com/heraldrt/herald/fanout"
)

// Reasons are short stable codes for why a token was refused; they appear
// in logs, metrics and the JSON error body.
const (
	ReasonMissingToken   = "missing_token"
	ReasonMalformed      = "malformed_token"
	ReasonUnsupportedAlg = "unsupported_algorithm"
	ReasonBadSignature   = "invalid_signature"
	ReasonExpired        = "token_expired"
	ReasonNotYetValid    = "token_not_yet_valid"
	ReasonMissingExp     = "missing_exp"
	ReasonMissingUser    = "missing_user"
	ReasonBadAudience    = "invalid_audience"
	ReasonBadIssuer      = "invalid_issuer"
	ReasonBadChannels    = "invalid_channels"
)

// MaxTokenLen bounds the token size accepted, before any parsing.
const MaxTokenLen = 8 << 10

// maxChannels bounds the channels one token may grant.
const maxChannels = 32

// maxUserIDLen bounds the user id; it becomes the channel "user:<id>".
const maxUserIDLen = 128

// Error is a refused token with its reason.
type Error struct {
	Reason string
	Err    error
}

func (e *Error) Error() string {
	if e.Err == nil {
		return e.Reason
	}
	return e.Reason + ": " + e.Err.Error()
}

// Unwrap returns the underlying error.
func (e *Error) Unwrap() error { return e.Err }

func fail(reason string, err error) error { return &Error{Reason: reason, Err: err} }

// Config configures token verification. Zero values mean the documented
// defaults.
type Config struct {
	// HMACSecret enables HS256/HS384/HS512; at least 32 bytes.
	HMACSecret string
	// PublicKeyFiles are PEM public keys (or certificates): RSA enables
	// RS256/384/512 and PS256/384/512, ECDSA ES256/384/512, Ed25519 EdDSA.
	// A key's id is its file name without extension, matched against the
	// token's "kid".
	PublicKeyFiles []string
	// Audience, when set, must be in the token's "aud".
	Audience string
	// Issuer, when set, must equal the token's "iss".
	Issuer string
	// Leeway is the clock skew tolerated on exp, nbf and iat (default 5s).
	Leeway time.Duration
	// UserClaim names the claim with the user id (default "sub").
	UserClaim string
	// CookieName is the cookie a token may come in (default "herald_token").
	CookieName string
	// QueryParam is the query parameter a token may come in (default
	// "token").
	QueryParam string
}

// Claims is what Herald takes from a verified token.
type Claims struct {
	// UserID identifies the user; the connection receives "user:<UserID>".
	UserID string
	// Channels are extra channels the token grants.
	Channels []string
	// ExpiresAt is the token's expiry; the connection ends then.
	ExpiresAt time.Time
}

// Source says where a token was found.
type Source string

// Token sources.
const (
	SourceNone   Source = ""
	SourceQuery  Source = "query"
	SourceHeader Source = "header"
	SourceCookie Source = "cookie"
)

type pubKey struct {
	id  string
	key any
}

// Verifier verifies tokens. It is safe for concurrent use.
type Verifier struct {
	cfg    Config
	secret []byte
	keys   []pubKey
	parser *jwt.Parser
}

// New builds a Verifier, loading the key files.
func New(cfg Config) (*Verifier, error) {
	if cfg.Leeway == 0 {
		cfg.Leeway = 5 * time.Second
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
	if cfg.HMACSecret != "" && len(cfg.HMACSecret) < 32 {
		return nil, fmt.Errorf("auth.jwt.hmac_secret: must be at least 32 bytes, got %d", len(cfg.HMACSecret))
	}
	v := &Verifier{cfg: cfg}
	var methods []string
	if cfg.HMACSecret != "" {
		v.secret = []byte(cfg.HMACSecret)
		methods = append(methods, "HS256", "HS384", "HS512")
	}
	var hasRSA, hasEC, hasEd bool
	for i, path := range cfg.PublicKeyFiles {
		k, err := loadPublicKey(path)
		if err != nil {
			return nil, fmt.Errorf("auth.jwt.public_key_files[%d]: %s: %w", i, path, err)
		}
		v.keys = append(v.keys, k)
		switch k.key.(type) {
		case *rsa.PublicKey:
			hasRSA = true
		case *ecdsa.PublicKey:
			hasEC = true
		case ed25519.PublicKey:
			hasEd = true
		}
	}
	if hasRSA {
		methods = append(methods, "RS256", "RS384", "RS512", "PS256", "PS384", "PS512")
	}
	if hasEC {
		methods = append(methods, "ES256", "ES384", "ES512")
	}
	if hasEd {
		methods = append(methods, "EdDSA")
	}
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

// keyFunc picks the verification key for a token by its algorithm family
// (so an HS token is never checked against a public key: no key confusion)
// and, among public keys of that family, by "kid" when it matches.
func (v *Verifier) keyFunc(t *jwt.Token) (any, error) {
	switch t.Method.(type) {
	case *jwt.SigningMethodHMAC:
		if v.secret == nil {
			return nil, errNoKey
		}
		return v.secret, nil
	}
	var candidates []jwt.VerificationKey
	for _, k := range v.keys {
		if keyMatches(t.Method, k.key) {
			candidates = append(candidates, k.key)
		}
	}
	if len(candidates) == 0 {
		return nil, errNoKey
	}
	if kid, _ := t.Header["kid"].(string); kid != "" {
		for _, k := range v.keys {
			if k.id == kid && keyMatches(t.Method, k.key) {
				return k.key, nil
			}
		}
	}
	return jwt.VerificationKeySet{Keys: candidates}, nil
}

var errNoKey = errors.New("no key configured for this algorithm")

func keyMatches(m jwt.SigningMethod, key any) bool {
	switch m.(type) {
	case *jwt.SigningMethodRSA, *jwt.SigningMethodRSAPSS:
		_, ok := key.(*rsa.PublicKey)
		return ok
	case *jwt.SigningMethodECDSA:
		_, ok := key.(*ecdsa.PublicKey)
		return ok
	case *jwt.SigningMethodEd25519:
		_, ok := key.(ed25519.PublicKey)
		return ok
	}
	return false
}

// Verify checks a token and returns its claims, or an *Error.
func (v *Verifier) Verify(token string) (Claims, error) {
	if token == "" {
		return Claims{}, fail(ReasonMissingToken, nil)
	}
	if len(token) > MaxTokenLen {
		return Claims{}, fail(ReasonMalformed, fmt.Errorf("token longer than %d bytes", MaxTokenLen))
	}
	mc := jwt.MapClaims{}
	_, err := v.parser.ParseWithClaims(token, mc, v.keyFunc)
	if err != nil {
		return Claims{}, classify(err)
	}
	var c Claims
	exp, err := mc.GetExpirationTime()
	if err != nil || exp == nil {
		return Claims{}, fail(ReasonMissingExp, err)
	}
	c.ExpiresAt = exp.Time
	c.UserID, err = userID(mc[v.cfg.UserClaim])
	if err != nil {
		return Claims{}, fail(ReasonMissingUser, fmt.Errorf("claim %q: %w", v.cfg.UserClaim, err))
	}
	c.Channels, err = channels(mc["channels"])
	if err != nil {
		return Claims{}, fail(ReasonBadChannels, err)
	}
	return c, nil
}

func classify(err error) error {
	switch {
	case errors.Is(err, errNoKey):
		return fail(ReasonUnsupportedAlg, err)
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		// An algorithm outside WithValidMethods also reports this.
		if strings.Contains(err.Error(), "signing method") {
			return fail(ReasonUnsupportedAlg, err)
		}
		return fail(ReasonBadSignature, err)
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		return fail(ReasonUnsupportedAlg, err)
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return fail(ReasonMissingExp, err)
	case errors.Is(err, jwt.ErrTokenExpired):
		return fail(ReasonExpired, err)
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return fail(ReasonNotYetValid, err)
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return fail(ReasonBadAudience, err)
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return fail(ReasonBadIssuer, err)
	default:
		return fail(ReasonMalformed, err)
	}
}

// userID accepts a string or an integral JSON number.
func userID(v any) (string, error) {
	var id string
	switch x := v.(type) {
	case string:
		id = x
	case json.Number:
		if i, err := x.Int64(); err == nil {
			id = strconv.FormatInt(i, 10)
		} else if f, err := x.Float64(); err == nil && f == math.Trunc(f) && math.Abs(f) < 1<<53 {
			id = strconv.FormatInt(int64(f), 10)
		} else {
			return "", fmt.Errorf("number %s is not an integer", x)
		}
	case nil:
		return "", errors.New("absent")
	default:
		return "", fmt.Errorf("must be a string or integer, got %T", v)
	}
	if id == "" || len(id) > maxUserIDLen {
		return "", fmt.Errorf("must be 1 to %d bytes", maxUserIDLen)
	}
	if !fanout.ValidChannel("user:" + id) {
		return "", errors.New("contains characters not allowed in a channel name")
	}
	return id, nil
}

// channels accepts an array of strings or one comma-separated string.
func channels(v any) ([]string, error) {
	var out []string
	switch x := v.(type) {
	case nil:
		return nil, nil
	case string:
		for _, s := range strings.Split(x, ",") {
			if s = strings.TrimSpace(s); s != "" {
				out = append(out, s)
			}
		}
	case []any:
		for _, e := range x {
			s, ok := e.(string)
			if !ok {
				return nil, fmt.Errorf("channels must be strings, got %T", e)
			}
			out = append(out, s)
		}
	default:
		return nil, fmt.Errorf("channels must be an array of strings, got %T", v)
	}
	if len(out) > maxChannels {
		return nil, fmt.Errorf("more than %d channels", maxChannels)
	}
	for _, s := range out {
		if !fanout.ValidChannel(s) {
			return nil, fmt.Errorf("invalid channel name %q", s)
		}
	}
	return out, nil
}

// TokenFromRequest finds the token: the query parameter first, then an
// "Authorization: Bearer" header, then the cookie.
func (v *Verifier) TokenFromRequest(ctx *fasthttp.RequestCtx) (string, Source) {
	if t := ctx.QueryArgs().Peek(v.cfg.QueryParam); len(t) > 0 {
		return string(t), SourceQuery
	}
	if h := ctx.Request.Header.Peek("Authorization"); len(h) > 7 && bytes.EqualFold(h[:7], []byte("bearer ")) {
		return string(bytes.TrimSpace(h[7:])), SourceHeader
	}
	if c := ctx.Request.Header.Cookie(v.cfg.CookieName); len(c) > 0 {
		return string(c), SourceCookie
	}
	return "", SourceNone
}

// Authenticate finds and verifies the request's token.
func (v *Verifier) Authenticate(ctx *fasthttp.RequestCtx) (Claims, Source, error) {
	tok, src := v.TokenFromRequest(ctx)
	if tok == "" {
		return Claims{}, src, fail(ReasonMissingToken, errors.New("pass a token in ?"+v.cfg.QueryParam+"=, an Authorization: Bearer header, or the "+v.cfg.CookieName+" cookie"))
	}
	c, err := v.Verify(tok)
	return c, src, err
}

// Sign makes an HMAC-signed token for development (`herald token`).
func Sign(secret, alg, userID string, ttl time.Duration, channels []string) (string, error) {
	m := jwt.GetSigningMethod(alg)
	if _, ok := m.(*jwt.SigningMethodHMAC); !ok {
		return "", fmt.Errorf("sign: %q is not an HMAC algorithm (use HS256, HS384 or HS512)", alg)
	}
	if secret == "" {
		return "", errors.New("sign: no HMAC secret configured (auth.jwt.hmac_secret)")
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
