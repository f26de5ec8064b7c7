package confkey

import (
	"errors"
	"testing"
	"time"
)

func TestList(t *testing.T) {
	var l List
	if l.Err() != nil {
		t.Fatal("empty list has an error")
	}
	l.Between("a.off", 0, time.Second, time.Hour, true)           // 0 is off
	l.Between("a.ok", time.Minute, time.Second, time.Hour, false) // in range
	l.Between("a.low", time.Millisecond, time.Second, time.Hour, true)
	l.Append(nil)
	l.Append(Errorf("b.key", "bad %d", 7))
	err := l.Err()
	want := "config a.low: must be between 1s and 1h (or 0 to turn it off), got 1ms\nconfig b.key: bad 7"
	if err == nil || err.Error() != want {
		t.Fatalf("got %q, want %q", err, want)
	}
	var e *Error
	if !errors.As(err, &e) || e.Key != "a.low" {
		t.Fatalf("errors.As: %v", e)
	}
}

func TestFormatDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{time.Hour: "1h", 90 * time.Minute: "1h30m", time.Minute: "1m", 100 * time.Millisecond: "100ms", 30 * 24 * time.Hour: "720h"} {
		if got := FormatDuration(d); got != want {
			t.Errorf("FormatDuration(%s) = %q, want %q", d, got, want)
		}
	}
}
