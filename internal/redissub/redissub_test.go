package redissub

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/heraldrt/herald/internal/redistest"
)

// TestConnSubscribeUnsubscribe runs one Conn against a real redis-server:
// Subscribe returns with the channels live, an Unsubscribe the Conn sent
// is not taken for a dropped subscription, and a killed server ends the
// connection on Lost.
func TestConnSubscribeUnsubscribe(t *testing.T) {
	srv := redistest.Start(t)
	client, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{srv.Addr()}, DisableCache: true})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	got := make(chan string, 16)
	conn := Open(client, Options{OnMessage: func(m rueidis.PubSubMessage) { got <- m.Channel + "=" + m.Message }})
	defer conn.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if err := conn.Subscribe(ctx, []string{"a", "b"}); err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	publish := func(ch, msg string) {
		t.Helper()
		if err := client.Do(ctx, client.B().Publish().Channel(ch).Message(msg).Build()).Error(); err != nil {
			t.Fatalf("publish %s: %v", ch, err)
		}
	}
	// Subscribe returned, so a publish now is received: no wait needed.
	publish("a", "1")
	if m := receive(t, got); m != "a=1" {
		t.Fatalf("received %q, want a=1", m)
	}
	if err := conn.Unsubscribe(ctx, []string{"a"}); err != nil {
		t.Fatalf("unsubscribe: %v", err)
	}
	publish("a", "2")
	publish("b", "3")
	if m := receive(t, got); m != "b=3" {
		t.Fatalf("received %q, want b=3 (a was unsubscribed)", m)
	}
	select {
	case err := <-conn.Dropped():
		t.Fatalf("a requested UNSUBSCRIBE was taken for a dropped subscription: %v", err)
	default:
	}
	srv.Kill()
	select {
	case err, ok := <-conn.Lost():
		if LostErr(err, ok) == nil {
			t.Fatal("LostErr returned nil")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the connection to a killed server was not reported lost")
	}
}

func receive(t *testing.T, got <-chan string) string {
	t.Helper()
	select {
	case m := <-got:
		return m
	case <-time.After(5 * time.Second):
		t.Fatal("no message within 5s")
		return ""
	}
}

// TestReconnect checks the loop's contract: reconnect is false until a
// connection came up, lost sees every error while ctx lives, retryNow
// skips the wait, and a cancelled ctx ends the loop without a lost call.
func TestReconnect(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	retry := make(chan struct{}, 1)
	var mu sync.Mutex
	var flags []bool
	var losses []error
	attempts := make(chan int, 16)
	connect := func(reconnect bool) (bool, error) {
		mu.Lock()
		flags = append(flags, reconnect)
		n := len(flags)
		mu.Unlock()
		attempts <- n
		switch n {
		case 1:
			return false, errors.New("refused")
		case 2:
			return true, errors.New("lost after up")
		case 3:
			retry <- struct{}{} // the next attempt must not wait the backoff
			return false, errors.New("refused again")
		default:
			<-ctx.Done()
			return true, ctx.Err()
		}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		Reconnect(ctx, retry, connect, func(err error) {
			mu.Lock()
			losses = append(losses, err)
			mu.Unlock()
		})
	}()
	var at3 time.Time
	for n := range attempts {
		if n == 3 {
			at3 = time.Now()
		}
		if n == 4 {
			// Backoff after attempt 3 would be 100-200 ms (it started over
			// after attempt 2 came up, then doubled once).
			if d := time.Since(at3); d > 90*time.Millisecond {
				t.Errorf("retryNow did not skip the wait: attempt 4 came %v after 3", d)
			}
			break
		}
	}
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Reconnect did not return after ctx was cancelled")
	}
	mu.Lock()
	defer mu.Unlock()
	if want := []bool{false, false, true, true}; len(flags) != 4 || flags[0] != want[0] || flags[1] != want[1] || flags[2] != want[2] || flags[3] != want[3] {
		t.Errorf("reconnect flags %v, want %v", flags, want)
	}
	if len(losses) != 3 {
		t.Errorf("lost called %d times (%v), want 3: not for the connection ended by ctx", len(losses), losses)
	}
}
