package redistest

import (
	"testing"
)

func TestStartKillRestart(t *testing.T) {
	s := Start(t)
	if _, err := Do(s.Addr(), "SET", "k", "v"); err != nil {
		t.Fatal(err)
	}
	if v, err := Do(s.Addr(), "GET", "k"); err != nil || v != "v" {
		t.Fatalf("GET: %v %v", v, err)
	}
	s.Kill()
	if _, err := Do(s.Addr(), "PING"); err == nil {
		t.Fatal("PING succeeded after Kill")
	}
	s.Restart()
	if v, err := Do(s.Addr(), "GET", "k"); err != nil || v != nil {
		t.Fatalf("GET after Restart: %v %v, want nil", v, err)
	}
	if n, err := Do(s.Addr(), "DBSIZE"); err != nil || n != int64(0) {
		t.Fatalf("DBSIZE after Restart: %v %v", n, err)
	}
	s.Stop()
	if _, err := Do(s.Addr(), "PING"); err == nil {
		t.Fatal("PING succeeded after Stop")
	}
}

func TestStartCluster(t *testing.T) {
	addrs := StartCluster(t, 3)
	if len(addrs) != 3 {
		t.Fatalf("%d addresses", len(addrs))
	}
	info, err := Do(addrs[0], "CLUSTER", "INFO")
	if err != nil {
		t.Fatal(err)
	}
	t.Log(info)
}
