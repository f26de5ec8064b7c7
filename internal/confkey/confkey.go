// Package confkey is the error every configuration section reports a bad
// value with, naming the value's full key (fanout.redis.shards, ...).
// The packages that own a section (fanout, protocols, edge/auth, compat,
// telemetry, edge) validate it with a List; package config composes the
// sections and re-exports Error as config.KeyError.
package confkey

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Error is a validation error naming the offending configuration key.
type Error struct {
	// Key is the full key, e.g. "fanout.redis.shards" or
	// "auth.jwt.hmac_secrets[1]".
	Key string
	// Msg says what is wrong with the value.
	Msg string
}

func (e *Error) Error() string { return "config " + e.Key + ": " + e.Msg }

// Errorf returns an *Error for key.
func Errorf(key, format string, args ...any) error {
	return &Error{Key: key, Msg: fmt.Sprintf(format, args...)}
}

// List collects a section's problems, in the order they are found.
type List struct {
	errs []error
}

// Add records a problem with key.
func (l *List) Add(key, format string, args ...any) {
	l.errs = append(l.errs, Errorf(key, format, args...))
}

// Append records err (nil is ignored), e.g. another section's Validate.
func (l *List) Append(err error) {
	if err != nil {
		l.errs = append(l.errs, err)
	}
}

// Between refuses a duration outside [lo, hi]; zeroOK also allows 0 (the
// feature is off). The bounds keep one typo from hurting every client (a
// 25 ns ping interval is a ping flood).
func (l *List) Between(key string, d, lo, hi time.Duration, zeroOK bool) {
	if zeroOK && d == 0 {
		return
	}
	if d < lo || d > hi {
		off := ""
		if zeroOK {
			off = " (or 0 to turn it off)"
		}
		l.Add(key, "must be between %s and %s%s, got %s", FormatDuration(lo), FormatDuration(hi), off, d)
	}
}

// Err returns every recorded problem joined, or nil.
func (l *List) Err() error { return errors.Join(l.errs...) }

// FormatDuration writes a bound without Go's trailing zero units ("1h",
// not "1h0m0s").
func FormatDuration(d time.Duration) string {
	out := d.String()
	for _, z := range []string{"0s", "0m"} {
		if strings.HasSuffix(out, "m"+z) || strings.HasSuffix(out, "h"+z) {
			out = strings.TrimSuffix(out, z)
		}
	}
	return out
}
