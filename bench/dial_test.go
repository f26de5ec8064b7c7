package bench

import (
	"errors"
	"fmt"
	"syscall"
	"testing"
)

// TestErrorCause: refusals are grouped by status and, for Herald's JSON
// error bodies, by reason, so a run's error table says why connects were
// refused (issue 14: bench-big's 400s and 503s could not be told apart).
func TestErrorCause(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{&errHandshake{status: 503, body: `{"error":"history_unavailable","message":"redis: timeout"}`}, "connect: HTTP 503 history_unavailable"},
		{&errHandshake{status: 429, body: `{"error":"too_many_connections","message":"limit 3"}` + "\n"}, "connect: HTTP 429 too_many_connections"},
		{&errHandshake{status: 400, body: "Bad Request"}, "connect: HTTP 400"},
		{&errHandshake{status: 502, body: `{"error":"` + string(make([]byte, 100)) + `"}`}, "connect: HTTP 502"},
		{fmt.Errorf("dial: %w", syscall.ECONNREFUSED), "connect: connection refused"},
		{errors.New("handshake read: bad Sec-WebSocket-Accept"), "connect: bad Sec-WebSocket-Accept"},
	} {
		if got := errorCause("connect", tc.err); got != tc.want {
			t.Errorf("errorCause(%v) = %q; want %q", tc.err, got, tc.want)
		}
	}
}
