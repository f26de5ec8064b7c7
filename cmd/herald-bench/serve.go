package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"runtime"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"github.com/heraldrt/herald/config"
	"github.com/heraldrt/herald/edge"
)

// serveHerald runs a Herald node in this process, configured exactly like
// cmd/herald (--config, HERALD_* variables, flags), with net/http/pprof on a
// separate listener, so a load run can be profiled without changing Herald.
func serveHerald(args []string, stderr io.Writer) error {
	fs := config.Flags()
	fs.SetOutput(stderr)
	addr := fs.String("pprof", "127.0.0.1:6060", "pprof listen address")
	mutexFrac := fs.Int("mutex-fraction", 0, "runtime.SetMutexProfileFraction (0: off)")
	blockRate := fs.Int("block-rate", 0, "runtime.SetBlockProfileRate in ns (0: off)")
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
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.Log.Level))
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	runtime.SetMutexProfileFraction(*mutexFrac)
	runtime.SetBlockProfileRate(*blockRate)

	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	pln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("pprof listen: %w", err)
	}
	psrv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = psrv.Serve(pln) }()
	defer psrv.Close()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	srv, err := edge.New(ctx, cfg, log)
	if err != nil {
		return fmt.Errorf("herald: %w", err)
	}
	ln, err := net.Listen("tcp", cfg.Server.Listen)
	if err != nil {
		return fmt.Errorf("server.listen: %w", err)
	}
	log.Warn("herald (in herald-bench) listening", "addr", ln.Addr().String(), "pprof", pln.Addr().String())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), cfg.Server.ShutdownTimeout)
	defer cancel()
	return srv.Shutdown(sctx)
}
