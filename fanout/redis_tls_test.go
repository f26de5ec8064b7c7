package fanout

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/heraldrt/herald/internal/redistest"
)

// roundTrip subscribes a channel of every shard on sub, publishes on pub
// and waits for each message.
func roundTrip(t *testing.T, pub, sub *RedisBroker, c *collector, shards int) {
	t.Helper()
	ctx := context.Background()
	for s := range shards {
		ch := channelsOn("tls", s, shards, 1)[0]
		if err := sub.Subscribe(ctx, ch); err != nil {
			t.Fatalf("subscribe %s: %v", ch, err)
		}
		if _, err := pub.Publish(ctx, ch, []byte(`{"over":"tls"}`), PublishOptions{}); err != nil {
			t.Fatalf("publish %s: %v", ch, err)
		}
		c.waitFor(t, ch, 10*time.Second, atLeast(1))
	}
}

// TestRedisTLS: the broker talks to redis-server over TLS with a CA made
// by the test, with and without a client certificate, through a user with
// a password.
func TestRedisTLS(t *testing.T) {
	files := redistest.NewTLS(t)
	for _, clientCerts := range []bool{false, true} {
		t.Run(fmt.Sprintf("client_certs=%v", clientCerts), func(t *testing.T) {
			var addrs []string
			for range 2 {
				s := redistest.Start(t, redistest.TLS(files, clientCerts),
					redistest.Args("--tls-replication", "no"))
				if _, err := redistest.Do(s.Addr(), "ACL", "SETUSER", "tlsuser", "on", ">tls-pw", "~*", "&*", "+@all"); err != nil {
					t.Fatal(err)
				}
				addrs = append(addrs, s.TLSAddr())
			}
			cfg := RedisConfig{Shards: addrs, Prefix: testPrefix(t), Username: "tlsuser", Password: "tls-pw",
				TLS: RedisTLSConfig{Enabled: true, CAFile: files.CA}}
			if clientCerts {
				cfg.TLS.CertFile, cfg.TLS.KeyFile = files.ClientCert, files.ClientKey
			}
			c := newCollector()
			pub := newTestRedis(t, cfg, nil)
			sub := newTestRedis(t, cfg, c.handle)
			roundTrip(t, pub, sub, c, len(addrs))
			waitHealthy(t, sub, 5*time.Second)
		})
	}
}

// TestRedisRefusedFailsFast: a wrong password, a missing or foreign client
// certificate, an unknown CA or a wrong server name stop NewRedis at once
// with an error naming the shard, even when the other shards accept.
func TestRedisRefusedFailsFast(t *testing.T) {
	files, other := redistest.NewTLS(t), redistest.NewTLS(t)
	good := redistest.Start(t, redistest.TLS(files, true))
	bad := redistest.Start(t, redistest.TLS(files, true))
	plain := redistest.Start(t)
	for _, s := range []*redistest.Server{good, bad, plain} {
		if _, err := redistest.Do(s.Addr(), "ACL", "SETUSER", "u", "on", ">right", "~*", "&*", "+@all"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := redistest.Do(bad.Addr(), "ACL", "SETUSER", "u", "resetpass", ">other"); err != nil {
		t.Fatal(err)
	}
	tlsConf := RedisTLSConfig{Enabled: true, CAFile: files.CA, CertFile: files.ClientCert, KeyFile: files.ClientKey}
	tests := []struct {
		name  string
		cfg   RedisConfig
		shard string // expected in the error
		want  string // expected in the error too
	}{
		{"wrong password", RedisConfig{Shards: []string{good.TLSAddr(), bad.TLSAddr()}, Username: "u", Password: "right", TLS: tlsConf},
			"redis shard 1 (" + bad.TLSAddr() + ")", "WRONGPASS"},
		{"no client certificate", RedisConfig{Shards: []string{good.TLSAddr()}, Username: "u", Password: "right",
			TLS: RedisTLSConfig{Enabled: true, CAFile: files.CA}},
			"redis shard 0 (" + good.TLSAddr() + ")", "fanout.redis.tls"},
		{"unknown CA", RedisConfig{Shards: []string{good.TLSAddr()}, Username: "u", Password: "right",
			TLS: RedisTLSConfig{Enabled: true, CAFile: other.CA, CertFile: files.ClientCert, KeyFile: files.ClientKey}},
			"redis shard 0 (" + good.TLSAddr() + ")", "unknown authority"},
		{"client certificate of another CA", RedisConfig{Shards: []string{good.TLSAddr()}, Username: "u", Password: "right",
			TLS: RedisTLSConfig{Enabled: true, CAFile: files.CA, CertFile: other.ClientCert, KeyFile: other.ClientKey}},
			"redis shard 0 (" + good.TLSAddr() + ")", "fanout.redis.tls"},
		{"server name mismatch", RedisConfig{Shards: []string{good.TLSAddr()}, Username: "u", Password: "right",
			TLS: RedisTLSConfig{Enabled: true, CAFile: files.CA, CertFile: files.ClientCert, KeyFile: files.ClientKey, ServerName: "redis.example"}},
			"redis shard 0 (" + good.TLSAddr() + ")", "redis.example"},
		{"plain password wrong", RedisConfig{Shards: []string{plain.Addr()}, Username: "u", Password: "wrong"},
			"redis shard 0 (" + plain.Addr() + ")", "fanout.redis.username/password"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := newRedisFails(t, tc.cfg, 5*time.Second)
			if !strings.Contains(err.Error(), tc.shard) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not name %q and %q", err, tc.shard, tc.want)
			}
			if strings.Contains(err.Error(), "right") {
				t.Fatalf("error %q shows the password", err)
			}
		})
	}
	// The same configuration with the right password starts.
	b := newTestRedis(t, RedisConfig{Shards: []string{good.TLSAddr()}, Username: "u", Password: "right", TLS: tlsConf}, nil)
	waitHealthy(t, b, 5*time.Second)
}

// TestRedisSentinelStart: a Sentinel master set works as a shard, through
// a sentinel reached over TLS as an ACL user; a wrong master or sentinel
// password, a sentinel certificate of an unknown CA or an unknown master
// set stops NewRedis naming the shard.
func TestRedisSentinelStart(t *testing.T) {
	files, other := redistest.NewTLS(t), redistest.NewTLS(t)
	m := redistest.Start(t)
	if _, err := redistest.Do(m.Addr(), "ACL", "SETUSER", "u", "on", ">right", "~*", "&*", "+@all"); err != nil {
		t.Fatal(err)
	}
	ss := redistest.StartSentinels(t, 1, []redistest.Monitor{{Name: "set-a", Master: m.Addr()}},
		redistest.TLS(files, false), redistest.Args("--user", "herald-s", "on", ">sentinel-pw", "+@all"))
	sentinel := RedisSentinelConfig{MasterSets: []string{"set-a"}, Addrs: []string{ss[0].TLSAddr()},
		Username: "herald-s", Password: "sentinel-pw", TLS: RedisTLSConfig{Enabled: true, CAFile: files.CA}}
	wrongSentinelPW, otherCA := sentinel, sentinel
	wrongSentinelPW.Password = "nope"
	otherCA.TLS.CAFile = other.CA
	c := newCollector()
	b := newTestRedis(t, RedisConfig{Sentinel: sentinel, Prefix: testPrefix(t), Username: "u", Password: "right"}, c.handle)
	roundTrip(t, b, b, c, 1)
	if h := b.ShardHealth(); len(h) != 1 || h[0].Addr != "sentinel:set-a" || !h[0].Healthy {
		t.Fatalf("ShardHealth: %+v", h)
	}
	for _, tc := range []struct {
		name string
		cfg  RedisConfig
		want string
	}{
		{"wrong password", RedisConfig{Sentinel: sentinel, Username: "u", Password: "wrong"}, "WRONGPASS"},
		{"wrong sentinel password", RedisConfig{Sentinel: wrongSentinelPW, Username: "u", Password: "right"}, "WRONGPASS"},
		{"sentinel certificate of another CA", RedisConfig{Sentinel: otherCA, Username: "u", Password: "right"}, "unknown authority"},
		{"unknown master set", RedisConfig{Sentinel: RedisSentinelConfig{MasterSets: []string{"set-a", "nope"}, Addrs: sentinel.Addrs,
			Username: "herald-s", Password: "sentinel-pw", TLS: sentinel.TLS},
			Username: "u", Password: "right"}, "redis shard 1 (sentinel master set nope via " + ss[0].TLSAddr() + ")"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := newRedisFails(t, tc.cfg, 10*time.Second)
			if !strings.Contains(err.Error(), "redis shard") || !strings.Contains(err.Error(), "sentinel master set") || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not name the shard and %q", err, tc.want)
			}
		})
	}
}

// newRedisFails calls NewRedis with cfg, which must fail within within,
// and returns the error.
func newRedisFails(t *testing.T, cfg RedisConfig, within time.Duration) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	b, err := NewRedis(ctx, cfg, nil)
	if err == nil {
		b.Close()
		t.Fatal("NewRedis succeeded")
	}
	if d := time.Since(start); d > within {
		t.Errorf("NewRedis took %s to fail", d)
	}
	t.Log(err)
	return err
}
