// Package serve is the one way a Herald node runs in a process: the
// configuration loaded from --config, HERALD_* variables and flags, the
// logger, the main and admin listeners, configuration reloads (SIGHUP and
// config.watch) and a graceful shutdown on SIGINT/SIGTERM. cmd/herald's
// serve command and herald-bench serve-herald both run through it.
package serve

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

	"github.com/spf13/pflag"

	"github.com/heraldrt/herald/config"
	"github.com/heraldrt/herald/edge"
	"github.com/heraldrt/herald/internal/buildinfo"
)

// Options are what differs between the commands that run a node.
type Options struct {
	// LogWriter receives the node's log (stderr for the commands).
	LogWriter io.Writer
	// ConfigPath is the config file watched while config.watch is on
	// ("" for none).
	ConfigPath string
	// Reload loads the configuration again on SIGHUP or a change of the
	// config file.
	Reload func() (config.Config, error)
	// Listening, when set, is called once the main listener is up, with
	// the node's logger and the listener's address (herald-bench names its
	// pprof address there).
	Listening func(log *slog.Logger, addr string)
}

// ErrUnexpectedArgument is returned by Parse for a positional argument:
// every command that runs through it takes flags only.
var ErrUnexpectedArgument = errors.New("unexpected argument")

// Parse parses args into fs (config.Flags plus whatever flags the caller
// added) and loads the configuration the way `herald serve` does. help is
// true when --help was asked for (the usage is already printed): the
// caller then returns without serving. Options has ConfigPath and Reload
// filled from fs; the caller sets LogWriter.
func Parse(fs *pflag.FlagSet, args []string) (cfg config.Config, opts Options, help bool, err error) {
	return ParseWith(fs, args, config.Load)
}

// ParseWith is Parse loading with load instead of config.Load: `herald
// token` passes config.Read, as signing needs auth.jwt.hmac_secret only.
// Every command that reads the configuration from --config, HERALD_*
// variables and flags parses its arguments here, except `herald health`,
// which has always ignored positional arguments (cmd/herald/ops.go).
func ParseWith(fs *pflag.FlagSet, args []string, load func(*pflag.FlagSet, []string) (config.Config, error)) (cfg config.Config, opts Options, help bool, err error) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return cfg, opts, true, nil
		}
		return cfg, opts, false, err
	}
	if fs.NArg() > 0 {
		return cfg, opts, false, fmt.Errorf("%w %q", ErrUnexpectedArgument, fs.Arg(0))
	}
	cfg, err = load(fs, os.Environ())
	if err != nil {
		return cfg, opts, false, err
	}
	return cfg, ReloadOptions(fs), false, nil
}

// ReloadOptions returns Options whose ConfigPath is fs's --config and
// whose Reload loads the configuration again from fs and the environment.
func ReloadOptions(fs *pflag.FlagSet) Options {
	path, _ := fs.GetString("config")
	return Options{ConfigPath: path, Reload: func() (config.Config, error) { return config.Load(fs, os.Environ()) }}
}

// NewLogger returns the logger cfg describes (text or JSON) writing to w,
// its level held by level so a reload can change it.
func NewLogger(cfg config.Log, w io.Writer, level *slog.LevelVar) *slog.Logger {
	_ = level.UnmarshalText([]byte(cfg.Level))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// Run runs the node until SIGINT/SIGTERM. SIGHUP, and with config.watch
// a change of the config file, reload the configuration through
// opts.Reload.
func Run(cfg config.Config, opts Options) error {
	level := new(slog.LevelVar)
	log := NewLogger(cfg.Log, opts.LogWriter, level)
	// SIGHUP reloads; caught from the start so it never kills the node.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	bi := buildinfo.Get()
	log.Info("herald starting", "version", bi.Version, "commit", bi.Commit, "go", bi.GoVersion)
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
	if opts.Listening != nil {
		opts.Listening(log, ln.Addr().String())
	}
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
	if opts.Reload != nil {
		go reloader(ctx, srv, log, level, cfg, opts.ConfigPath, hup, opts.Reload)
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
