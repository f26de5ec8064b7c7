// Command herald runs a Herald node, and helps with its configuration.
//
//	herald [serve] [--config FILE] [--server.listen ADDR] ...   run the node
//	herald config [--config FILE]                                print the effective config, secrets masked
//	herald token --sub 42 [--ttl 1h] [--channels a,b]            print a dev JWT signed with auth.jwt.hmac_secret
//	herald help                                                  list the commands and flags
//	herald version [--json]                                      print version, commit, date and Go version (also --version)
//	herald health [--url URL]                                    exit 0 when the node's /healthz answers 200
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"go.yaml.in/yaml/v3"

	"github.com/heraldrt/herald/config"
	"github.com/heraldrt/herald/edge/auth"
	"github.com/heraldrt/herald/internal/serve"
)

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "herald:", err)
		os.Exit(1)
	}
}

// commands are herald's subcommands, in the order help lists them.
var commands = []struct{ name, usage, help string }{
	{"serve", "herald [serve] [flags]", "run the node (the default command)"},
	{"config", "herald config [flags]", "print the effective configuration, secrets masked"},
	{"token", "herald token --sub ID [--ttl 1h] [--channels a,b] [--alg HS256]", "print a development JWT signed with auth.jwt.hmac_secret (needs only that key)"},
	{"version", "herald version [--json]", "print the version, commit, build date and Go version (also --version)"},
	{"health", "herald health [--url URL] [flags]", "exit 0 when the node's /healthz answers 200 (the container HEALTHCHECK)"},
	{"help", "herald help", "print this help"},
}

// usage writes the commands and the flags of fs.
func usage(w io.Writer, fs *pflag.FlagSet) {
	fmt.Fprintln(w, "Herald: real-time notifications over WebSocket and SSE.")
	fmt.Fprintln(w, "\nCommands:")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-8s %s\n           %s\n", c.name, c.help, c.usage)
	}
	fmt.Fprintln(w, "\nFlags (configuration keys; HERALD_<SECTION>__<KEY> variables set the others):")
	fmt.Fprint(w, fs.FlagUsages())
}

func run(args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case "version", "--version", "-version":
			return runVersion(args[1:], stdout)
		case "health":
			return runHealth(args[1:], stdout, stderr)
		}
	}
	cmd := "serve"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		known := false
		for _, c := range commands {
			known = known || c.name == args[0]
		}
		if !known {
			return fmt.Errorf("unknown command %q (commands: serve, config, token, version, health, help; see herald help)", args[0])
		}
		cmd, args = args[0], args[1:]
	}
	fs := config.Flags()
	fs.SetOutput(stderr)
	fs.Usage = func() { usage(stderr, fs) }
	if cmd == "help" {
		usage(stdout, fs)
		return nil
	}
	var sub, channels, alg string
	var ttl time.Duration
	if cmd == "token" {
		fs.StringVar(&sub, "sub", "", "user id (required)")
		fs.DurationVar(&ttl, "ttl", time.Hour, "token lifetime")
		fs.StringVar(&channels, "channels", "", "extra channels, comma-separated")
		fs.StringVar(&alg, "alg", "HS256", "HS256, HS384 or HS512")
	}
	load := config.Load
	if cmd == "token" {
		// Signing needs auth.jwt.hmac_secret only; api.key and the rest
		// are not checked.
		load = config.Read
	}
	cfg, opts, help, err := serve.ParseWith(fs, args, load)
	if errors.Is(err, serve.ErrUnexpectedArgument) {
		return fmt.Errorf("%s: %w (see herald help)", cmd, err)
	}
	if err != nil || help {
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
		tok, err := auth.Sign(cfg.Auth.JWT.HMACSecret, alg, sub, ttl, config.SplitList(channels))
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, tok)
		return nil
	}
	opts.LogWriter = stderr
	return serve.Run(cfg, opts)
}
