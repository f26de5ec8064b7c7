package protocols

import (
	"context"
	"errors"
	"sync"

	"github.com/heraldrt/herald/fanout"
)

// Resume sets the session's starting position in each channel: the
// client's cursor where it has one (queueing the retained messages it
// missed), the channel's current top otherwise. It must run after the
// session is registered for live delivery, so nothing published in between
// is lost; live messages that history also returned are dropped as
// duplicates. It queues the connection_established event first.
//
// The channels' history reads are independent, so they run at once: with
// the Redis broker a connect then waits one round trip for all of them
// (rueidis pipelines concurrent commands) instead of one per channel.
func (s *Session) Resume(ctx context.Context) error {
	pre := []item{{kind: itemEvent, b: EstablishedEvent(s.tr.Kind(), s.opts.UserID, s.env.Config.UserIDString)}}
	var msgs []item
	positions := make([]fanout.Position, len(s.chans))
	reads := s.readHistories(ctx)
	for i := range s.chans {
		ch := s.chans[i].name
		since, ok, res, err := reads[i].since, reads[i].ok, reads[i].res, reads[i].err
		switch {
		case err == nil && ok:
			positions[i] = since
			for _, m := range res.Messages {
				msgs = append(msgs, item{kind: itemMsg, msg: m})
			}
		case err == nil:
			positions[i] = res.Top
		case errors.Is(err, fanout.ErrHistoryGone):
			positions[i] = res.Top
			pre = append(pre, item{kind: itemEvent, b: s.resetEvent(ch, resetReason(err))})
			if errors.Is(err, fanout.ErrEpochChanged) {
				// The cursor's epoch ended (a restarted broker, a shard that
				// lost its data): the client gets the new epoch from its
				// beginning, as far as it is retained, not only what comes
				// after now.
				if pos, early := s.newEpochStart(ctx, ch, res.Top); len(early) > 0 {
					positions[i] = pos
					for _, m := range early {
						msgs = append(msgs, item{kind: itemMsg, msg: m})
					}
				}
			}
		default:
			return err
		}
	}
	if mt := s.env.Metrics; mt != nil && len(msgs) > 0 {
		mt.Replayed.Add(float64(len(msgs)))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.chans {
		s.chans[i].pos = positions[i]
	}
	// Replayed messages are queued like live ones: buildLocked takes their
	// bytes off queueBytes again, so they must be counted here.
	for _, it := range msgs {
		s.queueBytes += len(it.msg.Data)
	}
	for _, it := range pre {
		s.queueBytes += len(it.b)
	}
	q := make([]item, 0, len(pre)+len(msgs)+len(s.queue))
	q = append(append(append(q, pre...), msgs...), s.queue...)
	s.queue = q
	return nil
}

// historyRead is one channel's history read during Resume: from the
// client's cursor (ok) or just the channel's top.
type historyRead struct {
	since fanout.Position
	ok    bool
	res   fanout.HistoryResult
	err   error
}

// readHistories reads every channel's history at once (the last one on
// the calling goroutine) and returns the reads in channel order.
func (s *Session) readHistories(ctx context.Context) []historyRead {
	reads := make([]historyRead, len(s.chans))
	var wg sync.WaitGroup
	for i := range s.chans {
		r := &reads[i]
		r.since, r.ok = s.opts.Since.Lookup(s.chans[i].hash)
		read := func() {
			from := fanout.Position{}
			if r.ok {
				from = r.since
			}
			hctx, cancel := context.WithTimeout(ctx, s.env.Config.HistoryTimeout)
			r.res, r.err = s.env.History.History(hctx, s.chans[i].name, from, 0)
			cancel()
		}
		if i == len(s.chans)-1 {
			read()
		} else {
			wg.Go(read)
		}
	}
	wg.Wait()
	return reads
}

// newEpochStart reads channel's retained messages of the epoch top
// belongs to, from that epoch's first offset. It returns the position just
// before them and the messages, or nothing when the epoch's start is no
// longer retained (or the read fails): the client then continues from top,
// and the stream_reset it was given covers the rest.
func (s *Session) newEpochStart(ctx context.Context, ch string, top fanout.Position) (fanout.Position, []*fanout.Message) {
	if top.Epoch == 0 || top.Offset == 0 {
		return top, nil
	}
	start := fanout.Position{Epoch: top.Epoch}
	hctx, cancel := context.WithTimeout(ctx, s.env.Config.HistoryTimeout)
	res, err := s.env.History.History(hctx, ch, start, 0)
	cancel()
	if err != nil || len(res.Messages) == 0 || res.Messages[0].Pos != (fanout.Position{Epoch: top.Epoch, Offset: 1}) {
		return top, nil
	}
	return start, res.Messages
}

// resetEvent builds a stream_reset event and counts it.
func (s *Session) resetEvent(channel, reason string) []byte {
	if mt := s.env.Metrics; mt != nil {
		mt.StreamReset(reason)
	}
	return StreamResetEvent(channel, reason)
}

func resetReason(err error) string {
	if errors.Is(err, fanout.ErrEpochChanged) {
		return "epoch_changed"
	}
	return "history_expired"
}

// recoverGap reads the messages of channel after since from history and
// puts them in front of the queue, then resumes writing.
func (s *Session) recoverGap(channel string, since fanout.Position) {
	ctx, cancel := context.WithTimeout(context.Background(), s.env.Config.HistoryTimeout)
	res, err := s.env.History.History(ctx, channel, since, 0)
	cancel()
	s.mu.Lock()
	s.recovering = false
	if s.closed {
		s.mu.Unlock()
		return
	}
	switch {
	case err == nil:
		if mt := s.env.Metrics; mt != nil && len(res.Messages) > 0 {
			mt.Replayed.Add(float64(len(res.Messages)))
		}
		pre := make([]item, 0, len(res.Messages)+len(s.queue))
		for _, m := range res.Messages {
			pre = append(pre, item{kind: itemMsg, msg: m})
			s.queueBytes += len(m.Data)
		}
		s.queue = append(pre, s.queue...)
	case errors.Is(err, fanout.ErrHistoryGone):
		if st := s.chanFor(channel); st != nil {
			st.adopt = true
		}
		ev := s.resetEvent(channel, resetReason(err))
		s.queueBytes += len(ev)
		s.queue = append([]item{{kind: itemEvent, b: ev}}, s.queue...)
	default:
		s.log.Warn("history read failed during gap recovery", "session", s.opts.ID, "channel", channel, "err", err)
		s.closeLocked(CloseInternal, true)
	}
	sched := s.scheduleLocked()
	s.mu.Unlock()
	if sched {
		s.env.Writers.schedule(s)
	}
}
