package compat

import (
	"bufio"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/heraldrt/herald/internal/redistest"
)

// docCompatACL returns the "ACL SETUSER herald-compat ..." line of
// docs/redis.md as arguments, with the password placeholder replaced.
func docCompatACL(t *testing.T, password string) []string {
	t.Helper()
	f, err := os.Open("../docs/redis.md")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var found []string
	for sc := bufio.NewScanner(f); sc.Scan(); {
		if line := strings.TrimSpace(sc.Text()); strings.HasPrefix(line, "ACL SETUSER herald-compat ") {
			found = append(found, line)
		}
	}
	if len(found) != 1 {
		t.Fatalf("docs/redis.md has %d \"ACL SETUSER herald-compat\" lines, want 1", len(found))
	}
	args := strings.Fields(found[0])
	for i, a := range args {
		if a == ">CHANGE-ME" {
			args[i] = ">" + password
			return args
		}
	}
	t.Fatalf("no >CHANGE-ME placeholder in %s", found[0])
	return nil
}

// TestTLSAndACLHosts: the ingest reads real channels_redis group_send
// traffic (both layers) from rediss:// hosts with a test CA, with and
// without a client certificate, as the ACL user of docs/redis.md, and
// Redis logs no denied command; a wrong password or a missing client
// certificate stops NewIngest naming the host, password redacted.
func TestTLSAndACLHosts(t *testing.T) {
	py := pythonWith(t, "channels_redis", "asgiref", "msgpack")
	files := redistest.NewTLS(t)
	const password = "compat-acl-pw-42"
	for _, tc := range []struct {
		layer       string
		clientCerts bool
	}{{"core", true}, {"pubsub", false}} {
		t.Run(fmt.Sprintf("%s/client_certs=%v", tc.layer, tc.clientCerts), func(t *testing.T) {
			var hosts []*redistest.Server
			for range 2 {
				h := redistest.Start(t, redistest.TLS(files, tc.clientCerts))
				if _, err := redistest.Do(h.Addr(), docCompatACL(t, password)...); err != nil {
					t.Fatalf("the herald-compat ACL line of docs/redis.md: %v", err)
				}
				hosts = append(hosts, h)
			}
			cfg := testConfig(tc.layer, hosts...)
			cfg.Hosts = nil
			for _, h := range hosts {
				cfg.Hosts = append(cfg.Hosts, "rediss://herald-compat:"+password+"@"+h.TLSAddr())
			}
			cfg.TLS.CAFile = files.CA
			if tc.clientCerts {
				cfg.TLS.CertFile, cfg.TLS.KeyFile = files.ClientCert, files.ClientKey
			}
			col := newCollector(t, "user:42", "user:7")
			in := startIngest(t, cfg, col.broker)
			in.Interest("user:42")
			in.Interest("user:7")
			syncIngest(t, in)
			// Django sends through the plain ports of the same servers.
			want42 := groupSend(t, py, tc.layer, hosts, "user_42", 602)
			want7 := groupSend(t, py, tc.layer, hosts, "user_7", 603)
			checkSequence(t, col.wait(t, "user:42", len(want42), 10*time.Second), want42)
			checkSequence(t, col.wait(t, "user:7", len(want7), 10*time.Second), want7)
			time.Sleep(500 * time.Millisecond) // renewals and verifications run too
			in.Close()
			for _, h := range hosts {
				log, err := redistest.Do(h.Addr(), "ACL", "LOG")
				if err != nil {
					t.Fatal(err)
				}
				if entries, _ := log.([]any); len(entries) != 0 {
					t.Fatalf("Redis %s denied the herald-compat user: %v", h.Addr(), log)
				}
			}

			// Refusals fail fast and name the host.
			bad := cfg
			bad.Hosts = []string{cfg.Hosts[0], "rediss://herald-compat:wrong-pw-7@" + hosts[1].TLSAddr()}
			_, err := NewIngest(bad, col.broker.Publish, testLog(t))
			if err == nil || !strings.Contains(err.Error(), "compat.channels_redis.hosts[1] (rediss://herald-compat:xxxxx@"+hosts[1].TLSAddr()+")") ||
				!strings.Contains(err.Error(), "WRONGPASS") || strings.Contains(err.Error(), "wrong-pw-7") {
				t.Fatalf("wrong password: %v", err)
			}
			if tc.clientCerts {
				bad := cfg
				bad.TLS.CertFile, bad.TLS.KeyFile = "", ""
				_, err := NewIngest(bad, col.broker.Publish, testLog(t))
				if err == nil || !strings.Contains(err.Error(), "compat.channels_redis.hosts[0] (rediss://herald-compat:xxxxx@"+hosts[0].TLSAddr()+")") ||
					!strings.Contains(err.Error(), "certificate required") || strings.Contains(err.Error(), password) {
					t.Fatalf("no client certificate: %v", err)
				}
			}
		})
	}
}
