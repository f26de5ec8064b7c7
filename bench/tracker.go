package bench

import "math/bits"

// SeqTracker accounts for the sequence numbers of one stream at one
// receiver: which were received, how many arrived twice, and how many
// arrived after a higher one. Sequence numbers start at 1. It is not safe
// for concurrent use.
type SeqTracker struct {
	seen     []uint64 // bit s-1 set: s received
	max      uint64
	received uint64 // distinct
	dups     uint64
	ooo      uint64
}

// Observe records seq and reports whether it is a duplicate.
func (t *SeqTracker) Observe(seq uint64) (dup bool) {
	if seq == 0 {
		return false
	}
	w, b := (seq-1)/64, (seq-1)%64
	for uint64(len(t.seen)) <= w {
		t.seen = append(t.seen, 0)
	}
	if t.seen[w]&(1<<b) != 0 {
		t.dups++
		return true
	}
	t.seen[w] |= 1 << b
	t.received++
	if seq < t.max {
		t.ooo++
	} else {
		t.max = seq
	}
	return false
}

// Has reports whether seq was received.
func (t *SeqTracker) Has(seq uint64) bool {
	if seq == 0 {
		return false
	}
	w, b := (seq-1)/64, (seq-1)%64
	return w < uint64(len(t.seen)) && t.seen[w]&(1<<b) != 0
}

// Received returns the number of distinct sequence numbers received.
func (t *SeqTracker) Received() uint64 { return t.received }

// StreamExpectation is what a receiver of a stream should have received:
// sequence numbers 1..Max except Failed (publishes that were not
// acknowledged, so they may or may not have gone out).
type StreamExpectation struct {
	Max    uint64   `json:"max"`
	Failed []uint64 `json:"failed,omitempty"`
}

// Delivery is the exact delivery accounting of one or many receivers.
type Delivery struct {
	// Expected is the number of (receiver, message) pairs that should have
	// arrived.
	Expected uint64 `json:"expected"`
	// Delivered is how many of those arrived (each counted once).
	Delivered uint64 `json:"delivered"`
	// Lost is Expected - Delivered.
	Lost uint64 `json:"lost"`
	// Duplicates counts messages that arrived more than once (each extra
	// copy counts).
	Duplicates uint64 `json:"duplicates"`
	// OutOfOrder counts messages that arrived after a higher sequence
	// number of the same stream.
	OutOfOrder uint64 `json:"out_of_order"`
	// Unconfirmed counts messages received whose publish was not
	// acknowledged (a timed-out publish that went out anyway), or beyond
	// the last publish: neither expected nor an error.
	Unconfirmed uint64 `json:"unconfirmed"`
}

// Add adds o to d.
func (d *Delivery) Add(o Delivery) {
	d.Expected += o.Expected
	d.Delivered += o.Delivered
	d.Lost += o.Lost
	d.Duplicates += o.Duplicates
	d.OutOfOrder += o.OutOfOrder
	d.Unconfirmed += o.Unconfirmed
}

// Ratio returns Delivered/Expected (1 when nothing was expected).
func (d Delivery) Ratio() float64 {
	if d.Expected == 0 {
		return 1
	}
	return float64(d.Delivered) / float64(d.Expected)
}

// Account compares what t received with exp.
func (t *SeqTracker) Account(exp StreamExpectation) Delivery {
	var d Delivery
	// Count received sequence numbers in 1..Max with whole words.
	var inRange uint64
	full := exp.Max / 64
	for w := uint64(0); w < full && w < uint64(len(t.seen)); w++ {
		inRange += uint64(bits.OnesCount64(t.seen[w]))
	}
	if rem := exp.Max % 64; rem > 0 && full < uint64(len(t.seen)) {
		inRange += uint64(bits.OnesCount64(t.seen[full] & (1<<rem - 1)))
	}
	failedSeen := uint64(0)
	failed := uint64(0)
	for _, s := range exp.Failed {
		if s == 0 || s > exp.Max {
			continue
		}
		failed++
		if t.Has(s) {
			failedSeen++
		}
	}
	d.Expected = exp.Max - failed
	d.Delivered = inRange - failedSeen
	d.Lost = d.Expected - d.Delivered
	d.Duplicates = t.dups
	d.OutOfOrder = t.ooo
	d.Unconfirmed = t.received - d.Delivered
	return d
}
