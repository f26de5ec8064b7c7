//go:build linux

package netpoll

import (
	"fmt"
	"net"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// Poller watches parked connections with one epoll instance. Its methods
// are safe for concurrent use.
type Poller struct {
	epfd int
	// wake is an eventfd in the epoll set; writing it makes the wait loop
	// see that Close was called.
	wake int

	mu      sync.Mutex
	closed  bool
	nextID  uint64
	waiters map[uint64]*Waiter
	done    chan struct{}
}

// Waiter is one connection registered with a Poller.
type Waiter struct {
	p     *Poller
	id    uint64
	rc    syscall.RawConn
	ready func()
	// added: the descriptor is in the epoll set (the first Arm adds it).
	// Guarded by p.mu.
	added bool
}

// wakeID marks the eventfd's events; waiter ids start at 1.
const wakeID = 0

// eventsBatch is how many readiness events one wait returns at most: a
// connect or disconnect storm is served in batches of this size.
const eventsBatch = 256

// armEvents: readable (a frame arrived, or EOF), peer closed its side or
// the connection broke; one-shot so a callback runs alone until Arm.
const armEvents = unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT

// New starts a Poller and its wait goroutine.
func New() (*Poller, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("netpoll: epoll_create1: %w", err)
	}
	wake, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(epfd)
		return nil, fmt.Errorf("netpoll: eventfd: %w", err)
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN}
	setID(&ev, wakeID)
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, wake, &ev); err != nil {
		unix.Close(wake)
		unix.Close(epfd)
		return nil, fmt.Errorf("netpoll: register eventfd: %w", err)
	}
	p := &Poller{epfd: epfd, wake: wake, nextID: wakeID + 1, waiters: map[uint64]*Waiter{}, done: make(chan struct{})}
	go p.loop()
	return p, nil
}

// setID stores a waiter id in the event's 64-bit user data (Fd and Pad
// are its two halves), so a stale event for a closed and reused
// descriptor cannot reach the wrong connection.
func setID(ev *unix.EpollEvent, id uint64) {
	ev.Fd = int32(uint32(id))
	ev.Pad = int32(uint32(id >> 32))
}

func getID(ev *unix.EpollEvent) uint64 {
	return uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
}

// Register prepares c for parking: once Arm is called, ready runs in a new
// goroutine when c's socket becomes readable or its peer hangs up, after
// which c is not watched until the next Arm. Registering and arming are
// two steps so that the caller can store the Waiter where ready finds it
// before ready can run. The caller must call Remove once it is done with
// c, before or after closing it. A connection that is not a socket yields
// ErrUnsupported.
func (p *Poller) Register(c Conn, ready func()) (*Waiter, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnsupported, err)
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, ErrClosed
	}
	w := &Waiter{p: p, id: p.nextID, rc: rc, ready: ready}
	p.nextID++
	p.waiters[w.id] = w
	p.mu.Unlock()
	return w, nil
}

// ctl applies op to the waiter's descriptor while the net package
// guarantees it stays open (RawConn.Control holds a reference).
func (w *Waiter) ctl(op int) error {
	var opErr error
	err := w.rc.Control(func(fd uintptr) {
		ev := unix.EpollEvent{Events: armEvents}
		setID(&ev, w.id)
		opErr = unix.EpollCtl(w.p.epfd, op, int(fd), &ev)
	})
	if err != nil {
		return fmt.Errorf("netpoll: connection: %w", err)
	}
	if opErr != nil {
		return fmt.Errorf("netpoll: epoll_ctl: %w", opErr)
	}
	return nil
}

// Arm parks the connection: after Register, and again each time its
// callback has read what arrived. Bytes that arrived in the meantime fire
// at once (epoll re-checks readiness), so none are missed. An error means
// the connection is closed, removed or the poller closed; the caller then
// reads the connection itself or ends it.
func (w *Waiter) Arm() error {
	w.p.mu.Lock()
	closed := w.p.closed
	_, ok := w.p.waiters[w.id]
	// Decided before the system call: the first event may run the
	// callback, and its Arm, before epoll_ctl returns here.
	op := unix.EPOLL_CTL_MOD
	if !w.added {
		op, w.added = unix.EPOLL_CTL_ADD, true
	}
	w.p.mu.Unlock()
	if closed {
		return ErrClosed
	}
	if !ok {
		return fmt.Errorf("netpoll: arm: %w", net.ErrClosed)
	}
	return w.ctl(op)
}

// Remove stops watching the connection. It is idempotent and may be
// called after the connection was closed (the kernel then has already
// dropped the registration).
func (w *Waiter) Remove() {
	w.p.mu.Lock()
	_, ok := w.p.waiters[w.id]
	delete(w.p.waiters, w.id)
	w.p.mu.Unlock()
	if ok {
		_ = w.ctl(unix.EPOLL_CTL_DEL) // fails harmlessly when never armed or closed
	}
}

// Len returns the number of registered connections.
func (p *Poller) Len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.waiters)
}

// Close stops the Poller: pending callbacks are not run, and the
// connections' owners must read or close them themselves. It waits for
// the wait goroutine to exit.
func (p *Poller) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	p.mu.Unlock()
	var one = [8]byte{1}
	if _, err := unix.Write(p.wake, one[:]); err != nil {
		return fmt.Errorf("netpoll: wake: %w", err)
	}
	<-p.done
	unix.Close(p.wake)
	unix.Close(p.epfd)
	return nil
}

// loop waits for readiness and runs the callbacks until Close. The wait
// is a blocking system call: it occupies one OS thread, not a P.
func (p *Poller) loop() {
	defer close(p.done)
	events := make([]unix.EpollEvent, eventsBatch)
	for {
		n, err := unix.EpollWait(p.epfd, events, -1)
		if err != nil {
			if err == unix.EINTR {
				continue
			}
			// Only a bad epoll descriptor fails here, which Close alone
			// causes after the wake; nothing can be watched any more.
			return
		}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return
		}
		for i := range events[:n] {
			if id := getID(&events[i]); id != wakeID {
				if w := p.waiters[id]; w != nil {
					go w.ready()
				}
			}
		}
		p.mu.Unlock()
	}
}
