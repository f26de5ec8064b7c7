package edge

import (
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/heraldrt/herald/config"
	"github.com/heraldrt/herald/internal/redistest"
)

// TestChannelsRedisEndToEnd: unchanged Django Channels group_send (the real
// channels_redis, both layers) reaches a Herald WebSocket client byte for
// byte.
func TestChannelsRedisEndToEnd(t *testing.T) {
	if exec.Command("/usr/bin/python3", "-c", "import channels_redis").Run() != nil {
		requireInCI(t, "python3-channels-redis not installed")
	}
	for _, layer := range []string{"core", "pubsub"} {
		t.Run(layer, func(t *testing.T) {
			rd := redistest.Start(t)
			ts := startServer(t, func(c *config.Config) {
				c.Compat.ChannelsRedis.Enabled = true
				c.Compat.ChannelsRedis.Layer = layer
				c.Compat.ChannelsRedis.Hosts = []string{"redis://" + rd.Addr()}
			})
			ws := ts.mustWS(t, q("token", token(t, "42", time.Hour)))
			readWS(t, ws)
			if err := ts.srv.ingest.Sync(t.Context()); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command("/usr/bin/python3", "../compat/testdata/group_send.py", layer,
				"redis://"+rd.Addr(), "user_42", "602").Output()
			if err != nil {
				t.Fatal(err)
			}
			want := strings.Split(strings.TrimSpace(string(out)), "\n")
			if len(want) < 7 {
				t.Fatalf("group_send.py printed %d messages", len(want))
			}
			for i, w := range want {
				if got := string(readWS(t, ws)); got != w {
					t.Fatalf("message %d: %s, want %s", i, got, w)
				}
			}
		})
	}
}

// TestChannelsRedisInvalidUTF8Dropped: a group_send whose message holds a
// string that is not valid UTF-8 is dropped by the ingest (counted in
// herald_channels_redis_messages_total{result="invalid_utf8"} and logged
// with the reason); the next message still arrives.
func TestChannelsRedisInvalidUTF8Dropped(t *testing.T) {
	rd := redistest.Start(t)
	var logs syncBuffer
	ts := startServerLogs(t, &logs, func(c *config.Config) {
		c.Compat.ChannelsRedis.Enabled = true
		c.Compat.ChannelsRedis.Layer = "pubsub"
		c.Compat.ChannelsRedis.Hosts = []string{"redis://" + rd.Addr()}
	})
	ws := ts.mustWS(t, q("token", token(t, "42", time.Hour)))
	readWS(t, ws)
	if err := ts.srv.ingest.Sync(t.Context()); err != nil {
		t.Fatal(err)
	}
	// msgpack {"type": "x", "message": <str>}, as channels_redis packs it.
	pack := func(str string) string {
		return "\x82\xa4type\xa1x\xa7message" + string([]byte{byte(0xa0 + len(str))}) + str
	}
	for _, m := range []string{pack("\xff\xfe"), pack("ok")} {
		if _, err := redistest.Do(rd.Addr(), "PUBLISH", "asgi__group__user_42", m); err != nil {
			t.Fatal(err)
		}
	}
	if got := string(readWS(t, ws)); got != `"ok"` {
		t.Fatalf("client got %q, want the valid message only", got)
	}
	text := scrape(t, ts)
	if v := metricValue(t, text, `herald_channels_redis_messages_total{result="invalid_utf8"}`); v != 1 {
		t.Fatalf("invalid_utf8 count %v, want 1", v)
	}
	if !strings.Contains(logs.String(), `"reason":"invalid_utf8"`) {
		t.Fatalf("no log line with the reason:\n%s", logs.String())
	}
}
