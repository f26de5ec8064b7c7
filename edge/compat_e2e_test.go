package edge

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

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

// TestChannelsRedisRestartResumesDelivery: the channels Redis restarts
// without persistence (SIGKILL, empty on return) while a Django worker
// keeps calling group_send (the real channels_redis) and a WebSocket user
// stays connected. Herald must notice that its group memberships are gone
// and write them again, so the connected user receives group_send again
// within 5 s of Redis being back, and a new connection of the same user
// receives too.
func TestChannelsRedisRestartResumesDelivery(t *testing.T) {
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
				c.Compat.ChannelsRedis.LeaseTTL = 2 * time.Second
			})
			tok := token(t, "42", time.Hour)
			ws := ts.mustWS(t, q("token", tok))
			readWS(t, ws)
			if err := ts.srv.ingest.Sync(t.Context()); err != nil {
				t.Fatal(err)
			}
			sender := startGroupSendLoop(t, layer, rd.Addr(), "user_42", 100*time.Millisecond)
			// Delivery works before the restart.
			n0, _ := readLoopMessage(t, ws, 0, 10*time.Second)

			before := max(sender.sent(), n0)
			rd.Restart()
			back := time.Now()
			// Anything sent at least two sends after the kill began was sent
			// to the new, empty Redis.
			n, at := readLoopMessage(t, ws, before+1, 10*time.Second)
			took := at.Sub(back)
			t.Logf("%s: first group_send after the restart (#%d) received %v after Redis was back", layer, n, took.Round(time.Millisecond))
			if took > 5*time.Second {
				t.Fatalf("%s: delivery resumed %v after the restart, want within 5s", layer, took)
			}
			if layer == "core" {
				if v := metricValue(t, scrape(t, ts), "herald_channels_redis_memberships_restored_total"); v != 1 {
					t.Errorf("herald_channels_redis_memberships_restored_total %v, want 1", v)
				}
			}
			// A new connection of the same user receives too.
			ws2 := ts.mustWS(t, q("token", tok))
			readWS(t, ws2)
			readLoopMessage(t, ws2, n, 5*time.Second)
		})
	}
}

// groupSendLoop is a running compat/testdata/group_send_loop.py.
type groupSendLoop struct {
	mu   sync.Mutex
	last int // highest n the script reported sent
}

func (l *groupSendLoop) sent() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.last
}

// startGroupSendLoop runs group_send_loop.py against the Redis at addr,
// sending {"type":"notification","tag":"loop","n":N} to group every
// interval until the test ends.
func startGroupSendLoop(t *testing.T, layer, addr, group string, interval time.Duration) *groupSendLoop {
	t.Helper()
	cmd := exec.Command("/usr/bin/python3", "../compat/testdata/group_send_loop.py", layer, "redis://"+addr, group,
		strconv.Itoa(int(interval.Milliseconds())), "100000")
	if os.Getenv("HERALD_TEST_LOG") != "" {
		cmd.Stderr = os.Stderr // failed sends while Redis is down
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	l := &groupSendLoop{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			var m struct{ N int }
			if json.Unmarshal(sc.Bytes(), &m) == nil {
				l.mu.Lock()
				l.last = m.N
				l.mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-done
		cmd.Wait()
	})
	return l
}

// readLoopMessage reads ws until a group_send_loop.py message numbered
// above after arrives; it returns its number and when it arrived.
func readLoopMessage(t *testing.T, ws *websocket.Conn, after int, timeout time.Duration) (int, time.Time) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		_ = ws.SetReadDeadline(deadline)
		_, b, err := ws.ReadMessage()
		if err != nil {
			t.Fatalf("no group_send numbered above %d reached the client within %v: %v", after, timeout, err)
		}
		var m struct {
			Tag string
			N   int
		}
		if json.Unmarshal(b, &m) == nil && m.Tag == "loop" && m.N > after {
			return m.N, time.Now()
		}
	}
}
