package deploy

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/yaml"

	"github.com/heraldrt/herald/config"
)

// TestKubernetesManifests decodes every document of deploy/k8s strictly
// into the Kubernetes API types (k8s.io/api: an unknown or misspelt field,
// a wrong type or a bad quantity is an error), checks names and labels
// with the API server's own validation functions, and checks what Herald
// needs: readiness on /readyz, a grace period above the drain, a PDB and
// Services that select the Deployment's pods, and the ConfigMap being a
// config Herald itself accepts.
func TestKubernetesManifests(t *testing.T) {
	files, _ := filepath.Glob("k8s/*.yaml")
	if len(files) == 0 {
		t.Fatal("no manifests in deploy/k8s")
	}
	var deps []appsv1.Deployment
	var pdbs []policyv1.PodDisruptionBudget
	var svcs []corev1.Service
	var sts []appsv1.StatefulSet
	var cms []corev1.ConfigMap
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, doc := range regexp.MustCompile(`(?m)^---\s*$`).Split(string(raw), -1) {
			var meta struct {
				APIVersion string `json:"apiVersion"`
				Kind       string `json:"kind"`
			}
			if err := yaml.Unmarshal([]byte(doc), &meta); err != nil {
				t.Fatalf("%s doc %d: %v", f, i, err)
			}
			if meta.Kind == "" {
				continue // comments only
			}
			var obj any
			switch meta.APIVersion + "/" + meta.Kind {
			case "apps/v1/Deployment":
				deps = append(deps, appsv1.Deployment{})
				obj = &deps[len(deps)-1]
			case "apps/v1/StatefulSet":
				sts = append(sts, appsv1.StatefulSet{})
				obj = &sts[len(sts)-1]
			case "policy/v1/PodDisruptionBudget":
				pdbs = append(pdbs, policyv1.PodDisruptionBudget{})
				obj = &pdbs[len(pdbs)-1]
			case "v1/Service":
				svcs = append(svcs, corev1.Service{})
				obj = &svcs[len(svcs)-1]
			case "v1/ConfigMap":
				cms = append(cms, corev1.ConfigMap{})
				obj = &cms[len(cms)-1]
			default:
				t.Fatalf("%s doc %d: unexpected %s %s", f, i, meta.APIVersion, meta.Kind)
			}
			if err := yaml.UnmarshalStrict([]byte(doc), obj); err != nil {
				t.Errorf("%s doc %d (%s): %v", f, i, meta.Kind, err)
			}
		}
	}
	// The strict decoding is able to fail: a misspelt field is an error.
	var probe appsv1.Deployment
	if err := yaml.UnmarshalStrict([]byte("spec:\n  template:\n    spec:\n      containers:\n        - name: x\n          readinesProbe: {}\n"), &probe); err == nil {
		t.Fatal("a misspelt field decoded without error")
	}
	if len(deps) != 1 || len(pdbs) != 1 || len(sts) != 1 || len(svcs) < 2 || len(cms) != 1 {
		t.Fatalf("want 1 Deployment, 1 PDB, 1 StatefulSet, 1 ConfigMap, Services; got %d %d %d %d %d",
			len(deps), len(pdbs), len(sts), len(cms), len(svcs))
	}
	checkName := func(kind, name string, labels map[string]string) {
		for _, msg := range validation.IsDNS1123Subdomain(name) {
			t.Errorf("%s name %q: %s", kind, name, msg)
		}
		for k, v := range labels {
			for _, msg := range append(validation.IsQualifiedName(k), validation.IsValidLabelValue(v)...) {
				t.Errorf("%s label %s=%s: %s", kind, k, v, msg)
			}
		}
	}

	// The ConfigMap's herald.yaml is a config Herald accepts (secrets come
	// from the Secret as HERALD_* variables, as in the Deployment).
	cmFile := filepath.Join(t.TempDir(), "herald.yaml")
	if err := os.WriteFile(cmFile, []byte(cms[0].Data["herald.yaml"]), 0o600); err != nil {
		t.Fatal(err)
	}
	fs := config.Flags()
	if err := fs.Parse([]string{"--config", cmFile}); err != nil {
		t.Fatal(err)
	}
	hcfg, err := config.Load(fs, []string{"HERALD_API__KEY=k8s-test-api-key-0123", "HERALD_AUTH__JWT__HMAC_SECRET=k8s-test-secret-0123456789abcdef0123",
		"HERALD_ADMIN__KEY=k8s-test-admin-key-0123"})
	if err != nil {
		t.Fatalf("the ConfigMap's herald.yaml: %v", err)
	}

	d := deps[0]
	checkName("Deployment", d.Name, d.Labels)
	pod := d.Spec.Template
	if d.Spec.Selector == nil || !selects(d.Spec.Selector.MatchLabels, pod.Labels) {
		t.Errorf("Deployment selector %v does not select its pods %v", d.Spec.Selector, pod.Labels)
	}
	if len(pod.Spec.Containers) != 1 {
		t.Fatalf("want one container, got %d", len(pod.Spec.Containers))
	}
	c := pod.Spec.Containers[0]
	if c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet == nil || c.ReadinessProbe.HTTPGet.Path != "/readyz" {
		t.Errorf("readiness probe %+v, want GET /readyz", c.ReadinessProbe)
	}
	if c.LivenessProbe == nil || c.LivenessProbe.HTTPGet == nil || c.LivenessProbe.HTTPGet.Path != "/healthz" {
		t.Errorf("liveness probe %+v, want GET /healthz", c.LivenessProbe)
	}
	grace := pod.Spec.TerminationGracePeriodSeconds
	if grace == nil || time.Duration(*grace)*time.Second <= hcfg.Server.ShutdownTimeout+hcfg.Server.ReconnectWindow {
		t.Errorf("terminationGracePeriodSeconds %v must exceed server.shutdown_timeout (%s) + reconnect_window (%s)",
			grace, hcfg.Server.ShutdownTimeout, hcfg.Server.ReconnectWindow)
	}
	ports := map[string]int32{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	if got, want := fmt.Sprint(ports["http"]), portOf(t, hcfg.Server.Listen); got != want {
		t.Errorf("container port http=%s, config listens on %s", got, want)
	}
	if got, want := fmt.Sprint(ports["admin"]), portOf(t, hcfg.Admin.Listen); got != want {
		t.Errorf("container port admin=%s, config admin.listen on %s", got, want)
	}
	for _, probe := range []*corev1.Probe{c.ReadinessProbe, c.LivenessProbe} {
		if probe != nil && probe.HTTPGet != nil && ports[probe.HTTPGet.Port.String()] == 0 {
			t.Errorf("probe port %q names no container port", probe.HTTPGet.Port.String())
		}
	}
	if sc := pod.Spec.SecurityContext; sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot {
		t.Error("pod must run as non-root")
	}
	if pdbs[0].Spec.Selector == nil || !selects(pdbs[0].Spec.Selector.MatchLabels, pod.Labels) {
		t.Errorf("PodDisruptionBudget does not select Herald's pods")
	}
	if pdbs[0].Spec.MaxUnavailable == nil && pdbs[0].Spec.MinAvailable == nil {
		t.Error("PodDisruptionBudget sets neither maxUnavailable nor minAvailable")
	}
	for _, s := range svcs {
		checkName("Service", s.Name, s.Labels)
		target := pod.Labels
		if strings.Contains(s.Name, "redis") {
			target = sts[0].Spec.Template.Labels
		}
		if !selects(s.Spec.Selector, target) {
			t.Errorf("Service %s selects %v, which matches no pods of its workload", s.Name, s.Spec.Selector)
		}
		for _, p := range s.Spec.Ports {
			if p.TargetPort.Type == 1 && !strings.Contains(s.Name, "redis") && ports[p.TargetPort.StrVal] == 0 {
				t.Errorf("Service %s targets port %q, not a container port", s.Name, p.TargetPort.StrVal)
			}
		}
	}
	// The Redis example is what the ConfigMap points at.
	redisAddr := sts[0].Name + "-0." + sts[0].Spec.ServiceName + ":6379"
	if len(hcfg.Fanout.Redis.Shards) != 1 || hcfg.Fanout.Redis.Shards[0] != redisAddr {
		t.Errorf("fanout.redis.shards %v, want [%s] (the StatefulSet's first pod)", hcfg.Fanout.Redis.Shards, redisAddr)
	}
}

func selects(selector, labels map[string]string) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

func portOf(t *testing.T, addr string) string {
	t.Helper()
	i := strings.LastIndexByte(addr, ':')
	if i < 0 {
		t.Fatalf("%q has no port", addr)
	}
	return addr[i+1:]
}

// TestSystemdUnit checks deploy/systemd/herald.service with
// `systemd-analyze verify` (unknown keys and bad values are warnings there,
// so any output about the unit fails the test) and that it stops Herald
// gracefully: SIGTERM and a stop timeout above server.shutdown_timeout.
func TestSystemdUnit(t *testing.T) {
	analyze := need(t, "systemd-analyze")
	raw, err := os.ReadFile("systemd/herald.service")
	if err != nil {
		t.Fatal(err)
	}
	unit := string(raw)
	for _, want := range []string{"KillSignal=SIGTERM", "LimitNOFILE=", "NoNewPrivileges=yes", "ProtectSystem=strict", "DynamicUser=yes"} {
		if !strings.Contains(unit, want) {
			t.Errorf("unit lacks %s", want)
		}
	}
	m := regexp.MustCompile(`(?m)^TimeoutStopSec=(\S+)$`).FindStringSubmatch(unit)
	if m == nil {
		t.Fatal("unit lacks TimeoutStopSec")
	}
	stop, err := time.ParseDuration(m[1])
	if err != nil || stop <= config.Default().Server.ShutdownTimeout+config.Default().Server.ReconnectWindow {
		t.Errorf("TimeoutStopSec=%s must exceed the default drain (%s)", m[1], config.Default().Server.ShutdownTimeout)
	}
	// verify wants the ExecStart binary to exist: point it at a real file.
	dir := t.TempDir()
	bin := filepath.Join(dir, "herald")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "herald.service")
	if err := os.WriteFile(path, bytes.ReplaceAll(raw, []byte("/usr/local/bin/herald"), []byte(bin)), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", path).CombinedOutput()
	if err != nil || strings.Contains(string(out), "herald.service") {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
	// The check is able to fail: a misspelt key is reported.
	bad := filepath.Join(dir, "bad.service")
	_ = os.WriteFile(bad, bytes.Replace(raw, []byte("NoNewPrivileges="), []byte("NoNewPrivilege="), 1), 0o644)
	if out, _ := exec.Command(analyze, "verify", bad).CombinedOutput(); !strings.Contains(string(out), "NoNewPrivilege") {
		t.Fatalf("systemd-analyze verify did not report a misspelt key: %s", out)
	}
}
