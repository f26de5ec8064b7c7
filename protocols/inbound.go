package protocols

import (
	"bytes"
	"encoding/json"
	"strconv"
	"time"
	"unicode/utf8"
)

// Inbound is a decoded client message. Clients send JSON objects with a
// "type": the guide's {"type":"ping","timestamp":X}, and
// {"type":"refresh","token":"..."} to replace an expiring token.
type Inbound struct {
	Type      string          `json:"type"`
	Timestamp json.RawMessage `json:"timestamp,omitempty"`
	Token     string          `json:"token,omitempty"`
}

// InboundAction is what a client message asks for.
type InboundAction uint8

// Inbound actions.
const (
	// ActionReply: send Reply to the client.
	ActionReply InboundAction = iota
	// ActionRefresh: verify Msg.Token and, when valid, extend the session.
	ActionRefresh
	// ActionClose: the message cannot be accepted (a text frame that is not
	// valid UTF-8); close with CloseInvalidPayload.
	ActionClose
)

// CloseInvalidPayload closes a connection that sent a text frame that is not
// valid UTF-8 (RFC 6455 requires 1007).
var CloseInvalidPayload = CloseReason{Reason: "invalid UTF-8 in text frame", WSCode: 1007}

// ParseInbound decides what to do with one text message from a client. It
// is a pure function of its input, never panics, and answers malformed
// input with an error event rather than a disconnect (except invalid UTF-8,
// which the WebSocket protocol requires to close).
func ParseInbound(data []byte) (msg Inbound, action InboundAction, reply []byte) {
	if !utf8.Valid(data) {
		return msg, ActionClose, nil
	}
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return msg, ActionReply, ErrorEvent("invalid JSON: expected an object like {\"type\":\"ping\"}")
	}
	if err := json.Unmarshal(trimmed, &msg); err != nil {
		return msg, ActionReply, ErrorEvent("invalid JSON: " + err.Error())
	}
	switch msg.Type {
	case "ping":
		return msg, ActionReply, PongEvent(msg.Timestamp)
	case "refresh":
		if msg.Token == "" {
			return msg, ActionReply, ErrorEvent("refresh needs a token")
		}
		return msg, ActionRefresh, nil
	case "":
		return msg, ActionReply, ErrorEvent("message has no \"type\"")
	default:
		return msg, ActionReply, ErrorEvent("unknown message type " + strconv.Quote(msg.Type))
	}
}

// PongEvent answers a ping, echoing its timestamp as sent.
func PongEvent(ts json.RawMessage) []byte {
	b := []byte(`{"type":"pong"`)
	if len(ts) > 0 {
		b = append(b, `,"timestamp":`...)
		b = append(b, ts...)
	}
	return append(b, '}')
}

// RefreshedEvent confirms a token refresh.
func RefreshedEvent(exp time.Time) []byte {
	b := []byte(`{"type":"refreshed","expires_at":`)
	b = strconv.AppendInt(b, exp.Unix(), 10)
	return append(b, '}')
}
