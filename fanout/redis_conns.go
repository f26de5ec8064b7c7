package fanout

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/redis/rueidis"
)

// Cluster-wide connection counting for the per-user limit. A user's
// connections live in two keys on the shard (or cluster partition) of the
// channel "user:<id>": a sorted set of connection ids scored by connect time
// (oldest first, for eviction) and a hash of lease expiries. A connection id
// is "<node>.<n>". Nodes renew the leases of their connections (every 10 s,
// 30 s leases), and each node keeps a liveness key "<base>node:<node>" with
// a short TTL on every shard or partition (NodeAlive, about every second).
// A connection stops counting when its lease runs out or when its node's
// liveness key is gone, so a crashed or cut-off node frees its users' slots
// within seconds while the count stays exact among live nodes. All times
// come from Redis's own clock, so node clock skew does not matter.
// The two scripts are redis_conn_acquire.lua and redis_conn_renew.lua,
// embedded in redis_scripts.go.

func (b *RedisBroker) connKeys(user string) (*redisSub, string, string) {
	s := b.sub(UserChannel(user))
	return s, s.base + "conns:" + user, s.base + "leases:" + user
}

// AcquireConn registers connection conn of user if the user holds fewer
// than limit connections across all nodes (limit <= 0: no limit). When the
// user is at the limit and evict is set, the oldest connection is
// unregistered and returned as victim (its node must close it); otherwise
// admitted is false. lease is how long the registration lasts without
// RenewConns.
func (b *RedisBroker) AcquireConn(ctx context.Context, user, conn string, limit int, evict bool, lease time.Duration) (victim string, admitted bool, err error) {
	if b.closed() {
		return "", false, ErrClosed
	}
	s, set, leases := b.connKeys(user)
	ev := "0"
	if evict {
		ev = "1"
	}
	ctx, cancel := context.WithTimeout(ctx, b.cfg.CommandTimeout)
	defer cancel()
	vals, err := b.connAcquire.Exec(ctx, s.client, []string{set, leases},
		[]string{conn, strconv.Itoa(limit), ev, strconv.FormatInt(lease.Milliseconds(), 10),
			s.base + "node:", strconv.FormatInt(NodeAliveTTL.Milliseconds(), 10)}).ToArray()
	if err != nil {
		return "", false, fmt.Errorf("acquire connection of %s on redis %s: %w", user, s.name, err)
	}
	if len(vals) != 2 {
		return "", false, fmt.Errorf("acquire connection of %s: unexpected reply of %d values", user, len(vals))
	}
	ok, err1 := vals[0].AsInt64()
	victim, err2 := vals[1].ToString()
	if err := errors.Join(err1, err2); err != nil {
		return "", false, fmt.Errorf("acquire connection of %s: %w", user, err)
	}
	return victim, ok == 1, nil
}

// ReleaseConn unregisters connection conn of user.
func (b *RedisBroker) ReleaseConn(ctx context.Context, user, conn string) error {
	s, set, leases := b.connKeys(user)
	ctx, cancel := context.WithTimeout(ctx, b.cfg.CommandTimeout)
	defer cancel()
	for _, r := range s.client.DoMulti(ctx,
		s.client.B().Zrem().Key(set).Member(conn).Build(),
		s.client.B().Hdel().Key(leases).Field(conn).Build()) {
		if err := r.Error(); err != nil {
			return fmt.Errorf("release connection of %s on redis %s: %w", user, s.name, err)
		}
	}
	return nil
}

// renewBatch is how many users' lease renewals go to Redis in one
// pipeline (one EVALSHA each); each batch has its own CommandTimeout.
const renewBatch = 512

// RenewConns extends the leases of this node's connections and
// re-registers any a restarted shard forgot. The renewals of all users are
// pipelined per Redis client in batches of renewBatch, all clients at
// once, so renewing 10,000 users costs a few dozen round trips instead of
// 10,000 sequential ones. The error, if any, counts the users whose
// renewal failed and carries the first failure (one bounded log line, not
// one line per user).
func (b *RedisBroker) RenewConns(ctx context.Context, conns map[string][]string, lease time.Duration) error {
	if b.closed() {
		return ErrClosed
	}
	ms := strconv.FormatInt(lease.Milliseconds(), 10)
	type job struct {
		user string
		s    *redisSub
		exec rueidis.LuaExec
	}
	byClient := map[rueidis.Client][]job{}
	for user, ids := range conns {
		s, set, leases := b.connKeys(user)
		byClient[s.client] = append(byClient[s.client], job{user: user, s: s,
			exec: rueidis.LuaExec{Keys: []string{set, leases}, Args: append([]string{ms}, ids...)}})
	}
	var (
		mu     sync.Mutex
		failed int
		first  error
		wg     sync.WaitGroup
	)
	for c, jobs := range byClient {
		wg.Go(func() {
			execs := make([]rueidis.LuaExec, 0, min(len(jobs), renewBatch))
			for len(jobs) > 0 {
				n := min(len(jobs), renewBatch)
				execs = execs[:0]
				for _, j := range jobs[:n] {
					execs = append(execs, j.exec)
				}
				cctx, cancel := context.WithTimeout(ctx, b.cfg.CommandTimeout)
				res := b.connRenew.ExecMulti(cctx, c, execs...)
				cancel()
				for i, r := range res {
					if err := r.Error(); err != nil && !rueidis.IsRedisNil(err) {
						mu.Lock()
						if failed == 0 {
							first = fmt.Errorf("renew connections of %s on redis %s: %w", jobs[i].user, jobs[i].s.name, err)
						}
						failed++
						mu.Unlock()
					}
				}
				jobs = jobs[n:]
			}
		})
	}
	wg.Wait()
	if failed > 0 {
		return fmt.Errorf("%d of %d users' connection leases not renewed; first: %w", failed, len(conns), first)
	}
	return nil
}

// NodeAliveTTL is how long a node counts as alive after its last
// NodeAlive: its connections stop counting towards per-user limits at most
// this long after it crashes or loses Redis. Call NodeAlive at least every
// NodeAliveTTL/3.
const NodeAliveTTL = 3 * time.Second

// NodeAlive marks node alive on every shard (or cluster partition) for
// NodeAliveTTL. node is the prefix of its connection ids ("<node>.<n>").
func (b *RedisBroker) NodeAlive(ctx context.Context, node string) error {
	return b.eachSub(ctx, func(s *redisSub) rueidis.Completed {
		return s.client.B().Set().Key(s.base + "node:" + node).Value("1").PxMilliseconds(NodeAliveTTL.Milliseconds()).Build()
	})
}

// NodeGone removes node's liveness keys (at shutdown): its remaining
// connections stop counting at once.
func (b *RedisBroker) NodeGone(ctx context.Context, node string) error {
	return b.eachSub(ctx, func(s *redisSub) rueidis.Completed {
		return s.client.B().Del().Key(s.base + "node:" + node).Build()
	})
}

// eachSub sends one command per shard or partition: one pipeline per
// client, all clients at once, so a shard that is down delays no other.
func (b *RedisBroker) eachSub(ctx context.Context, cmd func(s *redisSub) rueidis.Completed) error {
	if b.closed() {
		return ErrClosed
	}
	ctx, cancel := context.WithTimeout(ctx, b.cfg.CommandTimeout)
	defer cancel()
	byClient := map[rueidis.Client][]*redisSub{}
	for _, s := range b.subs {
		byClient[s.client] = append(byClient[s.client], s)
	}
	errs := make(chan error, len(byClient))
	for c, subs := range byClient {
		go func() {
			cmds := make(rueidis.Commands, len(subs))
			for i, s := range subs {
				cmds[i] = cmd(s)
			}
			var err error
			for i, r := range c.DoMulti(ctx, cmds...) {
				if e := r.Error(); e != nil {
					err = fmt.Errorf("redis %s: %w", subs[i].name, e)
					break
				}
			}
			errs <- err
		}()
	}
	var all []error
	for range byClient {
		all = append(all, <-errs)
	}
	return errors.Join(all...)
}

// UserConns returns how many live connections user holds across all nodes.
func (b *RedisBroker) UserConns(ctx context.Context, user string) (int, error) {
	s, set, _ := b.connKeys(user)
	ctx, cancel := context.WithTimeout(ctx, b.cfg.CommandTimeout)
	defer cancel()
	n, err := s.client.Do(ctx, s.client.B().Zcard().Key(set).Build()).AsInt64()
	if err != nil {
		return 0, fmt.Errorf("count connections of %s: %w", user, err)
	}
	return int(n), nil
}
