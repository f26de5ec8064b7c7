// Package testlog is the logger tests give in-process nodes, brokers and
// ingests. It imports nothing of Herald, so the packages that
// config composes (compat, fanout, ...) can use it in their own tests
// without the import cycle internal/heraldtest (which imports config)
// would make.
package testlog

import (
	"io"
	"log/slog"
	"os"
)

// New returns a silent logger, or one at debug level on stderr when
// HERALD_TEST_LOG is set.
func New() *slog.Logger {
	if os.Getenv("HERALD_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}
