// Package ssetest reads a Server-Sent Events stream the way a browser's
// EventSource does, for tests.
package ssetest

import (
	"bufio"
	"io"
	"strings"
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
