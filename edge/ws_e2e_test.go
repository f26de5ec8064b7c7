package edge

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/heraldrt/herald/config"
)

func TestWebSocketBadInput(t *testing.T) {
	ts := startServer(t, func(c *config.Config) { c.Stream.WSReadLimit = 1024 })
	tok := token(t, "1", time.Hour)

	c := ts.mustWS(t, q("token", tok))
	readWS(t, c)
	for _, in := range []string{`not json`, `{"type":`, `[1,2]`, `{"type":"dance"}`, `{}`} {
		_ = c.WriteMessage(websocket.TextMessage, []byte(in))
		if m := readWSJSON(t, c); m["type"] != "error" {
			t.Fatalf("input %q: got %v, want an error event", in, m)
		}
	}
	_ = c.WriteMessage(websocket.TextMessage, []byte(`{"type":"ping","timestamp":1}`))
	if got := string(readWS(t, c)); got != `{"type":"pong","timestamp":1}` {
		t.Fatalf("still open after bad input? got %s", got)
	}

	expectClose := func(c *websocket.Conn, code int) {
		t.Helper()
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		for {
			_, _, err := c.ReadMessage()
			if err == nil {
				continue
			}
			if !websocket.IsCloseError(err, code) {
				t.Fatalf("want close %d, got %v", code, err)
			}
			return
		}
	}
	c = ts.mustWS(t, q("token", tok))
	readWS(t, c)
	_ = c.WriteMessage(websocket.BinaryMessage, []byte{1, 2, 3})
	expectClose(c, websocket.CloseUnsupportedData)

	c = ts.mustWS(t, q("token", tok))
	readWS(t, c)
	_ = c.WriteMessage(websocket.TextMessage, []byte(`{"type":"ping","pad":"`+strings.Repeat("x", 4096)+`"}`))
	expectClose(c, websocket.CloseMessageTooBig)

	c = ts.mustWS(t, q("token", tok))
	readWS(t, c)
	_ = c.WriteMessage(websocket.TextMessage, []byte{'{', 0xff, 0xfe, '}'})
	expectClose(c, websocket.CloseInvalidFramePayloadData)
}

func TestWebSocketNeedsUpgrade(t *testing.T) {
	ts := startServer(t, nil)
	resp, err := http.Get("http://" + ts.addr + "/ws/notifications/?token=" + token(t, "1", time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Fatalf("plain GET on the ws endpoint: %d", resp.StatusCode)
	}
}
