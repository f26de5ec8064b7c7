package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// pubJob is one message to publish.
type pubJob struct {
	kind byte
	user int
	seq  uint64
}

// publisher publishes benchmark messages through the HTTP API at fixed
// rates (open loop: the schedule does not wait for replies) and remembers
// what it published, for the receivers' accounting.
//
// In ordered mode (concurrency 0) messages of one stream (broadcast, or
// one user) always go through the same goroutine, one at a time, so they
// reach the server in order. Otherwise concurrency goroutines take the
// messages of every stream from one queue, as the many request handlers
// of a busy backend do: up to that many publishes are in flight, and
// messages of one stream may reach the server (and the receivers) out of
// order.
type publisher struct {
	clients []*fasthttp.HostClient
	apiKey  string
	pad     int
	prefix  string
	users   int
	workers int
	// concurrency > 0: that many goroutines share one queue (see above).
	concurrency int
	timeout     time.Duration

	lat      *Recorder
	ok, fail atomic.Int64
	// unsent counts scheduled messages still queued when the run ended
	// (the server's publish API was slower than the schedule).
	unsent   atomic.Int64
	deadline atomic.Int64 // unix ns after which queued jobs are not sent

	mu      sync.Mutex
	bMax    uint64
	bFailed []uint64
	uMax    []uint64
	uFailed map[int][]uint64
	errs    map[string]int64
}

// newPublisher returns a publisher with workers ordered goroutines, or,
// when concurrency > 0, that many unordered ones.
func newPublisher(targets []string, apiKey string, pad, users, workers, concurrency int, prefix string) *publisher {
	p := &publisher{apiKey: apiKey, pad: pad, prefix: prefix, users: users, workers: max(2, workers),
		concurrency: concurrency, timeout: 10 * time.Second, lat: NewRecorder(), uMax: make([]uint64, users),
		uFailed: map[int][]uint64{}, errs: map[string]int64{}}
	for _, t := range targets {
		p.clients = append(p.clients, &fasthttp.HostClient{Addr: t, MaxConns: max(256, concurrency),
			ReadTimeout: p.timeout, WriteTimeout: p.timeout})
	}
	return p
}

// run publishes at bRate broadcast and uRate per-user messages per second
// until ctx ends, dur passes or limit messages were published (0: no
// limit).
func (p *publisher) run(ctx context.Context, bRate, uRate float64, dur time.Duration, limit int) {
	var wg sync.WaitGroup
	queues := make([]chan pubJob, p.workers)
	if p.concurrency > 0 {
		// One queue behind every stream, drained by concurrency
		// goroutines.
		shared := make(chan pubJob, max(4096, 4*p.concurrency))
		for i := range queues {
			queues[i] = shared
		}
		queues = queues[:1]
		for range p.concurrency {
			wg.Go(func() { p.work(shared) })
		}
	} else {
		for i := range queues {
			queues[i] = make(chan pubJob, 4096)
			wg.Go(func() { p.work(queues[i]) })
		}
	}
	start := time.Now()
	if dur > 0 {
		p.deadline.Store(start.Add(dur).UnixNano())
	}
	t := time.NewTicker(2 * time.Millisecond)
	defer t.Stop()
	sentB, sentU := 0, 0
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case now := <-t.C:
			el := now.Sub(start)
			if dur > 0 && el >= dur {
				break loop
			}
			dueB, dueU := int(el.Seconds()*bRate), int(el.Seconds()*uRate)
			for sentB < dueB || (sentU < dueU && p.users > 0) {
				if limit > 0 && sentB+sentU >= limit {
					break loop
				}
				// Interleave the two schedules in time order.
				if sentB < dueB && (sentU >= dueU || p.users == 0 || float64(sentB)/bRate <= float64(sentU)/uRate) {
					sentB++
					p.mu.Lock()
					p.bMax++
					j := pubJob{kind: KindBroadcast, seq: p.bMax}
					p.mu.Unlock()
					p.dispatch(queues[0], j)
					continue
				}
				sentU++
				u := rand.IntN(p.users)
				p.mu.Lock()
				p.uMax[u]++
				j := pubJob{kind: KindUser, user: u, seq: p.uMax[u]}
				p.mu.Unlock()
				p.dispatch(queues[(1+u%(p.workers-1))%len(queues)], j)
			}
		}
	}
	for _, q := range queues {
		close(q)
	}
	wg.Wait()
}

func (p *publisher) dispatch(q chan pubJob, j pubJob) {
	select {
	case q <- j:
	default:
		p.failed(j, "publish: backlog full (publisher cannot keep up)")
	}
}

func (p *publisher) failed(j pubJob, cause string) {
	p.fail.Add(1)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.errs[cause]++
	if j.kind == KindBroadcast {
		p.bFailed = append(p.bFailed, j.seq)
	} else {
		p.uFailed[j.user] = append(p.uFailed[j.user], j.seq)
	}
}

// notSent removes a job that was scheduled but never sent from what
// receivers expect, without counting an error.
func (p *publisher) notSent(j pubJob) {
	p.unsent.Add(1)
	p.mu.Lock()
	defer p.mu.Unlock()
	if j.kind == KindBroadcast {
		p.bFailed = append(p.bFailed, j.seq)
	} else {
		p.uFailed[j.user] = append(p.uFailed[j.user], j.seq)
	}
}

func (p *publisher) work(q chan pubJob) {
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	var body []byte
	n := 0
	for j := range q {
		if d := p.deadline.Load(); d > 0 && time.Now().UnixNano() > d {
			p.notSent(j)
			continue
		}
		c := p.clients[n%len(p.clients)]
		n++
		ts := time.Now()
		body = body[:0]
		if j.kind == KindBroadcast {
			body = append(body, `{"channel":"broadcast","data":`...)
		} else {
			body = append(body, `{"user_id":"`...)
			body = append(body, p.prefix...)
			body = strconv.AppendInt(body, int64(j.user), 10)
			body = append(body, `","data":`...)
		}
		body = AppendPayload(body, j.kind, j.seq, ts.UnixNano(), p.pad)
		body = append(body, '}')
		req.Reset()
		req.SetRequestURI("http://" + c.Addr + "/api/publish")
		req.Header.SetMethod(fasthttp.MethodPost)
		req.Header.SetContentType("application/json")
		req.Header.Set("X-API-Key", p.apiKey)
		req.SetBody(body)
		resp.Reset()
		err := c.DoTimeout(req, resp, p.timeout)
		switch {
		case err != nil:
			p.failed(j, errorCause("publish", err))
		case resp.StatusCode() != fasthttp.StatusOK:
			p.failed(j, fmt.Sprintf("publish: HTTP %d", resp.StatusCode()))
		default:
			p.ok.Add(1)
			p.lat.Record(int(n), time.Since(ts).Microseconds())
		}
	}
}

// expectations returns what receivers should have received.
func (p *publisher) expectations(drain time.Duration) Expectations {
	p.mu.Lock()
	defer p.mu.Unlock()
	e := Expectations{Account: true, Drain: drain,
		Broadcast: StreamExpectation{Max: p.bMax, Failed: append([]uint64(nil), p.bFailed...)},
		UserMax:   append([]uint64(nil), p.uMax...), UserFailed: map[int][]uint64{}}
	for u, f := range p.uFailed {
		e.UserFailed[u] = append([]uint64(nil), f...)
	}
	return e
}

func (p *publisher) takeErrors() map[string]int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	e := p.errs
	p.errs = map[string]int64{}
	return e
}
