package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"

	"github.com/otelpatterns/patterns/eventsource"
)

// snapshots is the snapshot store under test, with the id of the run of
// the suite.
type snapshots struct {
	eventsource.SnapshotStore
	run string
}

// streamID returns a stream id private to the running (sub)test.
func (s *snapshots) streamID(t *testing.T, name string) string {
	return t.Name() + "/" + s.run + "/" + name
}

// RunSnapshots runs the conformance suite of [eventsource.SnapshotStore]
// against the stores that newStore returns, and of
// [eventsource.SnapshotDeleter] for those that implement it. newStore is
// called once per subtest, with that subtest's t, and should register the
// store's cleanup with t.Cleanup. Like [Run], subtests use only streams
// named after themselves, so every subtest may share one database.
//
// The suite holds a store to what [eventsource.SnapshotStore] says:
// LoadSnapshot returns what was saved (format and arbitrary bytes
// included) or an error matching [eventsource.ErrNotFound]; SaveSnapshot
// replaces a snapshot with one of a newer version or of another format,
// and may skip one of an older or the same version and the same format;
// SaveSnapshot rejects what
// [github.com/otelpatterns/patterns/eventsource/storekit.CheckSnapshot]
// rejects, with an error that does not carry a long stream id whole;
// DeleteSnapshot removes a snapshot and is no error for one that does not
// exist; a done context fails a call. A nil newStore, or one that returns
// nil, fails the test.
func RunSnapshots(t *testing.T, newStore func(t *testing.T) eventsource.SnapshotStore) {
	t.Helper()
	tests := []struct {
		name string
		run  func(t *testing.T, s *snapshots)
	}{
		{"NotFound", testSnapshotNotFound},
		{"RoundTrip", testSnapshotRoundTrip},
		{"NewerReplaces", testSnapshotNewer},
		{"OtherFormatReplaces", testSnapshotOtherFormat},
		{"OlderMayBeSkipped", testSnapshotOlder},
		{"StreamsAreIndependent", testSnapshotStreams},
		{"InvalidArgument", testSnapshotInvalid},
		{"LongStreamID", testSnapshotLongID},
		{"Canceled", testSnapshotCanceled},
		{"Concurrent", testSnapshotConcurrent},
		{"Delete", testSnapshotDelete},
	}
	if newStore == nil {
		t.Fatal("storetest.RunSnapshots: newStore is nil")
	}
	run := uuid.NewString()[:8]
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t)
			if s == nil {
				t.Fatal("newStore returned nil")
			}
			tt.run(t, &snapshots{s, run})
		})
	}
}

func (s *snapshots) save(t *testing.T, snap eventsource.Snapshot) {
	t.Helper()
	if err := s.SaveSnapshot(ctx(t), snap); err != nil {
		t.Fatalf("SaveSnapshot(%s) = %v; want nil", showSnapshot(snap), err)
	}
}

func (s *snapshots) load(t *testing.T, streamID string) eventsource.Snapshot {
	t.Helper()
	snap, err := s.LoadSnapshot(ctx(t), streamID)
	if err != nil {
		t.Fatalf("LoadSnapshot(%q) = %v; want a snapshot", streamID, err)
	}
	return snap
}

// sameSnapshot fails the test unless got is want. Nil and empty data
// agree.
func sameSnapshot(t *testing.T, what string, got, want eventsource.Snapshot) {
	t.Helper()
	if got.StreamID != want.StreamID || got.Version != want.Version || got.Format != want.Format || !bytes.Equal(got.Data, want.Data) {
		t.Fatalf("%s = %s; want %s", what, showSnapshot(got), showSnapshot(want))
	}
}

func showSnapshot(s eventsource.Snapshot) string {
	id := s.StreamID
	if len(id) > 80 {
		id = fmt.Sprintf("%s... (%d bytes)", id[:80], len(id))
	}
	return fmt.Sprintf("{%q v%d format %d data %s}", id, s.Version, s.Format, show(s.Data))
}

func testSnapshotNotFound(t *testing.T, s *snapshots) {
	id := s.streamID(t, "none")
	_, err := s.LoadSnapshot(ctx(t), id)
	if !errors.Is(err, eventsource.ErrNotFound) {
		t.Fatalf("LoadSnapshot of a stream with no snapshot = %v; want an error matching ErrNotFound", err)
	}
	for _, odd := range []string{"", "nul\x00", "bad\xff"} {
		if _, err := s.LoadSnapshot(ctx(t), odd); !errors.Is(err, eventsource.ErrNotFound) {
			t.Errorf("LoadSnapshot(%q) = %v; want an error matching ErrNotFound", odd, err)
		}
	}
}

// testSnapshotRoundTrip saves snapshots of every kind of data and format
// and loads them back.
func testSnapshotRoundTrip(t *testing.T, s *snapshots) {
	for i, snap := range []eventsource.Snapshot{
		{Version: 1, Data: []byte(`{"balance":10}`)},
		{Version: 0, Format: 0},                                                      // no events yet, no data
		{Version: 7, Format: 3, Data: []byte{}},                                      // empty data reads as nil or empty
		{Version: 1 << 40, Format: -2, Data: []byte("\x00\xff\xfe")},                 // any bytes, a negative format
		{Version: 2, Format: 1 << 40, Data: bytes.Repeat([]byte("snapshot"), 1<<17)}, // 1 MiB
	} {
		snap.StreamID = s.streamID(t, fmt.Sprint(i))
		s.save(t, snap)
		sameSnapshot(t, fmt.Sprintf("LoadSnapshot(%q)", snap.StreamID), s.load(t, snap.StreamID), snap)
	}
	// Ids that mean something to a query language, or differ little.
	for _, name := range []string{"it's", `a"b`, "%", "_", "ünï", "A", "a"} {
		snap := eventsource.Snapshot{StreamID: s.streamID(t, name), Version: 1, Data: []byte(name)}
		s.save(t, snap)
	}
	for _, name := range []string{"it's", `a"b`, "%", "_", "ünï", "A", "a"} {
		id := s.streamID(t, name)
		sameSnapshot(t, fmt.Sprintf("LoadSnapshot(%q)", id), s.load(t, id), eventsource.Snapshot{StreamID: id, Version: 1, Data: []byte(name)})
	}
}

func testSnapshotNewer(t *testing.T, s *snapshots) {
	id := s.streamID(t, "a")
	for v := int64(1); v <= 3; v++ {
		snap := eventsource.Snapshot{StreamID: id, Version: v * 10, Format: 1, Data: fmt.Appendf(nil, "v%d", v)}
		s.save(t, snap)
		sameSnapshot(t, "LoadSnapshot after saving a newer version", s.load(t, id), snap)
	}
}

// testSnapshotOtherFormat replaces a snapshot with one of another format,
// of an older, the same and a newer version: a repository whose format
// changed must be able to replace the snapshots it ignores.
func testSnapshotOtherFormat(t *testing.T, s *snapshots) {
	id := s.streamID(t, "a")
	s.save(t, eventsource.Snapshot{StreamID: id, Version: 10, Format: 1, Data: []byte("f1")})
	for _, snap := range []eventsource.Snapshot{
		{StreamID: id, Version: 5, Format: 2, Data: []byte("f2 older")},
		{StreamID: id, Version: 5, Format: 3, Data: []byte("f3 same")},
		{StreamID: id, Version: 6, Format: 1, Data: []byte("f1 newer")},
	} {
		s.save(t, snap)
		sameSnapshot(t, "LoadSnapshot after saving another format", s.load(t, id), snap)
	}
}

// testSnapshotOlder saves an older and an equal version of the same
// format: the store may skip them or not, but what it loads is one of the
// snapshots saved, whole.
func testSnapshotOlder(t *testing.T, s *snapshots) {
	id := s.streamID(t, "a")
	saved := []eventsource.Snapshot{
		{StreamID: id, Version: 10, Data: []byte("ten")},
		{StreamID: id, Version: 5, Data: []byte("five")},
		{StreamID: id, Version: 10, Data: []byte("ten again")},
	}
	for _, snap := range saved {
		s.save(t, snap)
	}
	got := s.load(t, id)
	for _, snap := range saved {
		if got.Version == snap.Version && bytes.Equal(got.Data, snap.Data) && got.Format == snap.Format {
			return
		}
	}
	t.Fatalf("LoadSnapshot = %s; want one of the snapshots saved", showSnapshot(got))
}

func testSnapshotStreams(t *testing.T, s *snapshots) {
	a, b := s.streamID(t, "a"), s.streamID(t, "b")
	sa := eventsource.Snapshot{StreamID: a, Version: 3, Data: []byte("a")}
	sb := eventsource.Snapshot{StreamID: b, Version: 1, Format: 2, Data: []byte("b")}
	s.save(t, sa)
	s.save(t, sb)
	sameSnapshot(t, "LoadSnapshot(a)", s.load(t, a), sa)
	sameSnapshot(t, "LoadSnapshot(b)", s.load(t, b), sb)
	if d, ok := s.SnapshotStore.(eventsource.SnapshotDeleter); ok {
		if err := d.DeleteSnapshot(ctx(t), a); err != nil {
			t.Fatalf("DeleteSnapshot(a) = %v", err)
		}
		sameSnapshot(t, "LoadSnapshot(b) after deleting a's", s.load(t, b), sb)
	}
}

// testSnapshotInvalid saves what CheckSnapshot rejects.
func testSnapshotInvalid(t *testing.T, s *snapshots) {
	id := s.streamID(t, "a")
	for _, snap := range []eventsource.Snapshot{
		{Version: 1},
		{StreamID: id + "\x00", Version: 1},
		{StreamID: id + "\xff", Version: 1},
		{StreamID: id, Version: -1},
	} {
		if err := s.SaveSnapshot(ctx(t), snap); !errors.Is(err, eventsource.ErrInvalidArgument) {
			t.Errorf("SaveSnapshot(%s) = %v; want an error matching ErrInvalidArgument", showSnapshot(snap), err)
		}
	}
	if _, err := s.LoadSnapshot(ctx(t), id); !errors.Is(err, eventsource.ErrNotFound) {
		t.Errorf("LoadSnapshot after invalid saves = %v; want an error matching ErrNotFound", err)
	}
}

// testSnapshotLongID saves and loads the snapshot of a stream whose id is
// 1 MiB long. A store may refuse so long an id, but no error may carry it
// whole.
func testSnapshotLongID(t *testing.T, s *snapshots) {
	id := s.streamID(t, strings.Repeat("x", 1<<20))
	const maxErr = 4 << 10
	snap := eventsource.Snapshot{StreamID: id, Version: 1, Data: []byte("long")}
	if err := s.SaveSnapshot(ctx(t), snap); err != nil {
		if len(err.Error()) > maxErr {
			t.Fatalf("SaveSnapshot of a 1 MiB stream id: the error is %d bytes long; want at most %d: %.200s…", len(err.Error()), maxErr, err)
		}
		return
	}
	sameSnapshot(t, "LoadSnapshot of a 1 MiB stream id", s.load(t, id), snap)
	if _, err := s.LoadSnapshot(ctx(t), id+"y"); err == nil || len(err.Error()) > maxErr {
		t.Fatalf("LoadSnapshot of a missing 1 MiB stream id = %.200v (%d bytes); want ErrNotFound in at most %d bytes", err, len(fmt.Sprint(err)), maxErr)
	}
}

func testSnapshotCanceled(t *testing.T, s *snapshots) {
	id := s.streamID(t, "a")
	s.save(t, eventsource.Snapshot{StreamID: id, Version: 1})
	c, cancel := context.WithCancel(ctx(t))
	cancel()
	if err := s.SaveSnapshot(c, eventsource.Snapshot{StreamID: id, Version: 2}); err == nil {
		t.Error("SaveSnapshot with a done context = nil; want an error")
	}
	if _, err := s.LoadSnapshot(c, id); err == nil {
		t.Error("LoadSnapshot with a done context = nil error; want an error")
	}
	if d, ok := s.SnapshotStore.(eventsource.SnapshotDeleter); ok {
		if err := d.DeleteSnapshot(c, id); err == nil {
			t.Error("DeleteSnapshot with a done context = nil; want an error")
		}
	}
	sameSnapshot(t, "LoadSnapshot after calls with a done context", s.load(t, id), eventsource.Snapshot{StreamID: id, Version: 1})
}

// testSnapshotConcurrent saves versions 1 to n of one stream at once, and
// then a newer one: every call succeeds, what is loaded in between is
// whole, and the newest is kept.
func testSnapshotConcurrent(t *testing.T, s *snapshots) {
	id := s.streamID(t, "a")
	const n = 16
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for v := int64(1); v <= n; v++ {
		wg.Go(func() {
			errs <- s.SaveSnapshot(ctx(t), eventsource.Snapshot{StreamID: id, Version: v, Data: fmt.Appendf(nil, "v%d", v)})
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("concurrent SaveSnapshot = %v", err)
		}
	}
	got := s.load(t, id)
	if want := fmt.Sprintf("v%d", got.Version); string(got.Data) != want || got.Version < 1 || got.Version > n {
		t.Fatalf("LoadSnapshot after concurrent saves = %s; want a version from 1 to %d with its own data", showSnapshot(got), n)
	}
	last := eventsource.Snapshot{StreamID: id, Version: n + 1, Data: []byte("last")}
	s.save(t, last)
	sameSnapshot(t, "LoadSnapshot after the newest", s.load(t, id), last)
}

func testSnapshotDelete(t *testing.T, s *snapshots) {
	d, ok := s.SnapshotStore.(eventsource.SnapshotDeleter)
	if !ok {
		t.Skipf("%T is no eventsource.SnapshotDeleter", s.SnapshotStore)
	}
	id := s.streamID(t, "a")
	if err := d.DeleteSnapshot(ctx(t), id); err != nil {
		t.Fatalf("DeleteSnapshot of a stream with no snapshot = %v; want nil", err)
	}
	s.save(t, eventsource.Snapshot{StreamID: id, Version: 10, Format: 1, Data: []byte("ten")})
	if err := d.DeleteSnapshot(ctx(t), id); err != nil {
		t.Fatalf("DeleteSnapshot = %v; want nil", err)
	}
	if _, err := s.LoadSnapshot(ctx(t), id); !errors.Is(err, eventsource.ErrNotFound) {
		t.Fatalf("LoadSnapshot after DeleteSnapshot = %v; want an error matching ErrNotFound", err)
	}
	// After a delete, any version may be saved again, an older one too.
	again := eventsource.Snapshot{StreamID: id, Version: 2, Format: 1, Data: []byte("two")}
	s.save(t, again)
	sameSnapshot(t, "LoadSnapshot after deleting and saving an older version", s.load(t, id), again)
	if err := d.DeleteSnapshot(ctx(t), ""); err != nil {
		t.Errorf("DeleteSnapshot(\"\") = %v; want nil (there is no such snapshot)", err)
	}
}
