package bench

import (
	"math"
	"sync"
	"testing"
)

func TestRecorderPercentiles(t *testing.T) {
	r := NewRecorder()
	var wg sync.WaitGroup
	// 1..10000 µs, recorded from many goroutines.
	for g := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for v := g*1000 + 1; v <= (g+1)*1000; v++ {
				r.Record(v, int64(v))
			}
		}()
	}
	wg.Wait()
	h := r.Drain()
	if h.TotalCount() != 10000 {
		t.Fatalf("count %d", h.TotalCount())
	}
	p := Summarize(h)
	near := func(name string, got, want float64) {
		t.Helper()
		if math.Abs(got-want) > want*0.002+0.002 {
			t.Errorf("%s = %v, want ~%v", name, got, want)
		}
	}
	near("p50", p.P50, 5)
	near("p90", p.P90, 9)
	near("p99", p.P99, 9.9)
	near("p99.9", p.P999, 9.99)
	near("max", p.Max, 10)
	near("min", p.Min, 0.001)
	near("mean", p.Mean, 5.0005)
	if r.Drain().TotalCount() != 0 {
		t.Fatal("drain did not reset")
	}
	// Clamping.
	r.Record(0, -5)
	r.Record(0, 1<<40)
	if h := r.Drain(); h.TotalCount() != 2 || h.Max() < latHighest*999/1000 {
		t.Fatalf("clamped: count %d max %d", h.TotalCount(), h.Max())
	}
}

func TestHistogramEncodingMerges(t *testing.T) {
	a, b := NewHistogram(), NewHistogram()
	for v := int64(1); v <= 1000; v++ {
		_ = a.RecordValue(v)
		_ = b.RecordValue(v * 1000)
	}
	sa, err := EncodeHistogram(a)
	if err != nil {
		t.Fatal(err)
	}
	sb, _ := EncodeHistogram(b)
	da, err := DecodeHistogram(sa)
	if err != nil {
		t.Fatal(err)
	}
	db, _ := DecodeHistogram(sb)
	m := NewHistogram()
	m.Merge(da)
	m.Merge(db)
	if m.TotalCount() != 2000 {
		t.Fatalf("merged count %d", m.TotalCount())
	}
	if p := Summarize(m); math.Abs(p.P50-1) > 0.01 || math.Abs(p.Max-1000) > 1 {
		t.Fatalf("merged %+v", p)
	}
	if e, _ := EncodeHistogram(NewHistogram()); e != "" {
		t.Fatal("empty histogram should encode to empty string")
	}
	if h, err := DecodeHistogram(""); err != nil || h.TotalCount() != 0 {
		t.Fatal("empty decode")
	}
	if _, err := DecodeHistogram("not base64!"); err == nil {
		t.Fatal("bad input decoded")
	}
	sp := Spectrum(m)
	if len(sp) != len(spectrumPercentiles) || sp[0].Ms > sp[len(sp)-1].Ms {
		t.Fatalf("spectrum %v", sp)
	}
	for i := 1; i < len(sp); i++ {
		if sp[i].Ms < sp[i-1].Ms {
			t.Fatalf("spectrum not monotonic: %v", sp)
		}
	}
}

func TestSourceIPs(t *testing.T) {
	got := sourceIPs("127.0.0.254", 4)
	want := []string{"127.0.0.254", "127.0.0.255", "127.0.1.0", "127.0.1.1"}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("got %v", got)
		}
	}
	if sourceIPs("", 3) != nil {
		t.Fatal("empty base")
	}
}
