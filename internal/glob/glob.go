// Package glob matches names against simple patterns: "*" is any run of
// bytes and "?" one byte; nothing else is special. It runs on the delivery
// path (type filters, once per message and connection) and per publish
// (retention rules), so matching is linear in the length of the name
// whatever the pattern: a hostile pattern such as "*aaaa…ab" against a long
// name costs one pass, not one pass per star position.
package glob

import "strings"

// Match reports whether s matches pattern p. It runs in
// O(len(s) * ceil(k/64) + len(p)) time, where k is the longest segment
// between two stars (O(len(s)+len(p)) for the usual patterns), and does not
// allocate unless a segment between two stars is longer than 128 bytes and
// contains "?".
//
// A pattern is S0*S1*…*Sn: S0 must match the start of s and Sn its end
// (both fixed-length checks); each middle segment is then found at its
// leftmost place after the previous one. Leftmost placement never loses a
// match, because a star absorbs whatever lies between two segments.
func Match(p, s string) bool {
	first := strings.IndexByte(p, '*')
	if first < 0 {
		return len(p) == len(s) && fixed(p, s)
	}
	head := p[:first]
	if len(s) < len(head) || !fixed(head, s[:len(head)]) {
		return false
	}
	s = s[len(head):]
	p = p[first+1:]
	var tail string
	if last := strings.LastIndexByte(p, '*'); last < 0 {
		tail, p = p, ""
	} else {
		tail, p = p[last+1:], p[:last]
	}
	if len(s) < len(tail) || !fixed(tail, s[len(s)-len(tail):]) {
		return false
	}
	s = s[:len(s)-len(tail)]
	for p != "" {
		seg := p
		if i := strings.IndexByte(p, '*'); i >= 0 {
			seg, p = p[:i], p[i+1:]
		} else {
			p = ""
		}
		if seg == "" {
			continue
		}
		at := index(s, seg)
		if at < 0 {
			return false
		}
		s = s[at+len(seg):]
	}
	return true
}

// fixed matches a star-free pattern against a string of the same length.
func fixed(p, s string) bool {
	for i := 0; i < len(p); i++ {
		if p[i] != '?' && p[i] != s[i] {
			return false
		}
	}
	return true
}

// index returns the offset of the leftmost place where the star-free
// pattern seg matches in s, or -1.
func index(s, seg string) int {
	if strings.IndexByte(seg, '?') < 0 {
		return strings.Index(s, seg) // linear (Rabin-Karp fallback)
	}
	switch {
	case len(seg) <= 64:
		return shiftAnd64(s, seg)
	case len(seg) <= 128:
		return shiftAnd128(s, seg)
	}
	return shiftAnd(s, seg)
}

// shiftAnd64 is the bit-parallel Shift-And search for a pattern of at most
// 64 bytes: bit j of d is set when seg[:j+1] matches the text ending at the
// current byte. One pass over s, a few word operations per byte.
func shiftAnd64(s, seg string) int {
	var table [256]uint64
	var any uint64 // positions holding '?', which match every byte
	for j := 0; j < len(seg); j++ {
		if seg[j] == '?' {
			any |= 1 << j
		} else {
			table[seg[j]] |= 1 << j
		}
	}
	found := uint64(1) << (len(seg) - 1)
	var d uint64
	for i := 0; i < len(s); i++ {
		d = (d<<1 | 1) & (table[s[i]] | any)
		if d&found != 0 {
			return i - len(seg) + 1
		}
	}
	return -1
}

// shiftAnd128 is shiftAnd64 over two words, for segments of 65 to 128
// bytes (type filter patterns are at most 100).
func shiftAnd128(s, seg string) int {
	var table [256][2]uint64
	var any0, any1 uint64
	for j := 0; j < len(seg); j++ {
		bit := uint64(1) << (j % 64)
		switch {
		case seg[j] == '?' && j < 64:
			any0 |= bit
		case seg[j] == '?':
			any1 |= bit
		default:
			table[seg[j]][j/64] |= bit
		}
	}
	found := uint64(1) << (len(seg) - 65)
	var d0, d1 uint64
	for i := 0; i < len(s); i++ {
		t := &table[s[i]]
		d1 = (d1<<1 | d0>>63) & (t[1] | any1)
		d0 = (d0<<1 | 1) & (t[0] | any0)
		if d1&found != 0 {
			return i - len(seg) + 1
		}
	}
	return -1
}

// shiftAnd is shiftAnd64 over any number of words, for segments longer
// than 128 bytes (it allocates its tables).
func shiftAnd(s, seg string) int {
	words := (len(seg) + 63) / 64
	table := make([]uint64, 256*words)
	anyq := make([]uint64, words)
	for j := 0; j < len(seg); j++ {
		if seg[j] == '?' {
			anyq[j/64] |= 1 << (j % 64)
		} else {
			table[int(seg[j])*words+j/64] |= 1 << (j % 64)
		}
	}
	last := len(seg) - 1
	d := make([]uint64, words)
	for i := 0; i < len(s); i++ {
		row := table[int(s[i])*words:]
		carry := uint64(1)
		for w := range words {
			next := d[w] >> 63
			d[w] = (d[w]<<1 | carry) & (row[w] | anyq[w])
			carry = next
		}
		if d[last/64]&(1<<(last%64)) != 0 {
			return i - last
		}
	}
	return -1
}
