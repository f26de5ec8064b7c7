// Package ssetest reads a Server-Sent Events stream the way a browser's
// EventSource does, for tests.
package ssetest

import (
	"bufio"
	"encoding/json"
	"io"
	"strings"
	"testing"
	"time"
)

// Event is one dispatched event (or a block that only set retry).
type Event struct {
	ID, Event, Data, Retry string
	// At is when the event's blank line arrived.
	At time.Time
}

// Read parses r until it fails and calls emit for every block that carried
// data or a retry hint. The last event id carries over, as in EventSource.
// It returns the read error (io.EOF at a clean end).
func Read(r io.Reader, emit func(Event)) error {
	br := bufio.NewReader(r)
	var ev Event
	var data []string
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return err
		}
		line = strings.TrimRight(line, "\r\n")
		switch {
		case line == "":
			if data != nil || ev.Retry != "" {
				ev.Data, ev.At = strings.Join(data, "\n"), time.Now()
				emit(ev)
			}
			ev, data = Event{ID: ev.ID}, nil
		case strings.HasPrefix(line, ":"):
		case strings.HasPrefix(line, "id: "):
			ev.ID = line[4:]
		case strings.HasPrefix(line, "event: "):
			ev.Event = line[7:]
		case strings.HasPrefix(line, "data: "):
			data = append(data, line[6:])
		case strings.HasPrefix(line, "retry: "):
			ev.Retry = line[7:]
		}
	}
}

// Stream reads an event stream in the background, as EventSource does.
type Stream struct {
	events chan Event
	errc   chan error
}

// NewStream reads body until it ends; the caller closes body.
func NewStream(body io.Reader) *Stream {
	s := &Stream{events: make(chan Event, 1024), errc: make(chan error, 1)}
	go func() {
		err := Read(body, func(ev Event) { s.events <- ev })
		s.errc <- err
		close(s.events)
	}()
	return s
}

// Events are every block read (retry-only ones too); the channel closes
// when the stream ends.
func (s *Stream) Events() <-chan Event { return s.events }

// Next returns the next event with data (skipping retry-only blocks). It
// fails t when the stream ends or nothing comes within timeout.
func (s *Stream) Next(t testing.TB, timeout time.Duration) Event {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case ev, ok := <-s.events:
			if !ok {
				t.Fatalf("event stream ended: %v", <-s.errc)
			}
			if ev.Data == "" {
				continue
			}
			return ev
		case <-deadline:
			t.Fatalf("no event within %v", timeout)
		}
	}
}

// NextJSON is Next with the event's data decoded as a JSON object.
func (s *Stream) NextJSON(t testing.TB, timeout time.Duration) (Event, map[string]any) {
	t.Helper()
	ev := s.Next(t, timeout)
	var m map[string]any
	if err := json.Unmarshal([]byte(ev.Data), &m); err != nil {
		t.Fatalf("event data %q: %v", ev.Data, err)
	}
	return ev, m
}

// Ended waits up to timeout for the stream to end and returns the blocks
// read until then; it fails t when the stream is still open.
func (s *Stream) Ended(t testing.TB, timeout time.Duration) []Event {
	t.Helper()
	var got []Event
	deadline := time.After(timeout)
	for {
		select {
		case ev, ok := <-s.events:
			if !ok {
				return got
			}
			got = append(got, ev)
		case <-deadline:
			t.Fatalf("event stream did not end within %v", timeout)
		}
	}
}
