package protocols

import (
	"errors"
	"fmt"
	"strings"

	"github.com/heraldrt/herald/fanout"
	"github.com/heraldrt/herald/internal/glob"
)

// TypeFilter selects messages by their payload's "type": a client's
// ?types=oracle_upload_*,-oracle_upload_progress or a user's stored
// preferences. Patterns are globs ("*" any run, "?" one byte; no
// character classes); a leading "-" excludes. A
// message passes when it matches an include pattern (or there are none) and
// no exclude pattern. Messages without a "type" pass unless include
// patterns exist. Filtered messages still advance the cursor, so resume
// stays exact. Matching is linear in the length of the type (see
// internal/glob), so no pattern makes a long type expensive.
type TypeFilter struct {
	include []string
	exclude []string
}

// maxFilterPatterns bounds a filter so a hostile ?types= costs little.
const maxFilterPatterns = 32

// ErrBadFilter is returned for a filter that cannot be parsed.
var ErrBadFilter = errors.New("malformed type filter")

// ParseTypeFilter parses a comma-separated list of patterns. The empty
// string yields nil (everything passes).
func ParseTypeFilter(s string) (*TypeFilter, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	return NewTypeFilter(strings.Split(s, ","))
}

// NewTypeFilter builds a filter from patterns ("a_*", "-a_progress").
func NewTypeFilter(patterns []string) (*TypeFilter, error) {
	f := &TypeFilter{}
	n := 0
	for _, p := range patterns {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		if n++; n > maxFilterPatterns {
			return nil, fmt.Errorf("%w: more than %d patterns", ErrBadFilter, maxFilterPatterns)
		}
		neg := strings.HasPrefix(p, "-")
		if neg {
			p = p[1:]
		}
		if p == "" || len(p) > 100 {
			return nil, fmt.Errorf("%w: empty or overlong pattern", ErrBadFilter)
		}
		if strings.ContainsAny(p, "[]\\") {
			return nil, fmt.Errorf("%w: pattern %q: only * and ? are special", ErrBadFilter, p)
		}
		if neg {
			f.exclude = append(f.exclude, p)
		} else {
			f.include = append(f.include, p)
		}
	}
	if len(f.include) == 0 && len(f.exclude) == 0 {
		return nil, nil
	}
	return f, nil
}

// Allows reports whether a message whose payload type is typ passes.
func (f *TypeFilter) Allows(typ string) bool {
	if f == nil {
		return true
	}
	if len(f.include) > 0 {
		ok := false
		for _, p := range f.include {
			if typ != "" && glob.Match(p, typ) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	for _, p := range f.exclude {
		if glob.Match(p, typ) {
			return false
		}
	}
	return true
}

// String returns the filter in ?types= syntax.
func (f *TypeFilter) String() string {
	if f == nil {
		return ""
	}
	parts := append([]string(nil), f.include...)
	for _, p := range f.exclude {
		parts = append(parts, "-"+p)
	}
	return strings.Join(parts, ",")
}

// messageType returns m's payload "type", parsed once per message and
// shared by every session.
func messageType(m *fanout.Message) string {
	return string(m.Encoded(slotType, func(m *fanout.Message) []byte { return []byte(jsonType(m.Data)) }))
}
