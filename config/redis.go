package config

import (
	"fmt"
	"net"
	"os"
	"strings"

	"github.com/heraldrt/herald/fanout"
)

// validateRedis checks fanout.redis for the redis broker: exactly one
// topology (shards, cluster or sentinel), addresses, the sentinel section
// and the TLS files. Every problem names its key.
func validateRedis(r fanout.RedisConfig, bad func(key, format string, args ...any)) {
	sentinel := len(r.Sentinel.MasterSets) > 0 || len(r.Sentinel.Addrs) > 0
	n := 0
	for _, set := range []bool{len(r.Shards) > 0, len(r.Cluster) > 0, sentinel} {
		if set {
			n++
		}
	}
	switch {
	case n == 0:
		bad("fanout.redis.shards", "set shards, fanout.redis.cluster or fanout.redis.sentinel for the redis broker")
	case n > 1 && len(r.Cluster) > 0:
		bad("fanout.redis.cluster", "shards, cluster and sentinel are mutually exclusive")
	case n > 1:
		bad("fanout.redis.sentinel", "shards and sentinel are mutually exclusive (sentinel.master_sets lists the shards)")
	}
	hostPorts := func(key string, addrs []string) {
		for i, a := range addrs {
			if _, _, err := net.SplitHostPort(a); err != nil {
				bad(fmt.Sprintf("%s[%d]", key, i), "%q is not host:port", a)
			}
		}
	}
	hostPorts("fanout.redis.shards", r.Shards)
	hostPorts("fanout.redis.cluster", r.Cluster)
	if sentinel {
		s := r.Sentinel
		if len(s.MasterSets) == 0 {
			bad("fanout.redis.sentinel.master_sets", "list one master set name per shard")
		}
		seen := make(map[string]bool, len(s.MasterSets))
		for i, m := range s.MasterSets {
			switch {
			case m == "" || strings.ContainsAny(m, " \t\r\n"):
				bad(fmt.Sprintf("fanout.redis.sentinel.master_sets[%d]", i), "%q is not a master set name", m)
			case seen[m]:
				bad(fmt.Sprintf("fanout.redis.sentinel.master_sets[%d]", i), "%q is listed twice", m)
			}
			seen[m] = true
		}
		if len(s.Addrs) == 0 {
			bad("fanout.redis.sentinel.addrs", "list at least one sentinel host:port")
		}
		hostPorts("fanout.redis.sentinel.addrs", s.Addrs)
		if s.RefreshInterval < 0 {
			bad("fanout.redis.sentinel.refresh_interval", "must not be negative, got %s", s.RefreshInterval)
		}
		if s.Password == "" && s.Username != "" {
			bad("fanout.redis.sentinel.password", "set a password with fanout.redis.sentinel.username")
		}
		validateTLS("fanout.redis.sentinel.tls", s.TLS, bad)
	}
	if r.Password == "" && r.Username != "" {
		bad("fanout.redis.password", "set a password with fanout.redis.username")
	}
	validateTLS("fanout.redis.tls", r.TLS, bad)
}

// validateTLS checks an enabled TLS section under key.
func validateTLS(key string, t fanout.RedisTLSConfig, bad func(key, format string, args ...any)) {
	if !t.Enabled {
		return
	}
	if (t.CertFile == "") != (t.KeyFile == "") {
		bad(key+".cert_file", "set both %s.cert_file and key_file, or neither", key)
	}
	filesOK := true
	for _, kf := range [][2]string{
		{key + ".ca_file", t.CAFile}, {key + ".cert_file", t.CertFile}, {key + ".key_file", t.KeyFile},
	} {
		if kf[1] != "" {
			if _, err := os.Stat(kf[1]); err != nil {
				bad(kf[0], "%v", err)
				filesOK = false
			}
		}
	}
	if filesOK && (t.CertFile == "") == (t.KeyFile == "") {
		if _, err := t.Build(); err != nil {
			bad(key, "%v", err)
		}
	}
}
