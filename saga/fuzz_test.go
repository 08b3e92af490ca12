package saga_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/otelpatterns/patterns/retry"
	"github.com/otelpatterns/patterns/saga"
)

// The fuzz targets feed what a log hands back after a crash, as a
// corrupt or foreign log may hold it, to a recovery: the transitions of a
// saga (FuzzRecover) and its data (FuzzData). Whatever the log holds, the
// recovery must not panic or hang, the saga must end in a final status,
// and what the orchestrator appends must keep the log well formed. Their
// corpora are in testdata/fuzz (issue 12).

// fuzzRetry is the retry policy of the fuzzed sagas' steps and
// compensations: two quick attempts.
func fuzzRetry() *retry.Retrier {
	return retry.New(retry.WithMaxAttempts(2), retry.WithBackoff(retry.Constant(time.Millisecond)))
}

// fuzzSaga defines the saga of FuzzRecover: a, then b and c in parallel,
// then the pivot p, then the Retriable e. Every action and compensation
// succeeds; what happens depends on the log alone.
func fuzzSaga(t *testing.T) *saga.Definition[propData] {
	t.Helper()
	do := func(name string) func(context.Context, propData) (func(*propData), error) {
		return func(context.Context, propData) (func(*propData), error) {
			return func(d *propData) { d.Done = append(d.Done, name) }, nil
		}
	}
	undo := func(context.Context, propData) error { return nil }
	def, err := saga.Define("fuzz", 1,
		saga.Step[propData]{Name: "a", Action: do("a"), Compensate: undo, Retry: fuzzRetry()},
		saga.Step[propData]{Name: "b", After: []string{"a"}, Action: do("b"), Compensate: undo, Retry: fuzzRetry()},
		saga.Step[propData]{Name: "c", After: []string{"a"}, Action: do("c"), Compensate: undo, Retry: fuzzRetry(), Idempotent: true},
		saga.Step[propData]{Name: "p", After: []string{"b", "c"}, Action: do("p"), Pivot: true, Retry: fuzzRetry()},
		saga.Step[propData]{Name: "e", After: []string{"p"}, Action: do("e"), Retriable: true, Retry: fuzzRetry()},
	)
	if err != nil {
		t.Fatal(err)
	}
	return def
}

// fuzzTransitions decodes transitions from b, five bytes each (status,
// step, phase and kind, attempt, flags), so that the fuzzer's mutations
// stay meaningful: most bytes pick among the values a log may hold,
// including ones no orchestrator writes.
func fuzzTransitions(b []byte) []saga.Transition {
	statuses := []saga.Status{"", "", "", "", "", saga.Running, saga.Compensating, saga.Completed,
		saga.Compensated, saga.NeedsAttention, saga.Resolved, "bogus"}
	steps := []string{"", "a", "b", "c", "p", "e", "unknown"}
	phases := []saga.Phase{saga.Forward, saga.Compensate, "sideways"}
	kinds := []saga.Kind{saga.Started, saga.Succeeded, saga.Failed, saga.TimedOut, saga.Retried, ""}
	var ts []saga.Transition
	for len(b) >= 5 && len(ts) < 64 {
		t := saga.Transition{
			Seq:     int64(len(ts) + 1),
			Status:  statuses[int(b[0])%len(statuses)],
			Step:    steps[int(b[1])%len(steps)],
			Phase:   phases[int(b[2]&0x0f)%len(phases)],
			Kind:    kinds[int(b[2]>>4)%len(kinds)],
			Attempt: int(int8(b[3])),
		}
		flags := b[4]
		if flags&1 != 0 {
			t.Data = fmt.Appendf(nil, `{"Done":[%q]}`, t.Step)
		}
		if flags&2 != 0 {
			t.Data = []byte(`{"Done":`) // does not decode
		}
		if flags&4 != 0 {
			t.Error = "failed\x00\xff"
		}
		ts = append(ts, t)
		b = b[5:]
	}
	return ts
}

// seed writes a saga of def with data and the transitions ts to a fresh
// MemoryLog, as an orchestrator that crashed would have left it (the
// transitions from the first that the log refuses on are dropped).
func seed(t *testing.T, name string, data []byte, trace string, ts []saga.Transition) (*saga.MemoryLog, saga.Record, []saga.Transition) {
	t.Helper()
	ctx := context.Background()
	log := &saga.MemoryLog{}
	rec := saga.Record{ID: "s-1", Name: name, Version: 1, Data: data, Trace: map[string]string{"traceparent": trace}}
	if err := log.Create(ctx, rec, "crashed", time.Minute); err != nil {
		t.Fatal(err)
	}
	for _, tr := range ts {
		if err := log.Append(ctx, rec.ID, "crashed", tr); err != nil {
			break // a final status ended the lease
		}
	}
	if err := log.Release(ctx, rec.ID, "crashed"); err != nil {
		t.Fatal(err)
	}
	before, seeded, err := log.Load(ctx, rec.ID)
	if err != nil {
		t.Fatal(err)
	}
	return log, before, seeded
}

// recoverSeeded recovers the saga of the log with def and waits for it,
// checking that it ends and that the log stays well formed. It returns
// the saga's final status and its transitions.
func recoverSeeded(t *testing.T, log *saga.MemoryLog, def saga.Definer, before saga.Record, seeded []saga.Transition) (saga.Status, []saga.Transition) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	o, err := saga.NewOrchestrator(log, saga.WithDefinitions(def), saga.WithOwner("fuzz"),
		saga.WithRecoverInterval(0), saga.WithCompensationRetry(fuzzRetry()))
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close(ctx)
	n, err := o.Recover(ctx)
	if want := 1; before.Status.Final() {
		want = 0
		if n != want || err != nil {
			t.Fatalf("Recover() of a saga in final status %q = %d, %v; want 0, nil", before.Status, n, err)
		}
	} else if n != want || err != nil {
		t.Fatalf("Recover() of a saga in status %q = %d, %v; want 1, nil", before.Status, n, err)
	}
	st, err := o.Wait(ctx, "s-1")
	if !st.Final() || ctx.Err() != nil {
		t.Fatalf("Wait() = %q, %v; want a final status", st, err)
	}
	after, ts, err := log.Load(ctx, "s-1")
	if err != nil {
		t.Fatal(err)
	}
	if after.Status != st {
		t.Fatalf("Wait() = %q; the log says %q", st, after.Status)
	}
	if !slices.EqualFunc(ts[:len(seeded)], seeded, func(a, b saga.Transition) bool {
		return a.Seq == b.Seq && a.Status == b.Status && a.Step == b.Step && a.Kind == b.Kind
	}) {
		t.Fatalf("the recovery changed the transitions it found")
	}
	// What the recovery appended: consecutive, nothing after a final
	// status, no forward step after the saga turned to compensating.
	last := int64(0)
	if len(seeded) > 0 {
		last = seeded[len(seeded)-1].Seq
	}
	compensating := before.Status == saga.Compensating
	for k, tr := range ts[len(seeded):] {
		if tr.Seq != last+int64(k)+1 {
			t.Fatalf("appended transition %d has Seq %d; want %d", k, tr.Seq, last+int64(k)+1)
		}
		if k > 0 && ts[len(seeded)+k-1].Status.Final() {
			t.Fatalf("transition %d follows the final status %q", tr.Seq, ts[len(seeded)+k-1].Status)
		}
		if compensating && tr.Phase == saga.Forward && tr.Kind == saga.Started {
			t.Fatalf("transition %d starts step %q after the saga turned to compensating", tr.Seq, tr.Step)
		}
		compensating = compensating || tr.Status == saga.Compensating
	}
	if before.Status == saga.Compensating && st == saga.Completed {
		t.Fatalf("a compensating saga completed")
	}
	return st, ts
}

// FuzzRecover recovers a saga from transitions decoded from the input,
// with a trace context from it.
func FuzzRecover(f *testing.F) {
	f.Add([]byte{}, "")
	f.Add([]byte{0, 1, 0x00, 1, 0, 0, 1, 0x10, 1, 1}, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	f.Fuzz(func(t *testing.T, b []byte, trace string) {
		synctest.Test(t, func(t *testing.T) {
			def := fuzzSaga(t)
			log, before, seeded := seed(t, "fuzz", []byte(`{"Done":[]}`), trace, fuzzTransitions(b))
			recoverSeeded(t, log, def, before, seeded)
		})
	})
}

// fuzzData is the data of FuzzData's saga: fields of several kinds, for
// the codec to decode from what the log holds.
type fuzzData struct {
	Name  string
	N     int
	Items []string
	Tags  map[string]int
	Ptr   *struct{ X float64 }
}

// FuzzData recovers a saga whose data in the log (the record's, and that
// of a first step's success unless stepData is empty) comes from the
// input. The saga completes if
// and only if the data its steps read decodes; otherwise it compensates,
// or needs attention when a compensation cannot decode it either.
func FuzzData(f *testing.F) {
	f.Add([]byte(`{"Name":"n","N":1}`), []byte(nil))
	f.Add([]byte(`{"Name":"n","N":1}`), []byte(`{"Items":["x"],"Tags":{"t":2},"Ptr":{"X":1.5}}`))
	f.Add([]byte(`null`), []byte(`{"N":1e400}`))
	f.Add([]byte("\x00\xff"), []byte(nil))
	f.Fuzz(func(t *testing.T, data, stepData []byte) {
		synctest.Test(t, func(t *testing.T) {
			undo := func(context.Context, fuzzData) error { return nil }
			def, err := saga.Define("data", 1,
				saga.Step[fuzzData]{Name: "a", Compensate: undo, Retry: fuzzRetry(),
					Action: func(context.Context, fuzzData) (func(*fuzzData), error) {
						return func(d *fuzzData) { d.Items = append(d.Items, "a"); d.N++ }, nil
					}},
				saga.Step[fuzzData]{Name: "b", Compensate: undo, Retry: fuzzRetry(),
					Action: func(context.Context, fuzzData) (func(*fuzzData), error) {
						return func(d *fuzzData) {
							if d.Tags == nil {
								d.Tags = map[string]int{}
							}
							d.Tags["b"]++
						}, nil
					}},
			)
			if err != nil {
				t.Fatal(err)
			}
			var ts []saga.Transition
			read := data // what the steps of the recovery decode first
			if len(stepData) > 0 {
				ts = []saga.Transition{
					{Seq: 1, Step: "a", Phase: saga.Forward, Kind: saga.Started, Attempt: 1},
					{Seq: 2, Step: "a", Phase: saga.Forward, Kind: saga.Succeeded, Attempt: 1, Data: stepData},
				}
				read = stepData
			}
			log, before, seeded := seed(t, "data", data, "", ts)
			st, all := recoverSeeded(t, log, def, before, seeded)
			decodes := json.Unmarshal(read, new(fuzzData)) == nil
			if (st == saga.Completed) != decodes {
				t.Fatalf("the saga ended %s; the data it read decodes: %v", st, decodes)
			}
			if st != saga.Completed {
				return
			}
			var final fuzzData
			for _, tr := range all {
				if tr.Data != nil {
					final = fuzzData{}
					if err := json.Unmarshal(tr.Data, &final); err != nil {
						t.Fatalf("transition %d holds data that does not decode: %v", tr.Seq, err)
					}
				}
			}
			_, b := final.Tags["b"]
			if !b || (len(stepData) == 0 && !slices.Contains(final.Items, "a")) {
				t.Fatalf("the completed saga's data %+v lacks its steps' updates", final)
			}
		})
	})
}

// A log holding what no orchestrator writes makes the saga need
// attention: a status no saga has left the saga unfinished for good (its
// run did nothing, and a recovery claimed it again and again), and a
// phase or kind no step has was taken for another.
func TestRecoverOfACorruptLogNeedsAttention(t *testing.T) {
	for _, tt := range []struct {
		name string
		ts   []saga.Transition
	}{
		{"status no saga has", []saga.Transition{{Seq: 1, Status: "bogus"}}},
		{"phase no step has", []saga.Transition{{Seq: 1, Step: "a", Phase: "sideways", Kind: saga.Started, Attempt: 1}}},
		{"kind no step has", []saga.Transition{{Seq: 1, Step: "a", Phase: saga.Forward, Kind: saga.Retried, Attempt: 1}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				log, before, seeded := seed(t, "fuzz", []byte(`{}`), "", tt.ts)
				st, _ := recoverSeeded(t, log, fuzzSaga(t), before, seeded)
				if st != saga.NeedsAttention {
					t.Errorf("recovery of a corrupt log ended %s; want %s", st, saga.NeedsAttention)
				}
			})
		})
	}
}
