package bench

import "testing"

func TestSeqTrackerAccounting(t *testing.T) {
	cases := []struct {
		name string
		seqs []uint64
		exp  StreamExpectation
		want Delivery
	}{
		{"all in order", []uint64{1, 2, 3, 4}, StreamExpectation{Max: 4}, Delivery{Expected: 4, Delivered: 4}},
		{"nothing published", nil, StreamExpectation{}, Delivery{}},
		{"lost middle and tail", []uint64{1, 3}, StreamExpectation{Max: 5}, Delivery{Expected: 5, Delivered: 2, Lost: 3}},
		{"duplicates", []uint64{1, 2, 2, 3, 3, 3}, StreamExpectation{Max: 3}, Delivery{Expected: 3, Delivered: 3, Duplicates: 3}},
		{"out of order", []uint64{2, 1, 4, 3}, StreamExpectation{Max: 4}, Delivery{Expected: 4, Delivered: 4, OutOfOrder: 2}},
		{"failed publish not expected", []uint64{1, 3}, StreamExpectation{Max: 3, Failed: []uint64{2}}, Delivery{Expected: 2, Delivered: 2}},
		{"failed publish delivered anyway", []uint64{1, 2, 3}, StreamExpectation{Max: 3, Failed: []uint64{2}}, Delivery{Expected: 2, Delivered: 2, Unconfirmed: 1}},
		{"beyond max", []uint64{1, 2, 9}, StreamExpectation{Max: 2}, Delivery{Expected: 2, Delivered: 2, Unconfirmed: 1}},
		{"word boundaries", seqRange(1, 200), StreamExpectation{Max: 130}, Delivery{Expected: 130, Delivered: 130, Unconfirmed: 70}},
		{"exactly 64", seqRange(1, 64), StreamExpectation{Max: 64}, Delivery{Expected: 64, Delivered: 64}},
		{"zero ignored", []uint64{0, 1}, StreamExpectation{Max: 1}, Delivery{Expected: 1, Delivered: 1}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var tr SeqTracker
			for _, s := range c.seqs {
				tr.Observe(s)
			}
			if got := tr.Account(c.exp); got != c.want {
				t.Fatalf("got %+v\nwant %+v", got, c.want)
			}
		})
	}
}

func seqRange(from, to uint64) []uint64 {
	var out []uint64
	for s := from; s <= to; s++ {
		out = append(out, s)
	}
	return out
}

func TestDeliveryAddAndRatio(t *testing.T) {
	var d Delivery
	d.Add(Delivery{Expected: 10, Delivered: 9, Lost: 1, Duplicates: 2})
	d.Add(Delivery{Expected: 10, Delivered: 10, OutOfOrder: 1})
	if d.Expected != 20 || d.Delivered != 19 || d.Lost != 1 || d.Duplicates != 2 || d.OutOfOrder != 1 {
		t.Fatalf("sum %+v", d)
	}
	if r := d.Ratio(); r != 0.95 {
		t.Fatalf("ratio %v", r)
	}
	if (Delivery{}).Ratio() != 1 {
		t.Fatal("empty ratio should be 1")
	}
}

func TestParseMessage(t *testing.T) {
	raw := AppendPayload(nil, KindBroadcast, 42, 1700000000123456789, 10)
	p := ParseMessage(raw)
	if p.Kind != KindBroadcast || p.Seq != 42 || p.TS != 1700000000123456789 || p.Cursor != nil {
		t.Fatalf("raw %s: %+v", raw, p)
	}
	env := append([]byte(`{"cursor":"AQabc-_","channel":"user:b1","data":`), AppendPayload(nil, KindUser, 7, 99, 0)...)
	env = append(env, '}')
	p = ParseMessage(env)
	if p.Kind != KindUser || p.Seq != 7 || p.TS != 99 || string(p.Cursor) != "AQabc-_" {
		t.Fatalf("envelope %s: %+v", env, p)
	}
	ev := ParseMessage([]byte(`{"type":"connection_established","message":"x","user_id":"b1","cursor":"AQzz"}`))
	if ev.Kind != 0 || string(ev.Cursor) != "AQzz" {
		t.Fatalf("event: %+v", ev)
	}
	for _, bad := range []string{``, `{}`, `{"k":"b"}`, `{"k":"z","s":1,"ts":2}`, `{"k":"b","s":x,"ts":2}`} {
		if p := ParseMessage([]byte(bad)); p.Kind != 0 {
			t.Fatalf("%q parsed as %+v", bad, p)
		}
	}
}
