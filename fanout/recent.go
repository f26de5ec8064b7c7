package fanout

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/rueidis"
)

// Recent implements RecentReader.
func (b *MemoryBroker) Recent(_ context.Context, channel string, before uint64, limit int) ([]*Message, error) {
	if !ValidChannel(channel) {
		return nil, fmt.Errorf("recent %q: %w", channel, ErrInvalidChannel)
	}
	c := b.channel(channel, false)
	if c == nil {
		return nil, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	b.expireLocked(c, b.now())
	var out []*Message
	for i := len(c.ring) - 1; i >= 0 && len(out) < limit; i-- {
		if before == 0 || c.ring[i].Pos.Offset < before {
			out = append(out, c.ring[i])
		}
	}
	return out, nil
}

// Recent implements RecentReader with XREVRANGE on the channel's stream.
func (b *RedisBroker) Recent(ctx context.Context, channel string, before uint64, limit int) ([]*Message, error) {
	if !ValidChannel(channel) {
		return nil, fmt.Errorf("recent %q: %w", channel, ErrInvalidChannel)
	}
	s := b.sub(channel)
	k := newRedisKeys(s.base, channel)
	ctx, cancel := context.WithTimeout(ctx, b.cfg.CommandTimeout)
	defer cancel()
	end := "+"
	if before > 0 {
		if before == 1 {
			return nil, nil
		}
		end = strconv.FormatUint(before-1, 10) + "-1"
	}
	res := s.client.DoMulti(ctx,
		s.client.B().Hget().Key(k.meta).Field("epoch").Build(),
		s.client.B().Xrevrange().Key(k.stream).End(end).Start("-").Count(int64(limit)).Build())
	epochStr, err := res[0].ToString()
	if rueidis.IsRedisNil(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("recent %s on redis %s: %w", channel, s.name, err)
	}
	epoch, err := strconv.ParseUint(epochStr, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("recent %s: bad epoch %q", channel, epochStr)
	}
	entries, err := res[1].ToArray()
	if err != nil && !rueidis.IsRedisNil(err) {
		return nil, fmt.Errorf("recent %s on redis %s: %w", channel, s.name, err)
	}
	cut := time.Now().Add(-b.historyTTL(channel)).UnixNano()
	out := make([]*Message, 0, len(entries))
	for i := range entries {
		m, err := parseStreamEntry(channel, uint32(epoch), &entries[i])
		if err != nil {
			return nil, fmt.Errorf("recent %s: %w", channel, err)
		}
		if m.PublishedAt > 0 && m.PublishedAt < cut {
			break // older than the history TTL: no longer retained
		}
		out = append(out, m)
	}
	return out, nil
}
