package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/heraldrt/herald/edge/auth"
)

const cliSecret = "cli-test-secret-0123456789abcdef0123"

// runFor runs herald with args and returns its error, failing the test
// if it has not returned within 10 s (it would be serving).
func runFor(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	done := make(chan error, 1)
	go func() { done <- run(args, &out, &errOut) }()
	select {
	case err := <-done:
		return out.String(), errOut.String(), err
	case <-time.After(10 * time.Second):
		t.Fatalf("herald %q did not return: it is serving", args)
		return "", "", nil
	}
}

func TestCLI(t *testing.T) {
	// A complete configuration: a command that wrongly starts the server
	// would serve instead of returning.
	t.Setenv("HERALD_AUTH__JWT__HMAC_SECRET", cliSecret)
	t.Setenv("HERALD_API__KEY", "cli-test-api-key-0123")
	t.Setenv("HERALD_SERVER__LISTEN", "127.0.0.1:0")

	for _, cmd := range []string{"conifg", "version2", "tokn"} {
		_, _, err := runFor(t, cmd, "--config", "/dev/null")
		if err == nil || !strings.Contains(err.Error(), "unknown command") || !strings.Contains(err.Error(), "herald help") {
			t.Errorf("herald %s: %v, want an unknown command error", cmd, err)
		}
	}
	out, _, err := runFor(t, "help")
	if err != nil {
		t.Fatal(err)
	}
	_, usage, err := runFor(t, "-h")
	if err != nil {
		t.Fatal(err)
	}
	for _, text := range []string{out, usage} {
		for _, want := range []string{"serve", "config", "token", "help", "--server.listen"} {
			if !strings.Contains(text, want) {
				t.Errorf("help does not list %q:\n%s", want, text)
			}
		}
	}
	if _, _, err := runFor(t, "serve", "extra"); err == nil || !strings.Contains(err.Error(), "unexpected argument") {
		t.Errorf("serve extra: %v", err)
	}

	// token needs only the signing key.
	t.Setenv("HERALD_API__KEY", "")
	t.Setenv("HERALD_SERVER__LISTEN", "not an address")
	tok, _, err := runFor(t, "token", "--sub", "42", "--config", "/dev/null")
	if err != nil {
		t.Fatalf("token without api.key: %v", err)
	}
	v, err := auth.New(auth.Config{HMACSecret: cliSecret, UserClaim: "sub", QueryParam: "token", CookieName: "t"})
	if err != nil {
		t.Fatal(err)
	}
	if c, err := v.Verify(strings.TrimSpace(tok)); err != nil || c.UserID != "42" {
		t.Fatalf("token %q: %+v %v", tok, c, err)
	}
	t.Setenv("HERALD_AUTH__JWT__HMAC_SECRET", "")
	if _, _, err := runFor(t, "token", "--sub", "42", "--config", "/dev/null"); err == nil || !strings.Contains(err.Error(), "hmac_secret") {
		t.Fatalf("token without a secret: %v", err)
	}
}
