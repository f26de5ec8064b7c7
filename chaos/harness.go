// Package chaos is Herald's fault suite: it runs real Herald processes
// against real Redis servers (behind fault proxies), publishes numbered
// messages to WebSocket and SSE clients that resume with their cursors,
// injects one fault at a time (a shard killed, restored from a snapshot,
// partitioned, a node killed...) and checks that no acknowledged message
// is lost silently or delivered twice. See /work/notes/chaos-api.md and
// docs/RELIABILITY.md; run it with `make chaos` (long) or as part of
// `make test` (short).
package chaos

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/heraldrt/herald/edge/auth"
	"github.com/heraldrt/herald/fanout"
	"github.com/heraldrt/herald/internal/faultproxy"
	"github.com/heraldrt/herald/internal/heraldtest"
	"github.com/heraldrt/herald/internal/redistest"
	"github.com/heraldrt/herald/internal/ssetest"
)

const (
	secret = "chaos-secret-0123456789abcdef0123456789"
	apiKey = "chaos-api-key-0123456789"
)

// Topology is what a fault runs against. Zero values are the defaults.
type Topology struct {
	// Nodes is the number of Herald processes (default 2).
	Nodes int
	// Shards is the number of Redis servers, each behind a fault proxy
	// (default 2). Ignored when Setup starts its own Redis.
	Shards int
	// ShardArgs are extra redis-server arguments for every shard.
	ShardArgs []string
	// Setup, when set, runs after the shards started and before the nodes:
	// it can start other processes (Sentinels, a Cluster, a channels_redis
	// server) and set e.Env for the nodes.
	Setup func(t testing.TB, e *Env)
}

// Env is one running system: Redis shards behind proxies and Herald nodes.
type Env struct {
	T testing.TB
	// Shards are the Redis servers; Proxies[i] sits in front of Shards[i]
	// and is what the nodes are configured with.
	Shards  []*redistest.Server
	Proxies []*faultproxy.Proxy
	// Cluster is set by topologies that run a Redis Cluster.
	Cluster *redistest.Cluster
	// Nodes are the Herald processes.
	Nodes []*Node
	// Env are extra HERALD_* variables (KEY=value) for every node; Setup
	// may add to them (e.g. HERALD_FANOUT__REDIS__SENTINEL__...).
	Env []string
	// Users are the user ids traffic is published to; user:<id> channels
	// are spread over the shards.
	Users []string
}

// Node is one Herald process.
type Node struct {
	e    *Env
	Addr string
	env  []string
	node *heraldtest.Node
}

// Start builds the system for topo: shards, proxies, Setup, then nodes,
// and waits until every node is ready.
func Start(t testing.TB, topo Topology) *Env {
	t.Helper()
	if topo.Nodes == 0 {
		topo.Nodes = 2
	}
	if topo.Shards == 0 {
		topo.Shards = 2
	}
	e := &Env{T: t}
	if topo.Setup == nil {
		var addrs []string
		for range topo.Shards {
			s := redistest.Start(t, redistest.Args(topo.ShardArgs...))
			p := faultproxy.Start(t, s.Addr())
			e.Shards = append(e.Shards, s)
			e.Proxies = append(e.Proxies, p)
			addrs = append(addrs, p.Addr())
		}
		e.Env = append(e.Env, "HERALD_FANOUT__REDIS__SHARDS="+strings.Join(addrs, ","))
	} else {
		topo.Setup(t, e)
	}
	for i := range 4 {
		e.Users = append(e.Users, strconv.Itoa(100+i))
	}
	for range topo.Nodes {
		n := &Node{e: e}
		n.Start()
		e.Nodes = append(e.Nodes, n)
	}
	for _, n := range e.Nodes {
		n.WaitReady(30 * time.Second)
	}
	return e
}

// Start starts (or restarts) the node's process, on the same address when
// it ran before.
func (n *Node) Start() {
	t := n.e.T
	t.Helper()
	env := []string{
		"HERALD_AUTH__JWT__HMAC_SECRET=" + secret,
		"HERALD_API__KEY=" + apiKey,
		"HERALD_FANOUT__BROKER=redis",
		"HERALD_FANOUT__REDIS__PREFIX=chaos:",
		"HERALD_FANOUT__REDIS__PROBE_INTERVAL=500ms",
		"HERALD_FANOUT__REDIS__COMMAND_TIMEOUT=1s",
		"HERALD_FANOUT__REDIS__DIAL_TIMEOUT=1s",
		"HERALD_LOG__LEVEL=warn",
	}
	env = append(env, n.e.Env...)
	env = append(env, n.env...)
	if n.node == nil {
		n.node = heraldtest.StartNode(t, "", env...)
		n.Addr = n.node.Addr()
		return
	}
	n.node.SetEnv(env...)
	n.node.Restart()
}

// SetEnv adds HERALD_* variables (KEY=value) for this node's next Start.
func (n *Node) SetEnv(kv ...string) { n.env = append(n.env, kv...) }

// WaitReady waits until /readyz answers 200.
func (n *Node) WaitReady(timeout time.Duration) {
	t := n.e.T
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if code, _ := n.Get("/readyz"); code == 200 {
			return
		}
		select {
		case <-n.node.Exited():
			t.Fatalf("chaos: herald on %s exited: %s", n.Addr, n.node.Log())
		default:
		}
		if time.Now().After(deadline) {
			code, body := n.Get("/readyz")
			t.Fatalf("chaos: herald on %s not ready after %s: %d %s", n.Addr, timeout, code, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Kill kills the node with SIGKILL (a crash) and waits for it to exit.
func (n *Node) Kill() { n.node.Kill() }

// Stop stops the node with SIGTERM (graceful) and waits for it to exit.
func (n *Node) Stop() { n.node.Stop() }

var httpClient = &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 8}}

// Get fetches path and returns the status and body (0 when unreachable).
func (n *Node) Get(path string) (int, string) {
	resp, err := httpClient.Get("http://" + n.Addr + path)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// Publish publishes data to user's channel through the node's API and
// returns the HTTP status (0 when unreachable) and body.
func (n *Node) Publish(user string, data string) (int, string) {
	body := `{"user_id":` + strconv.Quote(user) + `,"data":` + data + `}`
	req, _ := http.NewRequest("POST", "http://"+n.Addr+"/api/publish", strings.NewReader(body))
	req.Header.Set("X-API-Key", apiKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := httpClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// Token returns an access token for user.
func Token(t testing.TB, user string) string {
	tok, err := auth.Sign(secret, "HS256", user, 24*time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// ShardOf returns the index of the shard holding user's channel.
func (e *Env) ShardOf(user string) int {
	return fanout.ShardIndex("user:"+user, len(e.Shards))
}

// event is one thing a client saw.
type event struct {
	kind string // "msg", "reset", "reconnect"
	n    int
	at   time.Time
}

// Client is a WebSocket or SSE connection of one user that reconnects by
// itself (to the next node) until stopped, resuming with its cursor when
// Resume is set.
type Client struct {
	Name   string
	User   string
	Kind   string // "ws", "sse"
	Resume bool

	e      *Env
	mu     sync.Mutex
	events []event
	cursor string
	conns  int
	first  int // index of the node of the first connection
	stop   chan struct{}
	done   chan struct{}
	closer io.Closer
}

func (c *Client) record(ev event) {
	ev.at = time.Now()
	c.mu.Lock()
	c.events = append(c.events, ev)
	c.mu.Unlock()
}

// Events returns a copy of what the client saw.
func (c *Client) snapshot() []event {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]event(nil), c.events...)
}

func (c *Client) has(n int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := len(c.events) - 1; i >= 0; i-- {
		if c.events[i].kind == "msg" && c.events[i].n == n {
			return true
		}
	}
	return false
}

// connected reports whether the client has an open stream.
func (c *Client) connected() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closer != nil
}

func (c *Client) run() {
	defer close(c.done)
	tok := Token(c.e.T, c.User)
	for attempt := 0; ; attempt++ {
		select {
		case <-c.stop:
			return
		default:
		}
		node := c.e.Nodes[(c.first+c.conns+attempt)%len(c.e.Nodes)]
		var err error
		if c.Kind == "ws" {
			err = c.runWS(node, tok)
		} else {
			err = c.runSSE(node, tok)
		}
		_ = err
		select {
		case <-c.stop:
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (c *Client) setCloser(cl io.Closer) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	select {
	case <-c.stop:
		cl.Close()
		return false
	default:
	}
	if c.conns > 0 && !c.Resume {
		c.events = append(c.events, event{kind: "reconnect", at: time.Now()})
	}
	c.conns++
	c.closer = cl
	return true
}

func (c *Client) clearCloser() {
	c.mu.Lock()
	c.closer = nil
	c.mu.Unlock()
}

func (c *Client) runWS(node *Node, tok string) error {
	q := url.Values{"token": {tok}, "format": {"envelope"}}
	c.mu.Lock()
	if c.Resume && c.cursor != "" {
		q.Set("since", c.cursor)
	}
	c.mu.Unlock()
	d := websocket.Dialer{HandshakeTimeout: 3 * time.Second}
	ws, _, err := d.Dial("ws://"+node.Addr+"/ws/notifications/?"+q.Encode(), nil)
	if err != nil {
		return err
	}
	if !c.setCloser(ws) {
		return nil
	}
	defer c.clearCloser()
	defer ws.Close()
	for {
		_, b, err := ws.ReadMessage()
		if err != nil {
			return err
		}
		var m struct {
			Type   string `json:"type"`
			Cursor string `json:"cursor"`
			Data   struct {
				N int `json:"n"`
			} `json:"data"`
		}
		if json.Unmarshal(b, &m) != nil {
			continue
		}
		c.observe(m.Type, m.Data.N, m.Cursor)
	}
}

func (c *Client) observe(typ string, n int, cursor string) {
	switch {
	case typ == "stream_reset":
		c.record(event{kind: "reset"})
	case typ == "" && n > 0:
		c.record(event{kind: "msg", n: n})
	}
	if cursor != "" {
		c.mu.Lock()
		c.cursor = cursor
		c.mu.Unlock()
	}
}

func (c *Client) runSSE(node *Node, tok string) error {
	req, _ := http.NewRequest("GET", "http://"+node.Addr+"/sse/notifications/?token="+url.QueryEscape(tok), nil)
	req.Header.Set("Accept", "text/event-stream")
	c.mu.Lock()
	if c.Resume && c.cursor != "" {
		req.Header.Set("Last-Event-ID", c.cursor)
	}
	c.mu.Unlock()
	resp, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Do(req)
	if err != nil {
		return err
	}
	if resp.StatusCode != 200 {
		resp.Body.Close()
		return fmt.Errorf("sse: %s", resp.Status)
	}
	if !c.setCloser(resp.Body) {
		return nil
	}
	defer c.clearCloser()
	defer resp.Body.Close()
	return ssetest.Read(resp.Body, func(ev ssetest.Event) {
		var m struct {
			Type string `json:"type"`
			N    int    `json:"n"`
		}
		if ev.Data == "" || json.Unmarshal([]byte(ev.Data), &m) != nil {
			return
		}
		c.observe(m.Type, m.N, ev.ID)
	})
}

// Stop closes the client's connection and stops reconnecting.
func (c *Client) Stop() {
	c.mu.Lock()
	select {
	case <-c.stop:
	default:
		close(c.stop)
	}
	if c.closer != nil {
		c.closer.Close()
	}
	c.mu.Unlock()
	<-c.done
}
