package heraldtest

import (
	"log/slog"
	"time"

	"github.com/heraldrt/herald/config"
	"github.com/heraldrt/herald/internal/testlog"
)

// Logger returns the logger tests give in-process nodes and brokers:
// silent, or debug level on stderr when HERALD_TEST_LOG is set.
func Logger() *slog.Logger { return testlog.New() }

// Config returns the defaults for an in-process test node: a free
// loopback port, secret as the HMAC key, apiKey as the publish API key,
// a 5 s shutdown and no reconnect window.
func Config(secret, apiKey string) config.Config {
	cfg := config.Default()
	cfg.Server.Listen = "127.0.0.1:0"
	cfg.Auth.JWT.HMACSecret = secret
	cfg.API.Key = apiKey
	cfg.Server.ShutdownTimeout = 5 * time.Second
	cfg.Server.ReconnectWindow = 0
	return cfg
}
