package chaos

import (
	"bufio"
	"encoding/json"
	"net/url"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/heraldrt/herald/internal/redistest"
)

// Faults of the channels_redis ingest and of the per-user limit's leases
// (rel-compat). They join the suite from init so chaos_test.go stays the
// list of the broker's faults.
func init() {
	faults = append(faults,
		Fault{
			// The nodes hold exactly limits.per_user connections per user
			// (3 clients each); node 1 dies without releasing its share.
			// Its clients reconnect to node 0 and are admitted once its
			// liveness key expires (~3 s), not after the 30 s leases.
			Name:  "Herald node SIGKILL, per_user at the limit (lease expiry)",
			Short: true,
			Topology: Topology{Setup: func(t testing.TB, e *Env) {
				s := redistest.Start(t)
				e.Shards = append(e.Shards, s)
				e.Env = append(e.Env, "HERALD_FANOUT__REDIS__SHARDS="+s.Addr(), "HERALD_LIMITS__PER_USER=3")
			}},
			Inject:        func(t testing.TB, e *Env) { e.Nodes[1].Kill() },
			RecoverWithin: 8 * time.Second,
		},
		Fault{
			// The channels Redis (core layer) is SIGKILLed and comes back
			// empty while a Django worker keeps calling group_send: Heal
			// returns once group_send reaches a connected user again, so
			// the row's time to recover is that of the channels_redis
			// path; the API traffic of the other users must not notice.
			Name:     "channels_redis Redis restarted empty (core layer)",
			Short:    true,
			Topology: Topology{Setup: channelsRedisSetup},
			Inject: func(t testing.TB, e *Env) {
				cr := startChannelsProbe(t, e)
				setChannelsProbe(e, cr)
				t.Cleanup(func() { setChannelsProbe(e, nil) })
				cr.before = cr.sent()
				e.Shards[1].Kill()
			},
			Heal: func(t testing.TB, e *Env) {
				cr := channelsProbeOf(e)
				e.Shards[1].Restart()
				back := time.Now()
				if !cr.waitAbove(cr.before+1, 10*time.Second) {
					t.Errorf("channels_redis restart: no group_send reached the connected user within 10s")
					return
				}
				if took := time.Since(back); took > 5*time.Second {
					t.Errorf("channels_redis restart: group_send reached the connected user %v after Redis was back, want within 5s", took)
				}
			},
			RecoverWithin: 12 * time.Second,
		},
	)
}

// channelsProbe is a group_send loop (compat/testdata/group_send_loop.py,
// the real channels_redis) to one user and a WebSocket of that user on
// node 0 recording what arrives.
type channelsProbe struct {
	mu       sync.Mutex
	lastSent int
	received []int
	before   int
}

var (
	probesMu sync.Mutex
	probes   = map[*Env]*channelsProbe{}
)

func channelsProbeOf(e *Env) *channelsProbe {
	probesMu.Lock()
	defer probesMu.Unlock()
	return probes[e]
}

func setChannelsProbe(e *Env, p *channelsProbe) {
	probesMu.Lock()
	defer probesMu.Unlock()
	if p == nil {
		delete(probes, e)
	} else {
		probes[e] = p
	}
}

func (p *channelsProbe) sent() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.lastSent
}

// waitAbove waits until a message numbered above n arrived.
func (p *channelsProbe) waitAbove(n int, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		p.mu.Lock()
		for _, r := range p.received {
			if r > n {
				p.mu.Unlock()
				return true
			}
		}
		p.mu.Unlock()
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

// channelsRedisSetup starts the broker's shard (e.Shards[0]) and a
// channels Redis (e.Shards[1]) and enables the core-layer ingest on the
// nodes.
func channelsRedisSetup(t testing.TB, e *Env) {
	if exec.Command(python, "-c", "import channels_redis").Run() != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("python3-channels-redis not installed")
		}
		t.Skip("python3-channels-redis not installed")
	}
	broker, channels := redistest.Start(t), redistest.Start(t)
	e.Shards = append(e.Shards, broker, channels)
	e.Env = append(e.Env, "HERALD_FANOUT__REDIS__SHARDS="+broker.Addr(),
		"HERALD_COMPAT__CHANNELS_REDIS__ENABLED=true",
		"HERALD_COMPAT__CHANNELS_REDIS__LAYER=core",
		"HERALD_COMPAT__CHANNELS_REDIS__HOSTS=redis://"+channels.Addr(),
		"HERALD_COMPAT__CHANNELS_REDIS__LEASE_TTL=2s")
}

const python = "/usr/bin/python3"

// startChannelsProbe connects user cr1 to node 0 (so the node joins group
// user_cr1), starts a group_send loop to that group every 100 ms, and
// waits until the user receives from it.
func startChannelsProbe(t testing.TB, e *Env) *channelsProbe {
	p := &channelsProbe{}
	q := url.Values{"token": {Token(t, "cr1")}}
	ws, _, err := websocket.DefaultDialer.Dial("ws://"+e.Nodes[0].Addr+"/ws/notifications/?"+q.Encode(), nil)
	if err != nil {
		t.Fatalf("channels probe: connect: %v", err)
	}
	cmd := exec.Command(python, "../compat/testdata/group_send_loop.py", "core", "redis://"+e.Shards[1].Addr(), "user_cr1", "100", "1000000")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(2)
	t.Cleanup(func() {
		ws.Close()
		cmd.Process.Kill()
		wg.Wait()
		cmd.Wait()
	})
	go func() {
		defer wg.Done()
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			var m struct{ N int }
			if json.Unmarshal(sc.Bytes(), &m) == nil {
				p.mu.Lock()
				p.lastSent = m.N
				p.mu.Unlock()
			}
		}
	}()
	go func() {
		defer wg.Done()
		for {
			_, b, err := ws.ReadMessage()
			if err != nil {
				return
			}
			var m struct {
				Tag string
				N   int
			}
			if json.Unmarshal(b, &m) == nil && m.Tag == "loop" {
				p.mu.Lock()
				p.received = append(p.received, m.N)
				p.mu.Unlock()
			}
		}
	}()
	if !p.waitAbove(0, 15*time.Second) {
		t.Fatal("channels probe: group_send never reached the user before the fault")
	}
	return p
}
