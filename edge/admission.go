package edge

import (
	"bytes"
	"context"
	"log/slog"
	"math"
	"net"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/heraldrt/herald/edge/edgeconf"
	"github.com/heraldrt/herald/fanout"
	"github.com/heraldrt/herald/protocols"
)

// admission enforces the connection limits of one node: node-wide and
// per-IP caps, a per-IP connect rate, and the per-user limit. Checks that
// need no token run before authentication, so a flood of refused connects
// costs a map lookup, not a signature check.
type admission struct {
	lim     atomic.Pointer[admLimits] // swapped by a config reload
	node    string                    // this node's id, the prefix of its connection ids
	cluster fanout.ConnCounter        // nil with the memory broker: counts are per node
	log     *slog.Logger
	total   atomic.Int64

	mu  sync.Mutex
	ips map[string]*ipState

	umu   sync.Mutex
	users map[string][]*protocols.Session // oldest first

	// slots bounds the connects being admitted at once (authentication,
	// lease, subscription, history: admit and open). In a reconnect storm
	// thousands arrive within a second; without a bound every one of them
	// is runnable at once and sends its Redis commands at once, and a
	// publish request waits behind all of them for a P and on the shared
	// Redis pipeline (p99 1.7 s measured in bench-storm's SIGKILL run).
	// Connects over the bound wait, parked, for a slot.
	slots chan struct{}
}

type ipState struct {
	conns  int
	tokens float64
	last   time.Time
}

// refusal is why admission said no.
type refusal struct {
	status     int
	reason     string
	detail     string
	retryAfter time.Duration
}

// connLease is how long a connection counts towards its user's cluster-wide
// limit without renewal; nodes renew every connLease/3. A dead node's
// connections stop counting much sooner, when its liveness key expires
// (heartbeat every heartbeatEvery, fanout.NodeAliveTTL).
const connLease = 30 * time.Second

// admissionSlots is how many connects a node admits at once per P:
// enough to keep Redis round trips of concurrent connects overlapping,
// few enough that a publish or a ping never queues behind a storm.
const admissionSlots = 128

// heartbeatEvery is how often a node renews its liveness key.
const heartbeatEvery = fanout.NodeAliveTTL / 4

func newAdmission(cfg edgeconf.Limits, node string, cluster fanout.ConnCounter, log *slog.Logger) *admission {
	a := &admission{node: node, cluster: cluster, log: log,
		ips: make(map[string]*ipState), users: make(map[string][]*protocols.Session),
		slots: make(chan struct{}, admissionSlots*runtime.GOMAXPROCS(0))}
	a.setLimits(cfg)
	return a
}

// admLimits are the limits in effect, with the trusted proxies parsed.
type admLimits struct {
	edgeconf.Limits
	trusted []*net.IPNet
}

// slot waits up to timeout for one of the admission slots; the caller
// gives it back with unslot. It reports false when none freed in time.
func (a *admission) slot(timeout time.Duration) bool {
	select {
	case a.slots <- struct{}{}:
		return true
	default:
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case a.slots <- struct{}{}:
		return true
	case <-t.C:
		return false
	}
}

// unslot gives back a slot taken by slot.
func (a *admission) unslot() { <-a.slots }

// cfg returns the limits in effect.
func (a *admission) cfg() *admLimits { return a.lim.Load() }

// setLimits puts new limits in effect for the connects that follow;
// connections already admitted are not re-checked.
func (a *admission) setLimits(cfg edgeconf.Limits) {
	a.lim.Store(&admLimits{Limits: cfg, trusted: cfg.TrustedProxyNets()})
}

// connID names session s across the cluster: "<node>.<session id>".
func (a *admission) connID(s *protocols.Session) string {
	return a.node + "." + strconv.FormatUint(s.ID(), 10)
}

// clientIP is the peer address, or — only when the peer is a trusted proxy
// — the right-most address in X-Forwarded-For that is not itself a trusted
// proxy (left-most entries are client-supplied and can be forged).
func (a *admission) clientIP(ctx *fasthttp.RequestCtx) string {
	peer := ctx.RemoteIP()
	if len(a.cfg().trusted) == 0 || !a.isTrusted(peer) {
		return peer.String()
	}
	xff := ctx.Request.Header.Peek("X-Forwarded-For")
	for len(xff) > 0 {
		i := bytes.LastIndexByte(xff, ',')
		part := strings.TrimSpace(string(xff[i+1:]))
		xff = xff[:max(i, 0)]
		if i < 0 {
			xff = nil
		}
		ip := net.ParseIP(part)
		if ip == nil {
			break // garbage: stop believing the header
		}
		if !a.isTrusted(ip) {
			return ip.String()
		}
	}
	return peer.String()
}

func (a *admission) isTrusted(ip net.IP) bool {
	for _, n := range a.cfg().trusted {
		if n.Contains(ip) {
			return true
		}
	}
	return false
}

// enter admits a connection from ip against the node and IP limits,
// reserving a slot that leave releases.
func (a *admission) enter(ip string, now time.Time) *refusal {
	if max := a.cfg().MaxConnections; max > 0 && a.total.Load() >= int64(max) {
		return &refusal{status: fasthttp.StatusServiceUnavailable, reason: "node_full", detail: "this node is at limits.max_connections", retryAfter: time.Second}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	st := a.ips[ip]
	if st == nil {
		st = &ipState{tokens: float64(a.cfg().PerIPBurst), last: now}
		a.ips[ip] = st
	}
	if a.cfg().PerIPRate > 0 {
		st.tokens = math.Min(float64(a.cfg().PerIPBurst), st.tokens+now.Sub(st.last).Seconds()*a.cfg().PerIPRate)
		st.last = now
		if st.tokens < 1 {
			wait := time.Duration((1 - st.tokens) / a.cfg().PerIPRate * float64(time.Second))
			a.forgetLocked(ip, st)
			return &refusal{status: fasthttp.StatusTooManyRequests, reason: "rate_limited", detail: "too many connects from this address", retryAfter: wait}
		}
	}
	if a.cfg().PerIP > 0 && st.conns >= a.cfg().PerIP {
		a.forgetLocked(ip, st)
		return &refusal{status: fasthttp.StatusTooManyRequests, reason: "too_many_connections_ip", detail: "limits.per_ip reached for this address", retryAfter: 5 * time.Second}
	}
	if a.cfg().PerIPRate > 0 {
		st.tokens--
	}
	st.conns++
	a.total.Add(1)
	return nil
}

// forgetLocked drops an IP entry that holds no connections and a full
// bucket, so the map does not grow with every address ever seen.
func (a *admission) forgetLocked(ip string, st *ipState) {
	if st.conns == 0 && (a.cfg().PerIPRate == 0 || st.tokens >= float64(a.cfg().PerIPBurst)) {
		delete(a.ips, ip)
	}
}

// leave releases what enter reserved.
func (a *admission) leave(ip string) {
	a.total.Add(-1)
	a.mu.Lock()
	defer a.mu.Unlock()
	if st := a.ips[ip]; st != nil {
		st.conns--
		if st.conns <= 0 {
			st.conns = 0
			if a.cfg().PerIPRate == 0 {
				delete(a.ips, ip)
			}
		}
	}
}

// sweep forgets idle IP entries whose buckets have refilled.
func (a *admission) sweep(now time.Time) {
	if a.cfg().PerIPRate == 0 {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for ip, st := range a.ips {
		if st.conns == 0 && now.Sub(st.last).Seconds()*a.cfg().PerIPRate >= float64(a.cfg().PerIPBurst) {
			delete(a.ips, ip)
		}
	}
}

// acquireUser applies limits.per_user to s. With evict_oldest it returns
// the connection to evict: a local session, or (cluster-wide) the id of a
// connection on another node. With reject_new it refuses.
//
// With the Redis broker the count is cluster-wide and exact. If Redis cannot
// answer, the connection is admitted (and counted locally): availability
// wins over the limit, and the lapse is logged.
func (a *admission) acquireUser(ctx context.Context, s *protocols.Session) (victim *protocols.Session, remote string, r *refusal) {
	limit := a.cfg().PerUser
	evict := a.cfg().PerUserPolicy == "evict_oldest"
	if a.cluster != nil && limit > 0 {
		v, ok, err := a.cluster.AcquireConn(ctx, s.UserID(), a.connID(s), limit, evict, connLease)
		switch {
		case err != nil:
			a.log.Warn("per-user limit not enforced: redis unavailable", "user", s.UserID(), "err", err)
		case !ok:
			return nil, "", &refusal{status: fasthttp.StatusTooManyRequests, reason: "too_many_connections",
				detail: "this user already has limits.per_user connections open"}
		}
		a.umu.Lock()
		a.users[s.UserID()] = append(a.users[s.UserID()], s)
		if v != "" && strings.HasPrefix(v, a.node+".") {
			victim = a.findLocked(s.UserID(), v)
			v = ""
		}
		a.umu.Unlock()
		return victim, v, nil
	}
	a.umu.Lock()
	defer a.umu.Unlock()
	list := a.users[s.UserID()]
	if limit > 0 && len(list) >= limit {
		if !evict {
			return nil, "", &refusal{status: fasthttp.StatusTooManyRequests, reason: "too_many_connections",
				detail: "this user already has limits.per_user connections open"}
		}
		victim = list[0]
		list = list[1:]
	}
	a.users[s.UserID()] = append(list, s)
	return victim, "", nil
}

// findLocked returns the local session of user with connection id conn.
func (a *admission) findLocked(user, conn string) *protocols.Session {
	for _, x := range a.users[user] {
		if a.connID(x) == conn {
			return x
		}
	}
	return nil
}

// find returns the local session with connection id conn of user.
func (a *admission) find(user, conn string) *protocols.Session {
	a.umu.Lock()
	defer a.umu.Unlock()
	return a.findLocked(user, conn)
}

// renew extends the cluster-wide leases of this node's connections.
func (a *admission) renew(ctx context.Context) {
	if a.cluster == nil || a.cfg().PerUser <= 0 {
		return
	}
	a.umu.Lock()
	conns := make(map[string][]string, len(a.users))
	for u, list := range a.users {
		for _, x := range list {
			conns[u] = append(conns[u], a.connID(x))
		}
	}
	a.umu.Unlock()
	if err := a.cluster.RenewConns(ctx, conns, connLease); err != nil {
		a.log.Warn("renewing connection leases failed", "err", err)
	}
}

// heartbeat renews this node's liveness, which keeps its connections
// counting towards per-user limits on every node.
func (a *admission) heartbeat(ctx context.Context) error {
	if a.cluster == nil || a.cfg().PerUser <= 0 {
		return nil
	}
	return a.cluster.NodeAlive(ctx, a.node)
}

// gone ends this node's liveness (at shutdown).
func (a *admission) gone(ctx context.Context) {
	if a.cluster == nil || a.cfg().PerUser <= 0 {
		return
	}
	if err := a.cluster.NodeGone(ctx, a.node); err != nil {
		a.log.Warn("removing the node liveness key failed (it expires by itself)", "err", err)
	}
}

// releaseUser removes s from its user's list (and from the cluster-wide
// count). It is idempotent.
func (a *admission) releaseUser(s *protocols.Session) {
	a.umu.Lock()
	defer a.umu.Unlock()
	list := a.users[s.UserID()]
	found := false
	for i, x := range list {
		if x == s {
			list = append(list[:i], list[i+1:]...)
			found = true
			break
		}
	}
	if found && a.cluster != nil && a.cfg().PerUser > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		if err := a.cluster.ReleaseConn(ctx, s.UserID(), a.connID(s)); err != nil {
			a.log.Warn("releasing connection lease failed (it expires by itself)", "user", s.UserID(), "err", err)
		}
		cancel()
	}
	if len(list) == 0 {
		delete(a.users, s.UserID())
	} else {
		a.users[s.UserID()] = list
	}
}

// userConns returns how many connections user holds on this node.
func (a *admission) userConns(user string) int {
	a.umu.Lock()
	defer a.umu.Unlock()
	return len(a.users[user])
}
