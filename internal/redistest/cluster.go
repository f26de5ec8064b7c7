package redistest

import (
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Cluster is a Redis Cluster of masters with replicas, owned by a test.
type Cluster struct {
	t testing.TB
	// Nodes are every node, masters first (as created).
	Nodes []*Server
}

// StartClusterWithReplicas starts a Redis Cluster of masters masters with
// replicas replicas each and a short cluster-node-timeout (1 s), so a
// killed master's replica is promoted within a few seconds. It waits until
// every node reports cluster_state:ok and every master has its replicas.
func StartClusterWithReplicas(t testing.TB, masters, replicas int) *Cluster {
	t.Helper()
	available(t, "redis-server", "redis-cli")
	if masters < 3 {
		t.Fatalf("redistest: a cluster needs at least 3 masters, not %d", masters)
	}
	c := &Cluster{t: t}
	var addrs []string
	for range masters * (1 + replicas) {
		srv := startClusterNode(t, "1000")
		c.Nodes = append(c.Nodes, srv)
		addrs = append(addrs, srv.Addr())
	}
	args := append([]string{"--cluster", "create"}, addrs...)
	args = append(args, "--cluster-replicas", strconv.Itoa(replicas), "--cluster-yes")
	if out, err := exec.Command("redis-cli", args...).CombinedOutput(); err != nil {
		t.Fatalf("redistest: redis-cli --cluster create: %v\n%s", err, out)
	}
	deadline := time.Now().Add(60 * time.Second)
	for _, a := range addrs {
		for {
			info, err := Do(a, "CLUSTER", "INFO")
			s, _ := info.(string)
			if err == nil && strings.Contains(s, "cluster_state:ok") && strings.Contains(s, "cluster_slots_ok:16384") &&
				strings.Contains(s, "cluster_known_nodes:"+strconv.Itoa(len(addrs))+"\r") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("redistest: cluster node %s not ok: %v %v", a, info, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	// Replicas must have synced before a master may fail over to them.
	for {
		synced := 0
		for _, a := range addrs {
			info, err := Do(a, "INFO", "replication")
			s, _ := info.(string)
			if err == nil && (strings.Contains(s, "role:master") || strings.Contains(s, "master_link_status:up")) {
				synced++
			}
		}
		if synced == len(addrs) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("redistest: cluster replicas not in sync")
		}
		time.Sleep(50 * time.Millisecond)
	}
	return c
}

// Addrs returns every node's address (cluster seeds).
func (c *Cluster) Addrs() []string {
	var out []string
	for _, n := range c.Nodes {
		out = append(out, n.Addr())
	}
	return out
}

// MasterOf returns the node that currently serves key's slot as master,
// asking the first live node.
func (c *Cluster) MasterOf(key string) (*Server, error) {
	var lastErr error
	for _, n := range c.Nodes {
		slot, err := Do(n.Addr(), "CLUSTER", "KEYSLOT", key)
		if err != nil {
			lastErr = err
			continue
		}
		nodes, err := Do(n.Addr(), "CLUSTER", "NODES")
		if err != nil {
			lastErr = err
			continue
		}
		s, _ := nodes.(string)
		for _, line := range strings.Split(s, "\n") {
			f := strings.Fields(line)
			if len(f) < 9 || !strings.Contains(f[2], "master") || strings.Contains(f[2], "fail") {
				continue
			}
			for _, r := range f[8:] {
				lo, hi, ok := strings.Cut(r, "-")
				if !ok {
					hi = lo
				}
				l, err1 := strconv.ParseInt(lo, 10, 64)
				h, err2 := strconv.ParseInt(hi, 10, 64)
				if err1 != nil || err2 != nil || slot.(int64) < l || slot.(int64) > h {
					continue
				}
				addr, _, _ := strings.Cut(f[1], "@")
				for _, srv := range c.Nodes {
					if srv.Addr() == addr {
						return srv, nil
					}
				}
				return nil, fmt.Errorf("redistest: master %s of %q is not one of the cluster's nodes", addr, key)
			}
		}
		return nil, fmt.Errorf("redistest: no master serves the slot of %q", key)
	}
	return nil, fmt.Errorf("redistest: no cluster node answers: %w", lastErr)
}
