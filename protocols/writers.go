package protocols

import (
	"runtime"
	"sync"
)

// Writers is the pool of goroutines that drain session queues onto
// sockets. Sessions have no writer goroutine of their own: an idle
// connection costs only its reader.
type Writers struct {
	q    chan *Session
	done chan struct{}
	wg   sync.WaitGroup
	once sync.Once
	// bufs recycles write buffers; one is borrowed per flush, so an idle
	// connection holds none.
	bufs sync.Pool
}

// writerQueue is the backlog of sessions waiting for a writer. When it is
// full (a burst larger than this many distinct sessions), scheduling falls
// back to a fresh goroutine rather than blocking the broker's delivery.
const writerQueue = 1 << 16

// NewWriters starts n writer goroutines (n <= 0 means 64: enough that a
// few sockets stuck in a write deadline do not stall the rest).
func NewWriters(n int) *Writers {
	if n <= 0 {
		n = 64
	}
	w := &Writers{q: make(chan *Session, writerQueue), done: make(chan struct{})}
	w.bufs.New = func() any { return &flushBuf{out: make([]byte, 0, 4096), cur: make([]byte, 0, 128)} }
	w.wg.Add(n)
	for range n {
		go func() {
			defer w.wg.Done()
			for {
				select {
				case s := <-w.q:
					s.flush()
					// Under a broadcast the queue never empties, so a
					// writer would keep its P for a whole time slice
					// (10 ms) and 64 of them would make every request
					// handler (a publish, a connect) wait behind them.
					// Yielding after each session puts the writer at the
					// back of the run queue: a publish waits for a few
					// flushes, not for the whole pool's slices.
					runtime.Gosched()
				case <-w.done:
					return
				}
			}
		}()
	}
	return w
}

func (w *Writers) schedule(s *Session) {
	select {
	case <-w.done:
		go s.flush()
		return
	default:
	}
	select {
	case w.q <- s:
	default:
		go s.flush()
	}
}

// Close stops the writer goroutines. Sessions scheduled afterwards are
// flushed on goroutines of their own, so a late timer never blocks.
func (w *Writers) Close() {
	w.once.Do(func() { close(w.done) })
	w.wg.Wait()
}

// flushBuf is what one flush borrows: the outgoing bytes and a scratch
// buffer for cursors. Pooling the scratch too keeps the delivery path free
// of allocations (a stack array would escape into the Transport call).
type flushBuf struct {
	out []byte
	cur []byte
}

func (w *Writers) getBuf() *flushBuf { return w.bufs.Get().(*flushBuf) }

func (w *Writers) putBuf(b *flushBuf) {
	if cap(b.out) > 1<<20 {
		return
	}
	b.out = b.out[:0]
	w.bufs.Put(b)
}
