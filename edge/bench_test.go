package edge

import (
	"testing"
	"time"

	"github.com/heraldrt/herald/config"
)

// Connect benchmarks: what an accepted WebSocket connect costs against a
// refused one (per-user limit: after token verification; per-IP rate: before
// it). Client and server share the machine, so compare the figures with
// each other rather than reading them as server capacity (herald-bench
// measures that). Run: go test -run '^$' -bench Connect -benchtime 3000x ./edge/

func BenchmarkConnectAccepted(b *testing.B) {
	ts := startServer(b, func(c *config.Config) { c.Limits.PerUser = 0 })
	tok := token(b, "bench", time.Hour)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		c, _, err := ts.dialWS(b, q("token", tok), nil)
		if err != nil {
			b.Fatal(err)
		}
		if _, _, err := c.ReadMessage(); err != nil {
			b.Fatal(err)
		}
		c.Close()
	}
}

func BenchmarkConnectRejectedPerUser(b *testing.B) {
	ts := startServer(b, func(c *config.Config) { c.Limits.PerUser = 1 })
	tok := token(b, "bench", time.Hour)
	readWS(b, ts.mustWS(b, q("token", tok)))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		_, resp, err := ts.dialWS(b, q("token", tok), nil)
		if err == nil || resp == nil || resp.StatusCode != 429 {
			b.Fatalf("want 429: %v", err)
		}
	}
}

func BenchmarkConnectRejectedRate(b *testing.B) {
	ts := startServer(b, func(c *config.Config) { c.Limits.PerIPRate = 0.001; c.Limits.PerIPBurst = 1 })
	tok := token(b, "bench", time.Hour)
	readWS(b, ts.mustWS(b, q("token", tok)))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		_, resp, err := ts.dialWS(b, q("token", tok), nil)
		if err == nil || resp == nil || resp.StatusCode != 429 {
			b.Fatalf("want 429: %v", err)
		}
	}
}
