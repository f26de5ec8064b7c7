package main

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"runtime"
	"time"

	"github.com/heraldrt/herald/config"
	"github.com/heraldrt/herald/internal/serve"
)

// serveHerald runs a Herald node in this process through the same serve
// path as cmd/herald (--config, HERALD_* variables, flags, reloads, admin
// listener, graceful shutdown), with net/http/pprof on a separate
// listener, so a load run can be profiled without changing Herald.
func serveHerald(args []string, stderr io.Writer) error {
	fs := config.Flags()
	fs.SetOutput(stderr)
	addr := fs.String("pprof", "127.0.0.1:6060", "pprof listen address")
	mutexFrac := fs.Int("mutex-fraction", 0, "runtime.SetMutexProfileFraction (0: off)")
	blockRate := fs.Int("block-rate", 0, "runtime.SetBlockProfileRate in ns (0: off)")
	cfg, opts, help, err := serve.Parse(fs, args)
	if err != nil || help {
		return err
	}
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

	opts.LogWriter = stderr
	opts.Listening = func(log *slog.Logger, addr string) {
		log.Warn("herald (in herald-bench) listening", "addr", addr, "pprof", pln.Addr().String())
	}
	return serve.Run(cfg, opts)
}
