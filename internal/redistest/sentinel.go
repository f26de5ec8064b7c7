package redistest

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Monitor is a master set watched by the sentinels of StartSentinels.
type Monitor struct {
	// Name is the master set name.
	Name string
	// Master is the master's "127.0.0.1:port".
	Master string
	// Replicas is how many replicas the sentinels must have discovered
	// before StartSentinels returns.
	Replicas int
	// AuthUser and AuthPass, when set, are the credentials the sentinels
	// use on the master set's servers.
	AuthUser, AuthPass string
}

// StartReplica starts a redis-server replicating from master ("host:port").
// It returns once the replica reports a completed sync.
func StartReplica(t testing.TB, master string, opts ...Option) *Server {
	t.Helper()
	host, port, err := net.SplitHostPort(master)
	if err != nil {
		t.Fatalf("redistest: replica of %q: %v", master, err)
	}
	s := Start(t, append(opts, Args("--replicaof", host, port))...)
	deadline := time.Now().Add(20 * time.Second)
	for {
		info, err := Do(s.Addr(), "INFO", "replication")
		if str, ok := info.(string); err == nil && ok && strings.Contains(str, "master_link_status:up") {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("redistest: replica %s of %s did not sync: %v %v", s.Addr(), master, info, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// StartSentinels starts n Redis Sentinels (redis-server --sentinel) that
// watch the given master sets with a quorum of n/2+1, declare a master down
// after 1 s without an answer and may retry a failover after 4 s. opts
// apply to every sentinel (Args, TLS: a TLS port next to the plain one).
// It returns once every sentinel knows every master, its replicas and the
// other sentinels, so a failover can start; the processes are killed when
// the test ends.
func StartSentinels(t testing.TB, n int, monitors []Monitor, opts ...Option) []*Server {
	t.Helper()
	available(t, "redis-server")
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	var conf strings.Builder
	conf.WriteString("sentinel resolve-hostnames no\n")
	for _, m := range monitors {
		host, port, err := net.SplitHostPort(m.Master)
		if err != nil {
			t.Fatalf("redistest: monitor %s: %v", m.Name, err)
		}
		fmt.Fprintf(&conf, "sentinel monitor %s %s %s %d\n", m.Name, host, port, n/2+1)
		fmt.Fprintf(&conf, "sentinel down-after-milliseconds %s 1000\n", m.Name)
		fmt.Fprintf(&conf, "sentinel failover-timeout %s 2000\n", m.Name)
		fmt.Fprintf(&conf, "sentinel parallel-syncs %s 1\n", m.Name)
		if m.AuthUser != "" {
			fmt.Fprintf(&conf, "sentinel auth-user %s %s\n", m.Name, m.AuthUser)
		}
		if m.AuthPass != "" {
			fmt.Fprintf(&conf, "sentinel auth-pass %s %s\n", m.Name, m.AuthPass)
		}
	}
	var out []*Server
	for range n {
		s := &Server{t: t, conf: conf.String(), args: append([]string{"--sentinel"}, o.args...)}
		if err := s.startOnFreePorts(o.tls); err != nil {
			t.Fatalf("redistest: start sentinel: %v", err)
		}
		t.Cleanup(s.Kill)
		out = append(out, s)
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, s := range out {
		for _, m := range monitors {
			for {
				info, err := SentinelMasterInfo(s.Addr(), m.Name)
				if err == nil && info["flags"] == "master" && info["num-slaves"] == strconv.Itoa(m.Replicas) &&
					info["num-other-sentinels"] == strconv.Itoa(n-1) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("redistest: sentinel %s not ready for %s: %v %v", s.Addr(), m.Name, info, err)
				}
				time.Sleep(50 * time.Millisecond)
			}
		}
	}
	return out
}

// SentinelMasterInfo returns SENTINEL MASTER name as a map.
func SentinelMasterInfo(sentinel, name string) (map[string]string, error) {
	reply, err := Do(sentinel, "SENTINEL", "MASTER", name)
	if err != nil {
		return nil, err
	}
	arr, _ := reply.([]any)
	out := make(map[string]string, len(arr)/2)
	for i := 0; i+1 < len(arr); i += 2 {
		out[fmt.Sprint(arr[i])] = fmt.Sprint(arr[i+1])
	}
	return out, nil
}

// SentinelMaster returns the master address ("ip:port") the sentinel
// currently reports for name.
func SentinelMaster(sentinel, name string) (string, error) {
	reply, err := Do(sentinel, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", name)
	if err != nil {
		return "", err
	}
	arr, ok := reply.([]any)
	if !ok || len(arr) != 2 {
		return "", fmt.Errorf("sentinel %s: no master for %s: %v", sentinel, name, reply)
	}
	return net.JoinHostPort(fmt.Sprint(arr[0]), fmt.Sprint(arr[1])), nil
}
