// Package floortest runs the floor server (bench/floor) on a loopback port
// for tests: the floor's own tests and bench's smoke tests start it the
// same way.
package floortest

import (
	"io"
	"log/slog"
	"net"
	"testing"

	"github.com/heraldrt/herald/bench/floor"
)

// Start serves a floor server configured by opts, logging nowhere, on a
// free loopback port, and shuts it down when the test ends (a failed
// shutdown fails the test). It returns the server and its "host:port".
func Start(t testing.TB, opts floor.Options) (*floor.Server, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s, err := floor.NewWith(slog.New(slog.NewTextHandler(io.Discard, nil)), opts)
	if err != nil {
		ln.Close()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	t.Cleanup(func() {
		if err := s.Shutdown(); err != nil {
			t.Errorf("floor shutdown: %v", err)
		}
		<-done
	})
	return s, ln.Addr().String()
}
