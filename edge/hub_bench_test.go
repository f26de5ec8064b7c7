package edge

import (
	"context"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/heraldrt/herald/fanout"
	"github.com/heraldrt/herald/protocols"
	"github.com/heraldrt/herald/telemetry"
)

// discardConn is a net.Conn that counts writes and discards them.
type discardConn struct {
	writes *atomic.Int64
}

func (c discardConn) Read([]byte) (int, error)         { select {} }
func (c discardConn) Write(b []byte) (int, error)      { c.writes.Add(1); return len(b), nil }
func (c discardConn) Close() error                     { return nil }
func (c discardConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (c discardConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (c discardConn) SetDeadline(time.Time) error      { return nil }
func (c discardConn) SetReadDeadline(time.Time) error  { return nil }
func (c discardConn) SetWriteDeadline(time.Time) error { return nil }

type nullHistory struct{}

func (nullHistory) History(context.Context, string, fanout.Position, int) (fanout.HistoryResult, error) {
	return fanout.HistoryResult{Top: fanout.Position{Epoch: 7}}, nil
}

// BenchmarkHubBroadcast10k measures one broadcast to 10,000 sessions through
// the hub (fan-out, queueing, framing, the write call) with tracing off and
// on (sampling 1.0, spans to an in-memory recorder). Run:
// go test -run '^$' -bench HubBroadcast10k -benchmem ./edge/
func BenchmarkHubBroadcast10k(b *testing.B) {
	for _, traced := range []bool{false, true} {
		name := "tracing=off"
		if traced {
			name = "tracing=on"
		}
		b.Run(name, func(b *testing.B) {
			var tr *telemetry.Tracing
			if traced {
				tr = telemetry.NewTracingWith(telemetry.TracingConfig{Enabled: true, SampleRatio: 1}, tracetest.NewSpanRecorder())
			}
			h := NewHub(tr)
			env := &protocols.Env{Config: protocols.Config{}.Defaults(), Writers: protocols.NewWriters(64),
				History: nullHistory{}, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
			defer env.Writers.Close()
			var writes atomic.Int64
			const n = 10000
			for i := range n {
				s := protocols.NewSession(env, protocols.Options{ID: uint64(i), UserID: strconv.Itoa(i),
					Channels: []string{"broadcast"}, Transport: protocols.WSTransport{}})
				h.Add(s)
				if err := s.Resume(context.Background()); err != nil {
					b.Fatal(err)
				}
				s.Attach(discardConn{&writes})
			}
			for writes.Load() < n { // connection_established
				time.Sleep(time.Millisecond)
			}
			parent := "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
			payload := []byte(`{"type":"oracle_upload_progress","transaction_id":602,"step_number":3}`)
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				want := writes.Load() + n
				m := &fanout.Message{Channel: "broadcast", Pos: fanout.Position{Epoch: 7, Offset: uint64(i + 1)},
					Data: payload, PublishedAt: time.Now().UnixNano(), TraceParent: parent}
				h.Deliver(m)
				for writes.Load() < want {
					time.Sleep(20 * time.Microsecond)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/delivery")
		})
	}
}
