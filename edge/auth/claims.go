package auth

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/heraldrt/herald/fanout"
)

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

// DefaultRefusedTokenTypes are the token types refused when
// Config.RefusedTokenTypes is nil: refresh tokens (simplejwt marks them
// "token_type": "refresh").
var DefaultRefusedTokenTypes = []string{"refresh", "refresh_token"}

// maxNumericDate bounds exp, nbf and iat (seconds, either side of the
// epoch): the last second of year 9999. Larger values overflow time.Time
// conversions.
const maxNumericDate = 253402300799

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
