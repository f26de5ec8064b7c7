package protocols

import (
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/heraldrt/herald/fanout"
	"github.com/heraldrt/herald/internal/glob"
)

func TestTypeFilter(t *testing.T) {
	cases := []struct {
		spec  string
		typ   string
		allow bool
	}{
		{"", "anything", true},
		{"oracle_upload_*", "oracle_upload_started", true},
		{"oracle_upload_*", "invoice_paid", false},
		{"oracle_upload_*", "", false},
		{"oracle_upload_*,-oracle_upload_progress", "oracle_upload_progress", false},
		{"oracle_upload_*,-oracle_upload_progress", "oracle_upload_completed", true},
		{"-oracle_upload_progress", "oracle_upload_progress", false},
		{"-oracle_upload_progress", "invoice_paid", true},
		{"-oracle_upload_progress", "", true},
		{"a?c, x*", "abc", true},
		{" , ,", "x", true},
	}
	for _, tc := range cases {
		f, err := ParseTypeFilter(tc.spec)
		if err != nil {
			t.Fatalf("%q: %v", tc.spec, err)
		}
		if got := f.Allows(tc.typ); got != tc.allow {
			t.Errorf("filter %q, type %q: %v, want %v", tc.spec, tc.typ, got, tc.allow)
		}
	}
	for _, p := range []struct {
		p, s string
		ok   bool
	}{{"*", "", true}, {"a*b*c", "axxbyyc", true}, {"a*b*c", "axxbyy", false}, {"*_progress", "oracle_upload_progress", true}, {"a?c", "ac", false}, {"**", "x", true}} {
		if glob.Match(p.p, p.s) != p.ok {
			t.Errorf("glob(%q, %q) != %v", p.p, p.s, p.ok)
		}
	}
	for _, bad := range []string{"[", "-", "a,-[x", strings.Repeat("a,", 40), strings.Repeat("x", 101)} {
		if _, err := ParseTypeFilter(bad); !errors.Is(err, ErrBadFilter) {
			t.Errorf("%.20q: err %v, want ErrBadFilter", bad, err)
		}
	}
}

func FuzzParseTypeFilter(f *testing.F) {
	for _, s := range []string{"oracle_upload_*,-oracle_upload_progress", "[", "-", "a?b", "", "a*b?c*d,-*x*", "*?,-??"} {
		f.Add(s, "oracle_upload_progress")
	}
	f.Add("*a*a*b", "aaab")
	f.Fuzz(func(t *testing.T, spec, typ string) {
		flt, err := ParseTypeFilter(spec)
		if err != nil {
			return
		}
		got := flt.Allows(typ)
		if want := referenceAllows(spec, typ); got != want {
			t.Fatalf("filter %q, type %q: Allows = %v, reference says %v", spec, typ, got, want)
		}
		if flt != nil {
			if _, err := ParseTypeFilter(flt.String()); err != nil {
				t.Fatalf("String() of %q does not parse: %v", spec, err)
			}
		}
	})
}

// referenceAllows decides a ?types= spec for typ independently of
// TypeFilter and internal/glob: patterns become anchored regular
// expressions (each pattern byte is a Latin-1 rune so "?" stays one byte),
// then the documented rule applies: some include matches (or there are
// none; a message without a type fails any include) and no exclude does.
func referenceAllows(spec, typ string) bool {
	toRunes := func(s string) string {
		r := make([]rune, len(s))
		for i := 0; i < len(s); i++ {
			r[i] = rune(s[i])
		}
		return string(r)
	}
	match := func(p, s string) bool {
		var re strings.Builder
		re.WriteString(`^(?s)`)
		for i := 0; i < len(p); i++ {
			switch p[i] {
			case '*':
				re.WriteString(`.*`)
			case '?':
				re.WriteString(`.`)
			default:
				re.WriteString(regexp.QuoteMeta(string(rune(p[i]))))
			}
		}
		re.WriteString(`$`)
		return regexp.MustCompile(re.String()).MatchString(toRunes(s))
	}
	var incl, excl []string
	for _, p := range strings.Split(spec, ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		if p[0] == '-' {
			excl = append(excl, p[1:])
		} else {
			incl = append(incl, p)
		}
	}
	if len(incl) > 0 {
		ok := false
		for _, p := range incl {
			ok = ok || (typ != "" && match(p, typ))
		}
		if !ok {
			return false
		}
	}
	for _, p := range excl {
		if match(p, typ) {
			return false
		}
	}
	return true
}

// hostileFilter is the worst case: 32 patterns of 100 bytes that a
// backtracking matcher tries at every offset of a long type.
func hostileFilter(t testing.TB) *TypeFilter {
	pats := make([]string, 32)
	for i := range pats {
		pats[i] = "*" + strings.Repeat("a", 98) + string(rune('b'+i%20))
	}
	f, err := NewTypeFilter(pats)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// TestTypeFilterLinear: a 32-pattern hostile filter against a 100 KB type
// costs milliseconds per message and connection (0.55 s before matching
// was linear).
func TestTypeFilterLinear(t *testing.T) {
	f := hostileFilter(t)
	typ := strings.Repeat("a", 100<<10)
	start := time.Now()
	for range 10 {
		if f.Allows(typ) {
			t.Fatal("hostile filter allowed the type")
		}
	}
	limit := 50 * time.Millisecond
	if raceEnabled {
		limit *= 10
	}
	if d := time.Since(start); d > limit {
		t.Fatalf("10 messages took %v, want < %v", d, limit)
	}
}

// BenchmarkFilterHostile: the hostile filter per message (100 KB type).
func BenchmarkFilterHostile(b *testing.B) {
	f := hostileFilter(b)
	typ := strings.Repeat("a", 100<<10)
	b.ReportAllocs()
	for b.Loop() {
		_ = f.Allows(typ)
	}
}

// BenchmarkFilter: a type filter costs nothing without one and well under
// 100 ns per delivered message with one (the type is parsed once per
// message and shared).
func BenchmarkFilter(b *testing.B) {
	m := &fanout.Message{Data: []byte(`{"type":"oracle_upload_progress","transaction_id":602,"step_number":3}`)}
	messageType(m) // parsed once per message, shared by all sessions
	for _, spec := range []string{"", "oracle_upload_*,-oracle_upload_progress"} {
		f, _ := ParseTypeFilter(spec)
		name := "none"
		if f != nil {
			name = "include+exclude"
		}
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if f != nil {
					_ = f.Allows(messageType(m))
				}
			}
		})
	}
}
