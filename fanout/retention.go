package fanout

import "time"

// of returns channel's history size and TTL under r: each is r's value
// when positive, else the broker's default (size, ttl); a nil r gives the
// defaults. Both brokers look retention up through it.
func (r Retention) of(channel string, size int, ttl time.Duration) (int, time.Duration) {
	if r == nil {
		return size, ttl
	}
	s, t := r(channel)
	if s > 0 {
		size = s
	}
	if t > 0 {
		ttl = t
	}
	return size, ttl
}
