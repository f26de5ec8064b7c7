package edge

import (
	"context"
	"encoding/json"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/heraldrt/herald/fanout"
	"github.com/heraldrt/herald/protocols"
)

// The control plane: nodes talk to each other through the broker on
// control channels, so it works the same on one node (memory broker) and on
// many (Redis). Each node listens on "herald.node.<id>" and on controlAll.

// controlAll reaches every node.
const controlAll = "herald.nodes"

// controlReplyWindow is how long an admin request waits for other nodes'
// answers. Nodes answer in about a millisecond on a healthy cluster; the
// margin covers a node that is busy (GC, a broadcast burst).
const controlReplyWindow = 750 * time.Millisecond

// controlMessage is sent between nodes.
type controlMessage struct {
	Type   string      `json:"type"` // evict, list, disconnect, reply
	User   string      `json:"user,omitempty"`
	Conn   string      `json:"conn,omitempty"`
	Reason string      `json:"reason,omitempty"`
	Req    string      `json:"req,omitempty"`
	Reply  string      `json:"reply,omitempty"` // channel to answer on
	Node   string      `json:"node,omitempty"`
	Conns  []connInfo  `json:"conns,omitempty"`
	Count  int         `json:"count,omitempty"`
	Status *nodeStatus `json:"status,omitempty"`
}

// connInfo describes one connection for the admin API.
type connInfo struct {
	Node        string    `json:"node"`
	Session     uint64    `json:"session"`
	User        string    `json:"user_id"`
	Transport   string    `json:"transport"`
	Remote      string    `json:"remote"`
	ConnectedAt time.Time `json:"connected_at"`
	Cursor      string    `json:"cursor"`
	Channels    []string  `json:"channels"`
	Types       string    `json:"types,omitempty"`
	Preferences string    `json:"preferences,omitempty"`
}

// replies collects answers to one admin request.
type replies struct {
	mu  sync.Mutex
	got []controlMessage
}

// localNode is what a node answers about itself when another node (or its
// own admin API) asks over the control channels. The Server implements it
// from its hub, admission and preferences.
type localNode interface {
	// evictLocal closes connection conn of user if it is on this node.
	evictLocal(user, conn string)
	// localConns lists this node's connections of user ("" for all).
	localConns(user string) []connInfo
	// localStatus describes this node for the admin console.
	localStatus() *nodeStatus
	// disconnectLocal closes this node's connections of user with reason
	// and returns how many it closed.
	disconnectLocal(user, reason string) int
	// applyPreferences puts user's new type filter in effect here.
	applyPreferences(user string, f *protocols.TypeFilter)
}

// controlPlane is this node's end of the control channels: it sends
// control messages through the broker, answers the ones addressed to this
// node from local, and gathers the replies to its own admin requests. It
// holds no session state itself.
type controlPlane struct {
	node    string        // this node's random id
	channel string        // "herald.node.<node>": where other nodes reach this one
	broker  fanout.Broker // carries the control messages (publish only)
	log     *slog.Logger
	local   localNode     // answers requests about this node
	nextReq atomic.Uint64 // numbers this node's admin requests
	pending sync.Map      // admin request id → *replies, while ask waits
}

// newControlPlane returns node's control plane; the caller subscribes the
// broker to channels().
func newControlPlane(node string, b fanout.Broker, local localNode, log *slog.Logger) *controlPlane {
	return &controlPlane{node: node, channel: "herald.node." + node, broker: b, local: local, log: log}
}

// channels are the control channels this node must be subscribed to: its
// own and controlAll.
func (c *controlPlane) channels() []string { return []string{c.channel, controlAll} }

// isControl reports whether ch is one of this node's control channels.
func (c *controlPlane) isControl(ch string) bool { return ch == c.channel || ch == controlAll }

// onMessage handles one control message from the broker.
func (c *controlPlane) onMessage(data []byte) {
	var m controlMessage
	if err := json.Unmarshal(data, &m); err != nil {
		c.log.Warn("bad control message", "err", err)
		return
	}
	switch m.Type {
	case "evict":
		c.local.evictLocal(m.User, m.Conn)
	case "list":
		c.send(m.Reply, controlMessage{Type: "reply", Req: m.Req, Node: c.node, Conns: c.local.localConns(m.User)})
	case "status":
		c.send(m.Reply, controlMessage{Type: "reply", Req: m.Req, Node: c.node, Status: c.local.localStatus()})
	case "disconnect":
		n := c.local.disconnectLocal(m.User, m.Reason)
		c.send(m.Reply, controlMessage{Type: "reply", Req: m.Req, Node: c.node, Count: n})
	case "prefs":
		f, err := protocols.ParseTypeFilter(m.Reason)
		if err != nil {
			c.log.Warn("bad preferences in control message", "user", m.User, "err", err)
			return
		}
		c.local.applyPreferences(m.User, f)
	case "reply":
		if v, ok := c.pending.Load(m.Req); ok {
			r := v.(*replies)
			r.mu.Lock()
			r.got = append(r.got, m)
			r.mu.Unlock()
		}
	}
}

// send publishes m on channel (nothing when channel is empty).
func (c *controlPlane) send(channel string, m controlMessage) {
	if channel == "" {
		return
	}
	b, _ := json.Marshal(m)
	ctx, cancel := context.WithTimeout(context.Background(), publishTimeout)
	defer cancel()
	if _, err := c.broker.Publish(ctx, channel, b, fanout.PublishOptions{}); err != nil {
		c.log.Warn("control message not sent", "channel", channel, "type", m.Type, "err", err)
	}
}

// ask sends an admin request to every node and gathers the answers that
// arrive within controlReplyWindow.
func (c *controlPlane) ask(m controlMessage) []controlMessage {
	m.Req = c.node + "." + strconv.FormatUint(c.nextReq.Add(1), 10)
	m.Reply = c.channel
	r := &replies{}
	c.pending.Store(m.Req, r)
	defer c.pending.Delete(m.Req)
	c.send(controlAll, m)
	time.Sleep(controlReplyWindow)
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]controlMessage(nil), r.got...)
}

// evictRemote asks the node holding connection conn to close it.
func (c *controlPlane) evictRemote(user, conn string) {
	node, _, _ := strings.Cut(conn, ".")
	c.send("herald.node."+node, controlMessage{Type: "evict", User: user, Conn: conn})
}

// The Server answers the control plane about itself.
var _ localNode = (*Server)(nil)

// evictLocal closes connection conn of user if this node holds it.
func (s *Server) evictLocal(user, conn string) {
	if sess := s.adm.find(user, conn); sess != nil {
		s.log.Info("evicting oldest connection", "user", user, "session", sess.ID(), "by", "another node")
		sess.Close(protocols.CloseReplaced)
	}
}

// localConns lists this node's connections of user ("" for all).
func (s *Server) localConns(user string) []connInfo {
	var out []connInfo
	for _, sess := range s.hub.Sessions() {
		if user != "" && sess.UserID() != user {
			continue
		}
		types, prefs := sess.TypeFilters()
		out = append(out, connInfo{
			Node: s.node, Session: sess.ID(), User: sess.UserID(), Transport: sess.Transport().Name(),
			Remote: sess.Remote(), ConnectedAt: sess.Connected().UTC(), Cursor: sess.Cursor(), Channels: sess.Channels(),
			Types: types, Preferences: prefs,
		})
	}
	return out
}

// disconnectLocal closes this node's connections of user with reason and
// returns how many it closed.
func (s *Server) disconnectLocal(user, reason string) int {
	r := protocols.CloseReason{Reason: reason, WSCode: 4403, Reconnect: false, Event: true}
	n := 0
	for _, sess := range s.hub.Sessions() {
		if sess.UserID() == user {
			sess.Close(r)
			n++
		}
	}
	if n > 0 {
		s.log.Info("disconnected by admin", "user", user, "reason", reason, "connections", n)
	}
	return n
}
