package fanout

import "sync/atomic"

// EncodingSlots is the number of per-message encodings a Message can cache.
// Protocols number their formats from 0 (raw WebSocket frame, SSE data
// block, ..., the coalescing key, the payload type); six covers everything
// Herald derives.
const EncodingSlots = 6

// encCache holds lazily built, shared encodings of one message.
type encCache [EncodingSlots]atomic.Pointer[[]byte]

// Encoded returns the encoding of m in format slot, building it with build
// the first time any session asks for it. A broadcast to 10,000 sessions is
// thus framed once, not 10,000 times. Concurrent first calls may both run
// build; one result wins and both are equal, so that is harmless.
func (m *Message) Encoded(slot int, build func(*Message) []byte) []byte {
	if p := m.enc[slot].Load(); p != nil {
		return *p
	}
	b := build(m)
	m.enc[slot].CompareAndSwap(nil, &b)
	return *m.enc[slot].Load()
}
