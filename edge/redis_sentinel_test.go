package edge

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/heraldrt/herald/config"
	"github.com/heraldrt/herald/fanout"
	"github.com/heraldrt/herald/internal/redistest"
)

// seqLog records what one client saw, in order: message numbers and
// stream_reset markers (-1).
type seqLog struct {
	mu     sync.Mutex
	seq    []int
	at     []time.Time
	cursor string
}

func (l *seqLog) add(n int, cursor string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.seq = append(l.seq, n)
	l.at = append(l.at, time.Now())
	if cursor != "" {
		l.cursor = cursor
	}
}

func (l *seqLog) snapshot() ([]int, []time.Time, string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]int(nil), l.seq...), append([]time.Time(nil), l.at...), l.cursor
}

// record parses one delivered payload (a {"n":N} message or a control
// event) into l.
func (l *seqLog) record(data []byte, cursor string) {
	var m struct {
		Type string `json:"type"`
		N    *int   `json:"n"`
	}
	if json.Unmarshal(data, &m) != nil {
		return
	}
	switch {
	case m.Type == "stream_reset":
		l.add(-1, cursor)
	case m.N != nil:
		l.add(*m.N, cursor)
	default:
		l.add(-2, cursor) // other control events keep the cursor only
	}
}

// verdict compares what a client saw with the acknowledged publishes:
// lost counts acknowledged numbers neither delivered nor covered by a
// stream_reset between their neighbours; dups counts numbers delivered
// twice; resets counts stream_reset events.
func verdict(seq []int, acked []int) (lost, dups, resets int, missing []int) {
	pos := map[int]int{}
	for i, n := range seq {
		switch {
		case n == -1:
			resets++
		case n >= 0:
			if _, ok := pos[n]; ok {
				dups++
			}
			pos[n] = i
		}
	}
	for _, n := range acked {
		if _, ok := pos[n]; ok {
			continue
		}
		// The neighbours that were delivered: the closest smaller and
		// larger numbers.
		lo, hi := -1, len(seq)
		for m, i := range pos {
			if m < n && (lo < 0 || i > lo) {
				lo = i
			}
			if m > n && i < hi {
				hi = i
			}
		}
		covered := false
		for i := lo + 1; i < hi && i < len(seq); i++ {
			if seq[i] == -1 {
				covered = true
			}
		}
		if !covered {
			lost++
			missing = append(missing, n)
		}
	}
	return lost, dups, resets, missing
}

// resumingWS keeps a WebSocket (envelope format) open for user on ts,
// reconnecting with its last cursor whenever the connection ends, until
// stop is closed.
func resumingWS(t *testing.T, ts *testServer, user string, l *seqLog, stop <-chan struct{}, wg *sync.WaitGroup) {
	tok := token(t, user, time.Hour)
	untilStopped(stop, wg, func() {
		_, _, cursor := l.snapshot()
		query := q("token", tok, "format", "envelope")
		if cursor != "" {
			query = q("token", tok, "format", "envelope", "since", cursor)
		}
		d := websocket.Dialer{HandshakeTimeout: 5 * time.Second}
		c, _, err := d.Dial("ws://"+ts.addr+"/ws/notifications/?"+query, nil)
		if err != nil {
			time.Sleep(100 * time.Millisecond)
			return
		}
		done := make(chan struct{})
		defer close(done)
		go func() {
			select {
			case <-stop:
			case <-done:
			}
			c.Close()
		}()
		for {
			_, b, err := c.ReadMessage()
			if err != nil {
				return
			}
			var env struct {
				Cursor string          `json:"cursor"`
				Type   string          `json:"type"`
				Data   json.RawMessage `json:"data"`
			}
			if json.Unmarshal(b, &env) != nil {
				continue
			}
			if env.Type != "" {
				l.record(b, env.Cursor)
			} else {
				l.record(env.Data, env.Cursor)
			}
		}
	})
}

// untilStopped runs connect again and again, each call one connection of
// a resuming client, until stop is closed.
func untilStopped(stop <-chan struct{}, wg *sync.WaitGroup, connect func()) {
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			connect()
		}
	}()
}

// resumingSSE is resumingWS for an event stream resuming with
// Last-Event-ID.
func resumingSSE(t *testing.T, ts *testServer, user string, l *seqLog, stop <-chan struct{}, wg *sync.WaitGroup) {
	tok := token(t, user, time.Hour)
	untilStopped(stop, wg, func() {
		_, _, cursor := l.snapshot()
		req, _ := http.NewRequest("GET", "http://"+ts.addr+"/sse/notifications/?"+q("token", tok), nil)
		req.Header.Set("Accept", "text/event-stream")
		if cursor != "" {
			req.Header.Set("Last-Event-ID", cursor)
		}
		resp, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Do(req)
		if err != nil || resp.StatusCode != 200 {
			if resp != nil {
				resp.Body.Close()
			}
			time.Sleep(100 * time.Millisecond)
			return
		}
		defer resp.Body.Close()
		c := newSSEClient(resp)
		for {
			select {
			case <-stop:
				return
			case ev, ok := <-c.events:
				if !ok {
					return
				}
				if ev.Data != "" {
					l.record([]byte(ev.Data), ev.ID)
				}
			}
		}
	})
}

// TestRedisSentinelFailover: two Herald nodes use two Sentinel master sets
// (each a master and a replica, watched by 3 sentinels) as the ACL user of
// docs/redis.md. While numbered messages are published to users on both
// shards, one master is killed (SIGKILL) and the other frozen (SIGSTOP);
// the sentinels promote the replicas; publishes and subscriptions move to
// the new masters within 10 s, and WebSocket and SSE clients resuming with
// their cursors receive every acknowledged message or a stream_reset,
// never silence, and no message twice.
func TestRedisSentinelFailover(t *testing.T) {
	const password = "sentinel-test-pw-01"
	sets := []string{"herald-a", "herald-b"}
	var masters, replicas []*redistest.Server
	var monitors []redistest.Monitor
	for _, name := range sets {
		m := redistest.Start(t)
		if _, err := redistest.Do(m.Addr(), docACLLine(t, password)...); err != nil {
			t.Fatal(err)
		}
		r := redistest.StartReplica(t, m.Addr())
		if _, err := redistest.Do(r.Addr(), docACLLine(t, password)...); err != nil {
			t.Fatal(err)
		}
		masters, replicas = append(masters, m), append(replicas, r)
		monitors = append(monitors, redistest.Monitor{Name: name, Master: m.Addr(), Replicas: 1})
	}
	sentinels := redistest.StartSentinels(t, 3, monitors)
	var saddrs []string
	for _, s := range sentinels {
		saddrs = append(saddrs, s.Addr())
	}
	nodes := redisNodes(t, 2, nil, "herald:", func(c *config.Config) {
		c.Fanout.Redis.Shards = nil
		c.Fanout.Redis.Sentinel = fanout.RedisSentinelConfig{MasterSets: sets, Addrs: saddrs}
		c.Fanout.Redis.Username, c.Fanout.Redis.Password = "herald", password
	})
	a, b := nodes[0], nodes[1]
	code, ready := b.get(t, "/readyz")
	if code != 200 || !strings.Contains(fmt.Sprint(ready), "sentinel:herald-b") {
		t.Fatalf("readyz %d %v", code, ready)
	}
	// Two users per shard; each has a WebSocket on node B and an event
	// stream on node A.
	var users []string
	perShard := map[int]int{}
	for i := 0; len(users) < 4; i++ {
		u := fmt.Sprint(100 + i)
		if s := fanout.ShardIndex("user:"+u, 2); perShard[s] < 2 {
			perShard[s]++
			users = append(users, u)
		}
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	logs := map[string]*seqLog{}
	for _, u := range users {
		logs["ws:"+u], logs["sse:"+u] = &seqLog{}, &seqLog{}
		resumingWS(t, b, u, logs["ws:"+u], stop, &wg)
		resumingSSE(t, a, u, logs["sse:"+u], stop, &wg)
	}
	defer func() {
		close(stop)
		wg.Wait()
	}()
	// Wait for every client's connection event.
	for start := time.Now(); ; time.Sleep(20 * time.Millisecond) {
		all := true
		for _, l := range logs {
			if s, _, _ := l.snapshot(); len(s) == 0 {
				all = false
			}
		}
		if all {
			break
		}
		if time.Since(start) > 10*time.Second {
			t.Fatal("clients did not connect")
		}
	}

	type ack struct {
		n  int
		at time.Time
	}
	var mu sync.Mutex
	acked := map[string][]ack{}
	pubStop := make(chan struct{})
	pubDone := make(chan struct{})
	client := &http.Client{Timeout: 5 * time.Second}
	var pubs sync.WaitGroup
	for _, u := range users { // one publisher per user: a publish stuck on a frozen master delays no other user
		pubs.Add(1)
		go func() {
			defer pubs.Done()
			for n := 1; ; n++ {
				select {
				case <-pubStop:
					return
				default:
				}
				body := fmt.Sprintf(`{"user_id":%q,"data":{"n":%d}}`, u, n)
				req, _ := http.NewRequest("POST", "http://"+a.addr+"/api/publish", strings.NewReader(body))
				req.Header.Set("X-API-Key", testAPIKey)
				req.Header.Set("Content-Type", "application/json")
				resp, err := client.Do(req)
				if err == nil {
					resp.Body.Close()
					if resp.StatusCode == 200 {
						mu.Lock()
						acked[u] = append(acked[u], ack{n, time.Now()})
						mu.Unlock()
					}
				}
				time.Sleep(20 * time.Millisecond)
			}
		}()
	}
	go func() {
		pubs.Wait()
		close(pubDone)
	}()
	lastAck := func(u string) (ack, int) {
		mu.Lock()
		defer mu.Unlock()
		as := acked[u]
		if len(as) == 0 {
			return ack{}, 0
		}
		return as[len(as)-1], len(as)
	}
	waitAcks := func(what string, since time.Time) {
		t.Helper()
		for start := time.Now(); ; time.Sleep(20 * time.Millisecond) {
			ok := true
			for _, u := range users {
				if last, _ := lastAck(u); last.at.Before(since) {
					ok = false
				}
			}
			if ok {
				return
			}
			if time.Since(start) > 20*time.Second {
				t.Fatalf("%s: publishes did not succeed on every shard", what)
			}
		}
	}
	waitAcks("before the faults", time.Now())
	time.Sleep(500 * time.Millisecond)

	// failover faults the master of set i and waits until publishes to
	// its users succeed again and reach every client.
	failover := func(i int, fault func(*redistest.Server), how string) time.Duration {
		t.Helper()
		// Let the replica catch up, so that what was acknowledged is on it.
		if _, err := redistest.Do(masters[i].Addr(), "WAIT", "1", "2000"); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		fault(masters[i])
		for {
			if m, err := redistest.SentinelMaster(sentinels[0].Addr(), sets[i]); err == nil && m == replicas[i].Addr() {
				break
			}
			if time.Since(start) > 20*time.Second {
				t.Fatalf("%s: sentinels did not promote %s", how, replicas[i].Addr())
			}
			time.Sleep(20 * time.Millisecond)
		}
		promoted := time.Since(start)
		// Recovered: a message published after the promotion has reached
		// every client of that shard.
		var target = map[string]int{}
		var resumed time.Duration
		for start2 := time.Now(); ; time.Sleep(20 * time.Millisecond) {
			for _, u := range users {
				if fanout.ShardIndex("user:"+u, 2) != i {
					continue
				}
				if last, _ := lastAck(u); target[u] == 0 && last.at.After(start.Add(promoted)) {
					target[u] = last.n
				}
			}
			if len(target) == perShard[i] && resumed == 0 {
				resumed = time.Since(start)
			}
			done := len(target) == perShard[i]
			for u, n := range target {
				for _, kind := range []string{"ws:", "sse:"} {
					seq, _, _ := logs[kind+u].snapshot()
					got := false
					for _, m := range seq {
						if m >= n {
							got = true
						}
					}
					done = done && got
				}
			}
			if done {
				break
			}
			if time.Since(start2) > 30*time.Second {
				t.Fatalf("%s: clients did not receive messages published after the failover (targets %v)", how, target)
			}
		}
		d := time.Since(start)
		t.Logf("%s of %s: promoted after %s, publishes acknowledged again after %s, clients receiving again after %s",
			how, sets[i], promoted.Round(time.Millisecond), resumed.Round(time.Millisecond), d.Round(time.Millisecond))
		if d > 10*time.Second {
			t.Errorf("%s: recovery took %s, want at most 10s", how, d)
		}
		return d
	}
	failover(0, (*redistest.Server).Kill, "SIGKILL")
	failover(1, (*redistest.Server).Pause, "SIGSTOP")
	masters[1].Resume() // it rejoins as a replica of the promoted one
	time.Sleep(time.Second)
	close(pubStop)
	<-pubDone
	// Every client catches up with the last acknowledged message.
	for start := time.Now(); ; time.Sleep(50 * time.Millisecond) {
		done := true
		for _, u := range users {
			last, _ := lastAck(u)
			for _, kind := range []string{"ws:", "sse:"} {
				seq, _, _ := logs[kind+u].snapshot()
				got := false
				for _, m := range seq {
					if m >= last.n {
						got = true
					}
				}
				done = done && got
			}
		}
		if done {
			break
		}
		if time.Since(start) > 20*time.Second {
			t.Fatal("clients did not catch up with the last publish")
		}
	}
	total := map[string]int{}
	for _, u := range users {
		mu.Lock()
		var ns []int
		for _, a := range acked[u] {
			ns = append(ns, a.n)
		}
		mu.Unlock()
		for _, kind := range []string{"ws:", "sse:"} {
			seq, _, _ := logs[kind+u].snapshot()
			lost, dups, resets, missing := verdict(seq, ns)
			delivered := 0
			for _, m := range seq {
				if m >= 0 {
					delivered++
				}
			}
			total["acked"] += len(ns)
			total["delivered"] += delivered
			total["lost"] += lost
			total["dups"] += dups
			total["resets"] += resets
			if lost > 0 || dups > 0 {
				t.Errorf("%s%s (shard %d): %d acknowledged, %d delivered, %d lost silently %v, %d duplicated, %d stream_reset",
					kind, u, fanout.ShardIndex("user:"+u, 2), len(ns), delivered, lost, missing, dups, resets)
			}
		}
	}
	t.Logf("sentinel failover: acknowledged %d, delivered %d, lost silently %d, duplicated %d, stream_reset %d",
		total["acked"], total["delivered"], total["lost"], total["dups"], total["resets"])
}

// TestVerdict: the failover test's bookkeeping counts a missing message as
// lost only when no stream_reset came between its delivered neighbours.
func TestVerdict(t *testing.T) {
	tests := []struct {
		seq, acked         []int
		lost, dups, resets int
	}{
		{seq: []int{-2, 1, 2, 3}, acked: []int{1, 2, 3}},
		{seq: []int{1, 3}, acked: []int{1, 2, 3}, lost: 1},
		{seq: []int{1, -1, 3}, acked: []int{1, 2, 3}, resets: 1},
		{seq: []int{1, -1, 3, 5}, acked: []int{1, 2, 3, 4, 5}, lost: 1, resets: 1},
		{seq: []int{1, 2, 2, 3}, acked: []int{1, 2, 3}, dups: 1},
		{seq: []int{1, 2}, acked: []int{1, 2, 3}, lost: 1},
		{seq: []int{1, 2, -1}, acked: []int{1, 2, 3}, resets: 1},
		{seq: []int{2, 3}, acked: []int{1, 2, 3}, lost: 1},
	}
	for i, tc := range tests {
		lost, dups, resets, _ := verdict(tc.seq, tc.acked)
		if lost != tc.lost || dups != tc.dups || resets != tc.resets {
			t.Errorf("case %d %v: lost %d dups %d resets %d, want %d %d %d", i, tc.seq, lost, dups, resets, tc.lost, tc.dups, tc.resets)
		}
	}
}
