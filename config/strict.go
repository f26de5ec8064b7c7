package config

import (
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"time"
)

// Strict loading: every key of the YAML file and every HERALD_* variable
// must name a field of Config (a misspelled key or section would otherwise
// be ignored in silence), and a duration must carry its unit in every
// source (YAML `ws_ping_interval: 25` would be 25 ns; the environment
// already refused "25"). The known keys come from Config's koanf tags, so
// a new field is known as soon as it is added: nothing to register.

// keyInfo describes one configuration key.
type keyInfo struct {
	typ     reflect.Type
	section bool // a struct: its keys are below it
	open    bool // a map: any key below it is accepted
}

var durationType = reflect.TypeFor[time.Duration]()

// knownKeys maps every configuration key (sections included) to its type.
var knownKeys = func() map[string]keyInfo {
	keys := make(map[string]keyInfo)
	var walk func(t reflect.Type, prefix string)
	walk = func(t reflect.Type, prefix string) {
		for i := range t.NumField() {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("koanf"), ",")
			if name == "" || name == "-" || !f.IsExported() {
				continue
			}
			key := prefix + name
			switch {
			case f.Type.Kind() == reflect.Struct:
				keys[key] = keyInfo{typ: f.Type, section: true}
				walk(f.Type, key+".")
			case f.Type.Kind() == reflect.Map:
				keys[key] = keyInfo{typ: f.Type, open: true}
			default:
				keys[key] = keyInfo{typ: f.Type}
			}
		}
	}
	walk(reflect.TypeFor[Config](), "")
	return keys
}()

// nonConfigEnv are HERALD_* variables that are not configuration keys but
// documented knobs of tests and tools; Load ignores them.
var nonConfigEnv = map[string]bool{
	"HERALD_TEST_LOG":     true, // verbose logs in tests
	"HERALD_ARTIFACTS":    true, // e2e screenshot directory
	"HERALD_COMPAT_BURST": true, // compat burst test size
	"HERALD_URL":          true, // the Django side's Herald address (docs/migrating-from-django-channels.md)
}

// keyKnown reports whether key names a configuration key or lies below a
// map-valued one.
func keyKnown(key string) bool {
	if _, ok := knownKeys[key]; ok {
		return true
	}
	for i := strings.LastIndexByte(key, '.'); i > 0; i = strings.LastIndexByte(key[:i], '.') {
		if ki, ok := knownKeys[key[:i]]; ok {
			return ki.open
		}
	}
	return false
}

// closestKey returns the known leaf key nearest to key (edit distance on
// the key, dots and underscores alike), or "" when none is near enough to
// be a plausible misspelling.
func closestKey(key string) string {
	norm := func(s string) string { return strings.ReplaceAll(s, ".", "_") }
	nk := norm(key)
	best, bestD := "", len(nk)/2+1
	cands := make([]string, 0, len(knownKeys))
	for k := range knownKeys {
		cands = append(cands, k)
	}
	sort.Strings(cands) // deterministic ties
	for _, k := range cands {
		if knownKeys[k].section {
			continue
		}
		if d := editDistance(nk, norm(k)); d < bestD {
			best, bestD = k, d
		}
	}
	if best == "" {
		// A misspelled section: match the leaf name under any section.
		_, leaf, _ := cutLast(key)
		for _, k := range cands {
			if _, kl, _ := cutLast(k); !knownKeys[k].section && kl == leaf {
				if d := editDistance(nk, norm(k)); best == "" || d < bestD {
					best, bestD = k, d
				}
			}
		}
	}
	return best
}

func cutLast(key string) (string, string, bool) {
	i := strings.LastIndexByte(key, '.')
	if i < 0 {
		return "", key, false
	}
	return key[:i], key[i+1:], true
}

// editDistance is the Levenshtein distance of a and b (bytes).
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// envName is the environment variable of key.
func envName(key string) string {
	return "HERALD_" + strings.ToUpper(strings.ReplaceAll(key, ".", "__"))
}

// unknownKeyError names an unknown key of source and suggests the closest
// known one.
func unknownKeyError(source, key string, env bool) error {
	name := key
	if env {
		name = envName(key)
	}
	msg := fmt.Sprintf("config %s: unknown key %s", source, name)
	if env {
		msg = fmt.Sprintf("config environment: unknown variable %s (not a configuration key)", name)
	}
	if s := closestKey(key); s != "" {
		if env {
			s = envName(s)
		}
		msg += "; did you mean " + s + "?"
	}
	return errors.New(msg)
}

// checkFileKeys checks the flattened keys of a config file: each must be
// known, and a duration must be a string with a unit (or 0).
func checkFileKeys(source string, all map[string]any) error {
	keys := make([]string, 0, len(all))
	for k := range all {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var errs []error
	for _, k := range keys {
		if !keyKnown(k) {
			errs = append(errs, unknownKeyError(source, k, false))
			continue
		}
		if err := checkDuration(k, all[k]); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// checkDuration refuses a bare number for a duration key: YAML reads
// `25` as an integer, which would otherwise be 25 ns.
func checkDuration(key string, v any) error {
	ki, ok := knownKeys[key]
	if !ok || ki.typ != durationType {
		return nil
	}
	switch x := v.(type) {
	case string:
		if _, err := time.ParseDuration(x); err != nil {
			return &KeyError{Key: key, Msg: fmt.Sprintf("%q is not a duration: give a number with a unit (ms, s, m, h), e.g. \"25s\"", x)}
		}
	case int, int64, uint64, float64:
		if reflect.ValueOf(x).IsZero() {
			return nil // 0 is 0 in any unit
		}
		return &KeyError{Key: key, Msg: fmt.Sprintf("%v has no unit: durations need one (ms, s, m, h), e.g. \"%vs\"", x, x)}
	case nil, time.Duration:
	default:
		return &KeyError{Key: key, Msg: fmt.Sprintf("%v is not a duration: give a number with a unit, e.g. \"25s\"", x)}
	}
	return nil
}
