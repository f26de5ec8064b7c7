package fanout

import (
	"strings"
	"sync"
	"time"
)

// Delivery side of a redisSub: the delivery goroutine that hands pub/sub
// messages to the handler in order, fills gaps in live delivery from the
// channel's stream, and catches channels up after a reconnect or a drop.

const (
	// catchupParallel bounds concurrent stream reads while catching up.
	catchupParallel = 32
	// maxGapFill caps the messages read to fill one gap in live delivery.
	maxGapFill = 10000
	// gapFillMaxWait is the longest pause between retries of a failed gap
	// read (50 ms doubling: about 750 ms in all).
	gapFillMaxWait = 400 * time.Millisecond
	// catchupRetry is how long a failed catch-up read waits to be retried,
	// at most catchupRetries times in a row.
	catchupRetry   = 200 * time.Millisecond
	catchupRetries = 10
)

type inbound struct{ channel, payload string }

func (s *redisSub) requestCatchup(chans []string) {
	if len(chans) == 0 {
		return
	}
	s.dmu.Lock()
	for _, ch := range chans {
		s.catchup[ch] = struct{}{}
	}
	s.dmu.Unlock()
	select {
	case s.deliverKick <- struct{}{}:
	default:
	}
}

// deliverLoop calls the handler for this shard's messages, one at a time,
// so each channel's messages keep their order.
func (s *redisSub) deliverLoop() {
	defer s.b.wg.Done()
	for {
		select {
		case in := <-s.queue:
			s.deliverRaw(in)
		case <-s.deliverKick:
			// Deliver what is queued first: it was received before the
			// catch-up was requested.
			for n := len(s.queue); n > 0; n-- {
				s.deliverRaw(<-s.queue)
			}
			s.runCatchup()
		case <-s.b.ctx.Done():
			return
		}
	}
}

func (s *redisSub) deliverRaw(in inbound) {
	ch, ok := strings.CutPrefix(in.channel, s.chanPfx)
	if !ok {
		return
	}
	m, err := decodePayload(ch, in.payload)
	if err != nil {
		return // not written by the publish script
	}
	s.deliver(m, true)
}

// deliver hands m to the handler unless this node already delivered it.
// A live message that skips offsets, or starts a new epoch past its first
// offset, first gets the missing ones from the stream. It reports whether
// m was delivered.
func (s *redisSub) deliver(m *Message, live bool) bool {
	s.mu.Lock()
	st := s.chans[m.Channel]
	if st == nil || st.refs == 0 {
		s.mu.Unlock()
		return false
	}
	last := st.last
	if last.Epoch == m.Pos.Epoch && m.Pos.Offset <= last.Offset {
		s.mu.Unlock()
		return false
	}
	sameEpoch := last.Epoch == m.Pos.Epoch
	gap := live && last.Epoch != 0 && ((sameEpoch && m.Pos.Offset > last.Offset+1) || (!sameEpoch && m.Pos.Offset > 1))
	if !gap {
		st.last = m.Pos
	}
	s.mu.Unlock()
	if gap {
		from := Position{Epoch: m.Pos.Epoch}
		if sameEpoch {
			from = last
		}
		if current, ok := s.fillGap(m.Channel, from, m.Pos.Offset); ok && current != m.Pos.Epoch {
			return false // a message of a history Redis no longer has
		}
		s.mu.Lock()
		if st.last.Epoch == m.Pos.Epoch && m.Pos.Offset <= st.last.Offset {
			s.mu.Unlock()
			return false
		}
		st.last = m.Pos
		s.mu.Unlock()
	}
	if h := s.b.handler; h != nil {
		h(m)
	}
	return true
}

// fillGap delivers the messages of from's epoch after from and before
// before, read from the stream. It returns the channel's current epoch, or
// ok false when the read failed; then the gap stays and sessions fill it
// from History themselves.
func (s *redisSub) fillGap(channel string, from Position, before uint64) (current uint32, ok bool) {
	n := min(before-from.Offset-1, maxGapFill)
	var top Position
	var msgs []*Message
	var err error
	// Right after a failover the first reads may still go to the old
	// master: retry briefly before leaving the gap to the sessions.
	for wait := 50 * time.Millisecond; ; wait *= 2 {
		if top, msgs, err = s.b.readStream(s.b.ctx, s, channel, from.Offset+1, int(n)); err == nil || wait > gapFillMaxWait || !s.sleep(wait) {
			break
		}
	}
	if err != nil {
		return 0, false
	}
	if top.Epoch != from.Epoch {
		return top.Epoch, true
	}
	for _, m := range msgs {
		if m.Pos.Offset < before && s.deliver(m, false) {
			s.b.stats.recovered.Add(1)
		}
	}
	return top.Epoch, true
}

// sleep waits d unless the broker closes first; it reports whether it
// waited.
func (s *redisSub) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-s.b.ctx.Done():
		return false
	}
}

// runCatchup re-reads the streams of the channels requested (after a
// reconnect or dropped messages) from the last delivered offset, or from
// the start of a new epoch, and delivers what this node has not.
func (s *redisSub) runCatchup() {
	s.dmu.Lock()
	chans := make([]string, 0, len(s.catchup))
	for ch := range s.catchup {
		chans = append(chans, ch)
	}
	clear(s.catchup)
	s.dmu.Unlock()
	results := make([][]*Message, catchupParallel)
	for len(chans) > 0 && !s.b.closed() {
		n := min(len(chans), catchupParallel)
		var wg sync.WaitGroup
		for i, ch := range chans[:n] {
			results[i] = nil
			s.mu.Lock()
			st := s.chans[ch]
			var last Position
			ok := st != nil && st.refs > 0
			if ok {
				last = st.last
			}
			s.mu.Unlock()
			if !ok {
				continue
			}
			wg.Go(func() {
				var ok bool
				results[i], ok = s.readSince(ch, last)
				s.dmu.Lock()
				tries := 0
				if !ok {
					s.catchupFails[ch]++
					tries = s.catchupFails[ch]
				} else {
					delete(s.catchupFails, ch)
				}
				s.dmu.Unlock()
				if !ok && tries <= catchupRetries {
					// Retry later (a failover may still be settling); after
					// that, a live message's gap fill covers it. While the
					// connection is down, its reconnect re-reads every
					// channel anyway.
					time.AfterFunc(catchupRetry, func() {
						s.mu.Lock()
						up := s.up
						s.mu.Unlock()
						if up {
							s.requestCatchup([]string{ch})
						}
					})
				}
			})
		}
		wg.Wait()
		for _, msgs := range results[:n] {
			for _, m := range msgs {
				if s.deliver(m, false) {
					s.b.stats.recovered.Add(1)
				}
			}
		}
		chans = chans[n:]
	}
}

// readSince returns the retained messages of channel after last, or all of
// them when last is unknown or from an older epoch; ok is false when the
// read failed (and the broker is not closing).
func (s *redisSub) readSince(channel string, last Position) ([]*Message, bool) {
	first := uint64(1)
	if last.Epoch != 0 {
		first = last.Offset + 1
	}
	top, msgs, err := s.b.readStream(s.b.ctx, s, channel, first, 0)
	if err == nil && last.Epoch != 0 && top.Epoch != last.Epoch && first != 1 {
		_, msgs, err = s.b.readStream(s.b.ctx, s, channel, 1, 0)
	}
	if err != nil {
		return nil, s.b.closed()
	}
	return msgs, true
}
