// Package netpoll parks idle connections on readiness notification so that
// a connection nobody is reading holds no goroutine.
//
// Go's net package blocks a goroutine (a 2–8 KiB stack) in Read for every
// connection that waits for its peer. A server holding tens of thousands of
// mostly silent connections spends much of its memory on those stacks. A
// Poller watches the parked connections' sockets with one epoll instance
// (Linux) and one goroutine, and calls a connection's callback, in a new
// goroutine, when its socket becomes readable or the peer hangs up. The
// callback reads what arrived through the ordinary net.Conn and then either
// parks the connection again (Waiter.Arm) or ends it (Waiter.Remove).
//
// The socket stays registered with Go's own netpoller too (a descriptor may
// be in several epoll sets), so reads, writes and deadlines on the net.Conn
// work as usual. Registrations are one-shot: after an event the connection
// is not watched until Arm, so a callback never runs twice at once.
package netpoll

import (
	"errors"
	"syscall"
)

// ErrUnsupported is returned by New on systems without epoll, and by
// Register for a connection that is not a plain socket (a *tls.Conn holds
// decrypted bytes of its own, which readiness of the socket cannot tell).
var ErrUnsupported = errors.New("netpoll: not supported")

// ErrClosed is returned by Register and Arm after the Poller was closed.
var ErrClosed = errors.New("netpoll: poller closed")

// Conn is what a Poller watches: a connection with access to its socket,
// such as *net.TCPConn.
type Conn = syscall.Conn
