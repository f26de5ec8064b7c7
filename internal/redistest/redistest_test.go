package redistest

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"testing"
	"time"
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

// TestTLS: the TLS port serves the test CA's server certificate and, when
// client certificates are required, refuses a client without one.
func TestTLS(t *testing.T) {
	f := NewTLS(t)
	for _, required := range []bool{false, true} {
		s := Start(t, TLS(f, required))
		pool := x509.NewCertPool()
		pem, err := os.ReadFile(f.CA)
		if err != nil || !pool.AppendCertsFromPEM(pem) {
			t.Fatalf("CA %s: %v", f.CA, err)
		}
		ping := func(certs []tls.Certificate) error {
			c, err := tls.Dial("tcp", s.TLSAddr(), &tls.Config{RootCAs: pool, Certificates: certs})
			if err != nil {
				return err
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(5 * time.Second))
			if _, err := c.Write([]byte("PING\r\n")); err != nil {
				return err
			}
			line, err := bufio.NewReader(c).ReadString('\n')
			if err != nil {
				return err
			}
			if line != "+PONG\r\n" {
				return fmt.Errorf("reply %q", line)
			}
			return nil
		}
		cert, err := tls.LoadX509KeyPair(f.ClientCert, f.ClientKey)
		if err != nil {
			t.Fatal(err)
		}
		if err := ping([]tls.Certificate{cert}); err != nil {
			t.Fatalf("required=%v: PING with a client certificate: %v", required, err)
		}
		if err := ping(nil); (err == nil) == required {
			t.Fatalf("required=%v: PING without a client certificate: %v", required, err)
		}
	}
}

// TestSentinelFailover: killing the master makes the sentinels promote
// the replica.
func TestSentinelFailover(t *testing.T) {
	m := Start(t)
	r := StartReplica(t, m.Addr())
	ss := StartSentinels(t, 3, []Monitor{{Name: "m1", Master: m.Addr(), Replicas: 1}})
	if got, err := SentinelMaster(ss[0].Addr(), "m1"); err != nil || got != m.Addr() {
		t.Fatalf("master %q %v, want %s", got, err, m.Addr())
	}
	m.Kill()
	deadline := time.Now().Add(20 * time.Second)
	for {
		got, err := SentinelMaster(ss[1].Addr(), "m1")
		if err == nil && got == r.Addr() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no failover to %s: %q %v", r.Addr(), got, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
