package protocols

import (
	"errors"
	"strings"
	"testing"

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
	for _, s := range []string{"oracle_upload_*,-oracle_upload_progress", "[", "-", "a?b", ""} {
		f.Add(s, "oracle_upload_progress")
	}
	f.Fuzz(func(t *testing.T, spec, typ string) {
		flt, err := ParseTypeFilter(spec)
		if err != nil {
			return
		}
		_ = flt.Allows(typ)
		if flt != nil {
			if _, err := ParseTypeFilter(flt.String()); err != nil {
				t.Fatalf("String() of %q does not parse: %v", spec, err)
			}
		}
	})
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
