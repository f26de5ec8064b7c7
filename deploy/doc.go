// Package deploy holds Herald's deployment kit — the container image
// (../Dockerfile, ../compose.yaml), the systemd unit, Kubernetes manifests,
// Prometheus rules and the Grafana dashboard — and the tests that check
// each against the real tool that will consume it (podman, systemd-analyze,
// the Kubernetes API types, promtool, a Prometheus server). It has no Go
// code of its own.
package deploy
