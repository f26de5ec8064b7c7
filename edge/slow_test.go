package edge

import (
	"encoding/json"
	"fmt"
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
	for i := 1; i <= n; i++ {
		ts.publishTo(t, "slow", fmt.Sprintf(`{"type":"oracle_upload_progress","transaction_id":1,"step_number":%d,"pad":%q}`, i, pad))
		// The fast client keeps up while the slow one does not read.
		var m struct {
			StepNumber int `json:"step_number"`
		}
		if err := json.Unmarshal(readWS(t, fast), &m); err != nil || m.StepNumber != i {
			t.Fatalf("fast client at %d got %d (%v)", i, m.StepNumber, err)
		}
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

func TestSlowConsumerDisconnected(t *testing.T) {
	ts := startServer(t, func(c *config.Config) {
		c.Stream.MaxQueue = 8
		c.API.MaxBodyBytes = 1 << 20
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
	for i := 1; i <= 600; i++ {
		ts.publishTo(t, "slow2", fmt.Sprintf(`{"n":%d,"pad":%q}`, i, pad))
	}
	// Drain: the stream ends with a slow_consumer disconnect and close 4008.
	var sawEvent bool
	var cursor string
	_ = slow.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		_, b, err := slow.ReadMessage()
		if err != nil {
			if !websocketCloseCode(err, 4008) {
				t.Fatalf("want close 4008, got %v", err)
			}
			break
		}
		var m map[string]any
		_ = json.Unmarshal(b, &m)
		if m["type"] == "disconnect" && m["reason"] == "slow_consumer" {
			sawEvent = true
		}
		if c, ok := m["cursor"].(string); ok {
			cursor = c
		}
	}
	if !sawEvent {
		t.Fatal("no slow_consumer event")
	}
	// Resuming from the last cursor loses nothing that history holds.
	c := ts.mustWS(t, q("token", tok, "format", "envelope", "since", cursor))
	readWS(t, c)
	env := readWSJSON(t, c)
	if env["type"] == "stream_reset" {
		return // more than history.size behind: told explicitly
	}
	if _, ok := env["data"]; !ok {
		t.Fatalf("after resume got %v", env)
	}
}
