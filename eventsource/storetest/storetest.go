package storetest

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"iter"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelpatterns/patterns/eventsource"
	"github.com/otelpatterns/patterns/eventsource/storekit"
)

// Timing of the suite.
const (
	// patience bounds every wait for something that should happen: a
	// subscription to yield an event, or to end once its context is done
	// (long enough for a store that polls).
	patience = 5 * time.Second
	// prompt bounds calls made with a context that is already done.
	prompt = 2 * time.Second
	// settle gives a subscription that has caught up the time to start
	// waiting, so that the events appended next reach it through its
	// wake-up path. Correctness never depends on it.
	settle = 20 * time.Millisecond
	// clockSkew bounds how far RecordedAt may be from the test's clock, for
	// stores whose clock is a database server's.
	clockSkew = 5 * time.Minute
	// timePrecision is how far the RecordedAt of one event may differ
	// between two reads: a database may keep microseconds and round.
	timePrecision = time.Microsecond
)

const eventType = "storetest.happened.v1"

// store is the store under test, with the id of the run of the suite.
type store struct {
	eventsource.Store
	// run makes stream ids unique to one call of Run, for a backend that
	// keeps its database from one run to the next (or across -count).
	run string
}

// Run runs the conformance suite against the stores that newStore returns.
// newStore is called once per subtest, with that subtest's t, and should
// register the store's cleanup with t.Cleanup.
func Run(t *testing.T, newStore func(t *testing.T) eventsource.Store) {
	t.Helper()
	tests := []struct {
		name string
		run  func(t *testing.T, s *store)
	}{
		{"Append/VersionsAndPositions", testVersions},
		{"Append/NoStream", testNoStream},
		{"Append/Exact", testExact},
		{"Append/BatchIsAtomic", testAtomic},
		{"Append/MaxBatch", testMaxBatch},
		{"Append/InvalidArgument", testInvalid},
		{"Append/StreamIDs", testStreamIDs},
		{"Append/LongStreamID", testLongStreamID},
		{"Idempotent/Retry", testRetry},
		{"Idempotent/MixedBatch", testMixed},
		{"Idempotent/DuplicateInBatch", testDuplicateInBatch},
		{"Idempotent/IDInAnotherStream", testIDInAnotherStream},
		{"RoundTrip/Data", testData},
		{"RoundTrip/Metadata", testMetadata},
		{"RoundTrip/TraceContext", testTraceContext},
		{"ReadStream", testReadStream},
		{"ReadAll", testReadAll},
		{"EarlyBreak", testEarlyBreak},
		{"Subscribe/CatchUpThenLive", testSubscribeLive},
		{"Subscribe/Resume", testSubscribeResume},
		{"Canceled/BeforeCall", testCanceled},
		{"Canceled/MidRead", testCanceledMidRead},
		{"Concurrent/Appends", testConcurrentAppends},
		{"Concurrent/ExactRace", testExactRace},
		{"Concurrent/CheckpointedReader", testCheckpointedReader},
		{"Command/Duplicate", testCommandDuplicate},
		{"Command/PerStream", testCommandPerStream},
		{"Command/BeforeOtherChecks", testCommandFirst},
		{"Command/FailedAppendRecordsNothing", testCommandFailed},
		{"Command/InvalidID", testCommandInvalid},
		{"Command/ConcurrentDuplicates", testCommandRace},
	}
	if newStore == nil {
		t.Fatal("storetest.Run: newStore is nil")
	}
	run := uuid.NewString()[:8]
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t)
			if s == nil {
				t.Fatal("newStore returned nil")
			}
			tt.run(t, &store{s, run})
		})
	}
}

// streamID returns a stream id private to the running (sub)test.
func (s *store) streamID(t *testing.T, name string) string { return s.prefix(t) + name }

func (s *store) prefix(t *testing.T) string { return t.Name() + "/" + s.run + "/" }

// mine returns whether an event belongs to a stream of the running test.
func (s *store) mine(t *testing.T) func(eventsource.Event) bool {
	p := s.prefix(t)
	return func(e eventsource.Event) bool { return strings.HasPrefix(e.StreamID, p) }
}

// ctx returns a context that ends with the test or after patience.
func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(t.Context(), patience)
	t.Cleanup(cancel)
	return c
}

// newEvents returns n events with fresh ids, numbered data and metadata.
func newEvents(n int) []eventsource.NewEvent {
	out := make([]eventsource.NewEvent, n)
	for i := range out {
		out[i] = eventsource.NewEvent{
			ID:       uuid.New(),
			Type:     eventType,
			Data:     fmt.Appendf(nil, `{"n":%d}`, i),
			Metadata: map[string]string{"n": strconv.Itoa(i)},
		}
	}
	return out
}

func ids(events []eventsource.NewEvent) []uuid.UUID {
	out := make([]uuid.UUID, len(events))
	for i, e := range events {
		out[i] = e.ID
	}
	return out
}

// mustAppend appends events (whose ids are distinct) and checks the events
// Append returns against them: see checkAppended.
func mustAppend(t *testing.T, s eventsource.Store, stream string, expected eventsource.ExpectedVersion, events ...eventsource.NewEvent) []eventsource.Event {
	t.Helper()
	c := ctx(t)
	got, err := s.Append(c, stream, expected, events...)
	if err != nil {
		t.Fatalf("Append(%q, %v, %d events) = %v; want nil", stream, expected, len(events), err)
	}
	checkAppended(t, c, got, stream, expected, events)
	return got
}

// checkAppended checks the events an append of distinct new events
// returned: one per event, in order, with its id (or a new one for a zero
// id), type, data and metadata (plus the trace context that
// [storekit.PrepareAppend] adds under c), consecutive versions starting
// after expected, increasing positions and a plausible time.
func checkAppended(t *testing.T, c context.Context, got []eventsource.Event, stream string, expected eventsource.ExpectedVersion, in []eventsource.NewEvent) {
	t.Helper()
	call := fmt.Sprintf("Append(%q, %v, %d events)", stream, expected, len(in))
	if len(got) != len(in) {
		t.Fatalf("%s returned %d events; want %d", call, len(got), len(in))
	}
	want := storekit.PrepareAppend(c, in)
	seen := make(map[uuid.UUID]bool, len(got))
	for i, e := range got {
		var d []string
		switch {
		case in[i].ID == uuid.Nil && e.ID == uuid.Nil:
			d = append(d, "a zero ID; want a new random one")
		case in[i].ID != uuid.Nil && e.ID != in[i].ID:
			d = append(d, fmt.Sprintf("ID %v; want %v", e.ID, in[i].ID))
		case seen[e.ID]:
			d = append(d, fmt.Sprintf("ID %v, returned twice", e.ID))
		}
		seen[e.ID] = true
		if e.StreamID != stream {
			d = append(d, fmt.Sprintf("StreamID %q; want %q", e.StreamID, stream))
		}
		if e.Type != in[i].Type {
			d = append(d, fmt.Sprintf("Type %q; want %q", e.Type, in[i].Type))
		}
		if !bytes.Equal(e.Data, in[i].Data) {
			d = append(d, fmt.Sprintf("Data %s; want %s", show(e.Data), show(in[i].Data)))
		}
		if !maps.Equal(e.Metadata, want[i].Metadata) {
			d = append(d, fmt.Sprintf("Metadata %q; want %q", e.Metadata, want[i].Metadata))
		}
		switch {
		case i > 0 && e.Version != got[i-1].Version+1:
			d = append(d, fmt.Sprintf("Version %d after %d; want consecutive versions in a batch", e.Version, got[i-1].Version))
		case i == 0 && expected >= 0 && e.Version != int64(expected)+1:
			d = append(d, fmt.Sprintf("Version %d; want %d", e.Version, int64(expected)+1))
		case e.Version < 1:
			d = append(d, fmt.Sprintf("Version %d; want 1 or more", e.Version))
		}
		switch {
		case e.Position < 1:
			d = append(d, fmt.Sprintf("Position %d; want 1 or more", e.Position))
		case i > 0 && e.Position <= got[i-1].Position:
			d = append(d, fmt.Sprintf("Position %d after %d; want increasing positions", e.Position, got[i-1].Position))
		}
		if !saneTime(e.RecordedAt) {
			d = append(d, fmt.Sprintf("RecordedAt %v; want about now (%v)", e.RecordedAt, time.Now()))
		}
		if len(d) > 0 {
			t.Fatalf("%s returned event %d with %s", call, i, strings.Join(d, ", "))
		}
	}
}

func saneTime(ts time.Time) bool {
	return !ts.IsZero() && time.Since(ts).Abs() < clockSkew
}

// diff describes how got differs from want, two reads of the same stored
// event; it is empty if they agree. Nil and empty Data or Metadata agree.
func diff(got, want eventsource.Event) string {
	var d []string
	if got.ID != want.ID {
		d = append(d, fmt.Sprintf("ID %v; want %v", got.ID, want.ID))
	}
	if got.StreamID != want.StreamID {
		d = append(d, fmt.Sprintf("StreamID %q; want %q", got.StreamID, want.StreamID))
	}
	if got.Version != want.Version {
		d = append(d, fmt.Sprintf("Version %d; want %d", got.Version, want.Version))
	}
	if got.Position != want.Position {
		d = append(d, fmt.Sprintf("Position %d; want %d", got.Position, want.Position))
	}
	if got.Type != want.Type {
		d = append(d, fmt.Sprintf("Type %q; want %q", got.Type, want.Type))
	}
	if !bytes.Equal(got.Data, want.Data) {
		d = append(d, fmt.Sprintf("Data %s; want %s", show(got.Data), show(want.Data)))
	}
	if !maps.Equal(got.Metadata, want.Metadata) {
		d = append(d, fmt.Sprintf("Metadata %q; want %q", got.Metadata, want.Metadata))
	}
	if got.RecordedAt.Sub(want.RecordedAt).Abs() > timePrecision {
		d = append(d, fmt.Sprintf("RecordedAt %v; want %v", got.RecordedAt, want.RecordedAt))
	}
	return strings.Join(d, ", ")
}

// sameEvents fails the test unless got and want are the same stored
// events, in the same order.
func sameEvents(t *testing.T, what string, got, want []eventsource.Event) {
	t.Helper()
	for i := range min(len(got), len(want)) {
		if d := diff(got[i], want[i]); d != "" {
			t.Fatalf("%s: event %d has %s", what, i, d)
		}
	}
	if len(got) != len(want) {
		t.Fatalf("%s: %d events\n%s\nwant %d\n%s", what, len(got), brief(got), len(want), brief(want))
	}
}

// brief lists events by stream, version and position.
func brief(events []eventsource.Event) string {
	var b strings.Builder
	for i, e := range events {
		if i == 20 {
			fmt.Fprintf(&b, " ... (%d more)", len(events)-i)
			break
		}
		fmt.Fprintf(&b, " {%q v%d @%d}", e.StreamID, e.Version, e.Position)
	}
	return "[" + strings.TrimSpace(b.String()) + "]"
}

// show prints data briefly.
func show(v []byte) string {
	if len(v) > 40 {
		return fmt.Sprintf("%q... (%d bytes)", v[:40], len(v))
	}
	return fmt.Sprintf("%q", v)
}

// drain ranges over seq until body returns false. A panic while ranging,
// such as the runtime's when an iterator calls yield again after the loop
// body returned false, is returned as an error. (t.FailNow in body is not
// a panic and is not caught.)
func drain(seq iter.Seq2[eventsource.Event, error], body func(eventsource.Event, error) bool) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("the iterator panicked: %v", r)
		}
	}()
	for e, err := range seq {
		if !body(e, err) {
			break
		}
	}
	return nil
}

// readStream reads a stream from a version to its end, failing the test on
// an error, and checks that the events are the stream's, in consecutive
// versions from fromVersion (or 1), in increasing positions.
func readStream(t *testing.T, s eventsource.Store, stream string, fromVersion int64) []eventsource.Event {
	t.Helper()
	call := fmt.Sprintf("ReadStream(%q, %d)", stream, fromVersion)
	var got []eventsource.Event
	var readErr error
	err := drain(s.ReadStream(ctx(t), stream, fromVersion), func(e eventsource.Event, err error) bool {
		if err != nil {
			readErr = err
			return false
		}
		got = append(got, e)
		return true
	})
	if err == nil {
		err = readErr
	}
	if err != nil {
		t.Fatalf("%s = %v after %d events; want no error", call, err, len(got))
	}
	first := max(fromVersion, 1)
	for i, e := range got {
		if e.StreamID != stream || e.Version != first+int64(i) {
			t.Fatalf("%s yielded %s; want the stream's events from version %d in version order", call, brief(got), first)
		}
		// Readers of the global order see a stream's events in version
		// order, so positions increase with versions.
		if i > 0 && e.Position <= got[i-1].Position {
			t.Fatalf("%s yielded %s; want positions increasing with versions", call, brief(got))
		}
	}
	return got
}

// readAll reads the events after a position, failing the test on an error,
// checks that their positions increase from after, and returns those that
// keep accepts. With until > 0 it stops after the first event at or past
// until, rather than reading to the head of a store that may be shared.
func readAll(t *testing.T, s eventsource.Store, after int64, keep func(eventsource.Event) bool, until int64) []eventsource.Event {
	t.Helper()
	var got []eventsource.Event
	last := after
	var readErr, orderErr error
	err := drain(s.ReadAll(ctx(t), after), func(e eventsource.Event, err error) bool {
		if err != nil {
			readErr = err
			return false
		}
		if e.Position <= last {
			orderErr = fmt.Errorf("yielded position %d after %d; want increasing positions greater than %d", e.Position, last, after)
			return false
		}
		last = e.Position
		if keep(e) {
			got = append(got, e)
		}
		return until <= 0 || e.Position < until
	})
	if err == nil {
		err = readErr
	}
	if err != nil {
		t.Fatalf("ReadAll(%d) = %v after %d of the test's events; want no error", after, err, len(got))
	}
	if orderErr != nil {
		t.Fatalf("ReadAll(%d) %v", after, orderErr)
	}
	return got
}

// conflict fails the test unless err is the error of an append to stream
// with expected version found at version actual.
func conflict(t *testing.T, err error, stream string, expected eventsource.ExpectedVersion, actual int64) {
	t.Helper()
	call := fmt.Sprintf("Append(%q, %v) on a stream at version %d", stream, expected, actual)
	if !errors.Is(err, eventsource.ErrConcurrencyConflict) {
		t.Fatalf("%s = %v; want an error matching ErrConcurrencyConflict", call, err)
	}
	if errors.Is(err, eventsource.ErrInvalidArgument) {
		t.Fatalf("%s = %v; want an error that does not match ErrInvalidArgument", call, err)
	}
	var ce *eventsource.ConflictError
	if !errors.As(err, &ce) {
		t.Fatalf("%s = %v (%T); want an error that errors.As gives a *ConflictError", call, err, err)
	}
	if ce.StreamID != stream || ce.Expected != expected || ce.Actual != actual {
		t.Fatalf("%s gave ConflictError{StreamID: %q, Expected: %d, Actual: %d}; want {%q, %d, %d}",
			call, ce.StreamID, ce.Expected, ce.Actual, stream, expected, actual)
	}
}

func concat(lists ...[]eventsource.Event) []eventsource.Event { return slices.Concat(lists...) }

func testVersions(t *testing.T, s *store) {
	a, b, c := s.streamID(t, "a"), s.streamID(t, "b"), s.streamID(t, "c")
	a1 := mustAppend(t, s, a, eventsource.NoStream, newEvents(3)...)
	b1 := mustAppend(t, s, b, eventsource.NoStream, newEvents(2)...)
	a2 := mustAppend(t, s, a, eventsource.Any, newEvents(1)...)
	b2 := mustAppend(t, s, b, eventsource.Exact(2), newEvents(2)...)
	c1 := mustAppend(t, s, c, eventsource.Any, newEvents(2)...)
	if a2[0].Version != 4 {
		t.Errorf("Append(Any) to a stream at version 3 gave version %d; want 4", a2[0].Version)
	}
	if c1[0].Version != 1 {
		t.Errorf("Append(Any) to a new stream gave version %d; want 1", c1[0].Version)
	}
	// Appends made one after another get increasing positions, across
	// streams.
	all := concat(a1, b1, a2, b2, c1)
	for i := 1; i < len(all); i++ {
		if all[i].Position <= all[i-1].Position {
			t.Fatalf("positions of appends made one after another: %s; want increasing", brief(all))
		}
	}
	sameEvents(t, "ReadStream(a, 1)", readStream(t, s, a, 1), concat(a1, a2))
	sameEvents(t, "ReadStream(b, 1)", readStream(t, s, b, 1), concat(b1, b2))
	sameEvents(t, "ReadStream(c, 1)", readStream(t, s, c, 1), c1)

	// Zero ids get random ones, one per event.
	zero := []eventsource.NewEvent{{Type: eventType}, {Type: eventType, Data: []byte("x")}}
	got := mustAppend(t, s, s.streamID(t, "zero-ids"), eventsource.NoStream, zero...)
	if zero[0].ID != uuid.Nil || zero[1].ID != uuid.Nil {
		t.Errorf("Append changed the caller's events: their ids are now %v, %v", zero[0].ID, zero[1].ID)
	}
	sameEvents(t, "ReadStream(zero-ids, 1)", readStream(t, s, s.streamID(t, "zero-ids"), 1), got)
}

func testNoStream(t *testing.T, s *store) {
	a := s.streamID(t, "a")
	first := mustAppend(t, s, a, eventsource.NoStream, newEvents(2)...)
	_, err := s.Append(ctx(t), a, eventsource.NoStream, newEvents(1)...)
	conflict(t, err, a, eventsource.NoStream, 2)
	sameEvents(t, "ReadStream after a conflicting append", readStream(t, s, a, 1), first)
}

func testExact(t *testing.T, s *store) {
	a, unknown := s.streamID(t, "a"), s.streamID(t, "unknown")
	first := mustAppend(t, s, a, eventsource.NoStream, newEvents(2)...)
	for _, v := range []int64{1, 3, 10} {
		_, err := s.Append(ctx(t), a, eventsource.Exact(v), newEvents(2)...)
		conflict(t, err, a, eventsource.Exact(v), 2)
	}
	sameEvents(t, "ReadStream after conflicting appends", readStream(t, s, a, 1), first)

	_, err := s.Append(ctx(t), unknown, eventsource.Exact(1), newEvents(1)...)
	conflict(t, err, unknown, eventsource.Exact(1), 0)
	if got := readStream(t, s, unknown, 1); len(got) > 0 {
		t.Fatalf("ReadStream of a stream whose only append conflicted = %s; want nothing", brief(got))
	}

	second := mustAppend(t, s, a, eventsource.Exact(2), newEvents(2)...)
	third := mustAppend(t, s, a, eventsource.Exact(4), newEvents(1)...)
	sameEvents(t, "ReadStream", readStream(t, s, a, 1), concat(first, second, third))
}

func testAtomic(t *testing.T, s *store) {
	a := s.streamID(t, "a")
	first := mustAppend(t, s, a, eventsource.NoStream, newEvents(2)...)
	batch := newEvents(3)
	_, err := s.Append(ctx(t), a, eventsource.Exact(1), batch...)
	conflict(t, err, a, eventsource.Exact(1), 2)
	sameEvents(t, "ReadStream after a conflicting batch", readStream(t, s, a, 1), first)
	if got := readAll(t, s, first[1].Position, hasID(ids(batch)...), 0); len(got) > 0 {
		t.Fatalf("ReadAll after a conflicting batch yielded its events %s; want none", brief(got))
	}
	// The ids of the failed batch were not recorded: appending it again
	// with the right version stores all of it.
	second := mustAppend(t, s, a, eventsource.Exact(2), batch...)
	sameEvents(t, "ReadStream", readStream(t, s, a, 1), concat(first, second))
}

func hasID(list ...uuid.UUID) func(eventsource.Event) bool {
	set := make(map[uuid.UUID]bool, len(list))
	for _, id := range list {
		set[id] = true
	}
	return func(e eventsource.Event) bool { return set[e.ID] }
}

func testMaxBatch(t *testing.T, s *store) {
	a := s.streamID(t, "a")
	batch := make([]eventsource.NewEvent, eventsource.MaxBatch)
	for i := range batch {
		batch[i] = eventsource.NewEvent{ID: uuid.New(), Type: eventType, Data: []byte{byte(i), byte(i >> 8)}}
	}
	got := mustAppend(t, s, a, eventsource.NoStream, batch...)
	if last := got[len(got)-1].Version; last != eventsource.MaxBatch {
		t.Fatalf("Append of MaxBatch events ended at version %d; want %d", last, eventsource.MaxBatch)
	}
	read := readStream(t, s, a, eventsource.MaxBatch-1)
	sameEvents(t, "ReadStream of the batch's last two events", read, got[len(got)-2:])
}

func testInvalid(t *testing.T, s *store) {
	a := s.streamID(t, "a")
	first := mustAppend(t, s, a, eventsource.NoStream, newEvents(1)...)
	typeless := newEvents(3)
	typeless[1].Type = ""
	// Text every store can keep is valid UTF-8 without NUL bytes.
	withType := func(typ string) []eventsource.NewEvent {
		e := newEvents(1)
		e[0].Type = typ
		return e
	}
	withMetadata := func(k, v string) []eventsource.NewEvent {
		e := newEvents(1)
		e[0].Metadata = map[string]string{k: v}
		return e
	}
	tests := []struct {
		name     string
		stream   string
		expected eventsource.ExpectedVersion
		events   []eventsource.NewEvent
	}{
		{"empty stream id", "", eventsource.Any, newEvents(1)},
		{"empty stream id, no stream", "", eventsource.NoStream, newEvents(1)},
		{"no events", a, eventsource.Any, nil},
		{"empty event list", a, eventsource.Any, []eventsource.NewEvent{}},
		{"an event without a type", a, eventsource.Any, typeless},
		{"too many events", a, eventsource.Any, newEvents(eventsource.MaxBatch + 1)},
		{"expected version -2", a, eventsource.ExpectedVersion(-2), newEvents(1)},
		{"expected version -1000", a, eventsource.ExpectedVersion(-1000), newEvents(1)},
		// Exact(-1) is not Any, although Any's value is -1.
		{"Exact(-1)", a, eventsource.Exact(-1), newEvents(1)},
		{"Exact(-2)", a, eventsource.Exact(-2), newEvents(1)},
		{"a stream id with a NUL byte", a + "\x00", eventsource.Any, newEvents(1)},
		{"a stream id that is not UTF-8", a + "\xff", eventsource.Any, newEvents(1)},
		{"a type with a NUL byte", a, eventsource.Any, withType("t\x00")},
		{"a type that is not UTF-8", a, eventsource.Any, withType("t\xc3")},
		{"a metadata key with a NUL byte", a, eventsource.Any, withMetadata("k\x00", "v")},
		{"a metadata value that is not UTF-8", a, eventsource.Any, withMetadata("k", "\xff\xfe")},
	}
	var rejected []uuid.UUID
	for _, tt := range tests {
		got, err := s.Append(ctx(t), tt.stream, tt.expected, tt.events...)
		if !errors.Is(err, eventsource.ErrInvalidArgument) {
			t.Errorf("Append with %s = %d events, %v; want an error matching ErrInvalidArgument", tt.name, len(got), err)
		}
		rejected = append(rejected, ids(tt.events)...)
	}
	sameEvents(t, "ReadStream after invalid appends", readStream(t, s, a, 1), first)
	if got := readAll(t, s, first[0].Position, hasID(rejected...), 0); len(got) > 0 {
		t.Fatalf("ReadAll after invalid appends yielded some of their events %s; want none", brief(got))
	}
	// The store still works.
	mustAppend(t, s, a, eventsource.Exact(1), newEvents(1)...)
}

// testLongStreamID appends to a stream whose id is 1 MiB long. A store may
// refuse so long an id, but no error may carry it whole: errors end up in
// logs and span statuses.
func testLongStreamID(t *testing.T, s *store) {
	long := s.streamID(t, strings.Repeat("x", 1<<20))
	const maxErr = 4 << 10
	_, err := s.Append(ctx(t), long, eventsource.NoStream, newEvents(1)...)
	if err != nil {
		if len(err.Error()) > maxErr {
			t.Fatalf("Append to a 1 MiB stream id: the error is %d bytes long; want at most %d: %.200s…", len(err.Error()), maxErr, err)
		}
		return
	}
	_, err = s.Append(ctx(t), long, eventsource.NoStream, newEvents(1)...)
	if !errors.Is(err, eventsource.ErrConcurrencyConflict) {
		t.Fatalf("second Append(NoStream) to a 1 MiB stream id = %.200v; want a conflict", err)
	}
	if len(err.Error()) > maxErr {
		t.Fatalf("the conflict on a 1 MiB stream id is %d bytes long; want at most %d: %.200s…", len(err.Error()), maxErr, err)
	}
}

// testStreamIDs appends to streams whose ids differ little or hold
// characters that mean something to a query language.
func testStreamIDs(t *testing.T, s *store) {
	names := []string{
		"a", "A", "a ", " a", "a/b", "a.b", "a:b", "with space", "new\nline", "tab\t",
		"ünïcødé", "日本語", "%", "_", "a%", "a_", "*", "?", "[a-z]", `\`, `'`, `"`, "';--",
		"{tag}", "%s", strings.Repeat("k", 1000),
	}
	appended := make([][]eventsource.Event, len(names))
	for i, n := range names {
		appended[i] = mustAppend(t, s, s.streamID(t, n), eventsource.NoStream, newEvents(1)...)
	}
	for i, n := range names {
		sameEvents(t, fmt.Sprintf("ReadStream(%q)", s.streamID(t, n)), readStream(t, s, s.streamID(t, n), 1), appended[i])
	}
}

func testRetry(t *testing.T, s *store) {
	a := s.streamID(t, "a")
	in := newEvents(2)
	stored := mustAppend(t, s, a, eventsource.NoStream, in...)
	for _, expected := range []eventsource.ExpectedVersion{
		eventsource.NoStream, eventsource.Exact(1), eventsource.Exact(7), eventsource.Any, eventsource.Exact(2),
	} {
		got, err := s.Append(ctx(t), a, expected, in...)
		if err != nil {
			t.Fatalf("Append(%q, %v) of stored events = %v; want nil, and no version check", a, expected, err)
		}
		sameEvents(t, fmt.Sprintf("Append(%q, %v) of stored events", a, expected), got, stored)
	}
	// Stored events are skipped whatever the retry carries.
	changed := slices.Clone(in)
	for i := range changed {
		changed[i].Data = []byte("changed")
		changed[i].Type = "storetest.changed.v1"
		changed[i].Metadata = map[string]string{"changed": "yes"}
	}
	got, err := s.Append(ctx(t), a, eventsource.NoStream, changed...)
	if err != nil {
		t.Fatalf("Append of stored ids with other contents = %v; want nil", err)
	}
	sameEvents(t, "Append of stored ids with other contents", got, stored)
	// A retry of part of a batch.
	got, err = s.Append(ctx(t), a, eventsource.NoStream, in[1])
	if err != nil {
		t.Fatalf("Append of one stored event = %v; want nil", err)
	}
	sameEvents(t, "Append of one stored event", got, stored[1:])

	sameEvents(t, "ReadStream after retries", readStream(t, s, a, 1), stored)
	if got := readAll(t, s, stored[0].Position-1, s.mine(t), 0); len(got) != len(stored) {
		t.Fatalf("ReadAll after retries yielded %s; want only the stored %s", brief(got), brief(stored))
	}
}

// testIDInAnotherStream appends to stream b an event whose ID is stored in
// stream a, alone and in a batch with a fresh event: that is no retry, and
// the append must fail naming both streams and add nothing to b.
func testIDInAnotherStream(t *testing.T, s *store) {
	a, b := s.streamID(t, "a"), s.streamID(t, "b")
	stored := mustAppend(t, s, a, eventsource.NoStream, newEvents(1)...)
	taken := eventsource.NewEvent{ID: stored[0].ID, Type: "storetest.copied.v1", Data: []byte(`{}`)}
	for _, batch := range [][]eventsource.NewEvent{{taken}, append(newEvents(1), taken)} {
		got, err := s.Append(ctx(t), b, eventsource.NoStream, batch...)
		var taken *eventsource.EventIDTakenError
		if !errors.Is(err, eventsource.ErrEventIDTaken) || !errors.As(err, &taken) {
			t.Fatalf("Append(b) of an event stored in a = %s, %v; want an error matching ErrEventIDTaken", brief(got), err)
		}
		if taken.ID != stored[0].ID || taken.StreamID != b || taken.StoredIn != a {
			t.Errorf("EventIDTakenError = %+v; want ID %s, StreamID %q, StoredIn %q", taken, stored[0].ID, b, a)
		}
	}
	if got := readStream(t, s, b, 1); len(got) != 0 {
		t.Errorf("ReadStream(b) = %s; want nothing", brief(got))
	}
	sameEvents(t, "ReadStream(a)", readStream(t, s, a, 1), stored)
}

// checkReturned checks what an append of a batch that held stored ids or
// duplicates returned: events as stored, covering every id of the batch
// that was new, and no id the batch did not hold. (Whether the stored ones
// are returned too, and duplicates more than once, is up to the store.)
func checkReturned(t *testing.T, call string, got []eventsource.Event, in []eventsource.NewEvent, fresh []uuid.UUID, stored []eventsource.Event) {
	t.Helper()
	byID := make(map[uuid.UUID]eventsource.Event, len(stored))
	for _, e := range stored {
		byID[e.ID] = e
	}
	inBatch := hasID(ids(in)...)
	returned := map[uuid.UUID]bool{}
	for _, e := range got {
		if !inBatch(e) {
			t.Fatalf("%s returned event %v, which the batch did not hold", call, e.ID)
		}
		if d := diff(e, byID[e.ID]); d != "" {
			t.Fatalf("%s returned event %v with %s", call, e.ID, d)
		}
		returned[e.ID] = true
	}
	for _, id := range fresh {
		if !returned[id] {
			t.Fatalf("%s returned %s, without the appended event %v", call, brief(got), id)
		}
	}
}

func testMixed(t *testing.T, s *store) {
	a := s.streamID(t, "a")
	old := newEvents(2)
	first := mustAppend(t, s, a, eventsource.NoStream, old...)
	fresh := newEvents(2)
	batch := []eventsource.NewEvent{old[0], fresh[0], old[1], fresh[1]}

	// Not all stored: the version is checked.
	_, err := s.Append(ctx(t), a, eventsource.Exact(1), batch...)
	conflict(t, err, a, eventsource.Exact(1), 2)
	sameEvents(t, "ReadStream after a conflicting mixed batch", readStream(t, s, a, 1), first)

	got, err := s.Append(ctx(t), a, eventsource.Exact(2), batch...)
	if err != nil {
		t.Fatalf("Append(%q, version 2) of two stored and two new events = %v; want nil", a, err)
	}
	read := readStream(t, s, a, 1)
	if len(read) != 4 || read[2].ID != fresh[0].ID || read[3].ID != fresh[1].ID {
		t.Fatalf("ReadStream after a mixed batch = %s; want the two stored events then the two new ones", brief(read))
	}
	sameEvents(t, "ReadStream after a mixed batch", read[:2], first)
	checkAppended(t, ctx(t), read[2:], a, eventsource.Exact(2), fresh)
	checkReturned(t, "Append of a mixed batch", got, batch, ids(fresh), read)
}

func testDuplicateInBatch(t *testing.T, s *store) {
	a := s.streamID(t, "a")
	ev := newEvents(2)
	batch := []eventsource.NewEvent{ev[0], ev[0], ev[1], ev[0], ev[1]}
	got, err := s.Append(ctx(t), a, eventsource.NoStream, batch...)
	if err != nil {
		t.Fatalf("Append(%q, no stream) of a batch with repeated ids = %v; want nil", a, err)
	}
	read := readStream(t, s, a, 1)
	if len(read) != 2 {
		t.Fatalf("ReadStream after a batch with repeated ids = %s; want each id once", brief(read))
	}
	checkAppended(t, ctx(t), read, a, eventsource.NoStream, ev)
	checkReturned(t, "Append of a batch with repeated ids", got, batch, ids(ev), read)

	got, err = s.Append(ctx(t), a, eventsource.NoStream, batch...)
	if err != nil {
		t.Fatalf("Append of the same batch again = %v; want nil", err)
	}
	checkReturned(t, "Append of the same batch again", got, batch, ids(ev), read)
	sameEvents(t, "ReadStream after the retry", readStream(t, s, a, 1), read)
}

func testData(t *testing.T, s *store) {
	every := make([]byte, 256)
	for i := range every {
		every[i] = byte(i)
	}
	values := []struct {
		name string
		data []byte
	}{
		{"text", []byte("hello, world")},
		{"json", []byte(`{"a":[1,2,{"b":null}],"c":"\u00e9\n"}`)},
		{"empty", []byte{}},
		{"nil", nil},
		{"every byte", every},
		{"NUL only", []byte{0}},
		{"NULs", []byte{0, 0, 'a', 0}},
		{"invalid UTF-8", []byte{0xff, 0xfe, 0xc3}},
		{"CRLF", []byte("a\r\nb\r\n")},
		{"backslashes", []byte(`\x00\\'"`)},
		{"large", bytes.Repeat([]byte("0123456789abcdef\x00\xff"), 1<<12)}, // 72 KiB
	}
	in := make([]eventsource.NewEvent, len(values))
	want := make([][]byte, len(values))
	for i, v := range values {
		in[i] = eventsource.NewEvent{ID: uuid.New(), Type: eventType, Data: v.data}
		want[i] = bytes.Clone(v.data)
	}
	a := s.streamID(t, "a")
	got := mustAppend(t, s, a, eventsource.NoStream, in...)
	// The caller reuses its buffers.
	for _, e := range in {
		for j := range e.Data {
			e.Data[j] = 'x'
		}
	}
	check := func(what string, events []eventsource.Event) {
		t.Helper()
		if len(events) != len(values) {
			t.Fatalf("%s: %d events; want %d", what, len(events), len(values))
		}
		for i, e := range events {
			if !bytes.Equal(e.Data, want[i]) {
				t.Errorf("%s: the %s data reads %s; want %s", what, values[i].name, show(e.Data), show(want[i]))
			}
		}
	}
	check("Append", got)
	check("ReadStream", readStream(t, s, a, 1))
	check("ReadAll", readAll(t, s, got[0].Position-1, s.mine(t), got[len(got)-1].Position))
}

func testMetadata(t *testing.T, s *store) {
	many := map[string]string{}
	for i := range 100 {
		many[fmt.Sprint("key-", i)] = strings.Repeat("v", i)
	}
	values := []struct {
		name string
		md   map[string]string
	}{
		{"nil", nil},
		{"empty", map[string]string{}},
		{"one", map[string]string{"k": "v"}},
		{"odd", map[string]string{
			"":            "empty key",
			"empty value": "",
			"ünïcødé":     "日本語",
			"quotes":      `'"\`,
			"json":        `{"a":1}`,
			"new\nline":   "a\r\nb",
			"=;,":         "=;,",
		}},
		{"many", many},
	}
	in := make([]eventsource.NewEvent, len(values))
	for i, v := range values {
		in[i] = eventsource.NewEvent{ID: uuid.New(), Type: eventType, Metadata: maps.Clone(v.md)}
	}
	a := s.streamID(t, "a")
	got := mustAppend(t, s, a, eventsource.NoStream, in...) // compares metadata
	// The caller reuses its maps.
	for _, e := range in {
		clear(e.Metadata)
	}
	check := func(what string, events []eventsource.Event) {
		t.Helper()
		if len(events) != len(values) {
			t.Fatalf("%s: %d events; want %d", what, len(events), len(values))
		}
		for i, e := range events {
			if !maps.Equal(e.Metadata, values[i].md) {
				t.Errorf("%s: the %s metadata reads %q; want %q", what, values[i].name, e.Metadata, values[i].md)
			}
		}
	}
	// Under the suite's context the global propagator, whatever it is,
	// adds nothing: there is no span.
	check("Append", got)
	check("ReadStream", readStream(t, s, a, 1))
	check("ReadAll", readAll(t, s, got[0].Position-1, s.mine(t), got[len(got)-1].Position))
}

// testTraceContext checks that the W3C trace context an event carries in
// its metadata comes back, so that a reader can link to the append. The
// suite does not set the global propagator; when the backend's test has
// set one, the trace context of the appending context must be stored too
// (mustAppend compares metadata with what PrepareAppend gives).
func testTraceContext(t *testing.T, s *store) {
	const (
		traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
		tracestate  = "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"
	)
	explicit := eventsource.NewEvent{ID: uuid.New(), Type: eventType, Metadata: map[string]string{
		"traceparent": traceparent, "tracestate": tracestate, "tenant": "t1",
	}}
	a := s.streamID(t, "a")
	got := mustAppend(t, s, a, eventsource.NoStream, explicit)

	// An append under a context that carries a sampled span context.
	sc := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID:    trace.TraceID{0x0a, 0xf7, 0x65, 0x19, 0x16, 0xcd, 0x43, 0xdd, 0x84, 0x48, 0xeb, 0x21, 0x1c, 0x80, 0x31, 0x9c},
		SpanID:     trace.SpanID{0xb7, 0xad, 0x6b, 0x71, 0x69, 0x20, 0x33, 0x31},
		TraceFlags: trace.FlagsSampled,
	})
	c := trace.ContextWithSpanContext(ctx(t), sc)
	implicit := []eventsource.NewEvent{{ID: uuid.New(), Type: eventType, Metadata: map[string]string{"tenant": "t2"}}}
	got2, err := s.Append(c, a, eventsource.Exact(1), implicit...)
	if err != nil {
		t.Fatalf("Append under a span context = %v; want nil", err)
	}
	checkAppended(t, c, got2, a, eventsource.Exact(1), implicit)

	read := readStream(t, s, a, 1)
	sameEvents(t, "ReadStream", read, concat(got, got2))
	if md := read[0].Metadata; md["traceparent"] != traceparent || md["tracestate"] != tracestate || md["tenant"] != "t1" {
		t.Fatalf("ReadStream gave metadata %q; want the trace context appended", md)
	}
	linked := trace.SpanContextFromContext(propagation.TraceContext{}.Extract(context.Background(), propagation.MapCarrier(read[0].Metadata)))
	if !linked.IsValid() || linked.TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" || linked.TraceState().Get("congo") != "t61rcWkgMzE" {
		t.Fatalf("the trace context read back is %v; want trace 4bf92f3577b34da6a3ce929d0e0e4736 with its trace state", linked)
	}
}

func testReadStream(t *testing.T, s *store) {
	a, other := s.streamID(t, "a"), s.streamID(t, "other")
	first := mustAppend(t, s, a, eventsource.NoStream, newEvents(2)...)
	mustAppend(t, s, other, eventsource.NoStream, newEvents(2)...)
	second := mustAppend(t, s, a, eventsource.Exact(2), newEvents(3)...)
	mustAppend(t, s, other, eventsource.Any, newEvents(1)...)
	all := concat(first, second)
	for _, tt := range []struct {
		from int64
		want []eventsource.Event
	}{
		{1, all}, {0, all}, {-1, all}, {2, all[1:]}, {3, all[2:]}, {5, all[4:]}, {6, nil}, {100, nil},
	} {
		sameEvents(t, fmt.Sprintf("ReadStream(%q, %d)", a, tt.from), readStream(t, s, a, tt.from), tt.want)
	}
	if got := readStream(t, s, s.streamID(t, "unknown"), 1); len(got) > 0 {
		t.Fatalf("ReadStream of an unknown stream = %s; want nothing", brief(got))
	}
}

func testReadAll(t *testing.T, s *store) {
	a, b := s.streamID(t, "a"), s.streamID(t, "b")
	evs := concat(
		mustAppend(t, s, a, eventsource.NoStream, newEvents(1)...),
		mustAppend(t, s, b, eventsource.NoStream, newEvents(1)...),
		mustAppend(t, s, a, eventsource.Exact(1), newEvents(2)...),
		mustAppend(t, s, b, eventsource.Any, newEvents(1)...),
	)
	head := evs[len(evs)-1].Position
	keep := s.mine(t)
	sameEvents(t, "ReadAll(0)", readAll(t, s, 0, keep, head), evs)
	sameEvents(t, "ReadAll(-1)", readAll(t, s, -1, keep, head), evs)
	for i := range evs {
		after := evs[i].Position - 1
		sameEvents(t, fmt.Sprintf("ReadAll(%d), before event %d", after, i), readAll(t, s, after, keep, 0), evs[i:])
	}
	mid := evs[1].Position
	sameEvents(t, fmt.Sprintf("ReadAll(%d), after event 1", mid), readAll(t, s, mid, keep, 0), evs[2:])
	if got := readAll(t, s, head, keep, 0); len(got) > 0 {
		t.Fatalf("ReadAll(%d), after the last event, = %s; want nothing", head, brief(got))
	}
	if got := readAll(t, s, head+1_000_000_000, keep, 0); len(got) > 0 {
		t.Fatalf("ReadAll(%d), far past the last event, = %s; want nothing", head+1_000_000_000, brief(got))
	}
}

// testEarlyBreak stops reading in the middle, also right after the
// context was cancelled: the sequence must end without calling the loop
// body again (the runtime panics if it does) and release what it holds, so
// that the store serves the next call.
func testEarlyBreak(t *testing.T, s *store) {
	a := s.streamID(t, "a")
	evs := mustAppend(t, s, a, eventsource.NoStream, newEvents(5)...)
	start := evs[0].Position - 1
	keep := s.mine(t) // the subtests' own names differ
	reads := []struct {
		name string
		seq  func(c context.Context) iter.Seq2[eventsource.Event, error]
	}{
		{"ReadStream", func(c context.Context) iter.Seq2[eventsource.Event, error] { return s.ReadStream(c, a, 1) }},
		{"ReadAll", func(c context.Context) iter.Seq2[eventsource.Event, error] { return s.ReadAll(c, start) }},
		{"Subscribe", func(c context.Context) iter.Seq2[eventsource.Event, error] { return s.Subscribe(c, start) }},
	}
	for _, r := range reads {
		for _, cancelFirst := range []bool{false, true} {
			name := r.name + "/Break"
			if cancelFirst {
				name = r.name + "/CancelThenBreak"
			}
			t.Run(name, func(t *testing.T) {
				for _, n := range []int{1, 3} {
					c, cancel := context.WithTimeout(t.Context(), patience)
					var got int
					var readErr error
					done := make(chan error, 1)
					go func() {
						done <- drain(r.seq(c), func(e eventsource.Event, err error) bool {
							if err != nil {
								readErr = err
								return false
							}
							if got++; got < n {
								return true
							}
							if cancelFirst {
								cancel()
							}
							return false
						})
					}()
					var err error
					select {
					case err = <-done:
					case <-time.After(patience):
						cancel()
						t.Fatalf("%s did not return within %v of the loop breaking after %d events", r.name, patience, n)
					}
					cancel()
					if err != nil {
						t.Fatalf("%s, breaking after %d events: %v", r.name, n, err)
					}
					if readErr != nil || got != n {
						t.Fatalf("%s, breaking after %d events, yielded %d events and the error %v; want %d events", r.name, n, got, readErr, n)
					}
				}
				// The store serves the next calls.
				sameEvents(t, "ReadStream after an early break", readStream(t, s, a, 1), evs)
				sameEvents(t, "ReadAll after an early break", readAll(t, s, start, keep, 0), evs)
				mustAppend(t, s, s.streamID(t, "after"), eventsource.NoStream, newEvents(1)...)
			})
		}
	}
}

// subscription runs Subscribe on its own goroutine and hands on the
// events that keep accepts.
type subscription struct {
	after  int64
	events chan eventsource.Event
	cancel context.CancelFunc
	done   chan struct{}

	mu       sync.Mutex
	problems []string
	once     sync.Once
}

func subscribe(t *testing.T, s eventsource.Store, after int64, keep func(eventsource.Event) bool) *subscription {
	t.Helper()
	c, cancel := context.WithCancel(t.Context())
	sub := &subscription{after: after, events: make(chan eventsource.Event, 1<<12), cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(sub.done)
		last := after
		err := drain(s.Subscribe(c, after), func(e eventsource.Event, err error) bool {
			if err != nil {
				sub.problem("yielded the error %v (ctx.Err() = %v); want no error, and an end without one when its context is done", err, c.Err())
				return false
			}
			if e.Position <= last {
				sub.problem("yielded position %d after %d; want increasing positions greater than %d", e.Position, last, after)
			}
			last = e.Position
			if keep(e) {
				select {
				case sub.events <- e:
				case <-c.Done():
					return false
				}
			}
			return true
		})
		if err != nil {
			sub.problem("%v", err)
		}
	}()
	t.Cleanup(func() { sub.stop(t) })
	return sub
}

func (sub *subscription) problem(format string, args ...any) {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	sub.problems = append(sub.problems, fmt.Sprintf("Subscribe(%d) ", sub.after)+fmt.Sprintf(format, args...))
}

func (sub *subscription) report() string {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	if len(sub.problems) == 0 {
		return ""
	}
	return "; " + strings.Join(sub.problems, "; ")
}

// next waits for n more events.
func (sub *subscription) next(t *testing.T, n int) []eventsource.Event {
	t.Helper()
	timeout := time.NewTimer(patience)
	defer timeout.Stop()
	var got []eventsource.Event
	for len(got) < n {
		select {
		case e := <-sub.events:
			got = append(got, e)
		case <-sub.done:
			select {
			case e := <-sub.events:
				got = append(got, e)
				continue
			default:
			}
			t.Fatalf("Subscribe(%d) ended after %d of %d events %s, before its context was done%s", sub.after, len(got), n, brief(got), sub.report())
		case <-timeout.C:
			t.Fatalf("Subscribe(%d) yielded %d of %d events %s in %v%s", sub.after, len(got), n, brief(got), patience, sub.report())
		}
	}
	return got
}

// stop cancels the subscription's context and checks that it ends, within
// patience and without an error; it reports problems once.
func (sub *subscription) stop(t *testing.T) {
	t.Helper()
	sub.cancel()
	sub.once.Do(func() {
		select {
		case <-sub.done:
		case <-time.After(patience):
			t.Errorf("Subscribe(%d) did not end within %v of its context being cancelled", sub.after, patience)
			return
		}
		if r := sub.report(); r != "" {
			t.Error(strings.TrimPrefix(r, "; "))
		}
	})
}

// rest returns the events handed on but not yet taken; call it after stop.
func (sub *subscription) rest() []eventsource.Event {
	var out []eventsource.Event
	for {
		select {
		case e := <-sub.events:
			out = append(out, e)
		default:
			return out
		}
	}
}

func testSubscribeLive(t *testing.T, s *store) {
	a, b := s.streamID(t, "a"), s.streamID(t, "b")
	pre := mustAppend(t, s, a, eventsource.NoStream, newEvents(3)...)
	sub := subscribe(t, s, pre[0].Position-1, s.mine(t))
	sameEvents(t, "Subscribe, catching up", sub.next(t, 3), pre)

	// Events appended by another goroutine once the subscription waits.
	type result struct {
		events []eventsource.Event
		err    error
	}
	appendLater := func(appends ...func() ([]eventsource.Event, error)) []eventsource.Event {
		t.Helper()
		time.Sleep(settle)
		ch := make(chan result, 1)
		go func() {
			var r result
			for _, f := range appends {
				evs, err := f()
				if err != nil {
					r.err = err
					break
				}
				r.events = append(r.events, evs...)
			}
			ch <- r
		}()
		r := <-ch
		if r.err != nil {
			t.Fatalf("Append from another goroutine = %v; want nil", r.err)
		}
		return r.events
	}
	c := ctx(t)
	live1 := appendLater(
		func() ([]eventsource.Event, error) { return s.Append(c, b, eventsource.NoStream, newEvents(2)...) },
		func() ([]eventsource.Event, error) { return s.Append(c, a, eventsource.Exact(3), newEvents(1)...) },
	)
	sameEvents(t, "Subscribe, live", sub.next(t, len(live1)), live1)
	live2 := appendLater(
		func() ([]eventsource.Event, error) { return s.Append(c, a, eventsource.Exact(4), newEvents(1)...) },
	)
	sameEvents(t, "Subscribe, live again", sub.next(t, len(live2)), live2)

	time.Sleep(settle)
	start := time.Now()
	sub.stop(t) // waiting for events: it must end without an error
	if d := time.Since(start); d > patience {
		t.Errorf("Subscribe took %v to end after its context was cancelled", d)
	}
	if extra := sub.rest(); len(extra) > 0 {
		t.Fatalf("Subscribe yielded events %s beyond those appended", brief(extra))
	}
}

func testSubscribeResume(t *testing.T, s *store) {
	a := s.streamID(t, "a")
	evs := mustAppend(t, s, a, eventsource.NoStream, newEvents(4)...)

	// A subscriber that handled evs[1] and stored its position resumes.
	sub := subscribe(t, s, evs[1].Position, s.mine(t))
	sameEvents(t, fmt.Sprintf("Subscribe(%d)", evs[1].Position), sub.next(t, 2), evs[2:])
	more := mustAppend(t, s, a, eventsource.Exact(4), newEvents(1)...)
	sameEvents(t, fmt.Sprintf("Subscribe(%d), live", evs[1].Position), sub.next(t, 1), more)
	sub.stop(t)
	if extra := sub.rest(); len(extra) > 0 {
		t.Fatalf("Subscribe(%d) yielded events %s beyond those appended", evs[1].Position, brief(extra))
	}

	// Resuming from the last position handled yields only what came after.
	last := more[0].Position
	sub = subscribe(t, s, last, s.mine(t))
	later := mustAppend(t, s, a, eventsource.Exact(5), newEvents(1)...)
	sameEvents(t, fmt.Sprintf("Subscribe(%d), from the head", last), sub.next(t, 1), later)
	sub.stop(t)
	if extra := sub.rest(); len(extra) > 0 {
		t.Fatalf("Subscribe(%d) yielded events %s beyond those appended", last, brief(extra))
	}
}

func testCanceled(t *testing.T, s *store) {
	a, fresh := s.streamID(t, "a"), s.streamID(t, "fresh")
	evs := mustAppend(t, s, a, eventsource.NoStream, newEvents(3)...)
	canceled, cancel := context.WithCancel(t.Context())
	cancel()
	expired, cancel2 := context.WithDeadline(t.Context(), time.Now().Add(-time.Second))
	defer cancel2()

	for _, tt := range []struct {
		name string
		c    context.Context
		want error
	}{
		{"a canceled", canceled, context.Canceled},
		{"an expired", expired, context.DeadlineExceeded},
	} {
		start := time.Now()
		for _, call := range []struct {
			stream   string
			expected eventsource.ExpectedVersion
		}{{a, eventsource.Any}, {a, eventsource.Exact(3)}, {fresh, eventsource.NoStream}} {
			got, err := s.Append(tt.c, call.stream, call.expected, newEvents(2)...)
			if !errors.Is(err, tt.want) {
				t.Errorf("Append(%q, %v) with %s context = %d events, %v; want an error matching %v", call.stream, call.expected, tt.name, len(got), err, tt.want)
			}
		}
		reads := []struct {
			name string
			seq  iter.Seq2[eventsource.Event, error]
		}{
			{"ReadStream", s.ReadStream(tt.c, a, 1)},
			{"ReadStream of an unknown stream", s.ReadStream(tt.c, s.streamID(t, "unknown"), 1)},
			{"ReadAll", s.ReadAll(tt.c, evs[0].Position-1)},
			{"ReadAll from the head", s.ReadAll(tt.c, evs[2].Position)},
		}
		for _, r := range reads {
			var first error
			var events int
			err := drain(r.seq, func(_ eventsource.Event, err error) bool {
				if err != nil {
					first = err
					return false
				}
				events++
				return true
			})
			if err == nil && (first == nil || events > 0 || !errors.Is(first, tt.want)) {
				err = fmt.Errorf("yielded %d events, then the error %v; want at once an error matching %v", events, first, tt.want)
			}
			if err != nil {
				t.Errorf("%s with %s context: %v", r.name, tt.name, err)
			}
		}
		var subErr error
		err := drain(s.Subscribe(tt.c, evs[0].Position-1), func(_ eventsource.Event, err error) bool {
			if err != nil {
				subErr = err
				return false
			}
			return true
		})
		if err == nil {
			err = subErr
		}
		if err != nil {
			t.Errorf("Subscribe with %s context: %v; want it to end without an error", tt.name, err)
		}
		if d := time.Since(start); d > prompt {
			t.Errorf("calls with %s context took %v; want them to return at once", tt.name, d)
		}
	}
	sameEvents(t, "ReadStream after appends with a done context", readStream(t, s, a, 1), evs)
	if got := readStream(t, s, fresh, 1); len(got) > 0 {
		t.Fatalf("ReadStream(%q) after appends with a done context = %s; want nothing", fresh, brief(got))
	}
}

// testCanceledMidRead cancels the context of a read after its first event:
// the read must not end as if it had reached the end, but yield the
// context's error, so that the reader can tell.
func testCanceledMidRead(t *testing.T, s *store) {
	a := s.streamID(t, "a")
	evs := mustAppend(t, s, a, eventsource.NoStream, newEvents(5)...)
	reads := []struct {
		name string
		seq  func(c context.Context) iter.Seq2[eventsource.Event, error]
	}{
		{"ReadStream", func(c context.Context) iter.Seq2[eventsource.Event, error] { return s.ReadStream(c, a, 1) }},
		{"ReadAll", func(c context.Context) iter.Seq2[eventsource.Event, error] {
			return s.ReadAll(c, evs[0].Position-1)
		}},
	}
	for _, r := range reads {
		c, cancel := context.WithCancel(t.Context())
		var events int
		var readErr error
		start := time.Now()
		err := drain(r.seq(c), func(_ eventsource.Event, err error) bool {
			if err != nil {
				readErr = err
				return false
			}
			events++
			cancel()
			return true
		})
		cancel()
		if err == nil && !errors.Is(readErr, context.Canceled) {
			err = fmt.Errorf("yielded %d events and then the error %v; want an error matching context.Canceled before the end", events, readErr)
		}
		if err != nil {
			t.Errorf("%s cancelled after its first event: %v", r.name, err)
		}
		if d := time.Since(start); d > prompt {
			t.Errorf("%s took %v to end after its context was cancelled", r.name, d)
		}
	}
}

// testConcurrentAppends has goroutines append to streams of their own and
// to one shared stream, with a subscriber running, and checks that every
// event is stored once, in one global order that every reader sees.
func testConcurrentAppends(t *testing.T, s *store) {
	const workers, rounds = 8, 10
	marker := mustAppend(t, s, s.streamID(t, "marker"), eventsource.NoStream, newEvents(1)...)
	start := marker[0].Position
	sub := subscribe(t, s, start, s.mine(t))
	shared := s.streamID(t, "shared")

	c := ctx(t)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var appended []eventsource.Event
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			own := s.streamID(t, fmt.Sprint("own-", w))
			for i := range rounds {
				got, err := s.Append(c, own, eventsource.Exact(int64(i)), newEvents(1)...)
				if err == nil && (len(got) != 1 || got[0].Version != int64(i)+1) {
					err = fmt.Errorf("returned %s; want version %d", brief(got), i+1)
				}
				if err != nil {
					errs <- fmt.Errorf("Append(%q, version %d) = %v", own, i, err)
					return
				}
				n := 1 + (w+i)%3
				got2, err := s.Append(c, shared, eventsource.Any, newEvents(n)...)
				if err == nil && len(got2) != n {
					err = fmt.Errorf("returned %d events; want %d", len(got2), n)
				}
				for j := 1; err == nil && j < len(got2); j++ {
					if got2[j].Version != got2[j-1].Version+1 || got2[j].Position <= got2[j-1].Position {
						err = fmt.Errorf("returned %s; want consecutive versions and increasing positions", brief(got2))
					}
				}
				if err != nil {
					errs <- fmt.Errorf("Append(%q, any version, %d events) = %v", shared, n, err)
					return
				}
				mu.Lock()
				appended = append(appended, got...)
				appended = append(appended, got2...)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	// Every event once, in one global order.
	slices.SortFunc(appended, func(x, y eventsource.Event) int { return cmp.Compare(x.Position, y.Position) })
	for i := 1; i < len(appended); i++ {
		if appended[i].Position == appended[i-1].Position {
			t.Fatalf("two appended events share position %d: %s", appended[i].Position, brief(appended[i-1:i+1]))
		}
	}
	sameEvents(t, "ReadAll after concurrent appends", readAll(t, s, start, s.mine(t), 0), appended)
	sameEvents(t, "Subscribe during concurrent appends", sub.next(t, len(appended)), appended)

	// Each stream holds its events in consecutive versions.
	var sharedEvents []eventsource.Event
	for _, e := range appended {
		if e.StreamID == shared {
			sharedEvents = append(sharedEvents, e)
		}
	}
	slices.SortFunc(sharedEvents, func(x, y eventsource.Event) int { return cmp.Compare(x.Version, y.Version) })
	sameEvents(t, "ReadStream of the shared stream", readStream(t, s, shared, 1), sharedEvents)
	for w := range workers {
		if got := readStream(t, s, s.streamID(t, fmt.Sprint("own-", w)), 1); len(got) != rounds {
			t.Fatalf("ReadStream of worker %d's stream = %s; want %d events", w, brief(got), rounds)
		}
	}
	sub.stop(t)
	if extra := sub.rest(); len(extra) > 0 {
		t.Fatalf("Subscribe yielded events %s beyond those appended", brief(extra))
	}
}

// testExactRace races two appends with the same expected version, and two
// with NoStream: exactly one of each pair succeeds.
func testExactRace(t *testing.T, s *store) {
	const rounds = 20
	c := ctx(t)
	for i := range rounds {
		for _, expected := range []eventsource.ExpectedVersion{eventsource.Exact(1), eventsource.NoStream} {
			stream := s.streamID(t, fmt.Sprintf("race-%d-%d", i, expected))
			var before []eventsource.Event
			if expected == eventsource.Exact(1) {
				before = mustAppend(t, s, stream, eventsource.NoStream, newEvents(1)...)
			}
			type result struct {
				in     []eventsource.NewEvent
				events []eventsource.Event
				err    error
			}
			results := make([]result, 2)
			gate := make(chan struct{})
			var wg sync.WaitGroup
			for j := range results {
				results[j].in = newEvents(1 + j)
				wg.Go(func() {
					<-gate
					results[j].events, results[j].err = s.Append(c, stream, expected, results[j].in...)
				})
			}
			close(gate)
			wg.Wait()
			var winner, loser *result
			for j := range results {
				if results[j].err == nil {
					winner = &results[j]
				} else {
					loser = &results[j]
				}
			}
			if winner == nil || loser == nil {
				t.Fatalf("round %d: two appends to %q with %v gave %v and %v; want exactly one to succeed", i, stream, expected, results[0].err, results[1].err)
			}
			checkAppended(t, c, winner.events, stream, expected, winner.in)
			conflict(t, loser.err, stream, expected, int64(expected)+int64(len(winner.in)))
			sameEvents(t, fmt.Sprintf("round %d: ReadStream after the race", i), readStream(t, s, stream, 1), concat(before, winner.events))
		}
	}
}

// testCheckpointedReader reads on from its last position with ReadAll,
// over and over, while appends to several streams run side by side, as a
// projection does: what the store's ReadAll contract promises is that it
// never yields an event below one it yielded before (positions passed
// are never filled in), so the reader ends with every appended event,
// once, in increasing positions. Reads may stop short of the last
// committed event (a store may hold events back); a final read, once the
// appends are done, must reach them all.
func testCheckpointedReader(t *testing.T, s *store) {
	const workers, rounds = 6, 15
	marker := mustAppend(t, s, s.streamID(t, "marker"), eventsource.NoStream, newEvents(1)...)
	keep := s.mine(t)
	c := ctx(t)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var appended []eventsource.Event
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			own := s.streamID(t, fmt.Sprint("w-", w))
			version := int64(0)
			for i := range rounds {
				got, err := s.Append(c, own, eventsource.Exact(version), newEvents(1+(w+i)%2)...)
				if err != nil {
					errs <- fmt.Errorf("Append(%q, version %d) = %v", own, version, err)
					return
				}
				version += int64(len(got))
				mu.Lock()
				appended = append(appended, got...)
				mu.Unlock()
			}
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	var seen []eventsource.Event
	last := marker[0].Position
	read := func() {
		for e, err := range s.ReadAll(c, last) {
			if err != nil {
				t.Fatalf("ReadAll after %d: %v", last, err)
			}
			if e.Position <= last {
				t.Fatalf("ReadAll after %d yielded position %d", last, e.Position)
			}
			last = e.Position
			if keep(e) {
				seen = append(seen, e)
			}
		}
	}
	for running := true; running; {
		select {
		case <-done:
			running = false
		default:
		}
		read()
	}
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	read() // the appends are done: everything is readable
	slices.SortFunc(appended, func(x, y eventsource.Event) int { return cmp.Compare(x.Position, y.Position) })
	if len(seen) != len(appended) {
		t.Fatalf("the checkpointed reader saw %d events; %d were appended (an event appeared below a position it had passed, or twice)", len(seen), len(appended))
	}
	sameEvents(t, "checkpointed reads during concurrent appends", seen, appended)
}
