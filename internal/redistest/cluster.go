package redistest

import (
	"context"
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
	c.Nodes = createCluster(t, masters*(1+replicas), replicas, "1000")
	var addrs []string
	for _, n := range c.Nodes {
		addrs = append(addrs, n.Addr())
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

// createTimeout bounds one `redis-cli --cluster create`: it waits for the
// nodes to meet with no timeout of its own, and a node that never joins
// (seen once in CI, 6 minutes until the test binary was killed) would
// hang the test until go test's own timeout.
const createTimeout = 45 * time.Second

// createCluster starts n cluster nodes and joins them into a cluster with
// replicas replicas per master. A create that fails or hangs is retried
// (up to three times) on fresh nodes.
func createCluster(t testing.TB, n, replicas int, nodeTimeout string) []*Server {
	t.Helper()
	var last string
	for attempt := range 3 {
		var nodes []*Server
		args := []string{"--cluster", "create"}
		for range n {
			srv := startClusterNode(t, nodeTimeout)
			nodes = append(nodes, srv)
			args = append(args, srv.Addr())
		}
		args = append(args, "--cluster-replicas", strconv.Itoa(replicas), "--cluster-yes")
		ctx, cancel := context.WithTimeout(context.Background(), createTimeout)
		out, err := exec.CommandContext(ctx, "redis-cli", args...).CombinedOutput()
		cancel()
		if err == nil {
			return nodes
		}
		last = fmt.Sprintf("attempt %d: %v\n%s", attempt+1, err, tail(out, 20))
		t.Logf("redistest: redis-cli --cluster create failed, retrying on fresh nodes: %s", last)
		for _, srv := range nodes {
			srv.Kill()
		}
	}
	t.Fatalf("redistest: redis-cli --cluster create: %s", last)
	return nil
}

// tail returns the last lines of out.
func tail(out []byte, lines int) string {
	l := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	return strings.Join(l[max(0, len(l)-lines):], "\n")
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
