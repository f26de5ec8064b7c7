package fanout

import (
	"errors"
	"strconv"
	"strings"
)

// FNV-1a 64-bit parameters.
const (
	fnvOffset64 = 0xcbf29ce484222325
	fnvPrime64  = 0x100000001b3
)

// ShardIndex returns the shard (or, in cluster mode, the partition) that
// owns channel when there are shards of them: the jump consistent hash
// (Lamping & Veach, 2014) of the 64-bit FNV-1a hash of the channel name's
// bytes. Adding a shard moves only about 1/(shards) of the channels.
// docs/redis.md has the same algorithm in Python for backends that publish
// directly to Redis. It returns 0 when shards <= 1.
func ShardIndex(channel string, shards int) int {
	if shards <= 1 {
		return 0
	}
	h := uint64(fnvOffset64)
	for i := 0; i < len(channel); i++ {
		h ^= uint64(channel[i])
		h *= fnvPrime64
	}
	return jumpHash(h, shards)
}

// jumpHash is the jump consistent hash of key over n buckets.
func jumpHash(key uint64, n int) int {
	b, j := int64(-1), int64(0)
	for j < int64(n) {
		b = j
		key = key*2862933555777941757 + 1
		j = int64(float64(b+1) * (float64(int64(1)<<31) / float64((key>>33)+1)))
	}
	return int(b)
}

// redisKeys are the Redis names belonging to one channel. base is the
// configured prefix followed, in cluster mode, by the partition's hash tag
// "{p<N>}", so that all names of a partition hash to one slot.
type redisKeys struct {
	meta   string // hash: epoch, offset
	stream string // stream: the retained history
	pubsub string // pub/sub (or sharded pub/sub) channel
	base   string
}

func newRedisKeys(base, channel string) redisKeys {
	return redisKeys{
		meta:   base + "meta:" + channel,
		stream: base + "hist:" + channel,
		pubsub: base + "chan:" + channel,
		base:   base,
	}
}

// idem returns the idempotency key of key in channel. "|" cannot occur in a
// channel name, so the name is unambiguous.
func (k redisKeys) idem(channel, key string) string {
	return k.base + "idem:" + channel + "|" + key
}

// partitionTag is the cluster hash tag of partition p.
func partitionTag(p int) string { return "{p" + strconv.Itoa(p) + "}" }

// payloadVersion starts every pub/sub payload written by the publish script.
const payloadVersion = "h2"

// legacyPayloadVersion starts payloads of older publish scripts (nodes and
// backends not yet upgraded).
const legacyPayloadVersion = "h1"

var errBadPayload = errors.New("fanout: malformed redis pub/sub payload")

// decodePayload parses a pub/sub payload written by redis_publish.lua:
//
//	h2|<epoch>|<offset>|<publishedAt ns>|<len(traceparent)>|<traceparent><data>
//
// The traceparent's length in bytes comes before it, so no byte of it can
// move where the data starts; data is the rest of the payload.
//
// Older scripts wrote h1|<epoch>|<offset>|<publishedAt ns>|<traceparent>|<data>,
// where a traceparent holding "|" shifted the data; h1 payloads are accepted
// only with an empty or W3C-shaped traceparent.
func decodePayload(channel, p string) (*Message, error) {
	var f [4]string
	ver, rest, ok := strings.Cut(p, "|")
	if !ok || (ver != payloadVersion && ver != legacyPayloadVersion) {
		return nil, errBadPayload
	}
	for i := range f {
		if f[i], rest, ok = strings.Cut(rest, "|"); !ok {
			return nil, errBadPayload
		}
	}
	epoch, err := strconv.ParseUint(f[0], 10, 32)
	if err != nil || epoch == 0 {
		return nil, errBadPayload
	}
	off, err := strconv.ParseUint(f[1], 10, 64)
	if err != nil || off == 0 {
		return nil, errBadPayload
	}
	ts, err := strconv.ParseInt(f[2], 10, 64)
	if err != nil {
		return nil, errBadPayload
	}
	tp := f[3]
	if ver == payloadVersion {
		n, err := strconv.ParseUint(f[3], 10, 32)
		if err != nil || n > uint64(len(rest)) {
			return nil, errBadPayload
		}
		tp, rest = rest[:n], rest[n:]
	} else if tp != "" && !traceParentShaped(tp) {
		return nil, errBadPayload
	}
	m := &Message{
		Channel:     channel,
		Pos:         Position{Epoch: uint32(epoch), Offset: off},
		Data:        []byte(rest),
		PublishedAt: ts,
	}
	if tp != "" {
		m.TraceParent = strings.Clone(tp)
	}
	return m, nil
}

// traceParentShaped reports whether s looks like a W3C traceparent
// ("00-<32 hex>-<16 hex>-<2 hex>": 55 bytes of hex digits and dashes).
func traceParentShaped(s string) bool {
	if len(s) != 55 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c == '-') {
			return false
		}
	}
	return true
}

// streamOffset parses the offset out of a stream entry ID "<offset>-1".
func streamOffset(id string) (uint64, bool) {
	ms, _, _ := strings.Cut(id, "-")
	off, err := strconv.ParseUint(ms, 10, 64)
	return off, err == nil && off > 0
}
