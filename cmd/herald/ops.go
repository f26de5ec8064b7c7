package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/heraldrt/herald/config"
	"github.com/heraldrt/herald/internal/buildinfo"
)

// runVersion prints the build: `herald version` one line, `herald version
// --json` the fields as JSON.
func runVersion(args []string, stdout io.Writer) error {
	info := buildinfo.Get()
	for _, a := range args {
		switch a {
		case "--json", "-json":
			return json.NewEncoder(stdout).Encode(info)
		default:
			return fmt.Errorf("version: unknown flag %q (only --json)", a)
		}
	}
	_, err := fmt.Fprintln(stdout, info.String())
	return err
}

// runHealth checks a running node's /healthz and fails unless it answers
// 200 within --timeout. It is the container's HEALTHCHECK (a scratch image
// has no curl). Without --url it reads the same config as `herald serve`
// (file, HERALD_* variables, flags) and asks the node on the loopback
// address of server.listen's port, over https when server.tls is set.
//
// It parses and loads on its own rather than through serve.ParseWith:
// ParseWith refuses positional arguments, which health has always
// ignored, so a HEALTHCHECK line with a stray argument that passes today
// would start failing.
func runHealth(args []string, stdout, stderr io.Writer) error {
	fs := config.Flags()
	fs.SetOutput(stderr)
	url := fs.String("url", "", "health URL (default: /healthz on server.listen's port on loopback)")
	timeout := fs.Duration("timeout", 3*time.Second, "how long to wait for the answer")
	if err := fs.Parse(args); err != nil {
		return err
	}
	target := *url
	insecure := false
	if target == "" {
		cfg, err := config.Load(fs, os.Environ())
		if err != nil {
			return err
		}
		_, port, err := net.SplitHostPort(cfg.Server.Listen)
		if err != nil {
			return fmt.Errorf("health: server.listen: %w", err)
		}
		scheme := "http"
		if cfg.Server.TLS.CertFile != "" {
			// The certificate names the public host, not 127.0.0.1; the
			// check only asks whether this node answers.
			scheme, insecure = "https", true
		}
		target = scheme + "://" + net.JoinHostPort("127.0.0.1", port) + "/healthz"
	}
	client := &http.Client{Timeout: *timeout, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: insecure}, //nolint:gosec // loopback liveness probe only
	}}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return fmt.Errorf("health: %w", err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("health: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("health: %s answered %d: %s", target, resp.StatusCode, body)
	}
	fmt.Fprintf(stdout, "ok %s\n", target)
	return nil
}
