package edge

import (
	"io"
	"net/http"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/heraldrt/herald/config"
	"github.com/heraldrt/herald/internal/redistest"
)

func scrape(t *testing.T, ts *testServer) string {
	t.Helper()
	resp, err := http.Get("http://" + ts.addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("/metrics: %d", resp.StatusCode)
	}
	return string(b)
}

func metricValue(t *testing.T, text, series string) float64 {
	t.Helper()
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` ([0-9.e+-]+)$`)
	m := re.FindStringSubmatch(text)
	if m == nil {
		t.Fatalf("series %s not found", series)
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	return v
}

// TestMetricsAfterScenario runs a small scripted scenario and checks the
// scraped figures match it.
func TestMetricsAfterScenario(t *testing.T) {
	ts := startServer(t, func(c *config.Config) { c.History.Size = 2 })
	ws := ts.mustWS(t, q("token", token(t, "m1", time.Hour)))
	readWS(t, ws)
	sse := ts.mustSSE(t, q("token", token(t, "m2", time.Hour)), "")
	sse.next(t)
	ts.dialWS(t, q("token", "forged"), nil)
	ts.publishTo(t, "m1", `{"a":1}`)
	ts.publish(t, `{"user_id":"m2","data":{"b":1},"idempotency_key":"x"}`)
	ts.publish(t, `{"user_id":"m2","data":{"b":1},"idempotency_key":"x"}`)
	readWS(t, ws)
	id := sse.next(t).ID
	sse.resp.Body.Close()
	for range 4 {
		ts.publishTo(t, "m2", `{"c":1}`)
	}
	s2 := ts.mustSSE(t, q("token", token(t, "m2", time.Hour)), id) // history too short: stream_reset
	s2.next(t)
	s2.next(t)

	deadline := time.Now().Add(5 * time.Second)
	for {
		text := scrape(t, ts)
		checks := map[string]float64{
			`herald_connections{transport="ws"}`:                               1,
			`herald_connections{transport="sse"}`:                              1,
			`herald_connects_total{transport="sse"}`:                           2,
			`herald_disconnects_total{reason="client_closed",transport="sse"}`: 1,
			`herald_admission_rejections_total{reason="malformed_token"}`:      1,
			`herald_messages_published_total{outcome="new"}`:                   6,
			`herald_messages_published_total{outcome="duplicate"}`:             1,
			`herald_messages_delivered_total{transport="ws"}`:                  1,
			`herald_delivery_latency_seconds_count{transport="ws"}`:            1,
			`herald_stream_resets_total{reason="history_expired"}`:             1,
		}
		bad := ""
		for series, want := range checks {
			if !regexp.MustCompile(`(?m)^`+regexp.QuoteMeta(series)+` `).MatchString(text) || metricValue(t, text, series) != want {
				bad += series + " "
			}
		}
		// The first SSE client closes after one message; the server may
		// still write a message published before it notices.
		if sse := `herald_messages_delivered_total{transport="sse"}`; !regexp.MustCompile(`(?m)^`+regexp.QuoteMeta(sse)+` `).MatchString(text) ||
			metricValue(t, text, sse) < 1 || metricValue(t, text, sse) > 5 {
			bad += sse + " "
		}
		if bad == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("metrics off: %s\n%s", bad, text)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestRedisMetrics(t *testing.T) {
	srv := redistest.Start(t)
	ts := startServer(t, func(c *config.Config) {
		c.Fanout.Broker = "redis"
		c.Fanout.Redis.Shards = []string{srv.Addr()}
		c.Fanout.Redis.Prefix = "met:"
	})
	text := scrape(t, ts)
	if v := metricValue(t, text, `herald_redis_shard_up{shard="`+srv.Addr()+`"}`); v != 1 {
		t.Fatalf("shard_up %v", v)
	}
}
