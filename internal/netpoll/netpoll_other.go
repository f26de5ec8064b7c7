//go:build !linux

package netpoll

// Poller is not available on this system: New returns ErrUnsupported.
type Poller struct{}

// Waiter is one connection registered with a Poller.
type Waiter struct{}

// New returns ErrUnsupported: parking needs Linux epoll.
func New() (*Poller, error) { return nil, ErrUnsupported }

// Register returns ErrUnsupported.
func (p *Poller) Register(Conn, func()) (*Waiter, error) { return nil, ErrUnsupported }

// Arm returns ErrUnsupported.
func (w *Waiter) Arm() error { return ErrUnsupported }

// Remove does nothing.
func (w *Waiter) Remove() {}

// Len returns 0.
func (p *Poller) Len() int { return 0 }

// Close does nothing.
func (p *Poller) Close() error { return nil }
