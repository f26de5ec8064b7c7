package auth

import (
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

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
