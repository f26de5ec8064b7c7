package faultproxy

import (
	"strings"
	"testing"
	"time"

	"github.com/heraldrt/herald/internal/redistest"
)

// TestFaultProxy drives a real redis-server through the proxy: commands
// pass, Down refuses, Blackhole times out, ResetPeer fails, Delay slows,
// Heal and Up restore, Retarget switches servers.
func TestFaultProxy(t *testing.T) {
	a, b := redistest.Start(t), redistest.Start(t)
	if _, err := redistest.Do(a.Addr(), "SET", "who", "a"); err != nil {
		t.Fatal(err)
	}
	if _, err := redistest.Do(b.Addr(), "SET", "who", "b"); err != nil {
		t.Fatal(err)
	}
	p := Start(t, a.Addr())
	who := func() (any, error) { return redistest.Do(p.Addr(), "GET", "who") }
	if v, err := who(); err != nil || v != "a" {
		t.Fatalf("through the proxy: %v %v", v, err)
	}
	p.Down()
	if _, err := who(); err == nil || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("while down: %v", err)
	}
	p.Up()
	if v, err := who(); err != nil || v != "a" {
		t.Fatalf("after Up: %v %v", v, err)
	}
	p.Blackhole()
	start := time.Now()
	if _, err := who(); err == nil || time.Since(start) < 4*time.Second {
		t.Fatalf("blackholed: %v after %s, want a timeout", err, time.Since(start))
	}
	p.Heal()
	p.ResetPeer()
	if _, err := who(); err == nil {
		t.Fatal("reset_peer: command succeeded")
	}
	p.Heal()
	p.Delay(300 * time.Millisecond)
	start = time.Now()
	if v, err := who(); err != nil || v != "a" || time.Since(start) < 300*time.Millisecond {
		t.Fatalf("delayed: %v %v after %s", v, err, time.Since(start))
	}
	p.Heal()
	p.Retarget(b.Addr())
	if v, err := who(); err != nil || v != "b" {
		t.Fatalf("after Retarget: %v %v", v, err)
	}
}
