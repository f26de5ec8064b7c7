package edge

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/heraldrt/herald/config"
)

// TestSlowReaderCoalescedOthersOnTime: a client that stops reading does not
// delay others; its queue coalesces progress messages of one transaction
// (it gets the latest progress, not a backlog) instead of being dropped;
// a client with no coalescible backlog is disconnected as slow_consumer.
func TestSlowReaderCoalescedOthersOnTime(t *testing.T) {
	ts := startServer(t, func(c *config.Config) {
		c.Stream.MaxQueue = 16
		c.Stream.MaxQueueBytes = 1 << 20
		// The slow client does not read for the whole publish loop, which
		// may take a while on a loaded machine; it must not hit the write
		// timeout (that would be a different, correct, disconnect).
		c.Stream.WriteTimeout = 2 * time.Minute
		c.Stream.Coalesce = []string{"oracle_upload_progress:transaction_id"}
		c.API.MaxBodyBytes = 1 << 20
	})
	tok := token(t, "slow", time.Hour)
	// (A tiny SO_RCVBUF would fill the pipe sooner but makes loopback TCP
	// crawl through zero-window probes; send more data instead.)
	d := websocket.Dialer{}
	slow, _, err := d.Dial("ws://"+ts.addr+"/ws/notifications/?"+q("token", tok), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	fast := ts.mustWS(t, q("token", tok))
	readWS(t, slow)
	readWS(t, fast)

	pad := strings.Repeat("x", 32<<10)
	const n = 400
	// lat[i-1]: from the start of publish i to the fast client reading it.
	lat := make([]time.Duration, n)
	for i := 1; i <= n; i++ {
		start := time.Now()
		ts.publishTo(t, "slow", fmt.Sprintf(`{"type":"oracle_upload_progress","transaction_id":1,"step_number":%d,"pad":%q}`, i, pad))
		// The fast client keeps up while the slow one does not read.
		var m struct {
			StepNumber int `json:"step_number"`
		}
		if err := json.Unmarshal(readWS(t, fast), &m); err != nil || m.StepNumber != i {
			t.Fatalf("fast client at %d got %d (%v)", i, m.StepNumber, err)
		}
		lat[i-1] = time.Since(start)
	}
	// On time: once the slow client's socket buffers are full (the last
	// quarter of the loop, when its queue is coalescing), the fast client's
	// latency stays close to what it was at the start, before the slow one
	// had any backlog. Bounds are relative to that baseline (with a floor
	// for a loaded machine) and use medians, so scheduling noise does not
	// fail the test but a publish or writer that waits for the stalled
	// client does.
	early, late := median(lat[:n/8]), median(lat[n*3/4:])
	bound := max(5*early, 200*time.Millisecond)
	t.Logf("fast client median latency: first %d messages %s, last %d %s (bound %s)", n/8, early, n/4, late, bound)
	if late > bound {
		t.Fatalf("fast client slowed by the stalled one: median latency %s while it stalls, %s before", late, early)
	}
	if worst := slices.Max(lat[n*3/4:]); worst > max(50*early, 5*time.Second) {
		t.Fatalf("fast client waited %s for one message while the slow one stalled", worst)
	}
	ts.publishTo(t, "slow", `{"type":"oracle_upload_completed","transaction_id":1}`)

	// Now the slow client reads: increasing steps, ending with the last,
	// then the completion; no disconnect.
	last := 0
	for {
		b := readWS(t, slow)
		var m struct {
			Type       string
			StepNumber int `json:"step_number"`
		}
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("slow client: %q: %v", b[:min(len(b), 80)], err)
		}
		if m.Type == "oracle_upload_completed" {
			break
		}
		if m.Type != "oracle_upload_progress" || m.StepNumber <= last {
			t.Fatalf("slow client: %s step %d after %d: %.200s", m.Type, m.StepNumber, last, b)
		}
		last = m.StepNumber
	}
	if last != n {
		t.Fatalf("slow client's last progress was step %d, want %d", last, n)
	}
	if c := metricValue(t, scrape(t, ts), "herald_messages_coalesced_total"); c == 0 {
		t.Fatal("nothing was coalesced: the test did not fill the slow client's queue")
	} else {
		t.Logf("coalesced %v of %d progress messages", c, n)
	}
}

func median(d []time.Duration) time.Duration {
	c := slices.Clone(d)
	slices.Sort(c)
	return c[len(c)/2]
}

// TestSlowConsumerDisconnected: a client whose queue overflows (nothing to
// coalesce) is disconnected as slow_consumer with close 4008, and its final
// cursor is exact: resuming from it gets precisely the message after the
// last one it read (no loss, no duplicate) while history holds it, and a
// history_expired reset only when history no longer does.
func TestSlowConsumerDisconnected(t *testing.T) {
	for _, size := range []int{1000, 16} {
		t.Run(fmt.Sprintf("history%d", size), func(t *testing.T) { testSlowConsumerResume(t, size) })
	}
}

func testSlowConsumerResume(t *testing.T, historySize int) {
	ts := startServer(t, func(c *config.Config) {
		c.Stream.MaxQueue = 8
		c.API.MaxBodyBytes = 1 << 20
		c.History.Size = historySize
		// The client reads only after the whole publish loop, which can
		// take a while on a loaded machine: the final event and close
		// frame must wait for it rather than hit the write timeout (a
		// different, correct, disconnect without them).
		c.Stream.WriteTimeout = 2 * time.Minute
	})
	tok := token(t, "slow2", time.Hour)
	d := websocket.Dialer{}
	slow, _, err := d.Dial("ws://"+ts.addr+"/ws/notifications/?"+q("token", tok, "format", "envelope"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	readWS(t, slow)
	pad := strings.Repeat("y", 32<<10)
	const total = 600
	for i := 1; i <= total; i++ {
		ts.publishTo(t, "slow2", fmt.Sprintf(`{"n":%d,"pad":%q}`, i, pad))
	}
	type env struct {
		Type   string
		Reason string
		Cursor string
		Data   *struct{ N int }
	}
	// Drain: the stream ends with a slow_consumer disconnect and close 4008.
	var sawEvent bool
	var cursor string
	lastN := 0
	_ = slow.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		_, b, err := slow.ReadMessage()
		if err != nil {
			if !websocketCloseCode(err, 4008) {
				t.Fatalf("want close 4008, got %v", err)
			}
			break
		}
		var m env
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("slow client: %.80q: %v", b, err)
		}
		switch {
		case m.Data != nil:
			if m.Data.N != lastN+1 {
				t.Fatalf("before the disconnect: message %d after %d", m.Data.N, lastN)
			}
			lastN = m.Data.N
		case m.Type == "disconnect" && m.Reason == "slow_consumer":
			sawEvent = true
		}
		if m.Cursor != "" {
			cursor = m.Cursor
		}
	}
	if !sawEvent {
		t.Fatal("no slow_consumer event")
	}
	if lastN == total {
		t.Fatal("the slow client read everything: the test did not overflow its queue")
	}
	// Resume from the final cursor.
	c := ts.mustWS(t, q("token", tok, "format", "envelope", "since", cursor))
	readWS(t, c)
	var m env
	if err := json.Unmarshal(readWS(t, c), &m); err != nil {
		t.Fatal(err)
	}
	next := lastN + 1
	expired := next <= total-historySize // history keeps the newest historySize
	t.Logf("read %d of %d before the disconnect; history %d; expired %v", lastN, total, historySize, expired)
	if expired {
		if m.Type != "stream_reset" || m.Reason != "history_expired" {
			t.Fatalf("message %d is out of history, want a history_expired reset, got %+v", next, m)
		}
		return
	}
	if m.Data == nil || m.Data.N != next {
		t.Fatalf("resume after message %d got %+v, want message %d", lastN, m, next)
	}
	// And the ones after it, in order.
	for want := next + 1; want < next+4 && want <= total; want++ {
		var m env
		if err := json.Unmarshal(readWS(t, c), &m); err != nil || m.Data == nil || m.Data.N != want {
			t.Fatalf("resume: want message %d, got %+v (%v)", want, m, err)
		}
	}
}
