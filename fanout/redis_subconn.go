package fanout

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/redis/rueidis"

	"github.com/heraldrt/herald/internal/redissub"
)

// Connection side of a redisSub: the manager goroutine that keeps the
// dedicated pub/sub connection (redissub.Conn) up, sends batched
// SUBSCRIBE/UNSUBSCRIBE commands, probes the connection, and the message
// hook that feeds it.

const (
	// subBatchWindow is how long a shard's manager collects Subscribe and
	// Unsubscribe calls before sending them as one command: a burst of
	// 10,000 connecting users costs a handful of SUBSCRIBEs, not 10,000.
	subBatchWindow = 3 * time.Millisecond
	// subBatchMax caps the channels of one SUBSCRIBE/UNSUBSCRIBE command.
	subBatchMax = 4096
)

// manage keeps the pub/sub connection up: it connects, serves batches and
// probes until the connection fails, then retries with backoff
// (redissub.Reconnect; a move of the Sentinel master skips the wait).
func (s *redisSub) manage() {
	defer s.b.wg.Done()
	redissub.Reconnect(s.b.ctx, s.retryNow, s.session, func(err error) {
		s.setDown(err)
		s.firstOnce.Do(func() { close(s.firstAttempt) })
	})
	s.setDown(ErrClosed)
	s.firstOnce.Do(func() { close(s.firstAttempt) })
}

// setDown records a lost connection: nothing is subscribed in Redis any
// more and pending Subscribe calls fail. References stay, and the channels
// are subscribed again on the next connection.
func (s *redisSub) setDown(cause error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	err := fmt.Errorf("redis %s: %w: %w", s.name, ErrShardUnavailable, cause)
	if errors.Is(cause, ErrClosed) {
		err = ErrClosed
	}
	s.up = false
	s.down = true
	s.downFlag.Store(true)
	s.lastErr = cause.Error()
	s.active = 0
	for ch, st := range s.chans {
		st.active = false
		if st.wait != nil {
			st.wait.err = err
			close(st.wait.done)
			st.wait = nil
		}
		if st.refs == 0 {
			delete(s.chans, ch)
		}
	}
	clear(s.dirty)
}

// session runs one pub/sub connection until it fails. up reports that it
// got as far as subscribing every channel.
func (s *redisSub) session(reconnect bool) (up bool, err error) {
	select {
	case <-s.broken:
	default:
	}
	conn := redissub.Open(s.client, redissub.Options{Sharded: s.b.cluster, OnMessage: s.onMessage})
	defer conn.Close()
	if err := s.subscribeRedis(conn, []string{s.probeCh}); err != nil {
		return false, err
	}
	s.mu.Lock()
	chans := make([]string, 0, len(s.chans))
	for ch, st := range s.chans {
		if st.refs > 0 {
			chans = append(chans, ch)
		}
	}
	clear(s.dirty)
	s.mu.Unlock()
	if err := s.subscribeChannels(conn, chans); err != nil {
		return false, err
	}
	s.mu.Lock()
	s.up, s.down, s.lastErr = true, false, ""
	s.downFlag.Store(false)
	s.mu.Unlock()
	s.firstOnce.Do(func() { close(s.firstAttempt) })
	if reconnect {
		s.b.stats.reconnects.Add(1)
		// Whatever was published while we were away is in the streams.
		s.dmu.Lock()
		clear(s.catchupFails)
		s.dmu.Unlock()
		s.requestCatchup(chans)
	}

	probe := time.NewTicker(s.b.cfg.ProbeInterval)
	defer probe.Stop()
	seen := s.received.Load()
	for {
		select {
		case <-s.b.ctx.Done():
			return true, ErrClosed
		case err, ok := <-conn.Lost():
			return true, redissub.LostErr(err, ok)
		case err := <-conn.Dropped():
			return true, fmt.Errorf("redis %s: %w", s.name, err)
		case err := <-s.broken:
			return true, err
		case <-s.kick:
			t := time.NewTimer(subBatchWindow)
			select {
			case <-t.C:
			case <-s.b.ctx.Done():
				t.Stop()
				return true, ErrClosed
			}
			if err := s.flush(conn); err != nil {
				return true, err
			}
		case <-probe.C:
			if n := s.received.Load(); n != seen {
				seen = n // traffic proves the connection works
				continue
			}
			if err := s.probe(conn); err != nil {
				if !s.b.closed() {
					s.b.stats.probeFailures.Add(1)
				}
				return true, err
			}
			seen = s.received.Load()
		}
	}
}

// flush sends the subscription changes collected since the last flush.
func (s *redisSub) flush(conn *redissub.Conn) error {
	var subs, unsubs []string
	s.mu.Lock()
	for ch := range s.dirty {
		st := s.chans[ch]
		switch {
		case st == nil:
		case st.refs > 0 && !st.active:
			subs = append(subs, ch)
		case st.refs == 0 && st.active:
			unsubs = append(unsubs, ch)
			s.active--
			delete(s.chans, ch)
		case st.refs == 0:
			if st.wait != nil {
				st.wait.err = errors.New("unsubscribed before the subscription was active")
				close(st.wait.done)
			}
			delete(s.chans, ch)
		}
	}
	clear(s.dirty)
	s.mu.Unlock()
	for len(unsubs) > 0 {
		n := min(len(unsubs), subBatchMax)
		if err := s.unsubscribeRedis(conn, unsubs[:n]); err != nil {
			return err
		}
		unsubs = unsubs[n:]
	}
	return s.subscribeChannels(conn, subs)
}

// subscribeChannels subscribes channels in batches and releases the
// Subscribe calls waiting for each batch once Redis confirmed it.
func (s *redisSub) subscribeChannels(conn *redissub.Conn, chans []string) error {
	names := make([]string, 0, min(len(chans), subBatchMax))
	for len(chans) > 0 {
		n := min(len(chans), subBatchMax)
		names = names[:0]
		for _, ch := range chans[:n] {
			names = append(names, s.chanPfx+ch)
		}
		if err := s.subscribeRedis(conn, names); err != nil {
			return err
		}
		s.mu.Lock()
		for _, ch := range chans[:n] {
			st := s.chans[ch]
			if st == nil {
				continue
			}
			if !st.active {
				st.active = true
				s.active++
			}
			if st.wait != nil {
				close(st.wait.done)
				st.wait = nil
			}
			if st.refs == 0 {
				s.markDirtyLocked(ch) // unsubscribed meanwhile
			}
		}
		s.mu.Unlock()
		chans = chans[n:]
	}
	return nil
}

// subscribeRedis sends one SUBSCRIBE (SSUBSCRIBE in cluster mode) and waits
// until Redis confirmed every channel of it.
func (s *redisSub) subscribeRedis(conn *redissub.Conn, names []string) error {
	s.b.stats.subCmds.Add(1)
	ctx, cancel := context.WithTimeout(s.b.ctx, s.b.cfg.CommandTimeout)
	defer cancel()
	return conn.Subscribe(ctx, names)
}

// unsubscribeRedis sends one UNSUBSCRIBE (SUNSUBSCRIBE) for chans.
func (s *redisSub) unsubscribeRedis(conn *redissub.Conn, chans []string) error {
	names := make([]string, len(chans))
	for i, ch := range chans {
		names[i] = s.chanPfx + ch
	}
	s.b.stats.unsubCmds.Add(1)
	ctx, cancel := context.WithTimeout(s.b.ctx, s.b.cfg.CommandTimeout)
	defer cancel()
	return conn.Unsubscribe(ctx, names)
}

// probe publishes a token to this node's probe channel and waits for it to
// come back over the pub/sub connection.
func (s *redisSub) probe(conn *redissub.Conn) error {
	tok := strconv.FormatUint(rand.Uint64(), 36)
	ok := make(chan struct{})
	s.probeMu.Lock()
	s.probeTok, s.probeOK = tok, ok
	s.probeMu.Unlock()
	ctx, cancel := context.WithTimeout(s.b.ctx, s.b.cfg.CommandTimeout)
	defer cancel()
	var cmd rueidis.Completed
	if s.b.cluster {
		cmd = s.client.B().Spublish().Channel(s.probeCh).Message(tok).Build()
	} else {
		cmd = s.client.B().Publish().Channel(s.probeCh).Message(tok).Build()
	}
	if err := s.client.Do(ctx, cmd).Error(); err != nil {
		return fmt.Errorf("probe publish: %w", err)
	}
	select {
	case <-ok:
		return nil
	case err, ok := <-conn.Lost():
		return redissub.LostErr(err, ok)
	case <-ctx.Done():
		if s.b.closed() {
			return ErrClosed
		}
		return fmt.Errorf("probe not echoed within %s", s.b.cfg.CommandTimeout)
	}
}

// onMessage is the rueidis hook for pub/sub messages; it runs on the
// connection's reader and must not block.
func (s *redisSub) onMessage(m rueidis.PubSubMessage) {
	s.received.Add(1)
	if m.Channel == s.probeCh {
		s.probeMu.Lock()
		if s.probeOK != nil && m.Message == s.probeTok {
			close(s.probeOK)
			s.probeOK = nil
		}
		s.probeMu.Unlock()
		return
	}
	select {
	case s.queue <- inbound{m.Channel, m.Message}:
	default:
		// Full: the message stays in the stream; re-read the channel once
		// the queue has room.
		s.b.stats.dropped.Add(1)
		if ch, ok := strings.CutPrefix(m.Channel, s.chanPfx); ok {
			s.requestCatchup([]string{ch})
		}
	}
}
