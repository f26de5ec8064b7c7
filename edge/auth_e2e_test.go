package edge

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
)

func TestAuthFailures(t *testing.T) {
	ts := startServer(t, nil)
	none := "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0." + "eyJzdWIiOiI0MiIsImV4cCI6OTk5OTk5OTk5OX0."
	other, _ := signWith("another-secret-0123456789abcdef0123", "42", time.Hour)
	cases := []struct {
		name, token, reason string
	}{
		{"anonymous", "", "missing_token"},
		{"alg none", none, "unsupported_algorithm"},
		{"wrong key", other, "invalid_signature"},
		{"expired", token(t, "42", -time.Minute), "token_expired"},
		{"garbage", "not.a.jwt", "malformed_token"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			query := ""
			if tc.token != "" {
				query = q("token", tc.token)
			}
			_, resp, err := ts.dialWS(t, query, nil)
			if err == nil || resp == nil || resp.StatusCode != 401 {
				t.Fatalf("ws: err %v resp %v", err, resp)
			}
			var body map[string]string
			b, _ := io.ReadAll(resp.Body)
			if json.Unmarshal(b, &body) != nil || body["error"] != tc.reason {
				t.Fatalf("ws body %s, want error %s", b, tc.reason)
			}
			_, sresp, err := ts.openSSE(t, query, "")
			if err != nil || sresp.StatusCode != 401 {
				t.Fatalf("sse: %v %v", err, sresp)
			}
			b, _ = io.ReadAll(sresp.Body)
			if json.Unmarshal(b, &body) != nil || body["error"] != tc.reason {
				t.Fatalf("sse body %s, want %s", b, tc.reason)
			}
		})
	}
	// Bearer header and cookie work too.
	h := http.Header{"Authorization": {"Bearer " + token(t, "1", time.Hour)}}
	if _, _, err := ts.dialWS(t, "", h); err != nil {
		t.Fatalf("bearer: %v", err)
	}
	h = http.Header{"Cookie": {"herald_token=" + token(t, "1", time.Hour)}}
	if _, _, err := ts.dialWS(t, "", h); err != nil {
		t.Fatalf("cookie: %v", err)
	}
}

func TestTokenExpiryEndsConnection(t *testing.T) {
	ts := startServer(t, nil)
	ws := ts.mustWS(t, q("token", token(t, "1", 1500*time.Millisecond)))
	readWS(t, ws)
	sse := ts.mustSSE(t, q("token", token(t, "1", 1500*time.Millisecond)), "")
	sse.next(t)

	_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	var sawEvent bool
	for {
		_, b, err := ws.ReadMessage()
		if err != nil {
			var ce *websocket.CloseError
			if !asCloseError(err, &ce) || ce.Code != 4401 || ce.Text != "token_expired" {
				t.Fatalf("ws: want close 4401 token_expired, got %v", err)
			}
			break
		}
		if strings.Contains(string(b), `"reason":"token_expired"`) {
			sawEvent = true
		}
	}
	if !sawEvent {
		t.Fatal("ws: no disconnect event before the close frame")
	}
	evs := sse.ended(t)
	if len(evs) == 0 || !strings.Contains(evs[len(evs)-1].Data, `"reason":"token_expired"`) {
		t.Fatalf("sse: last events %+v", evs)
	}
}

func asCloseError(err error, target **websocket.CloseError) bool {
	ce, ok := err.(*websocket.CloseError)
	if ok {
		*target = ce
	}
	return ok
}
