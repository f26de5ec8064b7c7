// Package edgetest runs in-process Herald nodes (edge.Server on a loopback
// listener) for the tests of packages outside edge. Package edge's own
// tests start theirs in edge/helpers_test.go: they cannot import a package
// that imports edge.
package edgetest

import (
	"context"
	"log/slog"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldrt/herald/config"
	"github.com/heraldrt/herald/edge"
	"github.com/heraldrt/herald/internal/heraldtest"
)

// Node is an in-process Herald node serving on a loopback port.
type Node struct {
	// Srv is the node.
	Srv *edge.Server
	// Cfg is the config it was built from.
	Cfg config.Config
	// Addr is where it listens, "host:port".
	Addr string
	// TLS is set when it serves https and wss.
	TLS bool

	done chan error
	down atomic.Bool
}

// Options adjusts Start.
type Options struct {
	// Log is the node's logger; nil means heraldtest.Logger().
	Log *slog.Logger
	// Wrap, when set, wraps the listener (TLS) and marks the node TLS.
	Wrap func(net.Listener) (net.Listener, error)
}

// Start validates cfg, builds a node from it, listens on
// cfg.Server.Listen (retrying for up to 5 s: a restarted node may find its
// port still taken for a moment), serves, and stops the node when t ends.
func Start(t testing.TB, cfg config.Config, o Options) *Node {
	t.Helper()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("config: %v", err)
	}
	if o.Log == nil {
		o.Log = heraldtest.Logger()
	}
	var ln net.Listener
	var err error
	for range 50 {
		if ln, err = net.Listen("tcp", cfg.Server.Listen); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	srv, err := edge.New(context.Background(), cfg, o.Log)
	if err != nil {
		ln.Close()
		t.Fatalf("edge.New: %v", err)
	}
	n := &Node{Srv: srv, Cfg: cfg, Addr: ln.Addr().String(), done: make(chan error, 1)}
	if o.Wrap != nil {
		if ln, err = o.Wrap(ln); err != nil {
			t.Fatal(err)
		}
		n.TLS = true
	}
	go func() { n.done <- srv.Serve(ln) }()
	t.Cleanup(func() { n.Stop(t) })
	return n
}

// Stop shuts the node down, once: Shutdown within 15 s, after which Serve
// must return within 10 s without an error.
func (n *Node) Stop(t testing.TB) {
	if n.down.Swap(true) {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := n.Srv.Shutdown(ctx); err != nil {
		t.Errorf("shutdown: %v", err)
	}
	select {
	case err := <-n.done:
		if err != nil {
			t.Errorf("serve: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Errorf("Serve did not return after Shutdown")
	}
}

// URL is the node's base URL, https when TLS is set.
func (n *Node) URL() string {
	if n.TLS {
		return "https://" + n.Addr
	}
	return "http://" + n.Addr
}
