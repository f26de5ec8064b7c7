// Package faultproxy puts a TCP proxy between a client (Herald) and a
// server (Redis) in tests, to cut, slow down, reset or redirect the link:
// a network partition without root or iptables. It wraps Shopify's
// toxiproxy, used as a library (no toxiproxy server process, no HTTP API).
package faultproxy

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// Proxy forwards connections from Addr to an upstream address.
type Proxy struct {
	t  testing.TB
	mu sync.Mutex
	p  *toxiproxy.Proxy
	// toxics currently installed, removed by Heal.
	toxics []string
}

var (
	serverOnce sync.Once
	server     *toxiproxy.ApiServer
)

// Start starts a proxy to upstream on a free loopback port and stops it
// when the test ends.
func Start(t testing.TB, upstream string) *Proxy {
	t.Helper()
	serverOnce.Do(func() {
		server = toxiproxy.NewServer(toxiproxy.NewMetricsContainer(prometheus.NewRegistry()), zerolog.Nop())
	})
	p := &Proxy{t: t, p: toxiproxy.NewProxy(server, "p-"+strings.ReplaceAll(upstream, ":", "-"), "127.0.0.1:0", upstream)}
	if err := p.p.Start(); err != nil {
		t.Fatalf("faultproxy: start proxy to %s: %v", upstream, err)
	}
	t.Cleanup(p.p.Stop)
	return p
}

// Addr is the proxy's "127.0.0.1:port", to give the client instead of the
// upstream address. It stays the same across Down/Up and Retarget.
func (p *Proxy) Addr() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.p.Listen
}

// Down closes every proxied connection and refuses new ones (connection
// refused), like a server whose host went away.
func (p *Proxy) Down() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.p.Stop()
}

// Up accepts connections again on the same address after Down.
func (p *Proxy) Up() {
	p.t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	var err error
	for range 50 { // the port may linger briefly
		if err = p.p.Start(); err == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	p.t.Fatalf("faultproxy: restart proxy on %s: %v", p.p.Listen, err)
}

// Retarget closes every connection and forwards new ones to upstream: a
// failover behind a fixed address (a virtual IP or DNS name).
func (p *Proxy) Retarget(upstream string) {
	p.t.Helper()
	p.Down()
	p.mu.Lock()
	p.p.Upstream = upstream
	p.mu.Unlock()
	p.Up()
}

// Blackhole lets connections stay open but drops every byte in both
// directions until Heal: a network partition, where nothing fails fast.
func (p *Proxy) Blackhole() {
	p.add("timeout", `{"timeout":0}`)
}

// Delay adds latency to every byte in both directions until Heal.
func (p *Proxy) Delay(d time.Duration) {
	p.add("latency", fmt.Sprintf(`{"latency":%d}`, d.Milliseconds()))
}

// ResetPeer resets (TCP RST) every connection that carries data, and new
// ones, until Heal.
func (p *Proxy) ResetPeer() {
	p.add("reset_peer", `{"timeout":0}`)
}

// Heal removes every toxic: bytes flow normally again.
func (p *Proxy) Heal() {
	p.t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, name := range p.toxics {
		if err := p.p.Toxics.RemoveToxic(context.Background(), name); err != nil {
			p.t.Fatalf("faultproxy: remove toxic %s: %v", name, err)
		}
	}
	p.toxics = nil
}

func (p *Proxy) add(kind, attrs string) {
	p.t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, stream := range []string{"upstream", "downstream"} {
		name := fmt.Sprintf("%s-%s-%d", kind, stream, len(p.toxics))
		js := fmt.Sprintf(`{"name":%q,"type":%q,"stream":%q,"toxicity":1,"attributes":%s}`, name, kind, stream, attrs)
		if _, err := p.p.Toxics.AddToxicJson(strings.NewReader(js)); err != nil {
			p.t.Fatalf("faultproxy: add toxic %s: %v", js, err)
		}
		p.toxics = append(p.toxics, name)
	}
}
