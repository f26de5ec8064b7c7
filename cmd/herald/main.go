// Command herald runs a Herald node, and helps with its configuration.
//
//	herald [serve] [--config FILE] [--server.listen ADDR] ...   run the node
//	herald config [--config FILE]                                print the effective config, secrets masked
//	herald token --sub 42 [--ttl 1h] [--channels a,b]            print a dev JWT signed with auth.jwt.hmac_secret
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/pflag"
	"go.yaml.in/yaml/v3"

	"github.com/heraldrt/herald/config"
	"github.com/heraldrt/herald/edge"
	"github.com/heraldrt/herald/edge/auth"
)

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "herald:", err)
		os.Exit(1)
	}
}

func run(args []string, stdout, stderr io.Writer) error {
	cmd := "serve"
	if len(args) > 0 && (args[0] == "serve" || args[0] == "config" || args[0] == "token") {
		cmd, args = args[0], args[1:]
	}
	fs := config.Flags()
	fs.SetOutput(stderr)
	var sub, channels, alg string
	var ttl time.Duration
	if cmd == "token" {
		fs.StringVar(&sub, "sub", "", "user id (required)")
		fs.DurationVar(&ttl, "ttl", time.Hour, "token lifetime")
		fs.StringVar(&channels, "channels", "", "extra channels, comma-separated")
		fs.StringVar(&alg, "alg", "HS256", "HS256, HS384 or HS512")
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return nil
		}
		return err
	}
	cfg, err := config.Load(fs, os.Environ())
	if err != nil {
		return err
	}
	switch cmd {
	case "config":
		out, err := yaml.Marshal(configView(cfg.Masked()))
		if err != nil {
			return fmt.Errorf("config: %w", err)
		}
		_, err = stdout.Write(out)
		return err
	case "token":
		if sub == "" {
			return errors.New("token: --sub is required")
		}
		var chans []string
		for _, c := range splitComma(channels) {
			chans = append(chans, c)
		}
		tok, err := auth.Sign(cfg.Auth.JWT.HMACSecret, alg, sub, ttl, chans)
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, tok)
		return nil
	}
	return serve(cfg, stderr)
}

func splitComma(s string) []string {
	var out []string
	start := 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == ',' {
			if i > start {
				out = append(out, s[start:i])
			}
			start = i + 1
		}
	}
	return out
}

func newLogger(cfg config.Log, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.Level))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func serve(cfg config.Config, logw io.Writer) error {
	log := newLogger(cfg.Log, logw)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	srv, err := edge.New(ctx, cfg, log)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Server.Listen)
	if err != nil {
		return fmt.Errorf("server.listen: %w", err)
	}
	log.Info("herald listening", "addr", ln.Addr().String(), "broker", cfg.Fanout.Broker, "dev", cfg.Dev.Enabled)
	errc := make(chan error, 2)
	go func() { errc <- srv.Serve(ln) }()
	if cfg.Admin.Listen != "" {
		aln, err := net.Listen("tcp", cfg.Admin.Listen)
		if err != nil {
			return fmt.Errorf("admin.listen: %w", err)
		}
		log.Info("admin API listening", "addr", aln.Addr().String())
		go func() { errc <- srv.ServeAdmin(aln) }()
	}
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	stop()
	log.Info("shutting down", "timeout", cfg.Server.ShutdownTimeout.String(), "reconnect_window", cfg.Server.ReconnectWindow.String())
	sctx, cancel := context.WithTimeout(context.Background(), cfg.Server.ShutdownTimeout)
	defer cancel()
	err = srv.Shutdown(sctx)
	log.Info("stopped", "err", err)
	return err
}
