// Package redissub holds the parts of a reconnecting Redis pub/sub
// subscriber that the Redis broker (fanout) and the channels_redis ingest
// (compat) share: one dedicated pub/sub connection whose Subscribe returns
// once Redis confirmed every channel (Conn), and the loop that opens such
// connections again with a jittered, doubling backoff when one ends
// (Reconnect). What a subscriber does with the channels — reference counts,
// catch-up from streams, probes, group fingerprints — stays with its user.
package redissub

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/redis/rueidis"
)

// Reconnect backoff bounds: the wait doubles from MinBackoff up to
// MaxBackoff.
const (
	MinBackoff = 100 * time.Millisecond
	MaxBackoff = 5 * time.Second
)

// Options configures a Conn.
type Options struct {
	// Sharded subscribes with SSUBSCRIBE/SUNSUBSCRIBE (Redis Cluster).
	Sharded bool
	// OnMessage receives every pub/sub message. It runs on the
	// connection's reader goroutine and must not block.
	OnMessage func(rueidis.PubSubMessage)
}

// Conn is one dedicated pub/sub connection. It uses Client.Dedicate with
// pub/sub hooks rather than Client.Receive, so one goroutine can add and
// remove thousands of channels in batches and see each confirmation. A Conn
// serves one connection: after Lost or Dropped fires, Close it and Open
// another.
type Conn struct {
	dc      rueidis.DedicatedClient
	sharded bool
	lost    <-chan error
	dropped chan error // cap 1: Redis dropped a subscription by itself

	mu       sync.Mutex
	awaiting map[string]struct{} // channels of the SUBSCRIBE in flight not yet confirmed
	awaitCh  chan struct{}       // closed when awaiting empties
	unsubExp map[string]int      // UNSUBSCRIBE confirmations expected per channel
}

// Open dedicates a connection of client to pub/sub with o's hooks. The
// connection is made by the first command (Subscribe).
func Open(client rueidis.Client, o Options) *Conn {
	dc, _ := client.Dedicate()
	c := &Conn{dc: dc, sharded: o.Sharded, dropped: make(chan error, 1), unsubExp: map[string]int{}}
	onMessage := o.OnMessage
	if onMessage == nil {
		onMessage = func(rueidis.PubSubMessage) {}
	}
	c.lost = dc.SetPubSubHooks(rueidis.PubSubHooks{OnMessage: onMessage, OnSubscription: c.onSubscription})
	return c
}

// Close closes the connection.
func (c *Conn) Close() { c.dc.Close() }

// Lost receives at most one error and is closed when the connection is
// gone; pass what it yields to LostErr.
func (c *Conn) Lost() <-chan error { return c.lost }

// Dropped receives an error when Redis ended a subscription that was not
// asked to end (a slot moved in a cluster): the connection no longer
// holds every channel and should be rebuilt.
func (c *Conn) Dropped() <-chan error { return c.dropped }

// LostErr turns a receive from Lost into the error that ended the
// connection.
func LostErr(err error, ok bool) error {
	if !ok || err == nil {
		return errors.New("pub/sub connection closed")
	}
	return err
}

// Subscribe sends one SUBSCRIBE (SSUBSCRIBE when sharded) for names and
// waits until Redis confirmed every one of them, the connection is lost or
// ctx ends. One Subscribe at a time per Conn.
func (c *Conn) Subscribe(ctx context.Context, names []string) error {
	done := make(chan struct{})
	c.mu.Lock()
	c.awaiting = make(map[string]struct{}, len(names))
	for _, n := range names {
		c.awaiting[n] = struct{}{}
	}
	c.awaitCh = done
	c.mu.Unlock()
	var cmd rueidis.Completed
	if c.sharded {
		cmd = c.dc.B().Ssubscribe().Channel(names...).Build()
	} else {
		cmd = c.dc.B().Subscribe().Channel(names...).Build()
	}
	if err := c.dc.Do(ctx, cmd).Error(); err != nil {
		return fmt.Errorf("subscribe %d channels: %w", len(names), err)
	}
	select {
	case <-done:
		return nil
	case err, ok := <-c.lost:
		return LostErr(err, ok)
	case <-ctx.Done():
		return fmt.Errorf("subscribe %d channels: waiting for confirmations: %w", len(names), ctx.Err())
	}
}

// Unsubscribe sends one UNSUBSCRIBE (SUNSUBSCRIBE when sharded) for names.
// Their confirmations are only used to tell them from ones Redis sends by
// itself (see Dropped).
func (c *Conn) Unsubscribe(ctx context.Context, names []string) error {
	c.mu.Lock()
	for _, n := range names {
		c.unsubExp[n]++
	}
	c.mu.Unlock()
	var cmd rueidis.Completed
	if c.sharded {
		cmd = c.dc.B().Sunsubscribe().Channel(names...).Build()
	} else {
		cmd = c.dc.B().Unsubscribe().Channel(names...).Build()
	}
	if err := c.dc.Do(ctx, cmd).Error(); err != nil {
		return fmt.Errorf("unsubscribe %d channels: %w", len(names), err)
	}
	return nil
}

// onSubscription is the rueidis hook for subscription confirmations.
func (c *Conn) onSubscription(p rueidis.PubSubSubscription) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch p.Kind {
	case "subscribe", "ssubscribe":
		if c.awaiting != nil {
			delete(c.awaiting, p.Channel)
			if len(c.awaiting) == 0 && c.awaitCh != nil {
				close(c.awaitCh)
				c.awaiting, c.awaitCh = nil, nil
			}
		}
	case "unsubscribe", "sunsubscribe":
		if n := c.unsubExp[p.Channel]; n > 0 {
			if n == 1 {
				delete(c.unsubExp, p.Channel)
			} else {
				c.unsubExp[p.Channel] = n - 1
			}
			return
		}
		select {
		case c.dropped <- fmt.Errorf("unsolicited %s of %s", p.Kind, p.Channel):
		default:
		}
	}
}

// Reconnect runs connect until ctx ends. connect runs one connection until
// it ends and reports whether it came up (got as far as subscribing) and
// the error that ended it; reconnect tells it whether an earlier connection
// came up. After each connection Reconnect calls lost with its error
// (unless ctx ended), then waits before the next attempt: a doubling
// backoff from MinBackoff to MaxBackoff, each wait drawn from its upper
// half, started over after a connection that came up and whenever
// retryNow fires (nil: never).
func Reconnect(ctx context.Context, retryNow <-chan struct{}, connect func(reconnect bool) (up bool, err error), lost func(error)) {
	backoff := MinBackoff
	wasUp := false
	for {
		up, err := connect(wasUp)
		if ctx.Err() != nil {
			return
		}
		lost(err)
		if up {
			wasUp = true
			backoff = MinBackoff
		}
		d := backoff/2 + rand.N(backoff/2+1)
		backoff = min(2*backoff, MaxBackoff)
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-retryNow:
			t.Stop()
			backoff = MinBackoff
		case <-ctx.Done():
			t.Stop()
			return
		}
	}
}
