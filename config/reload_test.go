package config

import (
	"slices"
	"testing"
)

func TestDiffAndCopyKey(t *testing.T) {
	a := Default()
	b := Default()
	b.Limits.PerUser = 3
	b.Server.AllowedOrigins = []string{"https://app.example"}
	b.Fanout.Redis.Shards = []string{"127.0.0.1:7000"}
	b.Server.Listen = "127.0.0.1:9"
	got := Diff(a, b)
	want := []string{"server.listen", "server.allowed_origins", "fanout.redis.shards", "limits.per_user"}
	if !slices.Equal(got, want) {
		t.Fatalf("Diff = %v, want %v", got, want)
	}
	if len(Diff(a, a)) != 0 {
		t.Fatal("Diff of a config with itself is not empty")
	}
	for _, k := range []string{"server.listen", "fanout.redis.shards"} {
		if !CopyKey(&b, a, k) {
			t.Fatalf("CopyKey(%s) found no key", k)
		}
	}
	if got := Diff(a, b); !slices.Equal(got, []string{"server.allowed_origins", "limits.per_user"}) {
		t.Fatalf("after restoring listen and shards, Diff = %v", got)
	}
	if CopyKey(&b, a, "limits.nope") {
		t.Fatal("CopyKey accepted an unknown key")
	}
}
