package deploy

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/heraldrt/herald/internal/heraldtest"
	"github.com/heraldrt/herald/internal/redistest"
)

// TestPrometheusRules runs `promtool check rules` and the rules' unit tests
// (`promtool test rules`).
func TestPrometheusRules(t *testing.T) {
	promtool := need(t, "promtool")
	out := run(t, promtool, "check", "rules", "prometheus/herald-rules.yaml")
	if !strings.Contains(out, "SUCCESS") {
		t.Fatalf("promtool check rules: %s", out)
	}
	cmd := exec.Command(promtool, "test", "rules", "herald-rules.test.yaml")
	cmd.Dir = "prometheus"
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("promtool test rules: %v\n%s", err, out)
	}
}

// TestQueriesAgainstPrometheus starts a real Herald node (Redis broker and
// channels_redis ingest, so every metric family exists), gives it some
// traffic, and a real Prometheus (the Debian binary) that scrapes it every
// second and loads herald-rules.yaml. Then every PromQL expression of the
// Grafana dashboard and of docs/observability.md must evaluate without
// error, and every metric name they use must be one Herald exports (a typo
// evaluates fine, to nothing); every rule must evaluate healthy.
func TestQueriesAgainstPrometheus(t *testing.T) {
	promBin := need(t, "prometheus")
	redis := redistest.Start(t)
	bin := heraldtest.Build(t, heraldtest.LDFlags(t, "v0.0.0-prom"))
	env := append(heraldtest.Env(),
		"HERALD_FANOUT__BROKER=redis",
		"HERALD_FANOUT__REDIS__SHARDS="+redis.Addr(),
		"HERALD_COMPAT__CHANNELS_REDIS__ENABLED=true",
		"HERALD_COMPAT__CHANNELS_REDIS__HOSTS=redis://"+redis.Addr(),
	)
	node := heraldtest.Start(t, bin, env)
	heraldtest.Smoke(t, node.Addr) // a connection, a publish, a delivery
	// A refused connect (an admission rejection) and a client that leaves
	// (a disconnect).
	if c, _, err := (&websocket.Dialer{}).Dial("ws://"+node.Addr+"/ws/notifications/?token=bad", nil); err == nil {
		c.Close()
		t.Fatal("a bad token connected")
	}
	if c, _, err := heraldtest.DialWS(t, node.Addr, "7"); err != nil {
		t.Fatal(err)
	} else {
		c.Close()
	}

	// Prometheus on a free loopback port, scraping every second, rules
	// evaluated every second.
	dir := t.TempDir()
	rules, err := os.ReadFile("prometheus/herald-rules.yaml")
	if err != nil {
		t.Fatal(err)
	}
	rulesFile := filepath.Join(dir, "rules.yaml")
	_ = os.WriteFile(rulesFile, regexp.MustCompile(`interval: \d+s`).ReplaceAll(rules, []byte("interval: 1s")), 0o644)
	promAddr := freeAddr(t)
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: [%q]
scrape_configs:
  - job_name: herald
    static_configs:
      - targets: [%q]
`, rulesFile, node.Addr)
	cfgFile := filepath.Join(dir, "prometheus.yml")
	_ = os.WriteFile(cfgFile, []byte(cfg), 0o644)
	prom := exec.Command(promBin, "--config.file="+cfgFile, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+promAddr, "--log.level=warn")
	var promLog strings.Builder
	prom.Stdout, prom.Stderr = &promLog, &promLog
	if err := prom.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = prom.Process.Kill(); _ = prom.Wait() })
	api := "http://" + promAddr + "/api/v1/"

	// Wait for a few scrapes, so rate() over them has points.
	waitFor(t, 60*time.Second, func() bool {
		r, err := query(api, `count_over_time(herald_build_info{job="herald", version="v0.0.0-prom"}[1m])`)
		return err == nil && len(r) == 1 && r[0].Value[1].(string) >= "4"
	}, func() string { return "Prometheus never scraped Herald 4 times:\n" + promLog.String() })

	// Names Herald exports: those on /metrics now, and those the telemetry
	// package registers (a labelled family shows up only once it has a
	// child, e.g. after the first stream_reset).
	metrics := exported(t, node.Addr)
	src, _ := filepath.Glob(filepath.Join("..", "telemetry", "*.go"))
	for _, f := range src {
		b, _ := os.ReadFile(f)
		for _, m := range regexp.MustCompile(`"(herald_[a-z_]+)"`).FindAllStringSubmatch(string(b), -1) {
			metrics[m[1]] = true
		}
	}
	var exprs []string
	dash := dashboardExprs(t)
	if len(dash) < 20 {
		t.Fatalf("only %d dashboard expressions found", len(dash))
	}
	exprs = append(exprs, dash...)
	docs := docExprs(t)
	if len(docs) < 5 {
		t.Fatalf("only %d PromQL lines found in docs/observability.md", len(docs))
	}
	exprs = append(exprs, docs...)
	empty := 0
	for _, e := range exprs {
		for _, name := range regexp.MustCompile(`\b(herald_[a-z_]+|process_[a-z_]+|go_[a-z_]+)\b`).FindAllString(e, -1) {
			if !metrics[name] {
				t.Errorf("%s uses %s, which Herald does not export", e, name)
			}
		}
		res, err := query(api, e)
		if err != nil {
			t.Errorf("query %s: %v", e, err)
			continue
		}
		if len(res) == 0 {
			empty++
		}
	}
	t.Logf("%d expressions evaluated (%d dashboard, %d docs); %d returned no series (no such event yet, e.g. no slow consumer)",
		len(exprs), len(dash), len(docs), empty)
	// The queries that must have data after the smoke traffic.
	for _, e := range []string{
		`sum(herald_connections{instance=~".*"})`,
		`sum by (transport) (herald_connects_total)`,
		`min by (shard) (herald_redis_shard_up) == 1`,
		`sum by (result) (herald_channels_redis_messages_total)`,
		`sum by (reason) (herald_admission_rejections_total)`,
		`sum by (reason) (herald_disconnects_total)`,
		`herald:connections:sum`,
	} {
		waitFor(t, 30*time.Second, func() bool { r, err := query(api, e); return err == nil && len(r) > 0 },
			func() string { return e + " stayed empty" })
	}

	// Every rule evaluates healthy.
	waitFor(t, 30*time.Second, func() bool {
		var body struct {
			Data struct {
				Groups []struct {
					Rules []struct {
						Name, Health, LastError string
					}
				}
			}
		}
		if err := getJSON(api+"rules", &body); err != nil {
			return false
		}
		n := 0
		for _, g := range body.Data.Groups {
			for _, r := range g.Rules {
				if r.Health != "ok" {
					if r.LastError != "" {
						t.Fatalf("rule %s: %s", r.Name, r.LastError)
					}
					return false
				}
				n++
			}
		}
		return n >= 14
	}, func() string { return "rules never all healthy" })
}

type sample struct {
	Metric map[string]string `json:"metric"`
	Value  []any             `json:"value"`
}

func query(api, expr string) ([]sample, error) {
	var body struct {
		Status    string `json:"status"`
		Error     string `json:"error"`
		ErrorType string `json:"errorType"`
		Data      struct {
			ResultType string          `json:"resultType"`
			Result     json.RawMessage `json:"result"`
		} `json:"data"`
	}
	if err := getJSON(api+"query?query="+url.QueryEscape(expr), &body); err != nil {
		return nil, err
	}
	if body.Status != "success" {
		return nil, fmt.Errorf("%s: %s", body.ErrorType, body.Error)
	}
	var out []sample
	if body.Data.ResultType == "vector" {
		if err := json.Unmarshal(body.Data.Result, &out); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func getJSON(u string, v any) error {
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Get(u)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return json.NewDecoder(resp.Body).Decode(v)
}

// exported lists the metric names on a node's /metrics (histograms by
// their family name and _bucket/_sum/_count).
func exported(t *testing.T, addr string) map[string]bool {
	code, body := heraldtest.Get(t, "http://"+addr+"/metrics")
	if code != 200 {
		t.Fatalf("/metrics: %d", code)
	}
	out := map[string]bool{}
	for _, line := range strings.Split(body, "\n") {
		if f, ok := strings.CutPrefix(line, "# TYPE "); ok {
			parts := strings.Fields(f)
			out[parts[0]] = true
			if parts[1] == "histogram" || parts[1] == "summary" {
				for _, s := range []string{"_bucket", "_sum", "_count"} {
					out[parts[0]+s] = true
				}
			}
		}
	}
	return out
}

// grafanaVars replaces the dashboard's variables by what Grafana would send.
var grafanaVars = strings.NewReplacer("$__rate_interval", "1m", "$instance", ".*", "${instance}", ".*")

// dashboardExprs returns every PromQL expression in the dashboard: panel
// targets, and label_values() variable queries as the PromQL they run.
func dashboardExprs(t *testing.T) []string {
	raw, err := os.ReadFile("grafana/herald-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash any
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("dashboard JSON: %v", err)
	}
	var out []string
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if e, ok := v["expr"].(string); ok {
				out = append(out, grafanaVars.Replace(e))
			}
			if q, ok := v["query"].(map[string]any); ok {
				if s, ok := q["query"].(string); ok {
					m := regexp.MustCompile(`^label_values\((.+),\s*(\w+)\)$`).FindStringSubmatch(s)
					if m == nil {
						t.Errorf("variable query %q is not label_values(metric, label)", s)
					} else {
						out = append(out, "group by ("+m[2]+") ("+m[1]+")")
					}
				}
			}
			keys := make([]string, 0, len(v))
			for k := range v {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				walk(v[k])
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(dash)
	return out
}

// docExprs returns the PromQL lines of docs/observability.md's promql
// blocks, without their trailing comments.
func docExprs(t *testing.T) []string {
	raw, err := os.ReadFile(filepath.Join("..", "docs", "observability.md"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, block := range regexp.MustCompile("(?s)```promql\n(.*?)```").FindAllStringSubmatch(string(raw), -1) {
		for _, line := range strings.Split(block[1], "\n") {
			if i := strings.Index(line, " #"); i >= 0 {
				line = line[:i]
			}
			if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
				out = append(out, line)
			}
		}
	}
	return out
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func waitFor(t *testing.T, timeout time.Duration, ok func() bool, why func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatal(why())
		}
		time.Sleep(200 * time.Millisecond)
	}
}
