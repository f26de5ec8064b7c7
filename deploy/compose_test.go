package deploy

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/heraldrt/herald/config"
)

// TestComposeFile checks compose.yaml without a container runtime: the
// Herald service's environment is a config Herald accepts (with the
// required secrets filled in), it points at the Redis service, and the
// stop grace period exceeds the drain.
func TestComposeFile(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "compose.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		Services map[string]struct {
			Image           string            `yaml:"image"`
			Environment     map[string]string `yaml:"environment"`
			Ports           []string          `yaml:"ports"`
			StopGracePeriod string            `yaml:"stop_grace_period"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(raw, &c); err != nil {
		t.Fatalf("compose.yaml: %v", err)
	}
	h, ok := c.Services["herald"]
	if !ok || c.Services["redis"].Image == "" {
		t.Fatalf("compose.yaml needs services herald and redis, has %v", c.Services)
	}
	if !strings.HasPrefix(h.Image, "herald:") {
		t.Errorf("herald image %q is not the tag `make image` builds", h.Image)
	}
	// ${NAME:?msg} and ${NAME:-default}: fill the required ones with test values.
	subst := regexp.MustCompile(`\$\{([A-Z_]+)(:[?-])?([^}]*)\}`)
	fill := map[string]string{
		"HERALD_AUTH__JWT__HMAC_SECRET": "compose-secret-0123456789abcdef0123456789",
		"HERALD_API__KEY":               "compose-api-key-0123456789",
	}
	var env []string
	for k, v := range h.Environment {
		v = subst.ReplaceAllStringFunc(v, func(m string) string {
			g := subst.FindStringSubmatch(m)
			if g[2] == ":-" {
				return g[3]
			}
			if f, ok := fill[g[1]]; ok {
				return f
			}
			t.Fatalf("compose.yaml: no test value for ${%s}", g[1])
			return ""
		})
		env = append(env, k+"="+v)
	}
	fs := config.Flags()
	_ = fs.Parse([]string{"--config", filepath.Join(t.TempDir(), "none.yaml")})
	fs.Lookup("config").Changed = false // the image's default file is not needed for this check
	cfg, err := config.Load(fs, env)
	if err != nil {
		t.Fatalf("compose.yaml's environment is not a valid Herald config: %v", err)
	}
	if cfg.Fanout.Broker != "redis" || len(cfg.Fanout.Redis.Shards) != 1 || !strings.HasPrefix(cfg.Fanout.Redis.Shards[0], "redis:") {
		t.Errorf("compose Herald does not use the redis service: broker %q shards %v", cfg.Fanout.Broker, cfg.Fanout.Redis.Shards)
	}
	if len(h.Ports) == 0 || !strings.HasSuffix(h.Ports[0], ":8000") {
		t.Errorf("ports %v do not publish 8000", h.Ports)
	}
	if h.StopGracePeriod == "" {
		t.Error("stop_grace_period is not set (the default 10s is shorter than server.shutdown_timeout)")
	}
}
