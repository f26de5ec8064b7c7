package edge

import (
	"bytes"
	"math"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/heraldrt/herald/config"
	"github.com/heraldrt/herald/protocols"
)

// admission enforces the connection limits of one node: node-wide and
// per-IP caps, a per-IP connect rate, and the per-user limit. Checks that
// need no token run before authentication, so a flood of refused connects
// costs a map lookup, not a signature check.
type admission struct {
	cfg     config.Limits
	trusted []*net.IPNet
	total   atomic.Int64

	mu  sync.Mutex
	ips map[string]*ipState

	umu   sync.Mutex
	users map[string][]*protocols.Session // oldest first
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

func newAdmission(cfg config.Limits) *admission {
	return &admission{cfg: cfg, trusted: cfg.TrustedProxyNets(), ips: make(map[string]*ipState), users: make(map[string][]*protocols.Session)}
}

// clientIP is the peer address, or — only when the peer is a trusted proxy
// — the right-most address in X-Forwarded-For that is not itself a trusted
// proxy (left-most entries are client-supplied and can be forged).
func (a *admission) clientIP(ctx *fasthttp.RequestCtx) string {
	peer := ctx.RemoteIP()
	if len(a.trusted) == 0 || !a.isTrusted(peer) {
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
	for _, n := range a.trusted {
		if n.Contains(ip) {
			return true
		}
	}
	return false
}

// enter admits a connection from ip against the node and IP limits,
// reserving a slot that leave releases.
func (a *admission) enter(ip string, now time.Time) *refusal {
	if max := a.cfg.MaxConnections; max > 0 && a.total.Load() >= int64(max) {
		return &refusal{status: fasthttp.StatusServiceUnavailable, reason: "node_full", detail: "this node is at limits.max_connections", retryAfter: time.Second}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	st := a.ips[ip]
	if st == nil {
		st = &ipState{tokens: float64(a.cfg.PerIPBurst), last: now}
		a.ips[ip] = st
	}
	if a.cfg.PerIPRate > 0 {
		st.tokens = math.Min(float64(a.cfg.PerIPBurst), st.tokens+now.Sub(st.last).Seconds()*a.cfg.PerIPRate)
		st.last = now
		if st.tokens < 1 {
			wait := time.Duration((1 - st.tokens) / a.cfg.PerIPRate * float64(time.Second))
			a.forgetLocked(ip, st)
			return &refusal{status: fasthttp.StatusTooManyRequests, reason: "rate_limited", detail: "too many connects from this address", retryAfter: wait}
		}
	}
	if a.cfg.PerIP > 0 && st.conns >= a.cfg.PerIP {
		a.forgetLocked(ip, st)
		return &refusal{status: fasthttp.StatusTooManyRequests, reason: "too_many_connections_ip", detail: "limits.per_ip reached for this address", retryAfter: 5 * time.Second}
	}
	if a.cfg.PerIPRate > 0 {
		st.tokens--
	}
	st.conns++
	a.total.Add(1)
	return nil
}

// forgetLocked drops an IP entry that holds no connections and a full
// bucket, so the map does not grow with every address ever seen.
func (a *admission) forgetLocked(ip string, st *ipState) {
	if st.conns == 0 && (a.cfg.PerIPRate == 0 || st.tokens >= float64(a.cfg.PerIPBurst)) {
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
			if a.cfg.PerIPRate == 0 {
				delete(a.ips, ip)
			}
		}
	}
}

// sweep forgets idle IP entries whose buckets have refilled.
func (a *admission) sweep(now time.Time) {
	if a.cfg.PerIPRate == 0 {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for ip, st := range a.ips {
		if st.conns == 0 && now.Sub(st.last).Seconds()*a.cfg.PerIPRate >= float64(a.cfg.PerIPBurst) {
			delete(a.ips, ip)
		}
	}
}

// acquireUser applies limits.per_user to s. With evict_oldest it returns
// the session to evict; with reject_new it refuses.
func (a *admission) acquireUser(s *protocols.Session) (victim *protocols.Session, r *refusal) {
	limit := a.cfg.PerUser
	a.umu.Lock()
	defer a.umu.Unlock()
	list := a.users[s.UserID()]
	if limit > 0 && len(list) >= limit {
		if a.cfg.PerUserPolicy != "evict_oldest" {
			return nil, &refusal{status: fasthttp.StatusTooManyRequests, reason: "too_many_connections",
				detail: "this user already has limits.per_user connections open"}
		}
		victim = list[0]
		list = list[1:]
	}
	a.users[s.UserID()] = append(list, s)
	return victim, nil
}

// releaseUser removes s from its user's list. It is idempotent.
func (a *admission) releaseUser(s *protocols.Session) {
	a.umu.Lock()
	defer a.umu.Unlock()
	list := a.users[s.UserID()]
	for i, x := range list {
		if x == s {
			list = append(list[:i], list[i+1:]...)
			break
		}
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
