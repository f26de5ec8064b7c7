package protocols

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestParseInbound(t *testing.T) {
	tests := []struct {
		name   string
		in     string
		action InboundAction
		reply  string // exact reply, when set
		errSub string // substring of an error event's message, when set
		token  string
	}{
		{name: "guide ping, string timestamp", in: `{"type":"ping","timestamp":"2024-05-01T12:00:00.000Z"}`,
			reply: `{"type":"pong","timestamp":"2024-05-01T12:00:00.000Z"}`},
		{name: "guide ping, numeric timestamp", in: `{"type": "ping", "timestamp": 1714564800123}`,
			reply: `{"type":"pong","timestamp":1714564800123}`},
		{name: "ping, float timestamp echoed raw", in: `{"type":"ping","timestamp":1.7145648e12}`,
			reply: `{"type":"pong","timestamp":1.7145648e12}`},
		{name: "ping, object timestamp", in: `{"type":"ping","timestamp":{"t":[1,2]}}`,
			reply: `{"type":"pong","timestamp":{"t":[1,2]}}`},
		{name: "ping, null timestamp", in: `{"type":"ping","timestamp":null}`,
			reply: `{"type":"pong","timestamp":null}`},
		{name: "ping without timestamp", in: `{"type":"ping"}`, reply: `{"type":"pong"}`},
		{name: "ping with whitespace and extra members", in: " \n\t{\"type\":\"ping\",\"extra\":true}\r\n ", reply: `{"type":"pong"}`},
		{name: "refresh with token", in: `{"type":"refresh","token":"eyJhbGciOi.x.y"}`, action: ActionRefresh, token: "eyJhbGciOi.x.y"},
		{name: "refresh without token", in: `{"type":"refresh"}`, errSub: "refresh needs a token"},
		{name: "refresh with empty token", in: `{"type":"refresh","token":""}`, errSub: "refresh needs a token"},
		{name: "refresh with non-string token", in: `{"type":"refresh","token":5}`, errSub: "invalid JSON"},
		{name: "unknown type", in: `{"type":"subscribe","channel":"x"}`, errSub: `unknown message type "subscribe"`},
		{name: "unknown type with quotes", in: `{"type":"a\"b"}`, errSub: `unknown message type "a\"b"`},
		{name: "missing type", in: `{"timestamp":1}`, errSub: `no "type"`},
		{name: "empty object", in: `{}`, errSub: `no "type"`},
		{name: "type not a string", in: `{"type":1}`, errSub: "invalid JSON"},
		{name: "not JSON", in: `hello`, errSub: "invalid JSON"},
		{name: "truncated object", in: `{"type":"ping"`, errSub: "invalid JSON"},
		{name: "trailing garbage", in: `{"type":"ping"} x`, errSub: "invalid JSON"},
		{name: "JSON array", in: `[{"type":"ping"}]`, errSub: "expected an object"},
		{name: "JSON string", in: `"ping"`, errSub: "expected an object"},
		{name: "empty", in: ``, errSub: "expected an object"},
		{name: "only whitespace", in: " \n ", errSub: "expected an object"},
		{name: "invalid UTF-8", in: "{\"type\":\"ping\",\"timestamp\":\"\xff\"}", action: ActionClose},
		{name: "invalid UTF-8 outside JSON", in: "\xc3\x28", action: ActionClose},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msg, action, reply := ParseInbound([]byte(tt.in))
			if action != tt.action {
				t.Fatalf("action = %d, want %d (reply %s)", action, tt.action, reply)
			}
			switch action {
			case ActionClose, ActionRefresh:
				if reply != nil {
					t.Fatalf("reply %s with action %d", reply, action)
				}
				if action == ActionRefresh && msg.Token != tt.token {
					t.Fatalf("token = %q, want %q", msg.Token, tt.token)
				}
				return
			}
			if !json.Valid(reply) {
				t.Fatalf("reply is not valid JSON: %s", reply)
			}
			if tt.reply != "" && string(reply) != tt.reply {
				t.Fatalf("reply = %s, want %s", reply, tt.reply)
			}
			if tt.errSub != "" {
				var ev struct{ Type, Message string }
				if err := json.Unmarshal(reply, &ev); err != nil {
					t.Fatal(err)
				}
				if ev.Type != "error" || !strings.Contains(ev.Message, tt.errSub) {
					t.Fatalf("reply = %s, want an error event containing %q", reply, tt.errSub)
				}
			}
		})
	}
}

func TestPongAndRefreshedEvents(t *testing.T) {
	if got := string(PongEvent(nil)); got != `{"type":"pong"}` {
		t.Fatalf("PongEvent(nil) = %s", got)
	}
	exp := time.Unix(1714564800, 999)
	if got := string(RefreshedEvent(exp)); got != `{"type":"refreshed","expires_at":1714564800}` {
		t.Fatalf("RefreshedEvent = %s", got)
	}
}

func FuzzParseInbound(f *testing.F) {
	for _, s := range []string{
		`{"type":"ping","timestamp":"2024-05-01T12:00:00.000Z"}`,
		`{"type":"ping","timestamp":1714564800123}`,
		`{"type":"ping"}`,
		`{"type":"refresh","token":"abc"}`,
		`{"type":"refresh"}`,
		`{"type":"nope"}`,
		`{}`,
		`[]`,
		`not json`,
		`{"type":"ping","timestamp":[1,{"a":null}]}`,
		`{"type":"ping","timestamp":"\u0000\ud800"}`,
		"{\"type\":\"\xff\"}",
		` {"type":"ping","type":"refresh","token":"t"} `,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		in := append([]byte(nil), data...)
		msg, action, reply := ParseInbound(data)
		if string(in) != string(data) {
			t.Fatal("ParseInbound modified its input")
		}
		switch action {
		case ActionReply:
			if !json.Valid(reply) {
				t.Fatalf("reply to %q is not valid JSON: %q", data, reply)
			}
			// UseNumber: the echoed timestamp may be any JSON number
			// (7E823 is valid JSON but overflows a float64).
			var ev map[string]any
			d := json.NewDecoder(bytes.NewReader(reply))
			d.UseNumber()
			if err := d.Decode(&ev); err != nil {
				t.Fatalf("reply %q is not an object: %v", reply, err)
			}
			if typ, ok := ev["type"].(string); !ok || (typ != "pong" && typ != "error") {
				t.Fatalf("reply %q has type %v", reply, ev["type"])
			}
		case ActionRefresh:
			if msg.Type != "refresh" || msg.Token == "" || reply != nil {
				t.Fatalf("refresh action for %q: %+v, reply %q", data, msg, reply)
			}
		case ActionClose:
			if utf8.Valid(data) {
				t.Fatalf("close action for valid UTF-8 %q", data)
			}
		default:
			t.Fatalf("unknown action %d", action)
		}
	})
}
