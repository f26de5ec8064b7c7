package compat

import (
	"fmt"
	"hash/crc32"
	"regexp"
	"strings"

	"github.com/heraldrt/herald/fanout"
)

// ConsistentHash is channels_redis's host selection (utils._consistent_hash
// in channels_redis 4.x): the low 12 bits of the CRC-32 of the name's UTF-8
// bytes, scaled down to n hosts with the same floating-point division.
func ConsistentHash(name string, n int) int {
	if n <= 1 {
		return 0
	}
	big := float64(crc32.ChecksumIEEE([]byte(name)) & 0xfff)
	return int(big / (4096 / float64(n)))
}

// groupNameRE is channels' group name rule (BaseChannelLayer.group_name_regex,
// names shorter than 100 characters).
var groupNameRE = regexp.MustCompile(`^[a-zA-Z\d\-_.]+$`)

// validGroup reports whether name is a group name channels accepts.
func validGroup(name string) bool { return len(name) < 100 && groupNameRE.MatchString(name) }

// rule is one group ↔ channel mapping with at most one "{id}".
type rule struct {
	gPre, gSuf string // group = gPre + id + gSuf
	cPre, cSuf string // channel = cPre + id + cSuf
	pattern    bool
}

func compileRules(rs []GroupRule) ([]rule, error) {
	out := make([]rule, 0, len(rs))
	for _, r := range rs {
		var c rule
		var ok bool
		if c.gPre, c.gSuf, ok = strings.Cut(r.Group, "{id}"); ok {
			c.pattern = true
			c.cPre, c.cSuf, _ = strings.Cut(r.Channel, "{id}")
		} else {
			c.gPre, c.cPre = r.Group, r.Channel
			if !validGroup(r.Group) {
				return nil, fmt.Errorf("group %q is not a valid channels group name", r.Group)
			}
			if !fanout.ValidChannel(r.Channel) {
				return nil, fmt.Errorf("channel %q is not a valid Herald channel name", r.Channel)
			}
		}
		out = append(out, c)
	}
	return out, nil
}

// groupFor returns the group whose messages go to Herald channel ch.
func groupFor(rules []rule, ch string) (string, bool) {
	for _, r := range rules {
		if !r.pattern {
			if ch == r.cPre {
				return r.gPre, true
			}
			continue
		}
		if len(ch) > len(r.cPre)+len(r.cSuf) && strings.HasPrefix(ch, r.cPre) && strings.HasSuffix(ch, r.cSuf) {
			id := ch[len(r.cPre) : len(ch)-len(r.cSuf)]
			if g := r.gPre + id + r.gSuf; validGroup(g) {
				return g, true
			}
		}
	}
	return "", false
}

// channelFor returns the Herald channel that group's messages go to.
func channelFor(rules []rule, group string) (string, bool) {
	for _, r := range rules {
		if !r.pattern {
			if group == r.gPre {
				return r.cPre, true
			}
			continue
		}
		if len(group) > len(r.gPre)+len(r.gSuf) && strings.HasPrefix(group, r.gPre) && strings.HasSuffix(group, r.gSuf) {
			id := group[len(r.gPre) : len(group)-len(r.gSuf)]
			if ch := r.cPre + id + r.cSuf; fanout.ValidChannel(ch) {
				return ch, true
			}
		}
	}
	return "", false
}
