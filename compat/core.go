package compat

import (
	"context"
	"encoding/hex"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/redis/rueidis"
)

// corePopScript takes up to ARGV[2] messages from the inbox (KEYS[1]) if
// this node (ARGV[1]) still holds the read lease (KEYS[2]), renewing the
// lease for ARGV[3] ms. It returns false without the lease, else
// {ZPOPMIN result, messages left}.
const corePopScript = `
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return false end
redis.call('PEXPIRE', KEYS[2], ARGV[3])
local r = redis.call('ZPOPMIN', KEYS[1], ARGV[2])
return {r, redis.call('ZCARD', KEYS[1])}
`

// coreRenewScript renews (ARGV[2] ms) or, with ARGV[2] = "0", releases the
// lease KEYS[1] if ARGV[1] holds it.
const coreRenewScript = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[2] == '0' then redis.call('DEL', KEYS[1]) else redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 1
`

// popBatch is the most messages taken from the inbox at once.
const popBatch = 256

// core ingests from channels_redis.core.RedisChannelLayer.
//
// Herald joins group g with the channel name "<inbox>!<node>.<g>". Being
// process-specific (it contains "!"), every such name maps to the same
// Redis key, "<prefix><inbox>!", on host consistent_hash("<inbox>!"), and
// group_send writes ONE message per group per key, listing the members in
// __asgi_channel__. So however many Herald nodes joined a group, each
// group_send is stored once, in an inbox all nodes share. One node at a
// time (holding a lease) reads it, so messages are published once and in
// the order they were sent.
type core struct {
	in           *Ingest
	inboxName    string // "<inbox>!": the non-local part of Herald's channel names
	inboxKey     string // "<prefix><inbox>!"
	leaseKey     string
	memberPrefix string // "<inbox>!<node>."
	markerKey    string // "<prefix><inbox>!$herald-node.<node>": exists while the host keeps our memberships
	marked       []bool // per host: the marker was written (manage goroutine only)
	pop          *rueidis.Lua
	renew        *rueidis.Lua
	ttlMS        string
}

func newCore(in *Ingest) *core {
	name := in.cfg.Inbox + "!"
	return &core{
		in:           in,
		inboxName:    name,
		inboxKey:     in.cfg.Prefix + name,
		leaseKey:     in.cfg.Prefix + name + "$herald-lease",
		memberPrefix: name + in.node + ".",
		markerKey:    in.cfg.Prefix + name + "$herald-node." + in.node,
		marked:       make([]bool, len(in.clients)),
		pop:          rueidis.NewLuaScript(corePopScript),
		renew:        rueidis.NewLuaScript(coreRenewScript),
		ttlMS:        strconv.FormatInt(in.cfg.LeaseTTL.Milliseconds(), 10),
	}
}

func (c *core) groupKey(g string) string { return c.in.cfg.Prefix + ":group:" + g }

// apply writes group memberships as group_add and group_discard do.
func (c *core) apply(ctx context.Context, join, leave []string) []string {
	failed := c.write(ctx, join, true)
	c.write(ctx, leave, false)
	return failed
}

func (c *core) refresh(ctx context.Context, groups []string) { c.write(ctx, groups, true) }

// write adds (ZADD now + EXPIRE group_expiry, as group_add) or removes
// (ZREM, as group_discard) this node's member of each group, one pipeline
// per host. It returns the groups whose host failed.
func (c *core) write(ctx context.Context, groups []string, add bool) []string {
	if len(groups) == 0 {
		return nil
	}
	n := len(c.in.clients)
	byHost := make([][]string, n)
	for _, g := range groups {
		h := ConsistentHash(g, n)
		byHost[h] = append(byHost[h], g)
	}
	var failed []string
	now := float64(time.Now().UnixMicro()) / 1e6
	exp := max(int64(c.in.cfg.GroupExpiry/time.Second), 1)
	for h, gs := range byHost {
		if len(gs) == 0 {
			continue
		}
		cl := c.in.clients[h]
		cmds := c.membershipCmds(cl, nil, gs, add, now, exp)
		for _, r := range cl.DoMulti(ctx, cmds...) {
			if err := r.Error(); err != nil {
				c.in.limiter.do(func() {
					c.in.log.Warn("channels group membership not written", "host", c.in.cfg.Hosts[h], "add", add, "err", err)
				})
				failed = append(failed, gs...)
				break
			}
		}
	}
	return failed
}

// membershipCmds appends to cmds, for each group, ZADD now + EXPIRE exp
// (add) or ZREM of this node's member.
func (c *core) membershipCmds(cl rueidis.Client, cmds rueidis.Commands, groups []string, add bool, now float64, exp int64) rueidis.Commands {
	for _, g := range groups {
		k := c.groupKey(g)
		if add {
			cmds = append(cmds, cl.B().Zadd().Key(k).ScoreMember().ScoreMember(now, c.memberPrefix+g).Build(),
				cl.B().Expire().Key(k).Seconds(exp).Build())
		} else {
			cmds = append(cmds, cl.B().Zrem().Key(k).Member(c.memberPrefix+g).Build())
		}
	}
	return cmds
}

// markerTTL is how long a node's marker outlives the node.
const markerTTL = 10 * time.Minute

// verify detects a host that lost this node's memberships — restarted
// without persistence, flushed, or failed over to a replica without them —
// and writes them again, so group_send reaches Herald within about a
// second of the host answering again instead of at the next refresh.
//
// Each node keeps a marker key on every host, written in the same pipeline
// as its memberships. Checking it is one command per host (SET XX PX, which
// also renews its TTL); a missing marker means the memberships written with
// it are gone too.
func (c *core) verify(ctx context.Context, groups []string) {
	n := len(c.in.clients)
	byHost := make([][]string, n)
	for _, g := range groups {
		h := ConsistentHash(g, n)
		byHost[h] = append(byHost[h], g)
	}
	ttl := markerTTL.Milliseconds()
	for h, cl := range c.in.clients {
		err := cl.Do(ctx, cl.B().Set().Key(c.markerKey).Value("1").Xx().PxMilliseconds(ttl).Build()).Error()
		if err == nil {
			c.marked[h] = true
			continue
		}
		if !rueidis.IsRedisNil(err) {
			continue // unreachable: checked again next time
		}
		now := float64(time.Now().UnixMicro()) / 1e6
		exp := max(int64(c.in.cfg.GroupExpiry/time.Second), 1)
		cmds := c.membershipCmds(cl, make(rueidis.Commands, 0, 2*len(byHost[h])+1), byHost[h], true, now, exp)
		cmds = append(cmds, cl.B().Set().Key(c.markerKey).Value("1").PxMilliseconds(ttl).Build())
		ok := true
		for _, r := range cl.DoMulti(ctx, cmds...) {
			if err := r.Error(); err != nil {
				ok = false
				c.in.limiter.do(func() {
					c.in.log.Warn("channels group memberships not written again", "host", c.in.cfg.Hosts[h], "err", err)
				})
				break
			}
		}
		if !ok {
			// Written partly or not at all: make the next check rewrite
			// them whatever the marker says.
			cl.Do(ctx, cl.B().Del().Key(c.markerKey).Build())
			continue
		}
		if c.marked[h] { // not the first write: they were lost
			c.in.stats.restored.Add(1)
			c.in.log.Warn("channels Redis had lost Herald's group memberships (restart without persistence, flush or failover): written again",
				"host", c.in.cfg.Hosts[h], "groups", len(byHost[h]))
		}
		c.marked[h] = true
	}
}

// release removes this node's markers (on Close).
func (c *core) release(ctx context.Context) {
	for _, cl := range c.in.clients {
		cl.Do(ctx, cl.B().Del().Key(c.markerKey).Build())
	}
}

func (c *core) settled() bool { return true }

// run starts one reader per host: group_send stores Herald's messages on
// host consistent_hash("<inbox>!"), but channels_redis 4.0's send() hashes
// the full channel name, so a direct send can land on any host.
func (c *core) run() {
	for h := range c.in.clients {
		c.in.wg.Add(1)
		go c.read(h)
	}
}

func (c *core) read(h int) {
	defer c.in.wg.Done()
	in := c.in
	cl := in.clients[h]
	leader := false
	defer func() {
		if leader {
			in.stats.leading.Add(-1)
		}
		// Release even when this reader does not think it leads: a SET NX
		// cut short by Close may still have taken the lease in Redis. The
		// script deletes the lease only if this node holds it.
		ctx, cancel := context.WithTimeout(context.Background(), in.cfg.CommandTimeout)
		c.renew.Exec(ctx, cl, []string{c.leaseKey}, []string{in.node, "0"})
		cancel()
	}()
	block := min(in.cfg.LeaseTTL/5, time.Second)
	failures := 0
	pause := func(d time.Duration) bool {
		select {
		case <-in.ctx.Done():
			return false
		case <-time.After(d):
			return true
		}
	}
	for in.ctx.Err() == nil {
		if !leader {
			ctx, cancel := context.WithTimeout(in.ctx, in.cfg.CommandTimeout)
			err := cl.Do(ctx, cl.B().Set().Key(c.leaseKey).Value(in.node).Nx().PxMilliseconds(in.cfg.LeaseTTL.Milliseconds()).Build()).Error()
			if rueidis.IsRedisNil(err) {
				// Taken — perhaps by this node, before a read error made it
				// let go: then it is still ours, without waiting for it to
				// expire.
				if held, rerr := c.renew.Exec(ctx, cl, []string{c.leaseKey}, []string{in.node, c.ttlMS}).AsInt64(); rerr == nil && held == 1 {
					err = nil
				}
			}
			cancel()
			if err != nil {
				if !rueidis.IsRedisNil(err) && in.ctx.Err() == nil {
					failures++
					in.limiter.do(func() { in.log.Warn("channels inbox lease", "host", in.cfg.Hosts[h], "err", err) })
				}
				if !pause(min(in.cfg.LeaseTTL/3, time.Duration(failures+1)*100*time.Millisecond+in.cfg.LeaseTTL/10)) {
					return
				}
				continue
			}
			failures = 0
			leader = true
			in.stats.leading.Add(1)
			in.log.Info("reading the channels inbox", "host", in.cfg.Hosts[h], "key", c.inboxKey)
		}
		// Drain what is queued, holding the lease.
		for in.ctx.Err() == nil {
			ctx, cancel := context.WithTimeout(in.ctx, in.cfg.CommandTimeout)
			res := c.pop.Exec(ctx, cl, []string{c.inboxKey, c.leaseKey}, []string{in.node, strconv.Itoa(popBatch), c.ttlMS})
			cancel()
			if err := res.Error(); err != nil {
				if in.ctx.Err() != nil {
					return // the deferred release ends the lease
				}
				if rueidis.IsRedisNil(err) {
					in.log.Info("lost the channels inbox lease", "host", in.cfg.Hosts[h])
				} else {
					in.limiter.do(func() { in.log.Warn("channels inbox read failed", "host", in.cfg.Hosts[h], "err", err) })
					pause(200 * time.Millisecond)
				}
				leader = false
				in.stats.leading.Add(-1)
				break
			}
			arr, _ := res.ToArray()
			if len(arr) != 2 {
				break
			}
			items, _ := arr[0].ToArray()
			left, _ := arr[1].AsInt64()
			if int(left)+len(items)/2 >= in.cfg.Capacity {
				in.limiter.do(func() {
					in.log.Warn("channels inbox at capacity: senders drop messages; raise channel_capacity for \""+c.inboxName+"*\"",
						"host", in.cfg.Hosts[h], "queued", int(left)+len(items)/2, "capacity", in.cfg.Capacity)
				})
			}
			for i := 0; i+1 < len(items); i += 2 {
				m, _ := items[i].ToString()
				s, _ := items[i+1].AsFloat64()
				c.handle(m, s)
			}
			if len(items) < 2*popBatch {
				break
			}
		}
		if !leader || in.ctx.Err() != nil {
			continue
		}
		// Wait for the next message; the lease outlives the wait.
		ctx, cancel := context.WithTimeout(in.ctx, block+in.cfg.CommandTimeout)
		res := cl.Do(ctx, cl.B().Bzpopmin().Key(c.inboxKey).Timeout(block.Seconds()).Build())
		cancel()
		if arr, err := res.ToArray(); err == nil && len(arr) == 3 {
			m, _ := arr[1].ToString()
			s, _ := arr[2].AsFloat64()
			c.handle(m, s)
		} else if err != nil && !rueidis.IsRedisNil(err) && in.ctx.Err() == nil {
			in.limiter.do(func() { in.log.Warn("channels inbox wait failed", "host", in.cfg.Hosts[h], "err", err) })
			pause(200 * time.Millisecond)
		}
		if in.ctx.Err() != nil {
			return
		}
		ctx, cancel = context.WithTimeout(in.ctx, in.cfg.CommandTimeout)
		ok, err := c.renew.Exec(ctx, cl, []string{c.leaseKey}, []string{in.node, c.ttlMS}).AsInt64()
		cancel()
		if err != nil || ok != 1 {
			if in.ctx.Err() == nil {
				in.log.Info("lost the channels inbox lease", "host", in.cfg.Hosts[h], "err", err)
			}
			leader = false
			in.stats.leading.Add(-1)
		}
	}
}

// handle publishes one inbox entry: a 12-byte random prefix, then the
// msgpack event, scored with the sender's time.time().
func (c *core) handle(member string, score float64) {
	in := c.in
	in.stats.received.Add(1)
	if len(member) < 12 {
		in.malformed(fmt.Errorf("%w: %d bytes, shorter than the 12-byte prefix", ErrMalformed, len(member)), []byte(member))
		return
	}
	sent := time.Unix(0, int64(score*1e9))
	if math.IsNaN(score) || time.Since(sent) > in.cfg.Expiry {
		in.stats.expired.Add(1)
		in.limiter.do(func() {
			in.log.Warn("expired channels message dropped (backlog older than expiry, or clock skew between hosts)",
				"age", time.Since(sent).Round(time.Millisecond), "expiry", in.cfg.Expiry)
		})
		return
	}
	data, targets, ok := in.decodeEvent([]byte(member[12:]))
	if !ok {
		return
	}
	chans := make([]string, 0, 1)
	for _, t := range targets {
		rest, found := strings.CutPrefix(t, c.inboxName)
		if !found {
			continue
		}
		_, group, found := strings.Cut(rest, ".")
		if !found {
			continue
		}
		ch, found := channelFor(in.rules, group)
		if !found {
			continue
		}
		dup := false
		for _, have := range chans {
			dup = dup || have == ch
		}
		if !dup {
			chans = append(chans, ch)
		}
	}
	if len(chans) == 0 {
		in.stats.skipped.Add(1)
		in.limiter.do(func() {
			in.log.Info("channels message for no mapped group skipped", "targets", strings.Join(targets, ","))
		})
		return
	}
	key := "cr:" + hex.EncodeToString([]byte(member[:12]))
	deadline := sent.Add(in.cfg.Expiry)
	if min := time.Now().Add(in.cfg.CommandTimeout); deadline.Before(min) {
		deadline = min
	}
	for _, ch := range chans {
		in.deliver(ch, data, key, deadline)
	}
}
