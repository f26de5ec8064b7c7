package edge

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/golang-jwt/jwt/v5"

	"github.com/heraldrt/herald/config"
	"github.com/heraldrt/herald/edge/auth"
	"github.com/heraldrt/herald/fanout"
)

func signWith(secret, sub string, ttl time.Duration) (string, error) {
	return jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": sub, "exp": time.Now().Add(ttl).Unix()}).SignedString([]byte(secret))
}

func TestPublishAPIErrors(t *testing.T) {
	ts := startServer(t, func(c *config.Config) { c.API.MaxBodyBytes = 2048; c.API.MaxBatch = 3 })
	cases := []struct {
		name, path, key, body string
		status                int
		errSub                string
	}{
		{"no key", "/api/publish", "", `{"user_id":"1","data":{}}`, 401, "unauthorized"},
		{"wrong key", "/api/publish", "nope-nope-nope-nope", `{"user_id":"1","data":{}}`, 401, "unauthorized"},
		{"malformed", "/api/publish", testAPIKey, `{"user_id":`, 400, "invalid JSON"},
		{"trailing", "/api/publish", testAPIKey, `{"user_id":"1","data":{}} {}`, 400, "trailing"},
		{"no target", "/api/publish", testAPIKey, `{"data":{}}`, 400, `missing "user_id" or "channel"`},
		{"both", "/api/publish", testAPIKey, `{"user_id":"1","channel":"x","data":{}}`, 400, "not both"},
		{"no data", "/api/publish", testAPIKey, `{"user_id":"1"}`, 400, `missing "data"`},
		{"bad channel", "/api/publish", testAPIKey, `{"channel":"a b","data":{}}`, 400, "invalid channel"},
		{"reserved", "/api/publish", testAPIKey, `{"channel":"herald.nodes","data":{"type":"disconnect","user":"1"}}`, 400, "reserved"},
		{"bad user", "/api/publish", testAPIKey, `{"user_id":true,"data":{}}`, 400, "user_id"},
		{"too large", "/api/publish", testAPIKey, `{"user_id":"1","data":"` + strings.Repeat("x", 4096) + `"}`, 413, "body"},
		{"empty batch", "/api/publish/batch", testAPIKey, `{"messages":[]}`, 400, "non-empty"},
		{"big batch", "/api/publish/batch", testAPIKey, `{"messages":[{"user_id":1,"data":1},{"user_id":1,"data":1},{"user_id":1,"data":1},{"user_id":1,"data":1}]}`, 400, "limit is 3"},
		{"bad batch entry", "/api/publish/batch", testAPIKey, `{"messages":[{"user_id":1,"data":1},{"user_id":1}]}`, 400, "messages[1]"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, out := ts.post(t, tc.path, tc.key, tc.body)
			if code != tc.status {
				t.Fatalf("status %d, want %d (%v)", code, tc.status, out)
			}
			msg, _ := out["message"].(string)
			errStr, _ := out["error"].(string)
			if !strings.Contains(msg+errStr, tc.errSub) {
				t.Fatalf("reply %v does not mention %q", out, tc.errSub)
			}
		})
	}
}

func TestPublishAPIOK(t *testing.T) {
	ts := startServer(t, nil)
	out := ts.publish(t, `{"user_id":42,"data":{"a":1},"idempotency_key":"k1"}`)
	if out["channel"] != "user:42" || out["offset"] != 1.0 || out["cursor"] == "" {
		t.Fatalf("reply %v", out)
	}
	again := ts.publish(t, `{"user_id":"42","data":{"a":1},"idempotency_key":"k1"}`)
	if again["offset"] != 1.0 || again["duplicate"] != true {
		t.Fatalf("idempotent repeat %v", again)
	}
	code, batch := ts.post(t, "/api/publish/batch", testAPIKey, `{"messages":[{"user_id":"1","data":1},{"channel":"broadcast","data":{"b":2}}]}`)
	res, _ := batch["results"].([]any)
	if code != 200 || len(res) != 2 || res[1].(map[string]any)["channel"] != "broadcast" {
		t.Fatalf("batch %d %v", code, batch)
	}
	// Authorization: apikey works too.
	req := `{"channel":"x","data":1}`
	code, _ = ts.post(t, "/api/publish", "", req)
	if code != 401 {
		t.Fatal("no key accepted")
	}
}

func TestHealthAndReady(t *testing.T) {
	ts := startServer(t, nil)
	for _, p := range []string{"/healthz", "/readyz"} {
		code, out := ts.get(t, p)
		if code != 200 || out["status"] != "ok" {
			t.Fatalf("%s: %d %v", p, code, out)
		}
	}
}

func FuzzParsePublish(f *testing.F) {
	for _, s := range []string{
		"{\"user_id\":\"u\",\"data\":\"\xff\"}", `{"user_id":"4:2","data":1}`, `{"channel":"user:a b","data":1}`,
		`{"user_id":"42","data":{"type":"x"}}`, `{"channel":"broadcast","data":[1,2]}`,
		`{"user_id":42,"data":1,"idempotency_key":"k"}`, `{"user_id":`, `[]`, `{"data":null}`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := ParsePublish(body)
		if err != nil {
			return
		}
		if r.Channel == "" || len(r.Data) == 0 {
			t.Fatalf("accepted %q without channel or data: %+v", body, r)
		}
		// What is accepted is deliverable: a valid channel outside Herald's
		// reserved prefix, a user channel a token can open, and data that
		// is valid JSON in valid UTF-8 (a WebSocket text frame).
		if !fanout.ValidChannel(r.Channel) {
			t.Fatalf("accepted %q with invalid channel %q", body, r.Channel)
		}
		if strings.HasPrefix(r.Channel, reservedPrefix) {
			t.Fatalf("accepted %q for reserved channel %q", body, r.Channel)
		}
		if id, ok := strings.CutPrefix(r.Channel, "user:"); ok {
			if err := auth.CheckUserID(id); err != nil {
				t.Fatalf("accepted %q for user channel %q no token can open: %v", body, r.Channel, err)
			}
		}
		if !utf8.Valid(r.Data) || !json.Valid(r.Data) {
			t.Fatalf("accepted %q with data %q that is not valid UTF-8 JSON", body, r.Data)
		}
		if len(r.IdempotencyKey) > maxIdempotencyKey {
			t.Fatalf("accepted %q with a %d-byte idempotency key", body, len(r.IdempotencyKey))
		}
	})
}

func TestReservedChannelsNotGranted(t *testing.T) {
	got := channelsFor(auth.Claims{UserID: "1", Channels: []string{"team:1", "herald.nodes", "herald.node.x", "team:1"}})
	if strings.Join(got, ",") != "user:1,broadcast,team:1" {
		t.Fatalf("channels %v", got)
	}
}

// BenchmarkParsePublish: validation cost of a typical and a 64 KiB body
// (UTF-8 scan, JSON decode, channel and user id checks).
func BenchmarkParsePublish(b *testing.B) {
	for name, body := range map[string][]byte{
		"small": []byte(`{"user_id":"42","data":{"type":"oracle_upload_progress","transaction_id":602,"progress":40,"message":"Uploading… 40 %"}}`),
		"64KiB": []byte(`{"channel":"broadcast","data":{"text":"` + strings.Repeat("héllo wörld ", 5461) + `"}}`),
	} {
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := ParsePublish(body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
