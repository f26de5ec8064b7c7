package main

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/heraldrt/herald/internal/heraldtest"
	"github.com/heraldrt/herald/internal/redistest"
)

// TestRedisRefusalStopsStart: the herald process given a wrong Redis
// password or no client certificate for a shard that requires one exits
// within seconds, naming the shard and not printing the password.
func TestRedisRefusalStopsStart(t *testing.T) {
	files := redistest.NewTLS(t)
	good := redistest.Start(t, redistest.TLS(files, true))
	bad := redistest.Start(t, redistest.TLS(files, true))
	for i, s := range []*redistest.Server{good, bad} {
		pw := []string{">right-pw-1234", ">other-pw-5678"}[i]
		if _, err := redistest.Do(s.Addr(), "ACL", "SETUSER", "u", "on", pw, "~*", "&*", "+@all"); err != nil {
			t.Fatal(err)
		}
	}
	bin := heraldtest.Build(t, "")
	base := append(heraldtest.Env(), "HERALD_FANOUT__BROKER=redis", "HERALD_FANOUT__REDIS__USERNAME=u",
		"HERALD_FANOUT__REDIS__PASSWORD=right-pw-1234", "HERALD_FANOUT__REDIS__TLS__ENABLED=true",
		"HERALD_FANOUT__REDIS__TLS__CA_FILE="+files.CA)
	withCert := []string{"HERALD_FANOUT__REDIS__TLS__CERT_FILE=" + files.ClientCert, "HERALD_FANOUT__REDIS__TLS__KEY_FILE=" + files.ClientKey}
	for _, tc := range []struct {
		name string
		env  []string
		want []string
	}{
		{"wrong password on shard 1", append([]string{"HERALD_FANOUT__REDIS__SHARDS=" + good.TLSAddr() + "," + bad.TLSAddr()}, withCert...),
			[]string{"redis shard 1 (" + bad.TLSAddr() + ")", "WRONGPASS"}},
		{"no client certificate", []string{"HERALD_FANOUT__REDIS__SHARDS=" + good.TLSAddr()},
			[]string{"redis shard 0 (" + good.TLSAddr() + ")", "certificate required", "fanout.redis.tls"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin)
			cmd.Dir = t.TempDir() // no configs/herald.yaml here
			cmd.Env = append(append([]string(nil), base...), tc.env...)
			start := time.Now()
			out, err := cmd.CombinedOutput()
			if err == nil || ctx.Err() != nil {
				t.Fatalf("herald did not stop with an error (err %v, ctx %v):\n%s", err, ctx.Err(), out)
			}
			if d := time.Since(start); d > 10*time.Second {
				t.Errorf("herald took %s to stop", d)
			}
			t.Logf("%s", out)
			for _, w := range tc.want {
				if !strings.Contains(string(out), w) {
					t.Errorf("output does not contain %q:\n%s", w, out)
				}
			}
			if strings.Contains(string(out), "right-pw-1234") {
				t.Errorf("output shows the password:\n%s", out)
			}
		})
	}
}
