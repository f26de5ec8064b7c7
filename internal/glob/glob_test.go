package glob

import (
	"strings"
	"testing"
	"time"
)

// reference is an independent matcher: the textbook dynamic program over
// (pattern prefix, string prefix), quadratic but obviously right.
func reference(p, s string) bool {
	prev := make([]bool, len(s)+1)
	cur := make([]bool, len(s)+1)
	prev[0] = true
	for i := 0; i < len(p); i++ {
		cur[0] = prev[0] && p[i] == '*'
		for j := 1; j <= len(s); j++ {
			switch p[i] {
			case '*':
				cur[j] = prev[j] || cur[j-1]
			case '?':
				cur[j] = prev[j-1]
			default:
				cur[j] = prev[j-1] && p[i] == s[j-1]
			}
		}
		prev, cur = cur, prev
	}
	return prev[len(s)]
}

func TestMatch(t *testing.T) {
	long := strings.Repeat("ab?", 30) // a 90-byte segment with '?': the multi-word search
	for _, c := range []struct {
		p, s string
		ok   bool
	}{
		{"", "", true}, {"", "a", false}, {"*", "", true}, {"**", "x", true},
		{"abc", "abc", true}, {"abc", "abd", false}, {"a?c", "abc", true}, {"a?c", "ac", false},
		{"a*", "a", true}, {"a*", "ba", false}, {"*a", "ba", true}, {"*a", "ab", false},
		{"a*b*c", "axxbyyc", true}, {"a*b*c", "axxbyy", false}, {"a*b*c", "abc", true},
		{"a*b?d*e", "abxdabcde", true}, {"a*b?d*e", "abxe", false},
		{"*_progress", "oracle_upload_progress", true}, {"*ab*ab*", "abab", true}, {"*ab*ab*", "aba", false},
		{"*aa*", "a", false}, {"a*a", "a", false}, {"*?*", "", false}, {"*?*", "x", true},
		{"x*" + long + "*y", "x" + strings.Repeat("abz", 30) + "y", true},
		{"x*" + long + "*y", "x" + strings.Repeat("abz", 29) + "y", false},
		{"x*" + strings.Repeat(long, 2) + "*y", "x" + strings.Repeat("abz", 60) + "y", true},
		{"x*" + strings.Repeat(long, 2) + "*y", "x" + strings.Repeat("abz", 59) + "y", false},
	} {
		if got := Match(c.p, c.s); got != c.ok {
			t.Errorf("Match(%q, %q) = %v, want %v", c.p, c.s, got, c.ok)
		}
		if got := reference(c.p, c.s); got != c.ok {
			t.Errorf("reference(%q, %q) = %v, want %v", c.p, c.s, got, c.ok)
		}
	}
}

// hostilePatterns are shapes that make a backtracking matcher quadratic
// on a long run of 'a's.
func hostilePatterns() []string {
	run := strings.Repeat("a", 98)
	return []string{
		"*" + run + "b",         // the case: star then a near-miss
		"*" + run + "b*",        // same as a middle segment
		"*a?" + run[:96] + "b*", // middle segment with '?' (Shift-And)
		"a*" + run[:60] + "b*a", // anchored head and tail
	}
}

// TestMatchLinear: each hostile pattern against a 100 KB name costs
// milliseconds (a backtracking matcher needs ~100 x 100 K steps: about
// 17 ms per pattern, 0.55 s for the 32 a type filter allows).
func TestMatchLinear(t *testing.T) {
	s := strings.Repeat("a", 100<<10)
	for _, p := range hostilePatterns() {
		start := time.Now()
		for range 32 {
			if Match(p, s) {
				t.Fatalf("%q matched", p)
			}
		}
		// 32 matches of 100 KB: under 15 ms here (10x that under -race);
		// the backtracking matcher took over 500 ms.
		if d, limit := time.Since(start), 100*time.Millisecond*slowdown; d > limit {
			t.Errorf("pattern %.12q x32 on 100 KB took %v, want < %v", p, d, limit)
		}
	}
}

func FuzzMatch(f *testing.F) {
	for _, s := range [][2]string{{"a*b?c", "axbyc"}, {"*a*", "bab"}, {"?", ""}, {"**a", "a"}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, p, s string) {
		if len(p) > 200 || len(s) > 400 {
			return // keep the quadratic reference cheap
		}
		if got, want := Match(p, s), reference(p, s); got != want {
			t.Fatalf("Match(%q, %q) = %v, reference says %v", p, s, got, want)
		}
	})
}

func BenchmarkMatch(b *testing.B) {
	s := strings.Repeat("a", 100<<10)
	for _, bc := range []struct{ name, p, s string }{
		{"prefix", "oracle_upload_*", "oracle_upload_progress"},
		{"suffix", "*_progress", "oracle_upload_progress"},
		{"middle", "a*load*s", "oracle_upload_progress"},
		{"hostile-100KB", hostilePatterns()[0], s},
		{"hostile-middle?-100KB", hostilePatterns()[2], s},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				Match(bc.p, bc.s)
			}
		})
	}
}
