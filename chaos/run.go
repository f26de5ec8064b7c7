package chaos

import (
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Fault is one entry of the suite: how to break the system and how to
// repair it. Everything else (traffic, clients, measuring) is Run's job.
type Fault struct {
	// Name is the fault's row in the table.
	Name string
	// Topology is what it runs against (zero: 2 nodes, 2 shards).
	Topology Topology
	// Short faults also run in `make test`; the others only in `make chaos`.
	Short bool
	// Inject breaks something while traffic flows.
	Inject func(t testing.TB, e *Env)
	// Hold is how long the fault lasts before Heal (default 1s; 3x in the
	// long run).
	Hold time.Duration
	// Heal repairs it (nil: nothing to repair). Time to recover is measured
	// from the moment Heal starts.
	Heal func(t testing.TB, e *Env)
	// RecoverWithin bounds the time to recover (default 15s).
	RecoverWithin time.Duration
	// Check, when set, adds assertions once traffic settled.
	Check func(t testing.TB, e *Env, r Result)
}

// Result is one row of the table.
type Result struct {
	Fault string
	// Published counts publish attempts; Acknowledged those answered 200.
	Published, Acknowledged int
	// Delivered counts acknowledged messages received by resuming clients
	// (each client counted separately).
	Delivered int
	// LostSilently counts acknowledged messages a client (resuming or not)
	// never received with no stream_reset (or, without a cursor, no
	// reconnect) telling it so. Must be 0.
	LostSilently int
	// Duplicated counts messages a client received twice with no
	// stream_reset (or reconnect without cursor) in between. Must be 0.
	Duplicated int
	// GapsSignalled counts stream_reset events received, plus reconnects
	// of clients without a cursor.
	GapsSignalled int
	// Recover is the time from Heal to the first message published after
	// it reaching every client.
	Recover time.Duration
	// Recovered is false when that did not happen within RecoverWithin.
	Recovered bool
}

// Long reports whether the suite runs in its long form (`make chaos`).
func Long() bool { return testingLong }

var testingLong bool

type ack struct {
	n  int
	at time.Time
}

// Run runs one fault: it starts the system, connects a WebSocket and an
// SSE client that resume with their cursors and a WebSocket client without
// a cursor for each user, publishes numbered messages to every user
// through the nodes in turn, injects the fault, heals it, lets traffic
// settle and counts. It fails t when a message was lost silently or
// duplicated, or when the system did not recover in time.
func Run(t *testing.T, f Fault) Result {
	hold := f.Hold
	if hold == 0 {
		hold = time.Second
	}
	if testingLong {
		hold *= 3
	}
	within := f.RecoverWithin
	if within == 0 {
		within = 15 * time.Second
	}
	e := Start(t, f.Topology)
	var clients []*Client
	byUser := map[string][]*Client{}
	for _, u := range e.Users {
		for _, spec := range []struct {
			kind   string
			resume bool
		}{{"ws", true}, {"sse", true}, {"ws", false}} {
			c := &Client{Name: fmt.Sprintf("%s-%s-%v", u, spec.kind, spec.resume), User: u, Kind: spec.kind, Resume: spec.resume,
				e: e, stop: make(chan struct{}), done: make(chan struct{})}
			c.first = len(clients) % len(e.Nodes) // spread over the nodes
			clients = append(clients, c)
			byUser[u] = append(byUser[u], c)
			go c.run()
		}
	}
	defer func() {
		for _, c := range clients {
			c.Stop()
		}
	}()
	waitFor(t, 20*time.Second, "clients connected", func() bool {
		for _, c := range clients {
			if !c.connected() {
				return false
			}
		}
		return true
	})

	var mu sync.Mutex
	acked := map[string][]ack{}
	published, acknowledged := 0, 0
	stopPub := make(chan struct{})
	pubDone := make(chan struct{})
	go func() {
		defer close(pubDone)
		next := map[string]int{}
		for k := 0; ; k++ {
			for i, u := range e.Users {
				select {
				case <-stopPub:
					return
				default:
				}
				next[u]++
				n := next[u]
				at := time.Now()
				code, _ := e.Nodes[(k+i)%len(e.Nodes)].Publish(u, `{"n":`+strconv.Itoa(n)+`}`)
				mu.Lock()
				published++
				if code == 200 {
					acknowledged++
					acked[u] = append(acked[u], ack{n, at})
				}
				mu.Unlock()
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	time.Sleep(500 * time.Millisecond)
	f.Inject(t, e)
	time.Sleep(hold)
	healAt := time.Now()
	if f.Heal != nil {
		f.Heal(t, e)
	}
	res := Result{Fault: f.Name}
	// Recovered: for every user, the first message published after Heal
	// started reached all its clients (a client without a cursor may have
	// reconnected after it: a later one counts).
	done := map[string]time.Time{}
	deadline := healAt.Add(within)
	for len(done) < len(e.Users) && time.Now().Before(deadline) {
		for _, u := range e.Users {
			if _, ok := done[u]; ok {
				continue
			}
			mu.Lock()
			first := 0
			for _, a := range acked[u] {
				if a.at.After(healAt) {
					first = a.n
					break
				}
			}
			mu.Unlock()
			if first == 0 {
				continue
			}
			all := true
			for _, c := range byUser[u] {
				if c.Resume && !c.has(first) || !c.Resume && !c.hasAtLeast(first) {
					all = false
				}
			}
			if all {
				done[u] = time.Now()
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	res.Recovered = len(done) == len(e.Users)
	for _, at := range done {
		res.Recover = max(res.Recover, at.Sub(healAt))
	}
	if !res.Recovered {
		res.Recover = time.Since(healAt)
	}
	time.Sleep(300 * time.Millisecond)
	close(stopPub)
	<-pubDone
	// Settle: every client gets the last acknowledged message of its user.
	waitFor(t, 15*time.Second, "", func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range clients {
			if a := acked[c.User]; len(a) > 0 && !c.has(a[len(a)-1].n) {
				return false
			}
		}
		return true
	})
	for _, c := range clients {
		c.Stop()
	}
	res.Published, res.Acknowledged = published, acknowledged
	for _, c := range clients {
		delivered, lost, dups, signals := analyze(c.snapshot(), acked[c.User])
		if c.Resume {
			res.Delivered += delivered
		}
		res.LostSilently += lost
		res.Duplicated += dups
		res.GapsSignalled += signals
		if os.Getenv("CHAOS_DEBUG") != "" && signals > 0 {
			t.Logf("%s: %s", c.Name, describe(c.snapshot()))
		}
		if lost > 0 || dups > 0 {
			t.Errorf("%s: client %s: %d lost silently, %d duplicated; saw %s", f.Name, c.Name, lost, dups, describe(c.snapshot()))
		}
	}
	if !res.Recovered {
		t.Errorf("%s: not recovered within %s", f.Name, within)
	}
	if f.Check != nil {
		f.Check(t, e, res)
	}
	return res
}

func (c *Client) hasAtLeast(n int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := len(c.events) - 1; i >= 0; i-- {
		if c.events[i].kind == "msg" && c.events[i].n >= n {
			return true
		}
	}
	return false
}

// analyze counts, for one client, the acknowledged messages it received,
// those it missed with no signal (stream_reset, or a reconnect of a client
// without a cursor) between its neighbours, the duplicates within one
// unbroken stretch, and the signals.
func analyze(evs []event, acked []ack) (delivered, lost, dups, signals int) {
	got := map[int]bool{}
	seen := map[int]bool{}
	for _, ev := range evs {
		switch ev.kind {
		case "msg":
			if seen[ev.n] {
				dups++
			}
			seen[ev.n] = true
			got[ev.n] = true
		default:
			signals++
			clear(seen)
		}
	}
	for _, a := range acked {
		if got[a.n] {
			delivered++
			continue
		}
		// The stretch where a.n belongs: after the last message below it
		// that precedes the first message above it.
		j := len(evs)
		for k, ev := range evs {
			if ev.kind == "msg" && ev.n > a.n {
				j = k
				break
			}
		}
		i := -1
		for k := j - 1; k >= 0; k-- {
			if evs[k].kind == "msg" && evs[k].n < a.n {
				i = k
				break
			}
		}
		signalled := false
		for k := i + 1; k < j; k++ {
			if evs[k].kind != "msg" {
				signalled = true
				break
			}
		}
		if !signalled {
			lost++
		}
	}
	return
}

func describe(evs []event) string {
	var b strings.Builder
	for i, ev := range evs {
		if i > 0 {
			b.WriteByte(' ')
		}
		if ev.kind == "msg" {
			b.WriteString(strconv.Itoa(ev.n))
		} else {
			b.WriteString("[" + ev.kind + "]")
		}
	}
	return b.String()
}

func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			if what != "" {
				t.Fatalf("chaos: %s: not within %s", what, timeout)
			}
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return true
}

// WriteTable prints results as a Markdown table.
func WriteTable(w io.Writer, rs []Result) {
	sort.SliceStable(rs, func(i, j int) bool { return false })
	fmt.Fprintln(w, "| fault | published | acknowledged | delivered | lost silently | duplicated | gaps signalled | time to recover |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|")
	for _, r := range rs {
		rec := r.Recover.Round(10 * time.Millisecond).String()
		if !r.Recovered {
			rec = "not within " + rec
		}
		fmt.Fprintf(w, "| %s | %d | %d | %d | %d | %d | %d | %s |\n", r.Fault, r.Published, r.Acknowledged, r.Delivered, r.LostSilently, r.Duplicated, r.GapsSignalled, rec)
	}
}
