package protocols

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldrt/herald/fanout"
)

// discardConn is a net.Conn that throws writes away, counting them. It
// stands in for a socket in benchmarks so they measure Herald, not the
// kernel.
type discardConn struct {
	bytes   atomic.Int64
	onWrite func()
}

type fakeAddr struct{}

func (fakeAddr) Network() string { return "tcp" }
func (fakeAddr) String() string  { return "127.0.0.1:1" }

func (c *discardConn) Write(b []byte) (int, error) {
	c.bytes.Add(int64(len(b)))
	c.onWrite()
	return len(b), nil
}

func (*discardConn) Read([]byte) (int, error)         { return 0, io.EOF }
func (*discardConn) Close() error                     { return nil }
func (*discardConn) LocalAddr() net.Addr              { return fakeAddr{} }
func (*discardConn) RemoteAddr() net.Addr             { return fakeAddr{} }
func (*discardConn) SetDeadline(time.Time) error      { return nil }
func (*discardConn) SetReadDeadline(time.Time) error  { return nil }
func (*discardConn) SetWriteDeadline(time.Time) error { return nil }

// topHistory is a Historian for channels without history: every channel
// is at offset 0 of epoch.
type topHistory struct{ epoch uint32 }

func (h topHistory) History(context.Context, string, fanout.Position, int) (fanout.HistoryResult, error) {
	return fanout.HistoryResult{Top: fanout.Position{Epoch: h.epoch}}, nil
}

// writeCounter signals done when the expected number of writes happened.
type writeCounter struct {
	pending atomic.Int64
	done    chan struct{}
}

func newWriteCounter() *writeCounter { return &writeCounter{done: make(chan struct{}, 1)} }

func (w *writeCounter) expect(n int) { w.pending.Store(int64(n)) }

func (w *writeCounter) wrote() {
	if w.pending.Add(-1) == 0 {
		select {
		case w.done <- struct{}{}:
		default:
		}
	}
}

// wait blocks until the expected writes happened (a hang is caught by the
// test binary's -timeout; a timer here would add allocations to every op).
func (w *writeCounter) wait(*testing.B) { <-w.done }

const benchEpoch = 0x5eed

var benchPayload = []byte(`{"type":"notification","message":"Your export is ready","transaction_id":"tx-8f14e45f","progress":100}`)

func benchEnv() *Env {
	return &Env{
		// No keepalives during the run: every write is a message.
		Config:  Config{WSPingInterval: time.Hour, SSEHeartbeat: time.Hour}.Defaults(),
		Writers: NewWriters(0),
		History: topHistory{benchEpoch},
		Log:     slog.New(slog.DiscardHandler),
	}
}

// openBench creates n attached sessions, each on its own discardConn, and
// waits for their connection_established writes.
func openBench(b *testing.B, env *Env, tr Transport, n int, wc *writeCounter) ([]*Session, []*discardConn) {
	wc.expect(n)
	sessions := make([]*Session, n)
	conns := make([]*discardConn, n)
	for i := range sessions {
		s := NewSession(env, Options{ID: uint64(i), UserID: fmt.Sprint("user-", i),
			Channels: []string{"broadcast", fmt.Sprint("user:", i)}, Transport: tr})
		if err := s.Resume(context.Background()); err != nil {
			b.Fatal(err)
		}
		conns[i] = &discardConn{onWrite: wc.wrote}
		s.Attach(conns[i])
		sessions[i] = s
	}
	wc.wait(b)
	return sessions, conns
}

var benchTransports = []struct {
	name string
	tr   Transport
}{
	{"ws-raw", WSTransport{Format: WSRaw}},
	{"ws-envelope", WSTransport{Format: WSEnvelope}},
	{"sse", SSETransport{}},
}

// BenchmarkBroadcast10k measures one message delivered to 10,000
// connections: enqueue to all, then wait until every connection has
// written it. ns/op is the time for the whole broadcast.
func BenchmarkBroadcast10k(b *testing.B) {
	const n = 10_000
	for _, bt := range benchTransports {
		b.Run(bt.name, func(b *testing.B) {
			env := benchEnv()
			defer env.Writers.Close()
			wc := newWriteCounter()
			sessions, conns := openBench(b, env, bt.tr, n, wc)
			var before int64
			for _, c := range conns {
				before += c.bytes.Load()
			}
			off := uint64(0)
			b.ReportAllocs()
			for b.Loop() {
				off++
				m := &fanout.Message{Channel: "broadcast", Pos: fanout.Position{Epoch: benchEpoch, Offset: off}, Data: benchPayload}
				wc.expect(n)
				for _, s := range sessions {
					s.Enqueue(m)
				}
				wc.wait(b)
			}
			b.StopTimer()
			var after int64
			for _, c := range conns {
				after += c.bytes.Load()
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/delivery")
			b.ReportMetric(float64(after-before)/float64(b.N*n), "wire-B/delivery")
			wc.expect(-1) // the final writes below are not counted
			for _, s := range sessions {
				s.Close(CloseShutdown)
			}
		})
	}
}

// BenchmarkEnqueueFlush measures one message through one connection:
// Enqueue, a writer picks the session up, frames and writes it.
func BenchmarkEnqueueFlush(b *testing.B) {
	for _, bt := range benchTransports {
		b.Run(bt.name, func(b *testing.B) {
			env := benchEnv()
			defer env.Writers.Close()
			wc := newWriteCounter()
			sessions, _ := openBench(b, env, bt.tr, 1, wc)
			s := sessions[0]
			off := uint64(0)
			b.ReportAllocs()
			for b.Loop() {
				off++
				m := &fanout.Message{Channel: "broadcast", Pos: fanout.Position{Epoch: benchEpoch, Offset: off}, Data: benchPayload}
				wc.expect(1)
				s.Enqueue(m)
				wc.wait(b)
			}
			b.StopTimer()
			wc.expect(-1)
			s.Close(CloseShutdown)
		})
	}
}
