package storetest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/otelpatterns/patterns/eventsource"
)

// commandID returns a command ID private to the running (sub)test.
func (s *store) commandID(t *testing.T, name string) string {
	id := s.run + "/" + t.Name() + "/" + name
	if len(id) > eventsource.MaxCommandIDLen {
		id = id[len(id)-eventsource.MaxCommandIDLen:]
	}
	return id
}

// duplicate fails the test unless err is the error of an append of
// command to stream that was recorded already.
func duplicate(t *testing.T, err error, command, stream string) {
	t.Helper()
	call := fmt.Sprintf("Append(%q) under command %q, a second time", stream, command)
	if !errors.Is(err, eventsource.ErrDuplicateCommand) {
		t.Fatalf("%s = %v; want an error matching ErrDuplicateCommand", call, err)
	}
	if errors.Is(err, eventsource.ErrConcurrencyConflict) || errors.Is(err, eventsource.ErrInvalidArgument) {
		t.Fatalf("%s = %v; want an error that matches neither ErrConcurrencyConflict nor ErrInvalidArgument", call, err)
	}
	var de *eventsource.DuplicateCommandError
	if !errors.As(err, &de) {
		t.Fatalf("%s = %v (%T); want an error that errors.As gives a *DuplicateCommandError", call, err, err)
	}
	if de.CommandID != command || de.StreamID != stream {
		t.Fatalf("%s gave DuplicateCommandError{CommandID: %q, StreamID: %q}; want {%q, %q}", call, de.CommandID, de.StreamID, command, stream)
	}
}

// recorded checks, if s is an [eventsource.CommandLog], what it says of
// command.
func recorded(t *testing.T, s eventsource.Store, command string, want bool) {
	t.Helper()
	log, ok := s.(eventsource.CommandLog)
	if !ok {
		return
	}
	got, err := log.CommandRecorded(ctx(t), command)
	if err != nil || got != want {
		t.Fatalf("CommandRecorded(%q) = %v, %v; want %v, nil", command, got, err, want)
	}
}

// recordedIn checks, if s is an [eventsource.CommandLog], what it says of
// command in stream.
func recordedIn(t *testing.T, s eventsource.Store, command, stream string, want bool) {
	t.Helper()
	log, ok := s.(eventsource.CommandLog)
	if !ok {
		return
	}
	got, err := log.CommandRecordedIn(ctx(t), command, stream)
	if err != nil || got != want {
		t.Fatalf("CommandRecordedIn(%q, %q) = %v, %v; want %v, nil", command, stream, got, err, want)
	}
}

func testCommandDuplicate(t *testing.T, s *store) {
	a := s.streamID(t, "a")
	cmd := s.commandID(t, "cmd")
	recorded(t, s, cmd, false)
	c := eventsource.WithCommandID(ctx(t), cmd)
	in := newEvents(2)
	first, err := s.Append(c, a, eventsource.NoStream, in...)
	if err != nil {
		t.Fatalf("Append(%q) under a new command = %v; want nil", a, err)
	}
	checkAppended(t, c, first, a, eventsource.NoStream, in)
	recorded(t, s, cmd, true)

	// Again with new events, and again with the same events (a retry).
	_, err = s.Append(c, a, eventsource.Any, newEvents(1)...)
	duplicate(t, err, cmd, a)
	_, err = s.Append(c, a, eventsource.NoStream, in...)
	duplicate(t, err, cmd, a)
	sameEvents(t, "ReadStream after duplicate commands", readStream(t, s, a, 1), first)

	// Appends without a command ID, or under another, are unaffected.
	second := mustAppend(t, s, a, eventsource.Exact(2), newEvents(1)...)
	other := eventsource.WithCommandID(ctx(t), s.commandID(t, "other"))
	in = newEvents(1)
	third, err := s.Append(other, a, eventsource.Exact(3), in...)
	if err != nil {
		t.Fatalf("Append(%q) under another command = %v; want nil", a, err)
	}
	checkAppended(t, other, third, a, eventsource.Exact(3), in)
	sameEvents(t, "ReadStream", readStream(t, s, a, 1), concat(first, second, third))
}

// testCommandPerStream appends one command to two streams: the pair
// (command, stream) is what is recorded.
func testCommandPerStream(t *testing.T, s *store) {
	a, b := s.streamID(t, "a"), s.streamID(t, "b")
	cmd := s.commandID(t, "cmd")
	c := eventsource.WithCommandID(ctx(t), cmd)
	var appended [][]eventsource.Event
	for i, stream := range []string{a, b} {
		recordedIn(t, s, cmd, stream, false)
		if i == 1 {
			recordedIn(t, s, cmd, a, true) // and not yet in b, above
		}
		in := newEvents(1)
		got, err := s.Append(c, stream, eventsource.NoStream, in...)
		if err != nil {
			t.Fatalf("Append(%q) under command %q, which has appended to another stream = %v; want nil", stream, cmd, err)
		}
		checkAppended(t, c, got, stream, eventsource.NoStream, in)
		appended = append(appended, got)
	}
	for i, stream := range []string{a, b} {
		recordedIn(t, s, cmd, stream, true)
		_, err := s.Append(c, stream, eventsource.Any, newEvents(1)...)
		duplicate(t, err, cmd, stream)
		sameEvents(t, fmt.Sprintf("ReadStream(%q)", stream), readStream(t, s, stream, 1), appended[i])
	}
}

// testCommandFirst checks that a duplicate command is reported before a
// version conflict, and before an append whose events are stored already
// hands them back.
func testCommandFirst(t *testing.T, s *store) {
	a := s.streamID(t, "a")
	cmd := s.commandID(t, "cmd")
	c := eventsource.WithCommandID(ctx(t), cmd)
	in := newEvents(1)
	first, err := s.Append(c, a, eventsource.NoStream, in...)
	if err != nil {
		t.Fatalf("Append(%q) under a new command = %v; want nil", a, err)
	}
	_, err = s.Append(c, a, eventsource.Exact(7), newEvents(1)...)
	duplicate(t, err, cmd, a)
	_, err = s.Append(c, a, eventsource.Any, in...)
	duplicate(t, err, cmd, a)

	// Events stored already, under a new command: handed back as stored,
	// and the command is recorded.
	cmd2 := s.commandID(t, "cmd2")
	c2 := eventsource.WithCommandID(ctx(t), cmd2)
	got, err := s.Append(c2, a, eventsource.Any, in...)
	if err != nil {
		t.Fatalf("Append(%q) of stored events under a new command = %v; want nil", a, err)
	}
	sameEvents(t, "Append of stored events under a new command", got, first)
	recorded(t, s, cmd2, true)
	_, err = s.Append(c2, a, eventsource.Any, newEvents(1)...)
	duplicate(t, err, cmd2, a)
	sameEvents(t, "ReadStream", readStream(t, s, a, 1), first)
}

// testCommandFailed checks that an append that fails does not record its
// command, so that the command may be tried again.
func testCommandFailed(t *testing.T, s *store) {
	a := s.streamID(t, "a")
	before := mustAppend(t, s, a, eventsource.NoStream, newEvents(1)...)
	cmd := s.commandID(t, "cmd")
	c := eventsource.WithCommandID(ctx(t), cmd)
	_, err := s.Append(c, a, eventsource.NoStream, newEvents(1)...)
	conflict(t, err, a, eventsource.NoStream, 1)
	recorded(t, s, cmd, false)

	canceled, cancel := context.WithCancel(c)
	cancel()
	if _, err := s.Append(canceled, a, eventsource.Exact(1), newEvents(1)...); err == nil {
		t.Fatalf("Append(%q) with a canceled context = nil; want an error", a)
	}
	recorded(t, s, cmd, false)

	in := newEvents(1)
	got, err := s.Append(c, a, eventsource.Exact(1), in...)
	if err != nil {
		t.Fatalf("Append(%q) under a command whose append failed = %v; want nil", a, err)
	}
	checkAppended(t, c, got, a, eventsource.Exact(1), in)
	sameEvents(t, "ReadStream", readStream(t, s, a, 1), concat(before, got))
}

func testCommandInvalid(t *testing.T, s *store) {
	a := s.streamID(t, "a")
	tests := []struct{ name, id string }{
		{"empty", ""},
		{"too long", strings.Repeat("x", eventsource.MaxCommandIDLen+1)},
		{"not UTF-8", "cmd-\xff"},
		{"NUL", "cmd-\x00"},
	}
	for _, tt := range tests {
		got, err := s.Append(eventsource.WithCommandID(ctx(t), tt.id), a, eventsource.Any, newEvents(1)...)
		if !errors.Is(err, eventsource.ErrInvalidArgument) {
			t.Errorf("Append under a command id that is %s = %d events, %v; want an error matching ErrInvalidArgument", tt.name, len(got), err)
		}
	}
	if got := readStream(t, s, a, 1); len(got) > 0 {
		t.Fatalf("ReadStream after invalid appends = %s; want no events", brief(got))
	}
	longest := strings.Repeat("y", eventsource.MaxCommandIDLen-len(s.run)) + s.run
	c := eventsource.WithCommandID(ctx(t), longest)
	in := newEvents(1)
	got, err := s.Append(c, a, eventsource.NoStream, in...)
	if err != nil {
		t.Fatalf("Append under a command id of %d bytes = %v; want nil", len(longest), err)
	}
	checkAppended(t, c, got, a, eventsource.NoStream, in)
}

// testCommandRace appends one command to one stream from many goroutines
// at once, each with events of its own: one append wins.
func testCommandRace(t *testing.T, s *store) {
	const rounds, racers = 10, 8
	for i := range rounds {
		stream := s.streamID(t, fmt.Sprintf("race-%d", i))
		cmd := s.commandID(t, fmt.Sprintf("cmd-%d", i))
		c := eventsource.WithCommandID(ctx(t), cmd)
		type result struct {
			in     []eventsource.NewEvent
			events []eventsource.Event
			err    error
		}
		results := make([]result, racers)
		gate := make(chan struct{})
		var wg sync.WaitGroup
		for j := range results {
			results[j].in = newEvents(1 + j%3)
			wg.Go(func() {
				<-gate
				results[j].events, results[j].err = s.Append(c, stream, eventsource.Any, results[j].in...)
			})
		}
		close(gate)
		wg.Wait()
		var winner *result
		for j := range results {
			switch r := &results[j]; {
			case r.err == nil && winner != nil:
				t.Fatalf("round %d: %d appends of command %q to %q: two succeeded; want one", i, racers, cmd, stream)
			case r.err == nil:
				winner = r
			default:
				duplicate(t, r.err, cmd, stream)
			}
		}
		if winner == nil {
			t.Fatalf("round %d: %d appends of command %q to %q: none succeeded; want one", i, racers, cmd, stream)
		}
		checkAppended(t, c, winner.events, stream, eventsource.NoStream, winner.in)
		sameEvents(t, fmt.Sprintf("round %d: ReadStream after the race", i), readStream(t, s, stream, 1), winner.events)
	}
}
