// Package fanout moves published messages to every Herald node that has a
// local subscriber, and keeps each channel's short history so a client that
// reconnects can be sent exactly what it missed.
//
// A Broker is the only seam between Herald's edge and the transport that
// carries messages between nodes: the in-memory broker serves a single node,
// the Redis broker many. Everything above the Broker (hub, sessions,
// protocols) is identical for both.
package fanout

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Position is a message's place in its channel's history.
//
// Offsets start at 1 and grow by one per published message. The epoch
// identifies one unbroken history: when a channel's history is lost (a
// restart of the memory broker, a Redis shard restarted without persistence)
// the channel gets a new epoch and offsets from an older epoch can no longer
// be resumed.
type Position struct {
	Epoch  uint32
	Offset uint64
}

// String formats p as "epoch:offset" for logs and errors.
func (p Position) String() string { return fmt.Sprintf("%d:%d", p.Epoch, p.Offset) }

// Message is one published payload together with the position its channel
// gave it. Data is the payload exactly as published; brokers never rewrite
// it. A Message is shared by every recipient and must not be modified after
// it has been handed to a Handler.
type Message struct {
	// Channel is the channel the message was published to.
	Channel string
	// Pos is the message's position in Channel's history.
	Pos Position
	// Data is the payload, a JSON value, byte for byte as published.
	Data []byte
	// TraceParent is the W3C traceparent of the publish, or empty.
	TraceParent string
	// PublishedAt is the publish time in Unix nanoseconds (for latency
	// metrics); zero when unknown.
	PublishedAt int64

	// enc caches per-format encodings of the message, built once and shared
	// by every session that writes it (see Encoded).
	enc encCache
}

// Handler receives the messages of channels a node is subscribed to, in
// publish order per channel. It runs on the broker's delivery path and must
// not block: it should only hand the message to bounded queues.
type Handler func(*Message)

// PublishOptions are per-call settings for Broker.Publish.
type PublishOptions struct {
	// IdempotencyKey, when set, makes a repeat publish with the same key
	// within the broker's idempotency window return the first publish's
	// position instead of publishing again.
	IdempotencyKey string
	// TraceParent is carried with the message to every delivering node.
	TraceParent string
}

// PublishResult describes the outcome of one publish.
type PublishResult struct {
	// Pos is the position the channel gave the message.
	Pos Position
	// Duplicate reports that IdempotencyKey matched an earlier publish and
	// nothing new was published; Pos is that earlier publish's position.
	Duplicate bool
}

// HistoryResult is the answer to a History request.
type HistoryResult struct {
	// Messages are the retained messages after the requested position, in
	// order, at most the requested limit.
	Messages []*Message
	// Top is the position of the newest message in the channel (Offset 0 when
	// the channel has none yet) in its current epoch.
	Top Position
}

// Broker publishes messages, delivers the messages of subscribed channels to
// the Handler it was built with, and serves each channel's recent history.
//
// Subscriptions are reference counted: a channel is delivered while the
// number of Subscribe calls for it exceeds the number of Unsubscribe calls.
type Broker interface {
	// Publish appends data to channel's history and delivers it to every
	// node subscribed to channel.
	Publish(ctx context.Context, channel string, data []byte, opts PublishOptions) (PublishResult, error)
	// Subscribe adds one reference to each channel's subscription.
	Subscribe(ctx context.Context, channels ...string) error
	// Unsubscribe removes one reference from each channel's subscription.
	Unsubscribe(ctx context.Context, channels ...string) error
	// History returns up to limit messages of channel that come after since
	// (all retained ones when limit <= 0), and the channel's top position.
	// It returns ErrHistoryGone, with Top set, when since is in another
	// epoch or older than the retained history, so the messages in between
	// cannot be recovered. since with Epoch 0 asks for the top only.
	History(ctx context.Context, channel string, since Position, limit int) (HistoryResult, error)
	// Close releases the broker's resources. Publish and Subscribe fail
	// afterwards.
	Close() error
}

var (
	// ErrHistoryGone reports that a position can no longer be resumed: its
	// epoch ended or the messages after it are no longer retained.
	ErrHistoryGone = errors.New("fanout: history no longer covers the position")
	// ErrEpochChanged is wrapped by ErrHistoryGone errors whose cause is a
	// new epoch rather than expired history.
	ErrEpochChanged = errors.New("fanout: channel epoch changed")
	// ErrClosed is returned by a broker after Close.
	ErrClosed = errors.New("fanout: broker closed")
	// ErrInvalidChannel is returned for a channel name Herald does not accept.
	ErrInvalidChannel = errors.New("fanout: invalid channel name")
)

// MaxChannelLen is the longest channel name accepted, in bytes. Channel names
// travel in every envelope and Redis key, so they are kept short.
const MaxChannelLen = 200

// ValidChannel reports whether name is an acceptable channel name: 1 to
// MaxChannelLen bytes of ASCII letters, digits and "_-.:@=+/".
func ValidChannel(name string) bool {
	if len(name) == 0 || len(name) > MaxChannelLen {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '_' || c == '-' || c == '.' || c == ':' || c == '@' || c == '=' || c == '+' || c == '/':
		default:
			return false
		}
	}
	return true
}

// UserChannelPrefix starts the name of every per-user channel.
const UserChannelPrefix = "user:"

// UserChannel returns the name of user id's own channel, "user:<id>".
func UserChannel(id string) string { return UserChannelPrefix + id }

// Retention returns how many messages channel keeps and for how long; a
// broker built with a nil Retention uses its HistorySize and HistoryTTL for
// every channel.
type Retention func(channel string) (size int, ttl time.Duration)
