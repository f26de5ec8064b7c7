// Package glob matches names against simple patterns: "*" is any run of
// bytes and "?" one byte; nothing else is special. Linear time, no
// allocation: it runs on the delivery path (type filters) and per publish
// (retention rules).
package glob

// Match reports whether s matches pattern p.
func Match(p, s string) bool {
	pi, si := 0, 0
	star, mark := -1, 0
	for si < len(s) {
		switch {
		case pi < len(p) && (p[pi] == '?' || p[pi] == s[si]):
			pi++
			si++
		case pi < len(p) && p[pi] == '*':
			star, mark = pi, si
			pi++
		case star >= 0:
			pi = star + 1
			mark++
			si = mark
		default:
			return false
		}
	}
	for pi < len(p) && p[pi] == '*' {
		pi++
	}
	return pi == len(p)
}
