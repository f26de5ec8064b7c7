package bench

import (
	"io"
	"net"
	"testing"
	"time"
)

// TestRemoteFleetOverPipe drives a fleet through the worker JSON-RPC
// protocol over an in-memory pipe (what a worker process does over its
// stdin/stdout); the fleet's connects fail fast against a closed port, so
// the test checks the protocol and error grouping, not a server.
func TestRemoteFleetOverPipe(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens: connects are refused

	cr, sw := io.Pipe() // server → client
	sr, cw := io.Pipe() // client → server
	done := make(chan error, 1)
	go func() { done <- ServeWorker(sr, sw) }()
	spec := FleetSpec{Index: 0, Count: 1, WS: 3, SSE: 2, Targets: []string{addr}, Secret: "0123456789abcdef0123456789abcdef",
		UserPrefix: "t", Timeout: 2 * time.Second}
	rf, err := newRemoteFleet("pipe", pipeRWC{Reader: cr, Writer: cw, closers: []io.Closer{cw}}, spec)
	if err != nil {
		t.Fatal(err)
	}
	res, err := rf.Connect(WS)
	if err != nil {
		t.Fatal(err)
	}
	if res.Attempted != 3 || res.Failed != 3 || res.OK != 0 {
		t.Fatalf("connect %+v", res)
	}
	tick, err := rf.Tick()
	if err != nil {
		t.Fatal(err)
	}
	if tick.Errors["connect: connection refused"] != 3 || tick.CPU <= 0 {
		t.Fatalf("tick %+v", tick)
	}
	fr, err := rf.Finish(Expectations{Account: true, Broadcast: StreamExpectation{Max: 5}})
	if err != nil {
		t.Fatal(err)
	}
	if fr.Receivers != 0 || fr.Broadcast.Expected != 0 {
		t.Fatalf("never-connected receivers must not count as loss: %+v", fr)
	}
	if err := rf.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("worker did not stop")
	}
}
