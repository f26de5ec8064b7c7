package protocols

import (
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"time"
)

// ErrChannelsRevoked is wrapped by Env.Refresh's error when the new token
// grants fewer channels than the connection has.
var ErrChannelsRevoked = errors.New("channels revoked")

// CloseReason says why Herald ends a connection: a stable reason string
// (also the "reason" of the final disconnect event), the WebSocket close
// code, whether the client should reconnect, and an optional retry hint.
type CloseReason struct {
	// Reason is a short stable code such as "token_expired".
	Reason string
	// WSCode is the WebSocket close code.
	WSCode uint16
	// Reconnect tells the client whether reconnecting makes sense.
	Reconnect bool
	// Retry is a reconnect delay hint (SSE "retry:" and the event's
	// "retry_ms"); zero for none.
	Retry time.Duration
	// Event makes the transport send a final {"type":"disconnect",...} event
	// before closing.
	Event bool
}

// Close reasons used by Herald. Custom WebSocket codes use the 4000-4999
// private range, mirroring HTTP statuses where one fits.
var (
	// CloseTokenExpired: the token's exp passed while connected.
	CloseTokenExpired = CloseReason{Reason: "token_expired", WSCode: 4401, Reconnect: true, Event: true}
	// CloseShutdown: the node is shutting down; reconnect (to another node).
	CloseShutdown = CloseReason{Reason: "shutdown", WSCode: 1012, Reconnect: true, Event: true}
	// CloseSlowConsumer: the outbound queue overflowed; resume from the
	// cursor.
	CloseSlowConsumer = CloseReason{Reason: "slow_consumer", WSCode: 4008, Reconnect: true, Event: true}
	// CloseUnsupportedData: a binary frame was received.
	CloseUnsupportedData = CloseReason{Reason: "binary frames are not supported", WSCode: 1003}
	// CloseTooBig: a frame exceeded the read limit.
	CloseTooBig = CloseReason{Reason: "message too big", WSCode: 1009}
	// CloseNormal: an orderly close.
	CloseNormal = CloseReason{Reason: "", WSCode: 1000}
	// CloseGoingAway: the client went away or the read deadline passed.
	CloseGoingAway = CloseReason{Reason: "going_away", WSCode: 1001}
	// CloseProtocolError: the client broke the protocol.
	CloseProtocolError = CloseReason{Reason: "protocol_error", WSCode: 1002}
	// CloseReplaced: the user opened more connections than allowed and this,
	// the oldest, was evicted. Reconnecting would evict another tab, so the
	// client is told not to.
	CloseReplaced = CloseReason{Reason: "replaced", WSCode: 4409, Reconnect: false, Event: true}
	// CloseIdle: nothing was sent or received for limits.idle_timeout.
	CloseIdle = CloseReason{Reason: "idle_timeout", WSCode: 4000, Reconnect: false, Event: true}
	// CloseMaxLifetime: the connection reached its maximum lifetime;
	// reconnect and resume from the cursor in the final event.
	CloseMaxLifetime = CloseReason{Reason: "max_lifetime", WSCode: 4001, Reconnect: true, Event: true}
	// CloseRateLimited: the client sent more frames than limits.client_rate
	// (with its burst) allows. Reconnecting is allowed after the hint.
	CloseRateLimited = CloseReason{Reason: "rate_limited", WSCode: 4429, Reconnect: true, Retry: 5 * time.Second, Event: true}
	// CloseInternal: an internal error (for example history unavailable
	// during resume); the client should retry.
	CloseInternal = CloseReason{Reason: "internal_error", WSCode: 1011, Reconnect: true, Event: true}
	// CloseChannelsRevoked: a refresh token granted fewer channels than the
	// connection has; reconnect with it to get the narrower set.
	CloseChannelsRevoked = CloseReason{Reason: "channels_revoked", WSCode: 4003, Reconnect: true, Event: true}
)

// disconnectEvent is the final event before Herald closes a connection.
func disconnectEvent(r CloseReason) []byte {
	b := []byte(`{"type":"disconnect","reason":`)
	b = appendJSONString(b, r.Reason)
	b = append(b, `,"reconnect":`...)
	b = strconv.AppendBool(b, r.Reconnect)
	if r.Retry > 0 {
		b = append(b, `,"retry_ms":`...)
		b = strconv.AppendInt(b, r.Retry.Milliseconds(), 10)
	}
	return append(b, '}')
}

// EstablishedEvent is the first event of every connection, in the guide's
// shape: {"type":"connection_established","message":...,"user_id":...}.
// An integer user id is a JSON number (the guide sends self.user.id), unless
// asString; ids beyond 2^53 stay strings so JavaScript reads them exactly.
func EstablishedEvent(transport TransportKind, userID string, asString bool) []byte {
	msg := "WebSocket connected successfully"
	if transport == KindSSE {
		msg = "SSE connected successfully"
	}
	b := []byte(`{"type":"connection_established","message":`)
	b = appendJSONString(b, msg)
	b = append(b, `,"user_id":`...)
	if !asString && safeJSONInteger(userID) {
		b = append(b, userID...)
	} else {
		b = appendJSONString(b, userID)
	}
	return append(b, '}')
}

// safeJSONInteger reports whether s is a canonical decimal integer
// (no leading zeros or plus sign) that a JavaScript number holds exactly.
func safeJSONInteger(s string) bool {
	d := strings.TrimPrefix(s, "-")
	if d == "" || len(d) > 16 || (d[0] == '0' && len(d) > 1) || s == "-0" {
		return false
	}
	for i := 0; i < len(d); i++ {
		if d[i] < '0' || d[i] > '9' {
			return false
		}
	}
	n, err := strconv.ParseInt(d, 10, 64)
	return err == nil && n <= 1<<53
}

// StreamResetEvent tells the client that messages of channel may have been
// missed and cannot be replayed, so the app should refetch its state.
func StreamResetEvent(channel, reason string) []byte {
	b := []byte(`{"type":"stream_reset","reason":`)
	b = appendJSONString(b, reason)
	b = append(b, `,"channel":`...)
	b = appendJSONString(b, channel)
	return append(b, '}')
}

// TokenExpiringEvent warns that the token expires at exp: reconnect (SSE)
// or refresh (WebSocket) with a new one before then.
func TokenExpiringEvent(exp time.Time) []byte {
	b := []byte(`{"type":"token_expiring","expires_at":`)
	b = strconv.AppendInt(b, exp.Unix(), 10)
	return append(b, '}')
}

// ErrorEvent is sent for client input Herald could not act on.
func ErrorEvent(msg string) []byte {
	b := []byte(`{"type":"error","message":`)
	b = appendJSONString(b, msg)
	return append(b, '}')
}

func appendJSONString(b []byte, s string) []byte {
	q, _ := json.Marshal(s) // strings always marshal
	return append(b, q...)
}

// jsonType returns the top-level "type" string member of a JSON object, or
// "" when there is none or it is not a simple string usable as an SSE event
// name.
func jsonType(data []byte) string {
	var v struct {
		Type string `json:"type"`
	}
	if json.Unmarshal(data, &v) != nil {
		return ""
	}
	for i := 0; i < len(v.Type); i++ {
		if c := v.Type[i]; c < 0x21 || c > 0x7e {
			return ""
		}
	}
	return v.Type
}

// coalesceKey returns "<type>\x00<raw value of the rule's member>" for a
// payload whose type has a coalescing rule, or an empty non-nil slice.
func coalesceKey(data []byte, rules map[string]string) []byte {
	none := []byte{}
	var v map[string]json.RawMessage
	if json.Unmarshal(data, &v) != nil {
		return none
	}
	var typ string
	if json.Unmarshal(v["type"], &typ) != nil {
		return none
	}
	field, ok := rules[typ]
	if !ok || len(v[field]) == 0 {
		return none
	}
	key := append([]byte(typ), 0)
	return append(key, v[field]...)
}
