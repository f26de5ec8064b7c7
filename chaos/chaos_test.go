package chaos

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/heraldrt/herald/fanout"
	"github.com/heraldrt/herald/internal/redistest"
)

// faults is the suite: one entry per fault. To add one, append a Fault
// (see run.go); Run does the traffic, clients, counting and assertions.
var faults = []Fault{
	{
		Name:   "redis shard SIGKILL, restarted empty",
		Short:  true,
		Inject: func(t testing.TB, e *Env) { e.Shards[0].Kill() },
		Heal:   func(t testing.TB, e *Env) { e.Shards[0].Restart() },
	},
	{
		Name:  "redis shard restored from an older snapshot",
		Short: true,
		Inject: func(t testing.TB, e *Env) {
			if _, err := redistest.Do(e.Shards[0].Addr(), "SAVE"); err != nil {
				t.Fatal(err)
			}
			time.Sleep(300 * time.Millisecond) // publishes the snapshot will not have
			e.Shards[0].Kill()
		},
		Heal: func(t testing.TB, e *Env) { e.Shards[0].RestartFromDisk() },
	},
	{
		Name:  "failover to a lagging replica",
		Short: true,
		Inject: func(t testing.TB, e *Env) {
			replica := redistest.Start(t)
			e.Shards = append(e.Shards, replica) // index 2: kept for Heal
			host, port, _ := strings.Cut(e.Shards[0].Addr(), ":")
			if _, err := redistest.Do(replica.Addr(), "REPLICAOF", host, port); err != nil {
				t.Fatal(err)
			}
			waitFor(t, 10*time.Second, "replica in sync", func() bool {
				info, err := redistest.Do(replica.Addr(), "INFO", "replication")
				s, _ := info.(string)
				return err == nil && strings.Contains(s, "master_link_status:up")
			})
			// From now on the replica lags: it misses what the master takes.
			if _, err := redistest.Do(replica.Addr(), "REPLICAOF", "NO", "ONE"); err != nil {
				t.Fatal(err)
			}
		},
		Heal: func(t testing.TB, e *Env) {
			e.Shards[0].Kill()
			e.Proxies[0].Retarget(e.Shards[2].Addr())
		},
	},
	{
		Name:   "partition Herald-shard (blackhole)",
		Short:  true,
		Hold:   2 * time.Second,
		Inject: func(t testing.TB, e *Env) { e.Proxies[0].Blackhole() },
		Heal:   func(t testing.TB, e *Env) { e.Proxies[0].Heal() },
	},
	{
		Name:   "link to a shard reset (TCP RST)",
		Short:  true,
		Inject: func(t testing.TB, e *Env) { e.Proxies[0].ResetPeer() },
		Heal:   func(t testing.TB, e *Env) { e.Proxies[0].Heal() },
	},
	{
		Name:   "link to a shard refused",
		Inject: func(t testing.TB, e *Env) { e.Proxies[1].Down() },
		Heal:   func(t testing.TB, e *Env) { e.Proxies[1].Up() },
	},
	{
		Name:   "link to a shard slowed (300 ms)",
		Inject: func(t testing.TB, e *Env) { e.Proxies[0].Delay(300 * time.Millisecond) },
		Heal:   func(t testing.TB, e *Env) { e.Proxies[0].Heal() },
	},
	{
		Name:          "Redis Cluster master SIGKILL, replica promoted",
		Short:         true,
		Topology:      Topology{Setup: startCluster},
		Hold:          time.Millisecond, // the cluster heals itself: recovery counts from the kill
		RecoverWithin: 10 * time.Second,
		Inject: func(t testing.TB, e *Env) {
			// The master serving user:<first user>'s partition.
			key := "chaos:{p" + strconv.Itoa(fanout.ShardIndex("user:"+e.Users[0], 8)) + "}meta:user:" + e.Users[0]
			m, err := e.Cluster.MasterOf(key)
			if err != nil {
				t.Fatal(err)
			}
			m.Kill()
		},
	},
	{
		Name:          "Sentinel master SIGKILL, replica promoted",
		Short:         true,
		Topology:      Topology{Setup: startSentinels},
		Hold:          time.Millisecond, // the sentinels heal it: recovery counts from the kill
		RecoverWithin: 10 * time.Second,
		Inject:        func(t testing.TB, e *Env) { e.Shards[e.ShardOf(e.Users[0])].Kill() },
		Check:         sentinelReport,
	},
	{
		Name:          "Sentinel master frozen (SIGSTOP), replica promoted",
		Topology:      Topology{Setup: startSentinels},
		Hold:          time.Millisecond,
		RecoverWithin: 10 * time.Second,
		Inject:        func(t testing.TB, e *Env) { e.Shards[e.ShardOf(e.Users[0])].Pause() },
		Heal: func(t testing.TB, e *Env) {
			t.Cleanup(e.Shards[e.ShardOf(e.Users[0])].Resume) // after counting: it rejoins as a replica
		},
		Check: sentinelReport,
	},
	{
		Name:   "Herald node SIGKILL",
		Short:  true,
		Inject: func(t testing.TB, e *Env) { e.Nodes[1].Kill() },
		Heal: func(t testing.TB, e *Env) {
			e.Nodes[1].Start()
			e.Nodes[1].WaitReady(30 * time.Second)
		},
	},
}

// startCluster starts a 3-master, 3-replica Redis Cluster for the nodes
// (8 partitions).
func startCluster(t testing.TB, e *Env) {
	e.Cluster = redistest.StartClusterWithReplicas(t, 3, 1)
	e.Env = append(e.Env, "HERALD_FANOUT__REDIS__CLUSTER="+strings.Join(e.Cluster.Addrs(), ","), "HERALD_FANOUT__REDIS__PARTITIONS=8")
}

// startSentinels starts two Sentinel master sets (a master and a replica
// each) watched by three sentinels, and points the nodes at them. e.Shards
// are the masters.
func startSentinels(t testing.TB, e *Env) {
	var monitors []redistest.Monitor
	for i, name := range []string{"chaos-a", "chaos-b"} {
		m := redistest.Start(t)
		redistest.StartReplica(t, m.Addr())
		e.Shards = append(e.Shards, m)
		monitors = append(monitors, redistest.Monitor{Name: name, Master: e.Shards[i].Addr(), Replicas: 1})
	}
	var addrs []string
	for _, s := range redistest.StartSentinels(t, 3, monitors) {
		addrs = append(addrs, s.Addr())
	}
	e.Env = append(e.Env, "HERALD_FANOUT__REDIS__SENTINEL__MASTER_SETS=chaos-a,chaos-b",
		"HERALD_FANOUT__REDIS__SENTINEL__ADDRS="+strings.Join(addrs, ","))
}

// sentinelReport logs what the sentinels and the nodes saw when a Sentinel
// fault did not recover in time (a sentinel in TILT mode, a failed
// election, a node still on the old master).
func sentinelReport(t testing.TB, e *Env, r Result) {
	if r.Recovered {
		return
	}
	for _, kv := range e.Env {
		addrs, ok := strings.CutPrefix(kv, "HERALD_FANOUT__REDIS__SENTINEL__ADDRS=")
		if !ok {
			continue
		}
		for _, a := range strings.Split(addrs, ",") {
			info, err := redistest.Do(a, "INFO", "sentinel")
			t.Logf("sentinel %s: %v %v", a, info, err)
			for _, set := range []string{"chaos-a", "chaos-b"} {
				m, err := redistest.SentinelMasterInfo(a, set)
				t.Logf("sentinel %s %s: %v %v", a, set, m, err)
			}
		}
	}
	for i, n := range e.Nodes {
		code, body := n.Get("/readyz")
		t.Logf("node %d /readyz: %d %s", i, code, body)
	}
}

// TestChaos runs every fault (the short ones unless CHAOS_LONG=1) and
// prints the table; CHAOS_TABLE=<file> also writes it to a file.
func TestChaos(t *testing.T) {
	testingLong = os.Getenv("CHAOS_LONG") == "1"
	if testing.Short() {
		t.Skip("-short")
	}
	var results []Result
	for _, f := range faults {
		if !f.Short && !testingLong {
			continue
		}
		t.Run(strings.NewReplacer(" ", "_", "|", "").Replace(f.Name), func(t *testing.T) {
			results = append(results, Run(t, f))
		})
	}
	var b strings.Builder
	WriteTable(&b, results)
	fmt.Print(b.String())
	t.Log("\n" + b.String())
	if p := os.Getenv("CHAOS_TABLE"); p != "" {
		if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
			t.Error(err)
		}
	}
}
