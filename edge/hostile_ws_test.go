package edge

import (
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/fasthttp/websocket"

	"github.com/heraldrt/herald/config"
)

// TestAdminDisconnectLongReason: an admin disconnect whose reason is 140
// bytes of multi-byte characters still ends in a valid close frame: the
// strict client (fasthttp/websocket fails a close frame whose reason is not
// UTF-8) reads code 4403 and a reason cut at a character boundary.
func TestAdminDisconnectLongReason(t *testing.T) {
	ts := startServer(t, func(c *config.Config) { c.Admin.Key = testAdminKey })
	c := ts.mustWS(t, q("token", token(t, "lr", time.Hour)))
	readWS(t, c)
	reason := strings.Repeat("é", 70) // 140 bytes; byte 123 is inside a character
	if code, out := adminDo(t, ts, "POST", "/admin/disconnect", testAdminKey, `{"user_id":"lr","reason":"`+reason+`"}`); code != 200 {
		t.Fatalf("disconnect: %d %v", code, out)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		_, _, err := c.ReadMessage()
		if err == nil {
			continue // the disconnect event
		}
		var ce *websocket.CloseError
		if !errors.As(err, &ce) {
			t.Fatalf("want close 4403, got %v", err)
		}
		if ce.Code != 4403 || !utf8.ValidString(ce.Text) || len(ce.Text) > 123 || !strings.HasPrefix(reason, ce.Text) || len(ce.Text) < 120 {
			t.Fatalf("close %d %q (%d bytes), want 4403 and the reason cut to <= 123 bytes", ce.Code, ce.Text, len(ce.Text))
		}
		return
	}
}
