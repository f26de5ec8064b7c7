package fanout

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/heraldrt/herald/internal/redistest"
)

// TestRedisStreamRegression restarts a shard from older data than it had
// (a snapshot taken mid-stream, or an older copy of the AOF) while a node
// stays subscribed, and checks that no message published afterwards is
// dropped as a duplicate: the channel moves to a new epoch (which sessions
// turn into stream_reset) and every later message is delivered. This is
// the reproduction of issue 12 item 1: publish 1-20, SAVE, publish 21-40,
// SIGKILL the shard, restart it from the snapshot, publish 41-70; the old
// code delivered only 61-70.
func TestRedisStreamRegression(t *testing.T) {
	cases := []struct {
		name string
		args []string
		// save persists the state the shard will go back to; restore puts
		// it back in place after the kill.
		save    func(t *testing.T, srv *redistest.Server)
		restore func(t *testing.T, srv *redistest.Server)
	}{
		{
			name: "rdb snapshot",
			save: func(t *testing.T, srv *redistest.Server) {
				if _, err := redistest.Do(srv.Addr(), "SAVE"); err != nil {
					t.Fatal(err)
				}
			},
			restore: func(*testing.T, *redistest.Server) {},
		},
		{
			name: "older aof",
			args: []string{"--appendonly", "yes", "--appendfsync", "always"},
			save: func(t *testing.T, srv *redistest.Server) {
				copyDir(t, filepath.Join(srv.Dir(), "appendonlydir"), filepath.Join(srv.Dir(), "aof-copy"))
			},
			restore: func(t *testing.T, srv *redistest.Server) {
				dir := filepath.Join(srv.Dir(), "appendonlydir")
				if err := os.RemoveAll(dir); err != nil {
					t.Fatal(err)
				}
				copyDir(t, filepath.Join(srv.Dir(), "aof-copy"), dir)
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := redistest.Start(t, redistest.Args(tc.args...))
			prefix := testPrefix(t)
			cfg := RedisConfig{Shards: []string{srv.Addr()}, Prefix: prefix, ProbeInterval: 200 * time.Millisecond, CommandTimeout: time.Second}
			col := newCollector()
			pub := newTestRedis(t, cfg, nil)
			sub := newTestRedis(t, cfg, col.handle)
			ctx := context.Background()
			const ch = "user:regress"
			if err := sub.Subscribe(ctx, ch); err != nil {
				t.Fatal(err)
			}
			publish := func(from, to int) []Position {
				var ps []Position
				for i := from; i <= to; i++ {
					r, err := retryPublish(pub, ch, []byte(strconv.Itoa(i)))
					if err != nil {
						t.Fatalf("publish %d: %v", i, err)
					}
					ps = append(ps, r.Pos)
				}
				return ps
			}
			publish(1, 20)
			tc.save(t, srv)
			before := publish(21, 40)
			col.waitFor(t, ch, 10*time.Second, atLeast(40))
			srv.Kill()
			tc.restore(t, srv)
			srv.RestartFromDisk()
			after := publish(41, 70)
			if after[0].Epoch == before[0].Epoch {
				t.Fatalf("after the shard went back to older data, publishes continue the old epoch: %s then %s", before[len(before)-1], after[0])
			}
			if after[0].Offset != 1 {
				t.Fatalf("first publish of the new epoch at %s, want offset 1", after[0])
			}
			ms := col.waitFor(t, ch, 15*time.Second, func(ms []*Message) bool {
				return len(ms) > 0 && ms[len(ms)-1].Pos == after[len(after)-1]
			})
			// Every message published, in order, exactly once.
			var got []string
			for _, m := range ms {
				got = append(got, string(m.Data))
			}
			if len(got) != 70 {
				t.Fatalf("delivered %d messages, want 70: %v (%s)", len(got), got, positions(ms))
			}
			for i, d := range got {
				if d != strconv.Itoa(i+1) {
					t.Fatalf("message %d is %q: %v", i+1, d, got)
				}
			}
			// History from a position of the lost timeline is gone.
			if _, err := pub.History(ctx, ch, before[len(before)-1], 0); err == nil {
				t.Fatalf("History since %s of the old epoch succeeded", before[len(before)-1])
			}
		})
	}
}

func copyDir(t *testing.T, from, to string) {
	t.Helper()
	if out, err := exec.Command("cp", "-r", from, to).CombinedOutput(); err != nil {
		t.Fatalf("cp -r %s %s: %v: %s", from, to, err, out)
	}
}

// TestRedisNoSpuriousEpochChange: reconnects to the same Redis process
// (the pub/sub connection killed, the command connection killed) keep the
// epoch: only a change of process starts a new one.
func TestRedisNoSpuriousEpochChange(t *testing.T) {
	srv := redistest.Start(t)
	prefix := testPrefix(t)
	col := newCollector()
	b := newTestRedis(t, RedisConfig{Shards: []string{srv.Addr()}, Prefix: prefix}, col.handle)
	ctx := context.Background()
	if err := b.Subscribe(ctx, "c"); err != nil {
		t.Fatal(err)
	}
	first, err := b.Publish(ctx, "c", []byte("1"), PublishOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := 2; i <= 5; i++ {
		if _, err := redistest.Do(srv.Addr(), "CLIENT", "KILL", "TYPE", "normal"); err != nil {
			t.Fatal(err)
		}
		if _, err := redistest.Do(srv.Addr(), "CLIENT", "KILL", "TYPE", "pubsub"); err != nil {
			t.Fatal(err)
		}
		r, err := retryPublish(b, "c", []byte(strconv.Itoa(i)))
		if err != nil {
			t.Fatal(err)
		}
		if r.Pos != (Position{first.Pos.Epoch, uint64(i)}) {
			t.Fatalf("publish %d after reconnecting to the same process: %s, want %d:%d", i, r.Pos, first.Pos.Epoch, i)
		}
	}
	col.waitFor(t, "c", 10*time.Second, atLeast(5))
}

// TestRedisTraceParentCannotShiftData: a traceparent holding the payload's
// separator reaches subscribers as it was, and the data byte for byte
// (issue 13 item 3: clients received "INJECTED|{...}").
func TestRedisTraceParentCannotShiftData(t *testing.T) {
	cfg, _ := shardConfig(t, 1)
	b, col := newSubscriber(t, cfg, "tp")
	ctx := context.Background()
	for _, tp := range []string{"x|INJECTED", "|", "a|b|c|", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"} {
		if _, err := b.Publish(ctx, "tp", []byte(`{"n":"`+tp+`"}`), PublishOptions{TraceParent: tp}); err != nil {
			t.Fatal(err)
		}
	}
	ms := col.waitFor(t, "tp", 10*time.Second, atLeast(4))
	for i, tp := range []string{"x|INJECTED", "|", "a|b|c|", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"} {
		if string(ms[i].Data) != `{"n":"`+tp+`"}` || ms[i].TraceParent != tp {
			t.Fatalf("message %d: data %q traceparent %q, want %q and %q", i, ms[i].Data, ms[i].TraceParent, `{"n":"`+tp+`"}`, tp)
		}
	}
}

// TestRedisRecheckAfterProcessChange covers the race the generation check
// cannot see in the script: a publish that trusted the generation while
// its command travelled on a connection to a new Redis process. recheck
// (run when a dial happened during the publish) must then move the channel
// to a new epoch and fail the publish with ErrShardChanged.
func TestRedisRecheckAfterProcessChange(t *testing.T) {
	srv := redistest.Start(t)
	prefix := testPrefix(t)
	b := newTestRedis(t, RedisConfig{Shards: []string{srv.Addr()}, Prefix: prefix}, nil)
	ctx := context.Background()
	first, err := b.Publish(ctx, "c", []byte("1"), PublishOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s := b.sub("c")
	// The belief is dropped whenever the client opens a connection (the
	// pub/sub one may come after the first publish): publish until known.
	old, _ := s.belief()
	for i := 0; old == "" && i < 50; i++ {
		if _, err := b.Publish(ctx, "c", []byte("x"), PublishOptions{}); err != nil {
			t.Fatal(err)
		}
		old, _ = s.belief()
	}
	if old == "" {
		t.Fatal("no generation known after publishing")
	}
	if _, err := redistest.Do(srv.Addr(), "SAVE"); err != nil {
		t.Fatal(err)
	}
	srv.RestartFromDisk()
	if err := b.recheck(ctx, s, "c", old); !errors.Is(err, ErrShardChanged) || !errors.Is(err, ErrShardUnavailable) {
		t.Fatalf("recheck with the old process's generation: %v", err)
	}
	res, err := b.History(ctx, "c", first.Pos, 0)
	if !errors.Is(err, ErrEpochChanged) || res.Top.Epoch == first.Pos.Epoch {
		t.Fatalf("History after recheck: %v (top %s, first %s)", err, res.Top, first.Pos)
	}
	now, _ := s.belief()
	for i := 0; now == "" && i < 50; i++ {
		b.History(ctx, "c", Position{}, 0) // reads the generation again
		now, _ = s.belief()
	}
	if now == "" || now == old {
		t.Fatalf("generation after the restart: %q (before: %q)", now, old)
	}
	if err := b.recheck(ctx, s, "c", now); err != nil {
		t.Fatalf("recheck with the current generation: %v", err)
	}
}
