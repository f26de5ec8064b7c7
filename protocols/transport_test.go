package protocols

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/heraldrt/herald/fanout"
)

func testMessage(ch string, off uint64, data string) *fanout.Message {
	return &fanout.Message{Channel: ch, Pos: fanout.Position{Epoch: 77, Offset: off}, Data: []byte(data)}
}

func TestWSFrameHeaderLengths(t *testing.T) {
	tests := []struct {
		n    int
		head []byte
	}{
		{0, []byte{0x81, 0}},
		{1, []byte{0x81, 1}},
		{125, []byte{0x81, 125}},
		{126, []byte{0x81, 126, 0x00, 0x7e}},
		{127, []byte{0x81, 126, 0x00, 0x7f}},
		{65535, []byte{0x81, 126, 0xff, 0xff}},
		{65536, []byte{0x81, 127, 0, 0, 0, 0, 0, 1, 0, 0}},
		{1 << 20, []byte{0x81, 127, 0, 0, 0, 0, 0, 0x10, 0, 0}},
	}
	for _, tt := range tests {
		payload := bytes.Repeat([]byte{'x'}, tt.n)
		frame := WSTransport{Format: WSRaw}.AppendMessage(nil, &fanout.Message{Channel: "c", Data: payload}, nil)
		if !bytes.HasPrefix(frame, tt.head) {
			t.Errorf("length %d: header % x, want % x", tt.n, frame[:min(len(frame), len(tt.head))], tt.head)
			continue
		}
		if !bytes.Equal(frame[len(tt.head):], payload) {
			t.Errorf("length %d: payload differs after the header", tt.n)
		}
		f, err := readWSFrame(bytes.NewReader(frame))
		if err != nil {
			t.Fatalf("length %d: %v", tt.n, err)
		}
		if !f.fin || f.op != opText || len(f.payload) != tt.n || f.hdrLen != len(tt.head) {
			t.Errorf("length %d: decoded fin=%v op=%#x len=%d hdr=%d", tt.n, f.fin, f.op, len(f.payload), f.hdrLen)
		}
	}
}

func TestWSRawMessageBytes(t *testing.T) {
	// The guide's raw format: the payload exactly as published, whatever
	// its formatting, with no envelope.
	data := "{ \"type\" : \"notification\",\n \"message\":\"caf\u00e9 \\u2603\", \"n\":1.50 }"
	m := testMessage("user:1", 3, data)
	tr := WSTransport{Format: WSRaw}
	out := tr.AppendMessage([]byte("prefix"), m, []byte("CURSOR"))
	if !bytes.HasPrefix(out, []byte("prefix")) {
		t.Fatal("AppendMessage dropped dst")
	}
	f, err := readWSFrame(bytes.NewReader(out[len("prefix"):]))
	if err != nil {
		t.Fatal(err)
	}
	if string(f.payload) != data {
		t.Fatalf("payload = %q, want %q", f.payload, data)
	}
	// The frame is built once and shared; a second append is identical.
	if again := tr.AppendMessage(nil, m, []byte("OTHER")); !bytes.Equal(again, out[len("prefix"):]) {
		t.Fatal("second AppendMessage differs")
	}
}

func TestWSEnvelopeMessage(t *testing.T) {
	for _, data := range []string{`{"type":"notification","message":"hi"}`, `42`, `"s"`, `[1,2]`, `null`, `{"nested":{"a":[{}]}}`} {
		m := testMessage("org:acme/alerts.v2", 9, data)
		cursor := Cursor{{Hash: ChannelHash(m.Channel), Pos: m.Pos}}.String()
		tr := WSTransport{Format: WSEnvelope}
		for range 2 { // second time from the cached tail
			f, err := readWSFrame(bytes.NewReader(tr.AppendMessage(nil, m, []byte(cursor))))
			if err != nil {
				t.Fatal(err)
			}
			if !json.Valid(f.payload) {
				t.Fatalf("envelope is not valid JSON: %s", f.payload)
			}
			var env struct {
				Cursor  string          `json:"cursor"`
				Channel string          `json:"channel"`
				Data    json.RawMessage `json:"data"`
			}
			if err := json.Unmarshal(f.payload, &env); err != nil {
				t.Fatal(err)
			}
			if env.Cursor != cursor || env.Channel != m.Channel || string(env.Data) != data {
				t.Fatalf("envelope = %s", f.payload)
			}
			c, err := ParseCursor(env.Cursor)
			if err != nil || c[0].Pos != m.Pos {
				t.Fatalf("envelope cursor %q: %v %v", env.Cursor, c, err)
			}
		}
	}
	// Different cursors for the same message (two sessions) share the tail.
	m := testMessage("c", 1, `{}`)
	a := WSTransport{Format: WSEnvelope}.AppendMessage(nil, m, []byte("AAAA"))
	b := WSTransport{Format: WSEnvelope}.AppendMessage(nil, m, []byte("BBBBBBBB"))
	if !bytes.HasSuffix(a, []byte(`","channel":"c","data":{}}`)) || !bytes.HasSuffix(b, []byte(`","channel":"c","data":{}}`)) {
		t.Fatalf("envelopes %q / %q", a, b)
	}
}

func TestWSEvents(t *testing.T) {
	ev := []byte(`{"type":"pong","timestamp":1}`)
	cursor := []byte("AQID")
	// Raw: events are bare objects, never with a cursor.
	f, _ := readWSFrame(bytes.NewReader(WSTransport{Format: WSRaw}.AppendEvent(nil, ev, cursor)))
	if string(f.payload) != string(ev) || f.op != opText {
		t.Fatalf("raw event = %s", f.payload)
	}
	// Envelope: a cursor member is added.
	f, err := readWSFrame(bytes.NewReader(WSTransport{Format: WSEnvelope}.AppendEvent(nil, ev, cursor)))
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(f.payload, &got); err != nil {
		t.Fatalf("envelope event %s: %v", f.payload, err)
	}
	if got["type"] != "pong" || got["timestamp"] != 1.0 || got["cursor"] != "AQID" || len(got) != 3 {
		t.Fatalf("envelope event = %s", f.payload)
	}
	// Envelope without a cursor: unchanged.
	f, _ = readWSFrame(bytes.NewReader(WSTransport{Format: WSEnvelope}.AppendEvent(nil, ev, nil)))
	if string(f.payload) != string(ev) {
		t.Fatalf("envelope event without cursor = %s", f.payload)
	}
	// A large event gets a 16-bit length that matches the cursor splice.
	big := []byte(`{"type":"error","message":"` + strings.Repeat("m", 200) + `"}`)
	f, err = readWSFrame(bytes.NewReader(WSTransport{Format: WSEnvelope}.AppendEvent(nil, big, cursor)))
	if err != nil || !json.Valid(f.payload) || f.hdrLen != 4 {
		t.Fatalf("large envelope event: %v, %s", err, f.payload)
	}
	// Keepalive is an empty ping.
	if k := (WSTransport{}).AppendKeepalive(nil); !bytes.Equal(k, []byte{0x89, 0}) {
		t.Fatalf("keepalive = % x", k)
	}
}

func TestWSClose(t *testing.T) {
	cursor := []byte("AQID")
	for _, tt := range []struct {
		tr     WSTransport
		r      CloseReason
		events int
	}{
		{WSTransport{Format: WSRaw}, CloseTokenExpired, 1},
		{WSTransport{Format: WSEnvelope}, CloseSlowConsumer, 1},
		{WSTransport{Format: WSRaw}, CloseUnsupportedData, 0},
		{WSTransport{Format: WSEnvelope}, CloseNormal, 0},
		{WSTransport{Format: WSRaw}, CloseReason{Reason: strings.Repeat("r", 300), WSCode: 4000}, 0},
		// 140 bytes of 2-, 3- and 4-byte characters: a cut at 123 bytes
		// would split one.
		{WSTransport{Format: WSRaw}, CloseReason{Reason: strings.Repeat("é", 70), WSCode: 4403}, 0},
		{WSTransport{Format: WSRaw}, CloseReason{Reason: "x" + strings.Repeat("€", 46), WSCode: 4403}, 0},
		{WSTransport{Format: WSRaw}, CloseReason{Reason: "xy" + strings.Repeat("😀", 35), WSCode: 4403}, 0},
	} {
		r := bytes.NewReader(tt.tr.AppendClose(nil, tt.r, cursor))
		for range tt.events {
			f, err := readWSFrame(r)
			if err != nil || f.op != opText {
				t.Fatalf("%s: final event: %v op %#x", tt.r.Reason, err, f.op)
			}
			var ev struct {
				Type, Reason, Cursor string
				Reconnect            bool
			}
			if err := json.Unmarshal(f.payload, &ev); err != nil {
				t.Fatalf("%s: %s: %v", tt.r.Reason, f.payload, err)
			}
			wantCursor := ""
			if tt.tr.Format == WSEnvelope {
				wantCursor = string(cursor)
			}
			if ev.Type != "disconnect" || ev.Reason != tt.r.Reason || ev.Reconnect != tt.r.Reconnect || ev.Cursor != wantCursor {
				t.Fatalf("%s: final event = %s", tt.r.Reason, f.payload)
			}
		}
		f, err := readWSFrame(r)
		if err != nil || f.op != opClose {
			t.Fatalf("%s: close frame: %v op %#x", tt.r.Reason, err, f.op)
		}
		code, reason := closePayload(f.payload)
		wantReason := tt.r.Reason
		for len(wantReason) > 123 {
			_, n := utf8.DecodeLastRuneInString(wantReason)
			wantReason = wantReason[:len(wantReason)-n]
		}
		if !utf8.ValidString(reason) {
			t.Fatalf("%.20s: close reason is not valid UTF-8: %q", tt.r.Reason, reason)
		}
		if code != tt.r.WSCode || reason != wantReason {
			t.Fatalf("%s: close %d %q, want %d %q", tt.r.Reason, code, reason, tt.r.WSCode, wantReason)
		}
		if r.Len() != 0 {
			t.Fatalf("%s: %d bytes after the close frame", tt.r.Reason, r.Len())
		}
	}
}

func TestCloseReasonsJSON(t *testing.T) {
	for _, r := range []CloseReason{CloseTokenExpired, CloseShutdown, CloseSlowConsumer, CloseReplaced, CloseIdle,
		CloseMaxLifetime, CloseInternal, {Reason: "x", Retry: 1500 * time.Millisecond, Reconnect: true}} {
		ev := disconnectEvent(r)
		var got struct {
			Type, Reason string
			Reconnect    bool
			RetryMS      *int64 `json:"retry_ms"`
		}
		if err := json.Unmarshal(ev, &got); err != nil {
			t.Fatalf("%s: %v", ev, err)
		}
		if got.Type != "disconnect" || got.Reason != r.Reason || got.Reconnect != r.Reconnect ||
			(r.Retry > 0) != (got.RetryMS != nil) || (got.RetryMS != nil && *got.RetryMS != r.Retry.Milliseconds()) {
			t.Fatalf("disconnect event = %s", ev)
		}
		if r.WSCode < 1000 || r.WSCode == 1005 || r.WSCode == 1006 || r.WSCode > 4999 {
			if r.Reason != "x" {
				t.Fatalf("%s: close code %d may not be sent", r.Reason, r.WSCode)
			}
		}
	}
}

func TestEventBuilders(t *testing.T) {
	for _, ev := range [][]byte{
		EstablishedEvent(KindWS, `u"1\`, false),
		EstablishedEvent(KindSSE, "\u2603\x00", false),
		StreamResetEvent("c:1", "epoch_changed"),
		TokenExpiringEvent(time.Unix(1700000000, 0)),
		ErrorEvent("bad \"input\"\n\x01"),
		PongEvent(json.RawMessage(`"x"`)),
	} {
		var m map[string]any
		if err := json.Unmarshal(ev, &m); err != nil {
			t.Fatalf("%s: %v", ev, err)
		}
		if _, ok := m["type"].(string); !ok {
			t.Fatalf("%s has no type", ev)
		}
	}
	var est struct {
		Type    string
		Message string
		UserID  string `json:"user_id"`
	}
	json.Unmarshal(EstablishedEvent(KindSSE, "alice", false), &est)
	if est.Type != "connection_established" || est.Message != "SSE connected successfully" || est.UserID != "alice" {
		t.Fatalf("established = %+v", est)
	}
}

func TestJSONType(t *testing.T) {
	for in, want := range map[string]string{
		`{"type":"notification"}`:           "notification",
		`{"a":1,"type":"x.y-z"}`:            "x.y-z",
		`{"type":"two words"}`:              "",
		`{"type":"new\nline"}`:              "",
		`{"type":"caf\u00e9"}`:              "",
		`{"type":1}`:                        "",
		`{"kind":"x"}`:                      "",
		`[1]`:                               "",
		`not json`:                          "",
		`{"nested":{"type":"inner"}}`:       "",
		`{"type":"oracle_upload_progress"}`: "oracle_upload_progress",
	} {
		if got := jsonType([]byte(in)); got != want {
			t.Errorf("jsonType(%s) = %q, want %q", in, got, want)
		}
	}
}

// normalizeNewlines is what an EventSource client reconstructs from data
// lines: CRLF and lone CR become LF.
func normalizeNewlines(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "\r\n", "\n"), "\r", "\n")
}

func TestSSEMessageData(t *testing.T) {
	for _, data := range []string{
		`{"type":"notification"}`,
		"",
		"a\nb",
		"a\r\nb",
		"a\rb",
		"a\n\nb",
		"a\r\r\nb",
		"\n",
		"\r\n",
		"trailing\n",
		"trailing\r",
		"\nleading",
		"x\n\r\ny\rz\n",
		"data: looks like a field\nid: 5\n\n",
		": comment-like",
	} {
		m := testMessage("c", 4, data)
		cursor := Cursor{{Hash: ChannelHash("c"), Pos: m.Pos}}.String()
		stream := string(SSETransport{}.AppendMessage(nil, m, []byte(cursor)))
		if !strings.HasPrefix(stream, "id: "+cursor+"\n") || !strings.HasSuffix(stream, "\n\n") {
			t.Fatalf("%q: stream %q", data, stream)
		}
		// Every line is a field line: no stray CR, no line that would be
		// taken for another field.
		body := strings.TrimSuffix(stream, "\n\n")
		for l := range strings.SplitSeq(body, "\n") {
			if !strings.HasPrefix(l, "id: ") && !strings.HasPrefix(l, "data: ") || strings.Contains(l, "\r") {
				t.Fatalf("%q: bad line %q in %q", data, l, stream)
			}
		}
		evs, _ := parseSSE(stream)
		if len(evs) != 1 {
			t.Fatalf("%q: %d events from %q", data, len(evs), stream)
		}
		if evs[0].Data != normalizeNewlines(data) || evs[0].ID != cursor || evs[0].Event != "message" {
			t.Fatalf("%q: parsed %+v from %q", data, evs[0], stream)
		}
	}
}

func TestSSENamedEvents(t *testing.T) {
	tr := SSETransport{Named: true}
	stream := string(tr.AppendMessage(nil, testMessage("c", 1, `{"type":"notification","n":1}`), []byte("CUR")))
	stream += string(tr.AppendMessage(nil, testMessage("c", 2, `{"n":2}`), []byte("CUR2")))
	stream += string(tr.AppendMessage(nil, testMessage("c", 3, `{"type":"bad type"}`), []byte("CUR3")))
	stream += string(tr.AppendEvent(nil, StreamResetEvent("c", "history_expired"), []byte("CUR4")))
	stream += string(tr.AppendEvent(nil, []byte(`{"type":"pong"}`), nil))
	stream += string(SSETransport{}.AppendEvent(nil, []byte(`{"type":"pong"}`), nil))
	evs, _ := parseSSE(stream)
	want := []sseEvent{
		{Event: "notification", Data: `{"type":"notification","n":1}`, ID: "CUR", HasID: true},
		{Event: "message", Data: `{"n":2}`, ID: "CUR2", HasID: true},
		{Event: "message", Data: `{"type":"bad type"}`, ID: "CUR3", HasID: true},
		{Event: "stream_reset", Data: string(StreamResetEvent("c", "history_expired")), ID: "CUR4", HasID: true},
		{Event: "pong", Data: `{"type":"pong"}`, ID: "CUR4"},
		{Event: "message", Data: `{"type":"pong"}`, ID: "CUR4"},
	}
	if len(evs) != len(want) {
		t.Fatalf("%d events from %q", len(evs), stream)
	}
	for i := range want {
		if evs[i] != want[i] {
			t.Errorf("event %d = %+v, want %+v", i, evs[i], want[i])
		}
	}
	if !strings.Contains(stream, "event: notification\n") {
		t.Fatalf("no event line in %q", stream)
	}
}

func TestSSEKeepaliveAndClose(t *testing.T) {
	stream := string(SSETransport{}.AppendKeepalive(nil))
	if stream != ":\n\n" {
		t.Fatalf("keepalive = %q", stream)
	}
	r := CloseShutdown
	r.Retry = 2500 * time.Millisecond
	stream += string(SSETransport{}.AppendClose(nil, r, []byte("CUR")))
	evs, p := parseSSE(stream)
	if p.comments != 1 || p.retry != 2500 {
		t.Fatalf("comments %d, retry %d in %q", p.comments, p.retry, stream)
	}
	if len(evs) != 1 || evs[0].ID != "CUR" {
		t.Fatalf("events %+v", evs)
	}
	var ev struct {
		Type, Reason string
		Reconnect    bool
		RetryMS      int64 `json:"retry_ms"`
	}
	if err := json.Unmarshal([]byte(evs[0].Data), &ev); err != nil {
		t.Fatal(err)
	}
	if ev.Type != "disconnect" || ev.Reason != "shutdown" || !ev.Reconnect || ev.RetryMS != 2500 {
		t.Fatalf("final event %+v", ev)
	}
	// A reason without an event writes nothing.
	if b := (SSETransport{}).AppendClose(nil, CloseProtocolError, []byte("CUR")); len(b) != 0 {
		t.Fatalf("close without event wrote %q", b)
	}
}

func TestSSEHead(t *testing.T) {
	head := AppendSSEHead(nil, 2*time.Second, [][2]string{{"Access-Control-Allow-Origin", "https://app.example"}, {"Vary", "Origin"}})
	resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(head)), nil)
	if err != nil {
		t.Fatalf("head %q: %v", head, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Proto != "HTTP/1.1" {
		t.Fatalf("status %s %s", resp.Proto, resp.Status)
	}
	for k, want := range map[string]string{
		"Content-Type":                "text/event-stream; charset=utf-8",
		"Cache-Control":               "no-cache, no-store",
		"X-Accel-Buffering":           "no",
		"Access-Control-Allow-Origin": "https://app.example",
		"Vary":                        "Origin",
	} {
		if got := resp.Header.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if !strings.Contains(resp.Header.Get("Cache-Control"), "no-cache") {
		t.Error("Cache-Control lacks no-cache")
	}
	if resp.Header.Get("Content-Length") != "" || len(resp.TransferEncoding) != 0 {
		t.Error("an event stream must not be length-delimited or chunked")
	}
	body, _ := io.ReadAll(resp.Body)
	if string(body) != "retry: 2000\n\n" {
		t.Fatalf("body after head = %q", body)
	}
	_, p := parseSSE(string(body))
	if p.retry != 2000 {
		t.Fatalf("retry = %d", p.retry)
	}
}

// TestEstablishedUserID: an integer user id is a JSON number, as the
// guide's consumer sends self.user.id, unless asString; anything else, and
// integers JavaScript cannot hold exactly, stay strings.
func TestEstablishedUserID(t *testing.T) {
	for _, tc := range []struct {
		id       string
		asString bool
		want     string
	}{
		{"42", false, `42`},
		{"42", true, `"42"`},
		{"0", false, `0`},
		{"-7", false, `-7`},
		{"9007199254740992", false, `9007199254740992`},
		{"9007199254740993", false, `"9007199254740993"`},
		{"12345678901234567890", false, `"12345678901234567890"`},
		{"042", false, `"042"`},
		{"-0", false, `"-0"`},
		{"+1", false, `"+1"`},
		{"1e3", false, `"1e3"`},
		{"", false, `""`},
		{"alice", false, `"alice"`},
	} {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(EstablishedEvent(KindWS, tc.id, tc.asString), &m); err != nil {
			t.Fatalf("%q: %v", tc.id, err)
		}
		if got := string(m["user_id"]); got != tc.want {
			t.Errorf("user_id %q (asString %v) = %s, want %s", tc.id, tc.asString, got, tc.want)
		}
	}
}
