package edge

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"sync"
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

// deliver is the broker's handler: control messages are handled here,
// everything else goes to the hub.
func (s *Server) deliver(m *fanout.Message) {
	if m.Channel == s.control || m.Channel == controlAll {
		go s.onControl(m.Data)
		return
	}
	s.hub.Deliver(m)
}

func (s *Server) onControl(data []byte) {
	var c controlMessage
	if err := json.Unmarshal(data, &c); err != nil {
		s.log.Warn("bad control message", "err", err)
		return
	}
	switch c.Type {
	case "evict":
		if sess := s.adm.find(c.User, c.Conn); sess != nil {
			s.log.Info("evicting oldest connection", "user", c.User, "session", sess.ID(), "by", "another node")
			sess.Close(protocols.CloseReplaced)
		}
	case "list":
		s.sendControl(c.Reply, controlMessage{Type: "reply", Req: c.Req, Node: s.node, Conns: s.localConns(c.User)})
	case "status":
		s.sendControl(c.Reply, controlMessage{Type: "reply", Req: c.Req, Node: s.node, Status: s.localStatus()})
	case "disconnect":
		n := s.disconnectLocal(c.User, c.Reason)
		s.sendControl(c.Reply, controlMessage{Type: "reply", Req: c.Req, Node: s.node, Count: n})
	case "prefs":
		f, err := protocols.ParseTypeFilter(c.Reason)
		if err != nil {
			s.log.Warn("bad preferences in control message", "user", c.User, "err", err)
			return
		}
		s.applyPreferences(c.User, f)
	case "reply":
		if v, ok := s.pending.Load(c.Req); ok {
			r := v.(*replies)
			r.mu.Lock()
			r.got = append(r.got, c)
			r.mu.Unlock()
		}
	}
}

func (s *Server) sendControl(channel string, c controlMessage) {
	if channel == "" {
		return
	}
	b, _ := json.Marshal(c)
	ctx, cancel := context.WithTimeout(context.Background(), publishTimeout)
	defer cancel()
	if _, err := s.broker.Publish(ctx, channel, b, fanout.PublishOptions{}); err != nil {
		s.log.Warn("control message not sent", "channel", channel, "type", c.Type, "err", err)
	}
}

// ask sends an admin request to every node and gathers the answers that
// arrive within controlReplyWindow.
func (s *Server) ask(c controlMessage) []controlMessage {
	c.Req = s.node + "." + strconv.FormatUint(s.nextID.Add(1), 10)
	c.Reply = s.control
	r := &replies{}
	s.pending.Store(c.Req, r)
	defer s.pending.Delete(c.Req)
	s.sendControl(controlAll, c)
	time.Sleep(controlReplyWindow)
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]controlMessage(nil), r.got...)
}

// evictRemote asks the node holding connection conn to close it.
func (s *Server) evictRemote(user, conn string) {
	node, _, _ := strings.Cut(conn, ".")
	s.sendControl("herald.node."+node, controlMessage{Type: "evict", User: user, Conn: conn})
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
