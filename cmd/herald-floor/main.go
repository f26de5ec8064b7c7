// Command herald-floor runs the benchmark yardstick (package bench/floor):
// a minimal fasthttp + fasthttp/websocket server on Herald's paths that only
// holds connections and pushes published messages, i.e. the floor cost of
// the libraries Herald is built on.
//
//	herald-floor --listen 127.0.0.1:18100 [--coalesce 64] [--netpoll]
package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/pflag"

	"github.com/heraldrt/herald/bench/floor"
)

func main() {
	fs := pflag.NewFlagSet("herald-floor", pflag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:18100", "listen address")
	coalesce := fs.Int("coalesce", 0, "queue each connection's messages and send up to this many pending ones in one write (0: write each message as published)")
	netpoll := fs.Bool("netpoll", false, "park idle connections on epoll readiness instead of a reader goroutine each (Linux)")
	if err := fs.Parse(os.Args[1:]); err != nil {
		os.Exit(2)
	}
	if *coalesce < 0 {
		fmt.Fprintln(os.Stderr, "herald-floor: --coalesce must not be negative")
		os.Exit(2)
	}
	if err := run(*listen, floor.Options{Coalesce: *coalesce, Netpoll: *netpoll}); err != nil {
		fmt.Fprintln(os.Stderr, "herald-floor:", err)
		os.Exit(1)
	}
}

func run(listen string, opts floor.Options) error {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	s, err := floor.NewWith(log, opts)
	if err != nil {
		return err
	}
	errc := make(chan error, 1)
	go func() { errc <- s.Serve(ln) }()
	log.Warn("floor listening", "addr", ln.Addr().String())
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	return s.Shutdown()
}
