package edge

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldrt/herald/fanout"
	"github.com/heraldrt/herald/protocols"
)

// BenchmarkPublishBroadcast10k measures the publish call of the memory
// broker while every message fans out to 10,000 local sessions through
// the hub: ns/op is what a backend's publish waits for, not the fan-out
// (p99 and max over the last 1,024 publishes of each publisher). Run:
// go test -run '^$' -bench PublishBroadcast10k -benchmem ./edge/
func BenchmarkPublishBroadcast10k(b *testing.B) {
	h := NewHub(nil)
	br := fanout.NewMemory(fanout.MemoryConfig{HistorySize: 1000}, h.Deliver)
	defer br.Close()
	env := &protocols.Env{Config: protocols.Config{}.Defaults(), Writers: protocols.NewWriters(64),
		History: br, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	defer env.Writers.Close()
	var writes atomic.Int64
	const n = 10000
	ctx := context.Background()
	if err := br.Subscribe(ctx, "broadcast"); err != nil {
		b.Fatal(err)
	}
	for i := range n {
		s := protocols.NewSession(env, protocols.Options{ID: uint64(i), UserID: strconv.Itoa(i),
			Channels: []string{"broadcast"}, Transport: protocols.WSTransport{}})
		h.Add(s)
		if err := s.Resume(ctx); err != nil {
			b.Fatal(err)
		}
		s.Attach(discardConn{&writes})
	}
	for writes.Load() < n { // connection_established
		time.Sleep(time.Millisecond)
	}
	payload := []byte(`{"type":"oracle_upload_progress","transaction_id":602,"step_number":3}`)
	before := writes.Load()
	var mu sync.Mutex
	var lat []int64 // the last samples of every publisher
	b.ReportAllocs()
	b.ResetTimer()
	b.SetParallelism(32) // many requests in flight, as a busy backend has
	b.RunParallel(func(pb *testing.PB) {
		var ring [1024]int64
		n := 0
		for pb.Next() {
			t0 := time.Now()
			if _, err := br.Publish(ctx, "broadcast", payload, fanout.PublishOptions{}); err != nil {
				b.Error(err)
				return
			}
			ring[n%len(ring)] = time.Since(t0).Nanoseconds()
			n++
		}
		mu.Lock()
		lat = append(lat, ring[:min(n, len(ring))]...)
		mu.Unlock()
	})
	b.StopTimer()
	if len(lat) > 0 {
		slices.Sort(lat)
		b.ReportMetric(float64(lat[len(lat)*99/100])/1e6, "p99-ms/publish")
		b.ReportMetric(float64(lat[len(lat)-1])/1e6, "max-ms/publish")
	}
	// Delivery runs behind the publish calls: wait for it to show.
	for deadline := time.Now().Add(30 * time.Second); writes.Load() == before; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			b.Fatal("nothing delivered")
		}
	}
}
