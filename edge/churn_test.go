package edge

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldrt/herald/config"
)

// ownGoroutines counts goroutines, leaving out fasthttp's idle worker pool
// (it keeps idle workers for MaxIdleWorkerDuration by design).
func ownGoroutines() int {
	buf := make([]byte, 1<<22)
	buf = buf[:runtime.Stack(buf, true)]
	n := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.TrimSpace(g) != "" && !strings.Contains(g, "fasthttp.(*workerPool)") {
			n++
		}
	}
	return n
}

func openFiles(t *testing.T) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd")
	}
	return len(ents)
}

// TestChurnReturnsToBaseline connects and disconnects 10,000 clients over
// both transports (some refused) and checks that goroutines, open files,
// hub entries and admission slots all return to where they started.
func TestChurnReturnsToBaseline(t *testing.T) {
	n := 10000
	if testing.Short() {
		n = 300
	}
	// The warm-up connection never reads, so it answers no ping: on a
	// loaded machine the 10,000 connects can outlast the default 60 s read
	// timeout, which would close it and move the baseline.
	ts := startServer(t, func(c *config.Config) { c.Stream.WSReadTimeout = 10 * time.Minute })
	// Warm up pools and the HTTP client, then take the baseline.
	readWS(t, ts.mustWS(t, q("token", token(t, "warm", time.Hour))))
	time.Sleep(100 * time.Millisecond)
	baseG, baseF := ownGoroutines(), openFiles(t)

	start := time.Now()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			user := fmt.Sprint("c", i%500)
			switch i % 4 {
			case 0, 1:
				c, _, err := ts.dialWS(t, q("token", token(t, user, time.Hour)), nil)
				if err != nil {
					errs <- err
					return
				}
				_, _, _ = c.ReadMessage()
				c.Close()
			case 2:
				c, _, err := ts.openSSE(t, q("token", token(t, user, time.Hour)), "")
				if err != nil || c == nil {
					errs <- fmt.Errorf("sse: %v", err)
					return
				}
				<-c.events
				c.resp.Body.Close()
			case 3:
				_, resp, _ := ts.dialWS(t, q("token", "forged"), nil)
				if resp == nil || resp.StatusCode != 401 {
					errs <- fmt.Errorf("forged token: %v", resp)
				}
			}
		}()
	}
	wg.Wait()
	t.Logf("%d connects in %s", n, time.Since(start))
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		g, f := ownGoroutines(), openFiles(t)
		hubLen, total := ts.srv.hub.Len(), ts.srv.adm.total.Load()
		// The warm-up connection is still open; allow a few goroutines of
		// slack for the HTTP client's idle machinery.
		if g <= baseG+5 && f <= baseF+2 && hubLen == 1 && total == 1 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %d connects: goroutines %d (baseline %d), open files %d (baseline %d), hub %d, slots %d",
				n, g, baseG, f, baseF, hubLen, total)
		}
		if os.Getenv("CHURN_DEBUG") != "" {
			t.Logf("goroutines %d/%d files %d/%d hub %d slots %d", g, baseG, f, baseF, hubLen, total)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
