package logtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/otelpatterns/patterns/saga"
)

// Timing of the suite.
const (
	// patience bounds every call of the log and every wait for a lease to
	// expire.
	patience = 10 * time.Second
	// shortLease is the lease of sagas whose lease the subtest lets expire.
	shortLease = 100 * time.Millisecond
	// longLease is the lease of sagas whose lease must hold for the whole
	// subtest.
	longLease = time.Minute
	// clockSkew bounds how far a time set by the log may be from the test's
	// clock, for logs whose clock is a database server's.
	clockSkew = 5 * time.Minute
	// poll is the pause between two claims of a probe (see waitExpired).
	poll = 5 * time.Millisecond
)

// Owners of the suite's leases.
const (
	ownerA = "logtest-owner-a"
	ownerB = "logtest-owner-b"
	ownerC = "logtest-owner-c"
	prober = "logtest-prober"
)

// suite is the log under test, with the id of the run of the suite.
type suite struct {
	saga.Log
	// run makes saga ids and names unique to one call of Run, for a log
	// that keeps its database from one run to the next (or across -count).
	run    string
	probes atomic.Int64
}

// Run runs the conformance suite against the logs that newLog returns.
// newLog is called once per subtest, with that subtest's t, and should
// register the log's cleanup with t.Cleanup.
func Run(t *testing.T, newLog func(t *testing.T) saga.Log) {
	t.Helper()
	tests := []struct {
		name string
		run  func(t *testing.T, s *suite)
	}{
		{"Create/RoundTrip", testCreateRoundTrip},
		{"Create/Copies", testCreateCopies},
		{"Create/Empty", testCreateEmpty},
		{"Create/Exists", testCreateExists},
		{"Create/Leases", testCreateLeases},
		{"Load/NotFound", testLoadNotFound},
		{"Append/InOrder", testAppendInOrder},
		{"Append/Copies", testAppendCopies},
		{"Append/Status", testAppendStatus},
		{"Append/NotOwner", testAppendNotOwner},
		{"Append/DuplicateSeq", testAppendDuplicateSeq},
		{"Append/Batch", testAppendBatch},
		{"Append/BatchAtomic", testAppendBatchAtomic},
		{"Append/FinalEndsLease", testFinalEndsLease},
		{"Renew/Lost", testRenewLost},
		{"Renew/Extends", testRenewExtends},
		{"Claim/Eligible", testClaimEligible},
		{"Claim/OldestFirstAndLimit", testClaimOrder},
		{"Claim/Leases", testClaimLeases},
		{"Lease/ExpiredStillHeld", testExpiredStillHeld},
		{"Lease/TakenOver", testTakenOver},
		{"Release", testRelease},
		{"Concurrent/Claims", testConcurrentClaims},
		{"Concurrent/AppendSameSeq", testConcurrentSameSeq},
		{"Concurrent/StaleOwnerRace", testStaleOwnerRace},
		{"Canceled", testCanceled},
		{"Text/Invalid", testInvalidText},
		{"Reopen/NotFound", testReopenNotFound},
		{"Reopen/OtherStatus", testReopenOtherStatus},
		{"Reopen/NeedsAttention", testReopenNeedsAttention},
		{"Reopen/Expired", testReopenExpired},
		{"Reopen/Canceled", testReopenCanceled},
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	run := hex.EncodeToString(b[:])
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newLog(t)
			if l == nil {
				t.Fatal("newLog returned nil")
			}
			tt.run(t, &suite{Log: l, run: run})
		})
	}
}

// id returns a saga id private to the running (sub)test.
func (s *suite) id(t *testing.T, name string) string { return t.Name() + "/" + s.run + "/" + name }

// name returns a saga name private to the running (sub)test, so that its
// claims see none of the sagas of other subtests or runs.
func (s *suite) name(t *testing.T, name string) string {
	return "logtest/" + s.run + "/" + t.Name() + "/" + name
}

// ctx returns a context that ends with the test or after patience.
func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(t.Context(), patience)
	t.Cleanup(cancel)
	return c
}

// record returns a record of a saga called id, of definition name.
func (s *suite) record(t *testing.T, id, name string) saga.Record {
	return saga.Record{
		ID:      s.id(t, id),
		Name:    name,
		Version: 3,
		Status:  saga.Running,
		Data:    fmt.Appendf(nil, `{"saga":%q}`, id),
		Trace:   map[string]string{"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
	}
}

// mustCreate creates rec leased to owner for lease.
func (s *suite) mustCreate(t *testing.T, rec saga.Record, owner string, lease time.Duration) {
	t.Helper()
	if err := s.Create(ctx(t), rec, owner, lease); err != nil {
		t.Fatalf("Create(%q, %q, %v) = %v; want nil", rec.ID, owner, lease, err)
	}
}

// mustAppend appends ts to saga id as owner.
func (s *suite) mustAppend(t *testing.T, id, owner string, ts ...saga.Transition) {
	t.Helper()
	if err := s.Append(ctx(t), id, owner, ts...); err != nil {
		t.Fatalf("Append(%q, %q, %d transitions from seq %d) = %v; want nil", id, owner, len(ts), ts[0].Seq, err)
	}
}

// appendLost checks that appending tr to saga id as owner fails with
// ErrLeaseLost.
func (s *suite) appendLost(t *testing.T, id, owner string, tr saga.Transition, why string) {
	t.Helper()
	err := s.Append(ctx(t), id, owner, tr)
	if !errors.Is(err, saga.ErrLeaseLost) {
		t.Fatalf("Append(%q, %q, seq %d) %s = %v; want an error matching ErrLeaseLost", id, owner, tr.Seq, why, err)
	}
	if errors.Is(err, saga.ErrNotFound) {
		t.Fatalf("Append(%q, %q, seq %d) %s = %v; want an error that does not match ErrNotFound", id, owner, tr.Seq, why, err)
	}
}

// mustLoad loads saga id.
func (s *suite) mustLoad(t *testing.T, id string) (saga.Record, []saga.Transition) {
	t.Helper()
	rec, ts, err := s.Load(ctx(t), id)
	if err != nil {
		t.Fatalf("Load(%q) = %v; want nil", id, err)
	}
	return rec, ts
}

// mustRenew renews owner's leases on ids and returns the lost ones.
func (s *suite) mustRenew(t *testing.T, owner string, lease time.Duration, ids ...string) []string {
	t.Helper()
	lost, err := s.Renew(ctx(t), owner, lease, ids)
	if err != nil {
		t.Fatalf("Renew(%q, %v, %q) = %v; want nil", owner, lease, ids, err)
	}
	return lost
}

// mustClaim claims for owner up to limit sagas of names.
func (s *suite) mustClaim(t *testing.T, owner string, names []string, lease time.Duration, limit int) []saga.Record {
	t.Helper()
	recs, err := s.Claim(ctx(t), owner, names, lease, limit)
	if err != nil {
		t.Fatalf("Claim(%q, %q, %v, %d) = %v; want nil", owner, names, lease, limit, err)
	}
	return recs
}

// claimNone checks that a claim of names hands out nothing.
func (s *suite) claimNone(t *testing.T, owner string, names []string, why string) {
	t.Helper()
	if recs := s.mustClaim(t, owner, names, longLease, 100); len(recs) != 0 {
		t.Fatalf("Claim(%q, %q) %s = %q; want none", owner, names, why, ids(recs))
	}
}

// mustRelease releases owner's lease on saga id.
func (s *suite) mustRelease(t *testing.T, id, owner string) {
	t.Helper()
	if err := s.Release(ctx(t), id, owner); err != nil {
		t.Fatalf("Release(%q, %q) = %v; want nil", id, owner, err)
	}
}

// waitExpired returns once every lease of lease or less that the log gave
// before the call has expired by the log's clock. It creates a probe saga
// leased for lease and claims it until the log hands it out: the probe's
// lease ends after those given before it.
func (s *suite) waitExpired(t *testing.T, lease time.Duration) {
	t.Helper()
	name := s.name(t, fmt.Sprintf("probe-%d", s.probes.Add(1)))
	probe := saga.Record{ID: s.id(t, name), Name: name, Version: 1}
	s.mustCreate(t, probe, prober, lease)
	deadline := time.Now().Add(patience)
	for {
		recs := s.mustClaim(t, prober+"-2", []string{name}, longLease, 1)
		if len(recs) == 1 && recs[0].ID == probe.ID {
			return
		}
		if len(recs) != 0 {
			t.Fatalf("Claim(%q) = %q; want only the probe %q", []string{name}, ids(recs), probe.ID)
		}
		if time.Now().After(deadline) {
			t.Fatalf("a lease of %v did not expire within %v: Claim never handed out the probe saga %q", lease, patience, probe.ID)
		}
		time.Sleep(poll)
	}
}

func ids(recs []saga.Record) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = r.ID
	}
	return out
}

// sameBytes reports whether a and b hold the same bytes and are both nil
// or both not nil.
func sameBytes(a, b []byte) bool { return bytes.Equal(a, b) && (a == nil) == (b == nil) }

func show(b []byte) string {
	if b == nil {
		return "nil"
	}
	return fmt.Sprintf("%q", b)
}

// recent reports whether at is a time the log may have set during the
// test.
func recent(at time.Time) bool {
	return !at.IsZero() && at.After(time.Now().Add(-clockSkew)) && at.Before(time.Now().Add(clockSkew))
}

// checkRecord checks what Load or Claim returned of a saga against want,
// the record given to Create, with the status the saga should have.
func checkRecord(t *testing.T, call string, got, want saga.Record, status saga.Status) {
	t.Helper()
	var d []string
	if got.ID != want.ID {
		d = append(d, fmt.Sprintf("ID %q; want %q", got.ID, want.ID))
	}
	if got.Name != want.Name {
		d = append(d, fmt.Sprintf("Name %q; want %q", got.Name, want.Name))
	}
	if got.Version != want.Version {
		d = append(d, fmt.Sprintf("Version %d; want %d", got.Version, want.Version))
	}
	if got.Status != status {
		d = append(d, fmt.Sprintf("Status %q; want %q", got.Status, status))
	}
	if !sameBytes(got.Data, want.Data) {
		d = append(d, fmt.Sprintf("Data %s; want %s", show(got.Data), show(want.Data)))
	}
	if !maps.Equal(got.Trace, want.Trace) {
		d = append(d, fmt.Sprintf("Trace %q; want %q", got.Trace, want.Trace))
	}
	if !recent(got.CreatedAt) {
		d = append(d, fmt.Sprintf("CreatedAt %v; want the time of the Create", got.CreatedAt))
	}
	if len(d) > 0 {
		t.Fatalf("%s returned a record with %s", call, strings.Join(d, ", "))
	}
}

// checkTransitions checks the transitions Load returned against those
// appended, in Seq order.
func checkTransitions(t *testing.T, call string, got, want []saga.Transition) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s returned %d transitions; want %d", call, len(got), len(want))
	}
	for i, g := range got {
		w := want[i]
		var d []string
		if g.Seq != w.Seq {
			d = append(d, fmt.Sprintf("Seq %d; want %d", g.Seq, w.Seq))
		}
		if g.Status != w.Status {
			d = append(d, fmt.Sprintf("Status %q; want %q", g.Status, w.Status))
		}
		if g.Step != w.Step || g.Phase != w.Phase || g.Kind != w.Kind || g.Attempt != w.Attempt {
			d = append(d, fmt.Sprintf("Step, Phase, Kind, Attempt %q, %q, %q, %d; want %q, %q, %q, %d",
				g.Step, g.Phase, g.Kind, g.Attempt, w.Step, w.Phase, w.Kind, w.Attempt))
		}
		if !sameBytes(g.Data, w.Data) {
			d = append(d, fmt.Sprintf("Data %s; want %s", show(g.Data), show(w.Data)))
		}
		if g.Error != w.Error {
			d = append(d, fmt.Sprintf("Error %q; want %q", g.Error, w.Error))
		}
		if !recent(g.At) {
			d = append(d, fmt.Sprintf("At %v; want the time of the Append", g.At))
		}
		if len(d) > 0 {
			t.Fatalf("%s returned, as transition %d, one with %s", call, i, strings.Join(d, ", "))
		}
	}
}

// step returns transition seq: a forward attempt of step that succeeded.
func step(seq int64, name string) saga.Transition {
	return saga.Transition{Seq: seq, Step: name, Phase: saga.Forward, Kind: saga.Succeeded, Attempt: 1,
		Data: fmt.Appendf(nil, `{"after":%q}`, name)}
}

func testCreateRoundTrip(t *testing.T, s *suite) {
	rec := s.record(t, "a", s.name(t, "n"))
	rec.Status = saga.Completed // Create ignores it
	rec.Trace["tracestate"] = "vendor=1"
	before := time.Now()
	s.mustCreate(t, rec, ownerA, longLease)
	got, ts := s.mustLoad(t, rec.ID)
	call := fmt.Sprintf("Load(%q) after Create", rec.ID)
	checkRecord(t, call, got, rec, saga.Running)
	checkTransitions(t, call, ts, nil)
	if got.CreatedAt.Before(before.Add(-clockSkew)) {
		t.Fatalf("%s: CreatedAt %v; want about %v", call, got.CreatedAt, before)
	}
	// Load again: the same record, to the database's precision.
	again, _ := s.mustLoad(t, rec.ID)
	if !again.CreatedAt.Equal(got.CreatedAt) {
		t.Fatalf("Load(%q) twice gave CreatedAt %v then %v; want one time", rec.ID, got.CreatedAt, again.CreatedAt)
	}
}

func testCreateCopies(t *testing.T, s *suite) {
	rec := s.record(t, "a", s.name(t, "n"))
	want := rec
	want.Data = slices.Clone(rec.Data)
	want.Trace = maps.Clone(rec.Trace)
	s.mustCreate(t, rec, ownerA, longLease)
	// The log keeps copies of what it is given...
	rec.Data[0] = 'X'
	rec.Trace["traceparent"] = "changed"
	got, _ := s.mustLoad(t, rec.ID)
	checkRecord(t, "Load after the caller changed the Data and Trace it gave Create", got, want, saga.Running)
	// ...and hands out copies.
	got.Data[0] = 'Y'
	got.Trace["traceparent"] = "changed"
	got, _ = s.mustLoad(t, rec.ID)
	checkRecord(t, "Load after the caller changed the Data and Trace Load gave", got, want, saga.Running)

	tr := step(1, "reserve")
	wantT := tr
	wantT.Data = slices.Clone(tr.Data)
	s.mustAppend(t, rec.ID, ownerA, tr)
	tr.Data[0] = 'X'
	_, ts := s.mustLoad(t, rec.ID)
	checkTransitions(t, "Load after the caller changed the Data it gave Append", ts, []saga.Transition{wantT})
	ts[0].Data[0] = 'Y'
	_, ts = s.mustLoad(t, rec.ID)
	checkTransitions(t, "Load after the caller changed the Data Load gave", ts, []saga.Transition{wantT})
}

// testCreateEmpty checks a record with no data and no trace, and
// transitions whose Data is nil or empty: nil stays nil ("did not
// change"), and empty data stays empty, not nil.
func testCreateEmpty(t *testing.T, s *suite) {
	rec := saga.Record{ID: s.id(t, "a"), Name: s.name(t, "n")}
	s.mustCreate(t, rec, ownerA, longLease)
	got, _ := s.mustLoad(t, rec.ID)
	checkRecord(t, "Load of a saga created with no Data or Trace", got, rec, saga.Running)

	want := []saga.Transition{
		{Seq: 1, Step: "a", Phase: saga.Forward, Kind: saga.Started, Attempt: 1},
		{Seq: 2, Step: "a", Phase: saga.Forward, Kind: saga.Succeeded, Attempt: 1, Data: []byte{}},
		{Seq: 3, Step: "b", Phase: saga.Forward, Kind: saga.Succeeded, Attempt: 1, Data: []byte("\x00\xff")},
	}
	for _, tr := range want {
		s.mustAppend(t, rec.ID, ownerA, tr)
	}
	_, ts := s.mustLoad(t, rec.ID)
	checkTransitions(t, "Load of transitions with nil, empty and binary Data", ts, want)
}

func testCreateExists(t *testing.T, s *suite) {
	rec := s.record(t, "a", s.name(t, "n"))
	s.mustCreate(t, rec, ownerA, longLease)
	again := rec
	again.Name, again.Version, again.Data = s.name(t, "other"), 9, []byte("other")
	err := s.Create(ctx(t), again, ownerB, longLease)
	if !errors.Is(err, saga.ErrExists) {
		t.Fatalf("Create(%q) a second time = %v; want an error matching ErrExists", rec.ID, err)
	}
	got, _ := s.mustLoad(t, rec.ID)
	checkRecord(t, "Load after a second Create", got, rec, saga.Running)
	// The lease stays with the first owner.
	s.appendLost(t, rec.ID, ownerB, step(1, "a"), "by the owner of the failed Create")
	s.mustAppend(t, rec.ID, ownerA, step(1, "a"))
}

// testCreateLeases checks that Create leases the saga to its owner: the
// owner may append, and no one may claim it while the lease lasts.
func testCreateLeases(t *testing.T, s *suite) {
	name := s.name(t, "n")
	rec := s.record(t, "a", name)
	s.mustCreate(t, rec, ownerA, longLease)
	s.claimNone(t, ownerB, []string{name}, "of a saga just created with a lease of a minute")
	s.mustAppend(t, rec.ID, ownerA, step(1, "a"))
	if lost := s.mustRenew(t, ownerA, longLease, rec.ID); len(lost) != 0 {
		t.Fatalf("Renew by the creator = %q; want none lost", lost)
	}
}

func testLoadNotFound(t *testing.T, s *suite) {
	id := s.id(t, "missing")
	_, _, err := s.Load(ctx(t), id)
	if !errors.Is(err, saga.ErrNotFound) {
		t.Fatalf("Load(%q) of an unknown saga = %v; want an error matching ErrNotFound", id, err)
	}
	err = s.Append(ctx(t), id, ownerA, step(1, "a"))
	if !errors.Is(err, saga.ErrNotFound) {
		t.Fatalf("Append(%q) to an unknown saga = %v; want an error matching ErrNotFound", id, err)
	}
	if errors.Is(err, saga.ErrLeaseLost) {
		t.Fatalf("Append(%q) to an unknown saga = %v; want an error that does not match ErrLeaseLost", id, err)
	}
	if _, _, err := s.Load(ctx(t), id); !errors.Is(err, saga.ErrNotFound) {
		t.Fatalf("Load(%q) after an Append to it = %v; want an error matching ErrNotFound", id, err)
	}
	s.mustRelease(t, id, ownerA)
}

func testAppendInOrder(t *testing.T, s *suite) {
	rec := s.record(t, "a", s.name(t, "n"))
	s.mustCreate(t, rec, ownerA, longLease)
	want := []saga.Transition{
		{Seq: 1, Step: "reserve", Phase: saga.Forward, Kind: saga.Started, Attempt: 1},
		{Seq: 2, Step: "reserve", Phase: saga.Forward, Kind: saga.Succeeded, Attempt: 1, Data: []byte(`{"reserved":true}`)},
		{Seq: 3, Step: "charge", Phase: saga.Forward, Kind: saga.Started, Attempt: 1},
		{Seq: 4, Step: "charge", Phase: saga.Forward, Kind: saga.Failed, Attempt: 1, Error: "card declined"},
		{Seq: 5, Status: saga.Compensating, Error: "charge: card declined"},
		{Seq: 6, Step: "reserve", Phase: saga.Compensate, Kind: saga.TimedOut, Attempt: 2, Error: "context deadline exceeded"},
	}
	for i, tr := range want {
		s.mustAppend(t, rec.ID, ownerA, tr)
		_, ts := s.mustLoad(t, rec.ID)
		checkTransitions(t, fmt.Sprintf("Load after %d appends", i+1), ts, want[:i+1])
	}
	got, ts := s.mustLoad(t, rec.ID)
	checkRecord(t, "Load", got, rec, saga.Compensating)
	for i := 1; i < len(ts); i++ {
		if ts[i].At.Before(ts[i-1].At.Add(-time.Second)) {
			t.Fatalf("Load returned transition %d at %v, well before transition %d at %v", ts[i].Seq, ts[i].At, ts[i-1].Seq, ts[i-1].At)
		}
	}
}

func testAppendCopies(t *testing.T, s *suite) {
	// Covered with the record's copies in Create/Copies; here a transition
	// is appended from a buffer the caller reuses.
	rec := s.record(t, "a", s.name(t, "n"))
	s.mustCreate(t, rec, ownerA, longLease)
	buf := []byte("first")
	s.mustAppend(t, rec.ID, ownerA, saga.Transition{Seq: 1, Step: "a", Phase: saga.Forward, Kind: saga.Succeeded, Attempt: 1, Data: buf})
	copy(buf, "other")
	s.mustAppend(t, rec.ID, ownerA, saga.Transition{Seq: 2, Step: "b", Phase: saga.Forward, Kind: saga.Succeeded, Attempt: 1, Data: buf})
	_, ts := s.mustLoad(t, rec.ID)
	checkTransitions(t, "Load of transitions appended from one buffer", ts, []saga.Transition{
		{Seq: 1, Step: "a", Phase: saga.Forward, Kind: saga.Succeeded, Attempt: 1, Data: []byte("first")},
		{Seq: 2, Step: "b", Phase: saga.Forward, Kind: saga.Succeeded, Attempt: 1, Data: []byte("other")},
	})
}

func testAppendStatus(t *testing.T, s *suite) {
	rec := s.record(t, "a", s.name(t, "n"))
	s.mustCreate(t, rec, ownerA, longLease)
	status := func(want saga.Status, after string) {
		t.Helper()
		got, _ := s.mustLoad(t, rec.ID)
		if got.Status != want {
			t.Fatalf("Load after %s: Status %q; want %q", after, got.Status, want)
		}
	}
	s.mustAppend(t, rec.ID, ownerA, step(1, "a"))
	status(saga.Running, "a transition with no Status")
	s.mustAppend(t, rec.ID, ownerA, saga.Transition{Seq: 2, Status: saga.Compensating, Error: "b failed"})
	status(saga.Compensating, "a transition with Status compensating")
	s.mustAppend(t, rec.ID, ownerA, saga.Transition{Seq: 3, Step: "a", Phase: saga.Compensate, Kind: saga.Succeeded, Attempt: 1})
	status(saga.Compensating, "a transition with no Status")
	s.mustAppend(t, rec.ID, ownerA, saga.Transition{Seq: 4, Status: saga.Compensated})
	status(saga.Compensated, "a transition with Status compensated")
}

func testAppendNotOwner(t *testing.T, s *suite) {
	name := s.name(t, "n")
	rec := s.record(t, "a", name)
	s.mustCreate(t, rec, ownerA, longLease)
	s.mustAppend(t, rec.ID, ownerA, step(1, "a"))
	s.appendLost(t, rec.ID, ownerB, saga.Transition{Seq: 2, Status: saga.Completed}, "by an owner without the lease")
	s.appendLost(t, rec.ID, "", saga.Transition{Seq: 2, Status: saga.Completed}, "by the empty owner")
	got, ts := s.mustLoad(t, rec.ID)
	checkRecord(t, "Load after Appends by others", got, rec, saga.Running)
	checkTransitions(t, "Load after Appends by others", ts, []saga.Transition{step(1, "a")})
	// The failed appends ended no lease.
	s.claimNone(t, ownerB, []string{name}, "after Appends by others")
	s.mustAppend(t, rec.ID, ownerA, step(2, "b"))
}

func testAppendDuplicateSeq(t *testing.T, s *suite) {
	name := s.name(t, "n")
	rec := s.record(t, "a", name)
	s.mustCreate(t, rec, ownerA, longLease)
	s.mustAppend(t, rec.ID, ownerA, step(1, "a"))
	s.mustAppend(t, rec.ID, ownerA, step(2, "b"))
	for _, seq := range []int64{1, 2} {
		for _, status := range []saga.Status{"", saga.Compensating, saga.Completed} {
			dup := saga.Transition{Seq: seq, Status: status, Step: "dup", Phase: saga.Forward, Kind: saga.Failed, Attempt: 7, Data: []byte("dup"), Error: "dup"}
			s.appendLost(t, rec.ID, ownerA, dup, fmt.Sprintf("with a taken Seq and Status %q", status))
		}
	}
	got, ts := s.mustLoad(t, rec.ID)
	checkRecord(t, "Load after Appends of taken Seqs", got, rec, saga.Running)
	checkTransitions(t, "Load after Appends of taken Seqs", ts, []saga.Transition{step(1, "a"), step(2, "b")})
	// The final status of a rejected transition ended no lease.
	s.claimNone(t, ownerB, []string{name}, "after a rejected final transition")
	if lost := s.mustRenew(t, ownerA, longLease, rec.ID); len(lost) != 0 {
		t.Fatalf("Renew after a rejected final transition = %q; want none lost", lost)
	}
	s.mustAppend(t, rec.ID, ownerA, step(3, "c"))
}

func testAppendBatch(t *testing.T, s *suite) {
	name := s.name(t, "n")
	rec := s.record(t, "a", name)
	s.mustCreate(t, rec, ownerA, longLease)
	if err := s.Append(ctx(t), rec.ID, ownerA); err != nil {
		t.Fatalf("Append of no transitions = %v; want nil", err)
	}
	s.mustAppend(t, rec.ID, ownerA, step(1, "a"))
	batch := []saga.Transition{
		{Seq: 2, Step: "a", Phase: saga.Forward, Kind: saga.Succeeded, Attempt: 1, Data: []byte(`{"a":1}`)},
		{Seq: 3, Step: "b", Phase: saga.Forward, Kind: saga.Started, Attempt: 1},
		{Seq: 4, Step: "c", Phase: saga.Forward, Kind: saga.Started, Attempt: 1},
	}
	if err := s.Append(ctx(t), rec.ID, ownerA, batch...); err != nil {
		t.Fatalf("Append of %d transitions = %v; want nil", len(batch), err)
	}
	got, ts := s.mustLoad(t, rec.ID)
	checkRecord(t, "Load after a batch", got, rec, saga.Running)
	checkTransitions(t, "Load after a batch", ts, append([]saga.Transition{step(1, "a")}, batch...))
	// The last Status of a batch is the saga's; a final one ends the lease.
	final := []saga.Transition{
		{Seq: 5, Step: "b", Phase: saga.Forward, Kind: saga.Failed, Attempt: 1, Error: "no"},
		{Seq: 6, Status: saga.Compensating, Error: "b: no"},
		{Seq: 7, Status: saga.Compensated, Error: "b: no"},
	}
	if err := s.Append(ctx(t), rec.ID, ownerA, final...); err != nil {
		t.Fatalf("Append of a batch ending compensated = %v; want nil", err)
	}
	got, _ = s.mustLoad(t, rec.ID)
	checkRecord(t, "Load after a final batch", got, rec, saga.Compensated)
	s.appendLost(t, rec.ID, ownerA, saga.Transition{Seq: 8, Status: saga.Compensated}, "after a final batch")
}

func testAppendBatchAtomic(t *testing.T, s *suite) {
	name := s.name(t, "n")
	rec := s.record(t, "a", name)
	s.mustCreate(t, rec, ownerA, longLease)
	s.mustAppend(t, rec.ID, ownerA, step(1, "a"))
	for _, batch := range [][]saga.Transition{
		{step(2, "b"), step(1, "dup")},                                 // a taken Seq last
		{step(2, "b"), step(3, "c"), step(3, "dup")},                   // a Seq twice in the batch
		{step(2, "b"), {Seq: 3, Status: saga.Completed}, step(1, "x")}, // with a final status
	} {
		err := s.Append(ctx(t), rec.ID, ownerA, batch...)
		if !errors.Is(err, saga.ErrLeaseLost) {
			t.Fatalf("Append of a batch with a taken Seq = %v; want an error matching ErrLeaseLost", err)
		}
	}
	got, ts := s.mustLoad(t, rec.ID)
	checkRecord(t, "Load after rejected batches", got, rec, saga.Running)
	checkTransitions(t, "Load after rejected batches", ts, []saga.Transition{step(1, "a")})
	s.appendLost(t, rec.ID, ownerB, step(2, "b"), "by another owner")
	s.mustAppend(t, rec.ID, ownerA, step(2, "b"), step(3, "c"))
}

func testFinalEndsLease(t *testing.T, s *suite) {
	for _, final := range []saga.Status{saga.Completed, saga.Compensated, saga.NeedsAttention} {
		t.Run(string(final), func(t *testing.T) {
			name := s.name(t, "n")
			rec := s.record(t, "a", name)
			s.mustCreate(t, rec, ownerA, shortLease)
			s.mustAppend(t, rec.ID, ownerA, step(1, "a"))
			s.mustAppend(t, rec.ID, ownerA, saga.Transition{Seq: 2, Status: final})
			got, _ := s.mustLoad(t, rec.ID)
			checkRecord(t, "Load after a final transition", got, rec, final)

			s.appendLost(t, rec.ID, ownerA, step(3, "b"), fmt.Sprintf("after the saga became %s", final))
			if lost := s.mustRenew(t, ownerA, longLease, rec.ID); !slices.Equal(lost, []string{rec.ID}) {
				t.Fatalf("Renew(%q) of a %s saga = %q; want it lost", rec.ID, final, lost)
			}
			s.mustRelease(t, rec.ID, ownerA)
			s.waitExpired(t, shortLease)
			s.claimNone(t, ownerB, []string{name}, fmt.Sprintf("of a %s saga whose lease expired", final))
			_, ts := s.mustLoad(t, rec.ID)
			checkTransitions(t, "Load of a finished saga", ts, []saga.Transition{step(1, "a"), {Seq: 2, Status: final}})
		})
	}
}

func testRenewLost(t *testing.T, s *suite) {
	name := s.name(t, "n")
	mine1, mine2 := s.record(t, "mine1", name), s.record(t, "mine2", name)
	theirs, done := s.record(t, "theirs", name), s.record(t, "done", name)
	released := s.record(t, "released", name)
	s.mustCreate(t, mine1, ownerA, longLease)
	s.mustCreate(t, mine2, ownerA, longLease)
	s.mustCreate(t, theirs, ownerB, longLease)
	s.mustCreate(t, done, ownerA, longLease)
	s.mustAppend(t, done.ID, ownerA, saga.Transition{Seq: 1, Status: saga.Completed})
	s.mustCreate(t, released, ownerA, longLease)
	s.mustRelease(t, released.ID, ownerA)
	unknown := s.id(t, "unknown")

	if lost := s.mustRenew(t, ownerA, longLease); len(lost) != 0 {
		t.Fatalf("Renew of no ids = %q; want none", lost)
	}
	if lost := s.mustRenew(t, ownerA, longLease, mine1.ID, mine2.ID); len(lost) != 0 {
		t.Fatalf("Renew of held leases = %q; want none lost", lost)
	}
	lost := s.mustRenew(t, ownerA, longLease, mine1.ID, theirs.ID, done.ID, unknown, mine2.ID, released.ID)
	slices.Sort(lost)
	want := []string{theirs.ID, done.ID, unknown, released.ID}
	slices.Sort(want)
	if !slices.Equal(lost, want) {
		t.Fatalf("Renew = %q; want lost the other owner's, the finished, the unknown and the released sagas %q", lost, want)
	}
	// Renew took nothing over.
	s.appendLost(t, theirs.ID, ownerA, step(1, "a"), "after Renew by a non-owner")
	s.mustAppend(t, theirs.ID, ownerB, step(1, "a"))
	s.appendLost(t, released.ID, ownerA, step(1, "a"), "after Renew of a released lease")
}

func testRenewExtends(t *testing.T, s *suite) {
	name := s.name(t, "n")
	renewed, lapsed := s.record(t, "renewed", name), s.record(t, "lapsed", name)
	s.mustCreate(t, renewed, ownerA, shortLease)
	s.mustCreate(t, lapsed, ownerA, shortLease)
	if lost := s.mustRenew(t, ownerA, longLease, renewed.ID); len(lost) != 0 {
		t.Fatalf("Renew = %q; want none lost", lost)
	}
	s.waitExpired(t, shortLease)
	recs := s.mustClaim(t, ownerB, []string{name}, longLease, 100)
	if !slices.Equal(ids(recs), []string{lapsed.ID}) {
		t.Fatalf("Claim after the first leases expired = %q; want only the saga whose lease was not renewed, %q", ids(recs), lapsed.ID)
	}
	s.mustAppend(t, renewed.ID, ownerA, step(1, "a"))
}

func testClaimEligible(t *testing.T, s *suite) {
	name, name2, other := s.name(t, "n"), s.name(t, "n2"), s.name(t, "other")
	expired := s.record(t, "expired", name)
	live := s.record(t, "live", name)
	released := s.record(t, "released", name)
	compensating := s.record(t, "compensating", name2)
	completed := s.record(t, "completed", name)
	attention := s.record(t, "attention", name)
	unnamed := s.record(t, "other-name", other)

	s.mustCreate(t, expired, ownerA, shortLease)
	s.mustCreate(t, live, ownerA, longLease)
	s.mustCreate(t, released, ownerA, longLease)
	s.mustRelease(t, released.ID, ownerA)
	s.mustCreate(t, compensating, ownerA, shortLease)
	s.mustAppend(t, compensating.ID, ownerA, saga.Transition{Seq: 1, Status: saga.Compensating})
	s.mustCreate(t, completed, ownerA, shortLease)
	s.mustAppend(t, completed.ID, ownerA, saga.Transition{Seq: 1, Status: saga.Completed})
	s.mustCreate(t, attention, ownerA, shortLease)
	s.mustAppend(t, attention.ID, ownerA, saga.Transition{Seq: 1, Status: saga.NeedsAttention})
	s.mustCreate(t, unnamed, ownerA, shortLease)
	s.waitExpired(t, shortLease)

	s.claimNone(t, ownerB, nil, "of no names")
	s.claimNone(t, ownerB, []string{s.name(t, "nothing")}, "of a name with no sagas")
	if recs := s.mustClaim(t, ownerB, []string{name, name2}, longLease, 0); len(recs) != 0 {
		t.Fatalf("Claim with limit 0 = %q; want none", ids(recs))
	}
	recs := s.mustClaim(t, ownerB, []string{name, name2}, longLease, 100)
	want := []saga.Record{expired, released, compensating}
	if !slices.Equal(ids(recs), ids(want)) {
		t.Fatalf("Claim = %q; want the unfinished sagas of the names whose lease expired or was released, oldest first: %q", ids(recs), ids(want))
	}
	for i, r := range recs {
		status := saga.Running
		if r.ID == compensating.ID {
			status = saga.Compensating
		}
		checkRecord(t, "Claim", r, want[i], status)
	}
}

func testClaimOrder(t *testing.T, s *suite) {
	name := s.name(t, "n")
	// Created in an order that is not the order of their ids.
	var created []string
	for _, n := range []string{"e", "c", "a", "d", "b"} {
		rec := s.record(t, n, name)
		s.mustCreate(t, rec, ownerA, shortLease)
		created = append(created, rec.ID)
	}
	s.waitExpired(t, shortLease)
	var claimed []string
	for _, want := range [][]string{created[:2], created[2:4], created[4:]} {
		got := ids(s.mustClaim(t, ownerB, []string{name}, longLease, 2))
		if !slices.Equal(got, want) {
			t.Fatalf("Claim with limit 2, after claiming %q = %q; want the two oldest left, %q", claimed, got, want)
		}
		claimed = append(claimed, got...)
	}
	s.claimNone(t, ownerC, []string{name}, "after all were claimed")
}

func testClaimLeases(t *testing.T, s *suite) {
	name := s.name(t, "n")
	rec := s.record(t, "a", name)
	s.mustCreate(t, rec, ownerA, shortLease)
	s.waitExpired(t, shortLease)
	recs := s.mustClaim(t, ownerB, []string{name}, shortLease, 10)
	if !slices.Equal(ids(recs), []string{rec.ID}) {
		t.Fatalf("Claim = %q; want %q", ids(recs), rec.ID)
	}
	s.claimNone(t, ownerC, []string{name}, "right after another owner claimed the saga")
	s.mustAppend(t, rec.ID, ownerB, step(1, "a"))
	// The claim's lease expires like any other.
	s.waitExpired(t, shortLease)
	recs = s.mustClaim(t, ownerC, []string{name}, longLease, 10)
	if !slices.Equal(ids(recs), []string{rec.ID}) {
		t.Fatalf("Claim after the claimed lease expired = %q; want %q", ids(recs), rec.ID)
	}
	s.appendLost(t, rec.ID, ownerB, step(2, "b"), "by the owner of an expired claim, after a new claim")
	s.mustAppend(t, rec.ID, ownerC, step(2, "b"))
}

// testExpiredStillHeld checks that an owner holds an expired lease until
// someone claims the saga: Append and Renew check the owner, not the
// clock.
func testExpiredStillHeld(t *testing.T, s *suite) {
	name := s.name(t, "n")
	rec := s.record(t, "a", name)
	s.mustCreate(t, rec, ownerA, shortLease)
	s.waitExpired(t, shortLease)
	// An expired lease is not free for the taking: only Claim takes it.
	s.appendLost(t, rec.ID, ownerB, step(1, "a"), "by another owner, to an expired lease no one claimed")
	if lost := s.mustRenew(t, ownerB, longLease, rec.ID); !slices.Equal(lost, []string{rec.ID}) {
		t.Fatalf("Renew by another owner of an expired lease no one claimed = %q; want %q lost", lost, rec.ID)
	}
	s.mustAppend(t, rec.ID, ownerA, step(1, "a"))
	if lost := s.mustRenew(t, ownerA, longLease, rec.ID); len(lost) != 0 {
		t.Fatalf("Renew of an expired lease no one claimed = %q; want none lost", lost)
	}
	s.claimNone(t, ownerB, []string{name}, "after the owner renewed its expired lease")
	s.mustAppend(t, rec.ID, ownerA, step(2, "b"))
}

func testTakenOver(t *testing.T, s *suite) {
	name := s.name(t, "n")
	rec := s.record(t, "a", name)
	s.mustCreate(t, rec, ownerA, shortLease)
	s.mustAppend(t, rec.ID, ownerA, step(1, "a"))
	s.waitExpired(t, shortLease)
	if recs := s.mustClaim(t, ownerB, []string{name}, longLease, 10); !slices.Equal(ids(recs), []string{rec.ID}) {
		t.Fatalf("Claim of an expired lease = %q; want %q", ids(recs), rec.ID)
	}
	s.appendLost(t, rec.ID, ownerA, step(2, "b"), "by the old owner after another claimed the saga")
	s.appendLost(t, rec.ID, ownerA, saga.Transition{Seq: 2, Status: saga.Completed}, "of a final status by the old owner")
	if lost := s.mustRenew(t, ownerA, longLease, rec.ID); !slices.Equal(lost, []string{rec.ID}) {
		t.Fatalf("Renew by the old owner = %q; want %q lost", lost, rec.ID)
	}
	s.mustRelease(t, rec.ID, ownerA) // not its lease: no effect
	s.claimNone(t, ownerC, []string{name}, "after the old owner released a lease it no longer held")
	s.mustAppend(t, rec.ID, ownerB, step(2, "b"))
	got, ts := s.mustLoad(t, rec.ID)
	checkRecord(t, "Load", got, rec, saga.Running)
	checkTransitions(t, "Load", ts, []saga.Transition{step(1, "a"), step(2, "b")})
}

func testRelease(t *testing.T, s *suite) {
	name := s.name(t, "n")
	rec := s.record(t, "a", name)
	s.mustCreate(t, rec, ownerA, longLease)
	s.mustRelease(t, rec.ID, ownerB) // not B's: no effect
	s.claimNone(t, ownerC, []string{name}, "after a Release by a non-owner")
	s.mustAppend(t, rec.ID, ownerA, step(1, "a"))

	s.mustRelease(t, rec.ID, ownerA)
	s.appendLost(t, rec.ID, ownerA, step(2, "b"), "after the owner released the lease")
	if lost := s.mustRenew(t, ownerA, longLease, rec.ID); !slices.Equal(lost, []string{rec.ID}) {
		t.Fatalf("Renew after Release = %q; want %q lost", lost, rec.ID)
	}
	recs := s.mustClaim(t, ownerB, []string{name}, longLease, 10)
	if !slices.Equal(ids(recs), []string{rec.ID}) {
		t.Fatalf("Claim right after Release of a lease of a minute = %q; want %q", ids(recs), rec.ID)
	}
	s.mustAppend(t, rec.ID, ownerB, step(2, "b"))
	s.mustRelease(t, s.id(t, "unknown"), ownerA)
}

func testConcurrentClaims(t *testing.T, s *suite) {
	const sagas, claimers = 50, 8
	name := s.name(t, "n")
	for i := range sagas {
		s.mustCreate(t, s.record(t, fmt.Sprintf("s%02d", i), name), ownerA, shortLease)
	}
	s.waitExpired(t, shortLease)

	c := ctx(t)
	var (
		mu    sync.Mutex
		owner = map[string]string{}
		errs  []error
		wg    sync.WaitGroup
	)
	for w := range claimers {
		me := fmt.Sprintf("logtest-claimer-%d", w)
		wg.Go(func() {
			for {
				recs, err := s.Claim(c, me, []string{name}, longLease, 3)
				mu.Lock()
				if err != nil {
					errs = append(errs, fmt.Errorf("claim by %s: %w", me, err))
				}
				for _, r := range recs {
					if prev, ok := owner[r.ID]; ok {
						errs = append(errs, fmt.Errorf("saga %q claimed by %s and by %s", r.ID, prev, me))
					}
					owner[r.ID] = me
				}
				mu.Unlock()
				if err != nil || len(recs) == 0 {
					return
				}
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if len(owner) != sagas {
		t.Fatalf("%d concurrent claimers claimed %d sagas; want each of the %d claimed once", claimers, len(owner), sagas)
	}
	// Each saga is leased to the claimer that got it, and to no other.
	for id, me := range owner {
		s.appendLost(t, id, ownerA, step(1, "a"), "by the creator after the saga was claimed")
		s.mustAppend(t, id, me, step(1, "a"))
	}
}

// testConcurrentSameSeq appends one Seq from several goroutines of the
// owner at once (a retry racing the original, say): exactly one wins.
func testConcurrentSameSeq(t *testing.T, s *suite) {
	const writers, rounds = 8, 10
	rec := s.record(t, "a", s.name(t, "n"))
	s.mustCreate(t, rec, ownerA, longLease)
	c := ctx(t)
	var want []saga.Transition
	for seq := int64(1); seq <= rounds; seq++ {
		var wins atomic.Int64
		errs := make([]error, writers)
		var wg sync.WaitGroup
		for w := range writers {
			wg.Go(func() {
				tr := saga.Transition{Seq: seq, Step: fmt.Sprintf("w%d", w), Phase: saga.Forward, Kind: saga.Succeeded, Attempt: 1}
				if seq == rounds {
					tr.Status = saga.Completed
				}
				err := s.Append(c, rec.ID, ownerA, tr)
				switch {
				case err == nil:
					wins.Add(1)
				case !errors.Is(err, saga.ErrLeaseLost):
					errs[w] = fmt.Errorf("Append(seq %d) by writer %d = %w; want nil or ErrLeaseLost", seq, w, err)
				}
			})
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			t.Fatal(err)
		}
		if n := wins.Load(); n != 1 {
			t.Fatalf("%d concurrent Appends of seq %d succeeded %d times; want once", writers, seq, n)
		}
		_, ts := s.mustLoad(t, rec.ID)
		if len(ts) != int(seq) {
			t.Fatalf("Load after %d rounds returned %d transitions; want %d", seq, len(ts), seq)
		}
		want = append(want, ts[seq-1])
	}
	got, ts := s.mustLoad(t, rec.ID)
	checkRecord(t, "Load", got, rec, saga.Completed)
	checkTransitions(t, "Load", ts, want)
}

// testStaleOwnerRace races an owner whose lease expired, appending, with
// another owner claiming the saga and appending the same Seq: whichever
// order the log sees them in, exactly one append succeeds, and it is the
// one recorded.
func testStaleOwnerRace(t *testing.T, s *suite) {
	const rounds = 10
	c := ctx(t)
	for round := range rounds {
		name := s.name(t, fmt.Sprintf("n%d", round))
		rec := s.record(t, fmt.Sprintf("s%d", round), name)
		s.mustCreate(t, rec, ownerA, time.Millisecond)
		s.waitExpired(t, time.Millisecond)
		var errA, errB, errClaim error
		var wg sync.WaitGroup
		wg.Go(func() {
			errA = s.Append(c, rec.ID, ownerA, saga.Transition{Seq: 1, Step: ownerA, Phase: saga.Forward, Kind: saga.Succeeded, Attempt: 1})
		})
		wg.Go(func() {
			// A claim may skip the saga while the old owner's append
			// holds it: claim until it is handed out.
			for {
				recs, err := s.Claim(c, ownerB, []string{name}, longLease, 1)
				if err != nil || len(recs) > 1 || len(recs) == 1 && recs[0].ID != rec.ID {
					errClaim = fmt.Errorf("claim of an expired lease = %q, %v; want %q", ids(recs), err, rec.ID)
					return
				}
				if len(recs) == 1 {
					break
				}
				time.Sleep(poll)
			}
			errB = s.Append(c, rec.ID, ownerB, saga.Transition{Seq: 1, Step: ownerB, Phase: saga.Forward, Kind: saga.Succeeded, Attempt: 1})
		})
		wg.Wait()
		if errClaim != nil {
			t.Fatal(errClaim)
		}
		winner := ""
		for _, r := range []struct {
			owner string
			err   error
		}{{ownerA, errA}, {ownerB, errB}} {
			switch {
			case r.err == nil && winner != "":
				t.Fatalf("round %d: the Appends of seq 1 by %s and by %s both succeeded; want one", round, winner, r.owner)
			case r.err == nil:
				winner = r.owner
			case !errors.Is(r.err, saga.ErrLeaseLost):
				t.Fatalf("round %d: Append of seq 1 by %s = %v; want nil or ErrLeaseLost", round, r.owner, r.err)
			}
		}
		if winner == "" {
			t.Fatalf("round %d: the Appends of seq 1 by the old owner and by the new one both failed (%v; %v); want one to succeed", round, errA, errB)
		}
		_, ts := s.mustLoad(t, rec.ID)
		if len(ts) != 1 || ts[0].Step != winner {
			t.Fatalf("round %d: Load returned %d transitions (%+v); want the one of %s", round, len(ts), ts, winner)
		}
		// Whoever won, the lease is now B's.
		s.appendLost(t, rec.ID, ownerA, step(2, "b"), "by the old owner after the race")
		s.mustAppend(t, rec.ID, ownerB, step(2, "b"))
	}
}

func testCanceled(t *testing.T, s *suite) {
	name := s.name(t, "n")
	rec := s.record(t, "a", name)
	s.mustCreate(t, rec, ownerA, longLease)
	c, cancel := context.WithCancel(t.Context())
	cancel()
	canceled := func(call string, err error) {
		t.Helper()
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("%s with a canceled context = %v; want an error matching context.Canceled", call, err)
		}
	}
	fresh := s.record(t, "b", name)
	canceled("Create", s.Create(c, fresh, ownerA, longLease))
	canceled("Append", s.Append(c, rec.ID, ownerA, step(1, "a")))
	_, err := s.Renew(c, ownerA, longLease, []string{rec.ID})
	canceled("Renew", err)
	_, err = s.Claim(c, ownerB, []string{name}, longLease, 10)
	canceled("Claim", err)
	canceled("Release", s.Release(c, rec.ID, ownerA))
	_, _, err = s.Load(c, rec.ID)
	canceled("Load", err)

	// None of them did anything.
	if _, _, err := s.Load(ctx(t), fresh.ID); !errors.Is(err, saga.ErrNotFound) {
		t.Fatalf("Load(%q) after a canceled Create = %v; want an error matching ErrNotFound", fresh.ID, err)
	}
	_, ts := s.mustLoad(t, rec.ID)
	checkTransitions(t, "Load after a canceled Append", ts, nil)
	s.claimNone(t, ownerB, []string{name}, "after a canceled Release")
	s.mustAppend(t, rec.ID, ownerA, step(1, "a"))
}

// sameText reports whether got is want as given or through
// saga.ValidText, as a log may store it.
func sameText(got, want string) bool { return got == want || got == saga.ValidText(want) }

// testInvalidText checks that text with NUL bytes and invalid UTF-8 (an
// error message from a failing service, a field a propagator injected) is
// stored without failing, as given or through saga.ValidText: a log that
// refused it failed the write, and the saga was stuck.
func testInvalidText(t *testing.T, s *suite) {
	rec := s.record(t, "a", s.name(t, "n"))
	rec.Trace["x-\x00key"] = "value \xff\x00"
	s.mustCreate(t, rec, ownerA, longLease)
	got, _ := s.mustLoad(t, rec.ID)
	if len(got.Trace) != len(rec.Trace) {
		t.Fatalf("Load of a saga created with a Trace of text with NUL and invalid UTF-8 returned Trace %q; want %q", got.Trace, rec.Trace)
	}
	for k, v := range rec.Trace {
		gv, ok := got.Trace[k]
		if !ok {
			gv, ok = got.Trace[saga.ValidText(k)]
		}
		if !ok || !sameText(gv, v) {
			t.Fatalf("Load returned Trace %q; want %q, as given or through ValidText", got.Trace, rec.Trace)
		}
	}
	rec.Trace = got.Trace // checked

	want := []saga.Transition{
		{Seq: 1, Step: "a", Phase: saga.Forward, Kind: saga.Failed, Attempt: 1, Error: "card declined\x00 by \xff\xfe issuer"},
		{Seq: 2, Status: saga.Compensating, Error: "step \"a\": \x00"},
		{Seq: 3, Status: saga.NeedsAttention, Error: "\xc3\x28\x00\x00 refund refused"},
	}
	s.mustAppend(t, rec.ID, ownerA, want[0])
	s.mustAppend(t, rec.ID, ownerA, want[1:]...)
	got, ts := s.mustLoad(t, rec.ID)
	if len(ts) == len(want) {
		for i := range ts {
			if !sameText(ts[i].Error, want[i].Error) {
				t.Fatalf("Load returned, as transition %d, one with Error %q; want %q, as given or through ValidText", i, ts[i].Error, want[i].Error)
			}
			want[i].Error = ts[i].Error
		}
	}
	checkTransitions(t, "Load of transitions whose Error has NUL and invalid UTF-8", ts, want)
	checkRecord(t, "Load", got, rec, saga.NeedsAttention)
}

// reopener returns the log as a saga.Reopener, or skips the subtest for a
// log that is not one.
func (s *suite) reopener(t *testing.T) saga.Reopener {
	t.Helper()
	r, ok := s.Log.(saga.Reopener)
	if !ok {
		t.Skipf("the log, a %T, is not a saga.Reopener", s.Log)
	}
	return r
}

// needingAttention creates a saga of name that needs attention: created
// by ownerA, one step, then the final status.
func (s *suite) needingAttention(t *testing.T, id, name string) saga.Record {
	t.Helper()
	rec := s.record(t, id, name)
	s.mustCreate(t, rec, ownerA, longLease)
	s.mustAppend(t, rec.ID, ownerA, step(1, "a"), saga.Transition{Seq: 2, Status: saga.NeedsAttention, Error: "refund refused"})
	return rec
}

// reopenLost checks that owner's Reopen of saga id fails with
// ErrLeaseLost.
func reopenLost(t *testing.T, r saga.Reopener, id, owner string, lease time.Duration, why string) {
	t.Helper()
	err := r.Reopen(ctx(t), id, owner, lease)
	if !errors.Is(err, saga.ErrLeaseLost) || errors.Is(err, saga.ErrNotFound) {
		t.Fatalf("Reopen(%q, %q) %s = %v; want an error matching ErrLeaseLost", id, owner, why, err)
	}
}

// mustReopen reopens saga id for owner.
func mustReopen(t *testing.T, r saga.Reopener, id, owner string, lease time.Duration) {
	t.Helper()
	if err := r.Reopen(ctx(t), id, owner, lease); err != nil {
		t.Fatalf("Reopen(%q, %q, %v) = %v; want nil", id, owner, lease, err)
	}
}

func testReopenNotFound(t *testing.T, s *suite) {
	r := s.reopener(t)
	id := s.id(t, "unknown")
	if err := r.Reopen(ctx(t), id, ownerA, longLease); !errors.Is(err, saga.ErrNotFound) {
		t.Fatalf("Reopen(%q) of no saga = %v; want an error matching ErrNotFound", id, err)
	}
}

// testReopenOtherStatus checks that only a saga that needs attention is
// reopened: not a running one (leased, or whose lease expired), nor one
// that ended otherwise.
func testReopenOtherStatus(t *testing.T, s *suite) {
	r := s.reopener(t)
	name := s.name(t, "n")
	running := s.record(t, "running", name)
	s.mustCreate(t, running, ownerA, longLease)
	expired := s.record(t, "expired", name)
	s.mustCreate(t, expired, ownerA, shortLease)
	var ended []saga.Record
	for _, st := range []saga.Status{saga.Completed, saga.Compensated, saga.Resolved} {
		rec := s.record(t, string(st), name)
		s.mustCreate(t, rec, ownerA, longLease)
		s.mustAppend(t, rec.ID, ownerA, saga.Transition{Seq: 1, Status: st})
		ended = append(ended, rec)
	}
	s.waitExpired(t, shortLease)
	for _, rec := range append([]saga.Record{running, expired}, ended...) {
		reopenLost(t, r, rec.ID, ownerB, longLease, "of a saga that does not need attention")
	}
	// Nothing changed: the running sagas are still A's.
	s.mustAppend(t, running.ID, ownerA, step(1, "a"))
	s.mustAppend(t, expired.ID, ownerA, step(1, "a"))
	for _, rec := range ended {
		got, _ := s.mustLoad(t, rec.ID)
		if !got.Status.Final() || got.Status == saga.NeedsAttention {
			t.Fatalf("Load(%q) after a refused Reopen: status %q", rec.ID, got.Status)
		}
	}
}

// testReopenNeedsAttention walks a saga that needs attention through an
// operator's retry and resolution: each reopen leases it to one owner,
// whose transitions (of Kind Retried, to status Resolved) are kept, and a
// final status ends the lease again.
func testReopenNeedsAttention(t *testing.T, s *suite) {
	r := s.reopener(t)
	name := s.name(t, "n")
	rec := s.needingAttention(t, "a", name)
	s.claimNone(t, ownerC, []string{name}, "of a saga that needs attention")
	s.appendLost(t, rec.ID, ownerA, step(3, "b"), "by the owner, after the final status")

	mustReopen(t, r, rec.ID, ownerB, longLease)
	mustReopen(t, r, rec.ID, ownerB, longLease) // again: it holds the lease
	s.appendLost(t, rec.ID, ownerA, step(3, "b"), "by the old owner, after a Reopen")
	reopenLost(t, r, rec.ID, ownerC, longLease, "while another owner holds the lease of a Reopen")
	s.claimNone(t, ownerC, []string{name}, "of a reopened saga")
	retried := saga.Transition{Seq: 3, Status: saga.Compensating, Kind: saga.Retried}
	s.mustAppend(t, rec.ID, ownerB, retried)
	got, _ := s.mustLoad(t, rec.ID)
	checkRecord(t, "Load after a retry", got, rec, saga.Compensating)
	s.claimNone(t, ownerC, []string{name}, "of a retried saga, leased")
	if lost := s.mustRenew(t, ownerB, longLease, rec.ID); len(lost) != 0 {
		t.Fatalf("Renew by the owner of a Reopen = %q; want none lost", lost)
	}
	again := saga.Transition{Seq: 4, Status: saga.NeedsAttention, Error: "refund refused again"}
	s.mustAppend(t, rec.ID, ownerB, again)
	s.appendLost(t, rec.ID, ownerB, step(5, "b"), "after the final status ended the Reopen's lease")

	mustReopen(t, r, rec.ID, ownerC, longLease)
	resolved := saga.Transition{Seq: 5, Status: saga.Resolved, Error: "refunded by hand"}
	s.mustAppend(t, rec.ID, ownerC, resolved)
	s.appendLost(t, rec.ID, ownerC, step(6, "b"), "after the status Resolved ended the lease")
	reopenLost(t, r, rec.ID, ownerA, longLease, "of a resolved saga")
	s.claimNone(t, ownerA, []string{name}, "of a resolved saga")
	got, ts := s.mustLoad(t, rec.ID)
	checkRecord(t, "Load after the resolution", got, rec, saga.Resolved)
	checkTransitions(t, "Load after the resolution", ts, []saga.Transition{step(1, "a"),
		{Seq: 2, Status: saga.NeedsAttention, Error: "refund refused"}, retried, again, resolved})
}

// testReopenExpired checks that the lease of a Reopen expires as others
// do: another owner may then reopen the saga, and the first is fenced off.
func testReopenExpired(t *testing.T, s *suite) {
	r := s.reopener(t)
	rec := s.needingAttention(t, "a", s.name(t, "n"))
	mustReopen(t, r, rec.ID, ownerB, shortLease)
	s.waitExpired(t, shortLease)
	mustReopen(t, r, rec.ID, ownerC, longLease)
	s.appendLost(t, rec.ID, ownerB, saga.Transition{Seq: 3, Status: saga.Resolved, Error: "b"}, "by the owner of an expired Reopen, after another")
	if lost := s.mustRenew(t, ownerB, longLease, rec.ID); !slices.Equal(lost, []string{rec.ID}) {
		t.Fatalf("Renew by the owner of an expired Reopen, after another = %q; want %q lost", lost, rec.ID)
	}
	s.mustAppend(t, rec.ID, ownerC, saga.Transition{Seq: 3, Status: saga.Resolved, Error: "c"})
}

func testReopenCanceled(t *testing.T, s *suite) {
	r := s.reopener(t)
	rec := s.needingAttention(t, "a", s.name(t, "n"))
	c, cancel := context.WithCancel(t.Context())
	cancel()
	if err := r.Reopen(c, rec.ID, ownerB, longLease); !errors.Is(err, context.Canceled) {
		t.Fatalf("Reopen with a canceled context = %v; want an error matching context.Canceled", err)
	}
	s.appendLost(t, rec.ID, ownerB, saga.Transition{Seq: 3, Status: saga.Resolved}, "after a canceled Reopen")
	mustReopen(t, r, rec.ID, ownerC, longLease)
}
