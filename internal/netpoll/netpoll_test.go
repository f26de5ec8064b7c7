package netpoll

import (
	"net"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

// pairs returns n connected TCP pairs: the server sides and the client
// sides.
func pairs(t *testing.T, n int) (servers, clients []net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	for range n {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		s, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		servers, clients = append(servers, s), append(clients, c)
	}
	t.Cleanup(func() {
		for i := range servers {
			servers[i].Close()
			clients[i].Close()
		}
	})
	return servers, clients
}

// TestReadyOnDataAndHangUp parks many connections and checks that each
// callback runs once per event: bytes sent wake their connection (and only
// it), re-arming catches bytes that arrived before Arm, and a hang-up wakes
// every parked connection. Parked connections hold no goroutine.
func TestReadyOnDataAndHangUp(t *testing.T) {
	p, err := New()
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	const n = 300
	servers, clients := pairs(t, n)
	base := runtime.NumGoroutine()
	var woken [n]atomic.Int32
	var eofs atomic.Int32
	waiters := make([]*Waiter, n)
	for i, sc := range servers {
		i, sc := i, sc
		w, err := p.Register(sc.(Conn), func() {
			woken[i].Add(1)
			var b [16]byte
			_ = sc.SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, err := sc.Read(b[:]); err != nil {
				eofs.Add(1)
				waiters[i].Remove()
				return
			}
			if err := waiters[i].Arm(); err != nil {
				t.Errorf("arm %d: %v", i, err)
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		waiters[i] = w
		if err := w.Arm(); err != nil {
			t.Fatal(err)
		}
	}
	if p.Len() != n {
		t.Fatalf("Len %d, want %d", p.Len(), n)
	}
	if g := runtime.NumGoroutine(); g > base+5 {
		t.Fatalf("%d goroutines with %d parked connections (%d before)", g, n, base)
	}
	if _, err := clients[7].Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return woken[7].Load() == 1 })
	time.Sleep(50 * time.Millisecond)
	for i := range woken {
		if got := woken[i].Load(); i != 7 && got != 0 {
			t.Fatalf("connection %d woken %d times without data", i, got)
		}
	}
	for _, c := range clients {
		c.Close()
	}
	waitFor(t, func() bool { return eofs.Load() == n })
	waitFor(t, func() bool { return p.Len() == 0 })
}

// TestRegisterRefusesNonSocket: a connection without a socket (net.Pipe)
// cannot be parked.
func TestRegisterRefusesNonSocket(t *testing.T) {
	p, err := New()
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if _, ok := a.(Conn); ok {
		t.Skip("net.Pipe has a socket on this platform")
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	servers, _ := pairs(t, 1)
	if _, err := p.Register(servers[0].(Conn), func() {}); err != ErrClosed {
		t.Fatalf("Register after Close: %v, want ErrClosed", err)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		time.Sleep(2 * time.Millisecond)
	}
}
