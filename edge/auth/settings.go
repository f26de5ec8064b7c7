package auth

import (
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/heraldrt/herald/internal/confkey"
)

// Defaults of the token sources and the user id claim, used when the
// Config fields are empty.
const (
	// DefaultUserClaim is the claim holding the user id.
	DefaultUserClaim = "sub"
	// DefaultCookieName is the cookie a token may be sent in.
	DefaultCookieName = "herald_token"
	// DefaultQueryParam is the query parameter a token may be sent in.
	DefaultQueryParam = "token"
)

// Settings is the "auth" configuration section: token verification, the
// backend session check and where a token may be sent. Config builds the
// Verifier's Config from it.
type Settings struct {
	// JWT configures token verification.
	JWT JWTConfig `koanf:"jwt"`
	// BackendCheck authenticates token-less connections by asking the
	// application backend (Django session cookie).
	BackendCheck BackendCheckConfig `koanf:"backend_check"`
	// CookieName is the cookie a token may be read from.
	CookieName string `koanf:"cookie_name"`
	// QueryParam is the query parameter a token may be read from.
	QueryParam string `koanf:"query_param"`
}

// JWTConfig is the "auth.jwt" configuration section: how tokens are
// verified.
type JWTConfig struct {
	// HMACSecret enables HS256/384/512 tokens (at least 32 bytes).
	HMACSecret string `koanf:"hmac_secret"`
	// HMACSecrets are extra secrets that verify HS* tokens but never sign
	// (the previous secret during rotation); each at least 32 bytes. A
	// token whose "kid" is a secret's id (first 8 hex digits of its
	// SHA-256, auth.HMACKeyID) is checked against that secret only.
	HMACSecrets []string `koanf:"hmac_secrets"`
	// JWKSURL is a JSON Web Key Set URL (RSA, EC, Ed25519 keys), refreshed
	// every JWKSRefresh and on unknown kids (at most once per 30 s).
	JWKSURL string `koanf:"jwks_url"`
	// JWKSRefresh is the JWKSURL refresh interval.
	JWKSRefresh time.Duration `koanf:"jwks_refresh"`
	// JWKSFile is a JSON Web Key Set file, reloaded when it changes.
	JWKSFile string `koanf:"jwks_file"`
	// PublicKeyFiles are PEM public keys enabling RS*, ES* and EdDSA.
	PublicKeyFiles []string `koanf:"public_key_files"`
	// Audience, when set, must appear in the token's aud.
	Audience string `koanf:"audience"`
	// Issuer, when set, must equal the token's iss.
	Issuer string `koanf:"issuer"`
	// Leeway is the clock skew tolerated on exp and nbf.
	Leeway time.Duration `koanf:"leeway"`
	// UserClaim is the claim holding the user id ("sub", or "user_id" for
	// djangorestframework-simplejwt tokens).
	UserClaim string `koanf:"user_claim"`
	// RefusedTokenTypes are token types refused as access tokens, matched
	// against the "typ" header and the "typ" and "token_type" claims
	// (simplejwt refresh tokens carry "token_type": "refresh").
	RefusedTokenTypes []string `koanf:"refused_token_types"`
}

// BackendCheckConfig is the "auth.backend_check" configuration section:
// authenticating connections with the application's own session (e.g. a
// Django session cookie) instead of a JWT, by asking the backend who the
// user is (edge.BackendChecker).
type BackendCheckConfig struct {
	// URL is the backend endpoint called on connect (GET). An empty URL
	// disables the check.
	URL string `koanf:"url"`
	// Cookies lists the cookies forwarded (default sessionid and
	// csrftoken); "*" forwards the whole Cookie header.
	Cookies []string `koanf:"cookies"`
	// Headers lists request headers forwarded (e.g. Authorization,
	// X-Forwarded-For).
	Headers []string `koanf:"headers"`
	// Timeout bounds one backend call (default 2s); no answer in time
	// refuses the connection.
	Timeout time.Duration `koanf:"timeout"`
	// CacheTTL is how long a positive answer is reused for the same
	// credentials (default 30s; 0 disables caching).
	CacheTTL time.Duration `koanf:"cache_ttl"`
	// CacheSize bounds the cached answers (default 10000).
	CacheSize int `koanf:"cache_size"`
	// UserField is the JSON field of the answer holding the user id
	// (default "user_id").
	UserField string `koanf:"user_field"`
	// SessionTTL is the expiry given to sessions admitted this way, after
	// which the client reconnects and is checked again (default 1h).
	SessionTTL time.Duration `koanf:"session_ttl"`
}

// DefaultSettings returns the section's defaults: the Verifier's own
// defaults, no key, and the backend check off.
func DefaultSettings() Settings {
	return Settings{
		JWT: JWTConfig{
			Leeway:            DefaultLeeway,
			UserClaim:         DefaultUserClaim,
			JWKSRefresh:       DefaultJWKSRefresh,
			RefusedTokenTypes: append([]string(nil), DefaultRefusedTokenTypes...),
		},
		BackendCheck: DefaultBackendCheckConfig(),
		CookieName:   DefaultCookieName,
		QueryParam:   DefaultQueryParam,
	}
}

// DefaultBackendCheckConfig returns the backend check defaults (it is off
// until a URL is set).
func DefaultBackendCheckConfig() BackendCheckConfig {
	return BackendCheckConfig{
		Cookies:    []string{"sessionid", "csrftoken"},
		Timeout:    2 * time.Second,
		CacheTTL:   30 * time.Second,
		CacheSize:  10000,
		UserField:  "user_id",
		SessionTTL: time.Hour,
	}
}

// Config returns the Verifier's configuration for the section; log
// receives JWKS refresh errors and reloads.
func (s Settings) Config(log *slog.Logger) Config {
	j := s.JWT
	return Config{
		HMACSecret:        j.HMACSecret,
		HMACSecrets:       j.HMACSecrets,
		JWKSURL:           j.JWKSURL,
		JWKSRefresh:       j.JWKSRefresh,
		JWKSFile:          j.JWKSFile,
		Logger:            log,
		PublicKeyFiles:    j.PublicKeyFiles,
		Audience:          j.Audience,
		Issuer:            j.Issuer,
		Leeway:            j.Leeway,
		UserClaim:         j.UserClaim,
		CookieName:        s.CookieName,
		QueryParam:        s.QueryParam,
		RefusedTokenTypes: j.RefusedTokenTypes,
	}
}

// Validate checks the section (key "auth") and returns every problem as a
// *confkey.Error naming its full key (auth.jwt.hmac_secret, ...).
func (s Settings) Validate() error {
	var l confkey.List
	j := s.JWT
	if j.HMACSecret == "" && len(j.HMACSecrets) == 0 && len(j.PublicKeyFiles) == 0 && j.JWKSURL == "" && j.JWKSFile == "" {
		l.Add("auth.jwt.hmac_secret", "set a secret of at least 32 bytes, or auth.jwt.hmac_secrets, public_key_files, jwks_url or jwks_file")
	} else if j.HMACSecret != "" && len(j.HMACSecret) < MinSecretLen {
		l.Add("auth.jwt.hmac_secret", "must be at least 32 bytes, got %d", len(j.HMACSecret))
	}
	for i, sec := range j.HMACSecrets {
		if len(sec) < MinSecretLen {
			l.Add(fmt.Sprintf("auth.jwt.hmac_secrets[%d]", i), "must be at least 32 bytes, got %d", len(sec))
		}
	}
	if j.JWKSRefresh < 0 {
		l.Add("auth.jwt.jwks_refresh", "must not be negative, got %s", j.JWKSRefresh)
	}
	if j.JWKSURL != "" && !strings.HasPrefix(j.JWKSURL, "https://") && !strings.HasPrefix(j.JWKSURL, "http://") {
		l.Add("auth.jwt.jwks_url", "must be an http:// or https:// URL")
	}
	l.Between("auth.jwt.leeway", j.Leeway, 0, 5*time.Minute, false)
	if j.UserClaim == "" {
		l.Add("auth.jwt.user_claim", "must not be empty")
	}
	if s.QueryParam == "" {
		l.Add("auth.query_param", "must not be empty")
	}
	l.Append(s.BackendCheck.Validate())
	return l.Err()
}

// Validate checks the section and returns its first problem as a
// *confkey.Error naming the full key (auth.backend_check.url, ...). It
// returns nil when the check is off.
func (b BackendCheckConfig) Validate() error {
	if b.URL == "" {
		return nil
	}
	bad := func(k, format string, args ...any) error {
		return confkey.Errorf("auth.backend_check."+k, format, args...)
	}
	u, err := url.Parse(b.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return bad("url", "%q is not an http(s) URL", b.URL)
	}
	if b.Timeout <= 0 {
		return bad("timeout", "must be positive")
	}
	if b.CacheTTL < 0 || b.CacheSize < 0 {
		return bad("cache_ttl", "cache_ttl and cache_size must not be negative")
	}
	if b.UserField == "" {
		return bad("user_field", "must not be empty")
	}
	if b.SessionTTL <= 0 {
		return bad("session_ttl", "must be positive")
	}
	return nil
}
