package protocols

import (
	"context"
	"log/slog"
	"net"
	"time"

	"github.com/heraldrt/herald/fanout"
)

// scheduleLocked marks the session scheduled and reports whether the
// caller must hand it to the writers.
func (s *Session) scheduleLocked() bool {
	if s.scheduled || !s.ready || s.recovering || s.closed || len(s.queue) == 0 {
		return false
	}
	s.scheduled = true
	return true
}

// EnqueueResult says what Enqueue did with a message.
type EnqueueResult uint8

// Enqueue results.
const (
	// Queued: the message will be written.
	Queued EnqueueResult = iota
	// Coalesced: the queue was full; superseded messages gave way and the
	// message was queued.
	Coalesced
	// Dropped: the queue was full and nothing could be coalesced; the
	// connection is being closed as a slow consumer (its client resumes
	// from its cursor).
	Dropped
	// Closed: the connection is closing; the message was ignored.
	Closed
)

// Enqueue queues message m for the connection. It never blocks: a
// connection whose queue is full is closed as a slow consumer (its client
// resumes from its cursor, so nothing is lost).
func (s *Session) Enqueue(m *fanout.Message) EnqueueResult {
	s.mu.Lock()
	if s.closing || s.closed {
		s.mu.Unlock()
		return Closed
	}
	res := Queued
	if len(s.queue) >= s.env.Config.MaxQueue || s.queueBytes+len(m.Data) > s.env.Config.MaxQueueBytes {
		// Full: first coalesce — queued messages superseded by a newer one
		// with the same coalescing key (m included) give way, so a slow
		// client gets the latest progress rather than a backlog; only if
		// that frees no room is the client disconnected.
		if !s.makeRoomLocked(m) {
			s.slowConsumerLocked()
			sched := s.scheduleLocked()
			s.mu.Unlock()
			if sched {
				s.env.Writers.schedule(s)
			}
			return Dropped
		}
		res = Coalesced
	}
	s.queue = append(s.queue, item{kind: itemMsg, msg: m})
	s.queueBytes += len(m.Data)
	sched := s.scheduleLocked()
	s.mu.Unlock()
	if sched {
		s.env.Writers.schedule(s)
	}
	return res
}

// SendEvent queues a control event (a JSON object) for the client.
func (s *Session) SendEvent(ev []byte) { s.enqueue(item{kind: itemEvent, b: ev}) }

// enqueue queues an item Herald sends of its own accord (keepalives and
// lifetime events, one per timer tick); its bytes count in queueBytes.
func (s *Session) enqueue(it item) {
	s.mu.Lock()
	if s.closing || s.closed {
		s.mu.Unlock()
		return
	}
	s.queue = append(s.queue, it)
	s.queueBytes += len(it.b)
	sched := s.scheduleLocked()
	s.mu.Unlock()
	if sched {
		s.env.Writers.schedule(s)
	}
}

// reply queues an answer to something the client sent (a pong, an error
// event, refreshed). Replies are bounded exactly like messages: a client
// that keeps asking without reading fills its queue and is closed as a
// slow consumer, its backlog dropped, so a request flood costs at most
// MaxQueue items and MaxQueueBytes.
func (s *Session) reply(it item) {
	s.mu.Lock()
	if s.closing || s.closed {
		s.mu.Unlock()
		return
	}
	if len(s.queue) >= s.env.Config.MaxQueue || s.queueBytes+len(it.b) > s.env.Config.MaxQueueBytes {
		s.slowConsumerLocked()
	} else {
		s.queue = append(s.queue, it)
		s.queueBytes += len(it.b)
	}
	sched := s.scheduleLocked()
	s.mu.Unlock()
	if sched {
		s.env.Writers.schedule(s)
	}
}

// slowConsumerLocked closes a connection whose queue is full, dropping its
// backlog (the client resumes from its cursor).
func (s *Session) slowConsumerLocked() {
	if mt := s.env.Metrics; mt != nil {
		mt.SlowConsumers.Add(1)
	}
	s.log.Info("slow consumer", "session", s.opts.ID, "user", s.opts.UserID, "queued", len(s.queue), "queued_bytes", s.queueBytes)
	s.closeLocked(CloseSlowConsumer, true)
}

// flush writes everything queued, in as few writes as possible. It runs on
// a writer goroutine, never concurrently with itself for one session.
func (s *Session) flush() {
	bp := s.env.Writers.getBuf()
	defer s.env.Writers.putBuf(bp)
	for {
		s.mu.Lock()
		if s.closed || !s.ready || s.recovering {
			s.scheduled = false
			s.mu.Unlock()
			return
		}
		if len(s.queue) == 0 {
			s.scheduled = false
			s.mu.Unlock()
			return
		}
		buf, final := s.buildLocked(bp.out[:0], bp.cur[:0])
		if len(buf) == 0 && !final {
			s.scheduled = false
			s.mu.Unlock()
			return
		}
		conn := s.conn
		s.mu.Unlock()
		bp.out = buf
		err := s.write(conn, buf)
		if err != nil || final {
			if err != nil && s.log.Enabled(context.Background(), slog.LevelDebug) {
				s.log.Debug("write failed", "session", s.opts.ID, "user", s.opts.UserID, "err", err)
			}
			s.terminate()
			return
		}
	}
}

func (s *Session) write(conn net.Conn, b []byte) error {
	if len(b) == 0 {
		return nil
	}
	now := time.Now()
	// Refreshing the deadline costs a runtime timer update per write; doing
	// it only when less than half the timeout is left still bounds every
	// write by between half and the whole write timeout.
	if wt := s.env.Config.WriteTimeout; now.UnixNano()+int64(wt/2) > s.deadline {
		s.deadline = now.Add(wt).UnixNano()
		if err := conn.SetWriteDeadline(time.Unix(0, s.deadline)); err != nil {
			return err
		}
	}
	_, err := conn.Write(b)
	s.lastWrite.Store(now.UnixNano())
	return err
}

// maxBatchBytes caps one write so a long backlog is sent in several
// syscalls rather than one huge buffer.
const maxBatchBytes = 256 << 10

// buildLocked frames queued items into buf. It applies each message to its
// channel's position: duplicates are dropped, a new epoch becomes a
// stream_reset, and a gap stops the batch and starts a history read.
// final reports that the close item was framed.
func (s *Session) buildLocked(buf, cur []byte) (out []byte, final bool) {
	var now int64 // taken once per batch, at the first message
	i := 0
	for ; i < len(s.queue) && len(buf) < maxBatchBytes; i++ {
		it := s.queue[i]
		switch it.kind {
		case itemMsg, itemSkip:
			m := it.msg
			skip := it.kind == itemSkip
			if !skip {
				s.queueBytes -= len(m.Data)
			}
			st := s.chanFor(m.Channel)
			if st == nil {
				continue
			}
			first := m.Pos.Offset // lowest offset this entry covers
			if skip {
				first = it.from
			}
			if st.adopt {
				st.adopt = false
				st.pos = fanout.Position{Epoch: m.Pos.Epoch, Offset: first - 1}
			}
			if m.Pos.Epoch != st.pos.Epoch {
				buf = s.tr.AppendEvent(buf, s.resetEvent(st.name, "epoch_changed"), s.cursorLocked(cur))
				st.pos = fanout.Position{Epoch: m.Pos.Epoch}
				st.retryAt = 0 // an offset of the old epoch says nothing about the new one
			}
			if m.Pos.Offset <= st.pos.Offset {
				continue // already delivered
			}
			if first > st.pos.Offset+1 {
				if !skip {
					s.queueBytes += len(m.Data)
				}
				if st.retryAt == m.Pos.Offset {
					// History could not fill this gap before: report it and
					// move on rather than retrying forever.
					buf = s.tr.AppendEvent(buf, s.resetEvent(st.name, "history_expired"), s.cursorLocked(cur))
					st.pos.Offset = first - 1
					i--
					continue
				}
				st.retryAt = m.Pos.Offset
				s.recovering = true
				go s.recoverGap(st.name, st.pos)
				n := copy(s.queue, s.queue[i:])
				clear(s.queue[n:])
				s.queue = s.queue[:n]
				return buf, false
			}
			st.pos = m.Pos
			if skip {
				continue
			}
			if (s.opts.Filter != nil || s.prefs.Load() != nil) && !s.allows(m) {
				continue // filtered out: the position advances, nothing is written
			}
			buf = s.tr.AppendMessage(buf, m, s.cursorLocked(cur))
			if now == 0 {
				now = time.Now().UnixNano()
				s.lastActivity.Store(now)
			}
			if mt := s.env.Metrics; mt != nil {
				mt.Delivered[s.ti].Add(1)
				if m.PublishedAt > 0 {
					mt.DeliveryTime[s.ti].Observe(float64(now-m.PublishedAt) / 1e9)
				}
			}
		case itemEvent:
			s.queueBytes -= len(it.b)
			buf = s.tr.AppendEvent(buf, it.b, s.cursorLocked(cur))
		case itemRaw:
			s.queueBytes -= len(it.b)
			buf = append(buf, it.b...)
		case itemKeepalive:
			buf = s.tr.AppendKeepalive(buf)
		case itemClose:
			buf = s.tr.AppendClose(buf, s.reason, s.cursorLocked(cur))
			final = true
			i = len(s.queue) - 1 // nothing after the close is written
		}
	}
	n := copy(s.queue, s.queue[i:])
	clear(s.queue[n:])
	s.queue = s.queue[:n]
	if n == 0 && cap(s.queue) > 64 {
		s.queue = nil // do not keep a burst's backing array on an idle connection
	}
	return buf, final
}

// makeRoomLocked coalesces the queue for m: every queued message that a
// newer one (queued, or m) supersedes — same channel, same coalescing key —
// becomes a skip marker, and adjacent markers merge. It reports whether m
// now fits. It runs only when a queue is full, so the hot path never pays
// for it.
func (s *Session) makeRoomLocked(m *fanout.Message) bool {
	rules := s.env.Config.Coalesce
	if len(rules) == 0 {
		return false
	}
	build := func(m *fanout.Message) []byte { return coalesceKey(m.Data, rules) }
	id := func(x *fanout.Message) string {
		k := x.Encoded(slotCoalesce, build)
		if len(k) == 0 {
			return ""
		}
		return x.Channel + "\x00" + string(k)
	}
	seen := make(map[string]struct{})
	if k := id(m); k != "" {
		seen[k] = struct{}{}
	}
	for i := len(s.queue) - 1; i >= 0; i-- {
		it := &s.queue[i]
		if it.kind != itemMsg {
			continue
		}
		k := id(it.msg)
		if k == "" {
			continue
		}
		if _, newer := seen[k]; newer {
			it.kind, it.from = itemSkip, it.msg.Pos.Offset
			s.queueBytes -= len(it.msg.Data)
			if mt := s.env.Metrics; mt != nil {
				mt.Coalesced.Add(1)
			}
		} else {
			seen[k] = struct{}{}
		}
	}
	out := s.queue[:0]
	live := 0
	for _, it := range s.queue {
		if it.kind == itemSkip && len(out) > 0 {
			if p := &out[len(out)-1]; p.kind == itemSkip && p.msg.Channel == it.msg.Channel &&
				p.msg.Pos.Epoch == it.msg.Pos.Epoch && p.msg.Pos.Offset+1 == it.from {
				p.msg = it.msg
				continue
			}
		}
		if it.kind != itemSkip {
			live++
		}
		out = append(out, it)
	}
	clear(s.queue[len(out):])
	s.queue = out
	return live < s.env.Config.MaxQueue && len(s.queue) < 2*s.env.Config.MaxQueue &&
		s.queueBytes+len(m.Data) <= s.env.Config.MaxQueueBytes
}

func (s *Session) chanFor(name string) *chanState {
	for i := range s.chans {
		if s.chans[i].name == name {
			return &s.chans[i]
		}
	}
	return nil
}
