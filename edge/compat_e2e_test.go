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
