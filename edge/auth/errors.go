package auth

import (
	"errors"

	"github.com/golang-jwt/jwt/v5"
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

var (
	errNoKey    = errors.New("no key configured for this algorithm")
	errCritical = errors.New(`"crit" header parameters are not supported`)
)

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
