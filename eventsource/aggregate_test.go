package eventsource_test

import (
	"bytes"
	"context"
	"encoding/gob"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelpatterns/patterns/eventsource"
)

type Opened struct{ Owner string }
type Deposited struct{ Amount int }
type Withdrawn struct{ Amount int }

type Account struct {
	eventsource.Base
	Owner   string
	Balance int
	applied int // counts Apply calls, to see what a load replays
}

var errOverdraft = errors.New("insufficient funds")

func (a *Account) Apply(event any) error {
	a.applied++
	switch e := event.(type) {
	case Opened:
		a.Owner = e.Owner
	case Deposited:
		a.Balance += e.Amount
	case Withdrawn:
		a.Balance -= e.Amount
	default:
		return fmt.Errorf("account: unexpected event %T", event)
	}
	return nil
}

func (a *Account) Withdraw(n int) error {
	if n > a.Balance {
		return errOverdraft
	}
	return eventsource.Raise(a, Withdrawn{n})
}

func newRegistry() *eventsource.Registry {
	reg := eventsource.NewRegistry()
	eventsource.Register[Opened](reg, "account.opened.v1")
	eventsource.Register[Deposited](reg, "account.deposited.v1")
	eventsource.Register[Withdrawn](reg, "account.withdrawn.v1")
	return reg
}

func newRepo(t *testing.T, store eventsource.Store, opts ...eventsource.RepositoryOption) *eventsource.Repository[*Account] {
	t.Helper()
	repo, err := eventsource.NewRepository(store, newRegistry(), func() *Account { return &Account{} }, opts...)
	require.NoError(t, err)
	return repo
}

func TestRepositorySaveAndLoad(t *testing.T) {
	ctx := context.Background()
	store := &eventsource.MemoryStore{}
	repo := newRepo(t, store)

	_, err := repo.Load(ctx, "acc-1")
	require.ErrorIs(t, err, eventsource.ErrNotFound)

	a := repo.New("acc-1")
	require.NoError(t, eventsource.Raise(a, Opened{"ada"}))
	require.NoError(t, eventsource.Raise(a, Deposited{100}))
	assert.Equal(t, int64(2), a.Version())
	assert.Len(t, a.Uncommitted(), 2)
	require.NoError(t, repo.Save(ctx, a))
	assert.Empty(t, a.Uncommitted())
	require.NoError(t, repo.Save(ctx, a), "saving nothing is a no-op")

	b, err := repo.Load(ctx, "acc-1")
	require.NoError(t, err)
	assert.Equal(t, "ada", b.Owner)
	assert.Equal(t, 100, b.Balance)
	assert.Equal(t, int64(2), b.Version())
	assert.Equal(t, "acc-1", b.ID())

	require.ErrorIs(t, b.Withdraw(500), errOverdraft)
	assert.Empty(t, b.Uncommitted(), "a refused command raises nothing")
}

func TestRepositoryDetectsConcurrentChanges(t *testing.T) {
	ctx := context.Background()
	store := &eventsource.MemoryStore{}
	repo := newRepo(t, store)
	a := repo.New("acc")
	require.NoError(t, eventsource.Raise(a, Deposited{100}))
	require.NoError(t, repo.Save(ctx, a))

	first, _ := repo.Load(ctx, "acc")
	second, _ := repo.Load(ctx, "acc")
	require.NoError(t, first.Withdraw(80))
	require.NoError(t, second.Withdraw(80))
	require.NoError(t, repo.Save(ctx, first))
	err := repo.Save(ctx, second)
	require.ErrorIs(t, err, eventsource.ErrConcurrencyConflict)
	var ce *eventsource.ConflictError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, eventsource.Exact(1), ce.Expected)
	assert.Equal(t, int64(2), ce.Actual)

	reloaded, _ := repo.Load(ctx, "acc")
	require.ErrorIs(t, reloaded.Withdraw(80), errOverdraft, "after reloading, the rule sees the other withdrawal")

	// A new aggregate for an existing stream conflicts too.
	dup := repo.New("acc")
	require.NoError(t, eventsource.Raise(dup, Opened{"eve"}))
	require.ErrorIs(t, repo.Save(ctx, dup), eventsource.ErrConcurrencyConflict)
}

func TestRepositoryConcurrentCommandsNeverOverdraw(t *testing.T) {
	ctx := context.Background()
	store := &eventsource.MemoryStore{}
	repo := newRepo(t, store)
	a := repo.New("acc")
	require.NoError(t, eventsource.Raise(a, Deposited{100}))
	require.NoError(t, repo.Save(ctx, a))
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			for { // load, decide, save; retry on conflict
				acc, err := repo.Load(ctx, "acc")
				if err != nil {
					t.Error(err)
					return
				}
				if acc.Withdraw(10) != nil {
					return
				}
				if err := repo.Save(ctx, acc); !errors.Is(err, eventsource.ErrConcurrencyConflict) {
					if err != nil {
						t.Error(err)
					}
					return
				}
			}
		})
	}
	wg.Wait()
	final, err := repo.Load(ctx, "acc")
	require.NoError(t, err)
	assert.Equal(t, 0, final.Balance, "ten withdrawals of 10 succeed, never more")
	assert.Equal(t, int64(11), final.Version())
}

func TestSnapshots(t *testing.T) {
	ctx := context.Background()
	store := &eventsource.MemoryStore{}
	snaps := &eventsource.MemorySnapshots{}
	repo := newRepo(t, store, eventsource.WithSnapshots(snaps, 5))
	a := repo.New("acc")
	for i := range 12 {
		require.NoError(t, eventsource.Raise(a, Deposited{1}))
		if i%3 == 2 {
			require.NoError(t, repo.Save(ctx, a)) // saves at versions 3, 6, 9, 12
		}
	}
	snap, err := snaps.LoadSnapshot(ctx, "acc")
	require.NoError(t, err)
	assert.Equal(t, int64(12), snap.Version, "the save crossing 10 took a snapshot at its end")

	b, err := repo.Load(ctx, "acc")
	require.NoError(t, err)
	assert.Equal(t, 12, b.Balance)
	assert.Equal(t, int64(12), b.Version())
	assert.Equal(t, 0, b.applied, "loaded from the snapshot, nothing to replay")

	require.NoError(t, eventsource.Raise(b, Deposited{5}))
	require.NoError(t, repo.Save(ctx, b))
	c, err := repo.Load(ctx, "acc")
	require.NoError(t, err)
	assert.Equal(t, 17, c.Balance)
	assert.Equal(t, 1, c.applied, "only the event after the snapshot is replayed")

	// A snapshot that does not decode is no start: the stream is replayed
	// (it was an error for good before).
	require.NoError(t, snaps.SaveSnapshot(ctx, eventsource.Snapshot{StreamID: "acc", Version: 99, Data: []byte(`{"Balance":"x"}`)}))
	d, err := repo.Load(ctx, "acc")
	require.NoError(t, err)
	assert.Equal(t, 17, d.Balance)
	assert.Equal(t, 13, d.applied, "the whole stream is replayed")
	assert.Equal(t, int64(13), d.Version())
}

// TestSnapshotFormat protects snapshot versioning: a repository ignores
// snapshots of another format (a field added since would stay zero, a
// changed type would not decode), and its saves replace them.
func TestSnapshotFormat(t *testing.T) {
	ctx := context.Background()
	store := &eventsource.MemoryStore{}
	snaps := &eventsource.MemorySnapshots{}
	v0 := newRepo(t, store, eventsource.WithSnapshots(snaps, 2))
	a := v0.New("acc")
	for range 4 {
		require.NoError(t, eventsource.Raise(a, Deposited{1}))
	}
	require.NoError(t, v0.Save(ctx, a))
	// A snapshot of format 0 whose state the new code reads otherwise.
	require.NoError(t, snaps.SaveSnapshot(ctx, eventsource.Snapshot{StreamID: "acc", Version: 4, Data: []byte(`{"Balance":400}`)}))

	v1 := newRepo(t, store, eventsource.WithSnapshots(snaps, 2), eventsource.WithSnapshotFormat(1))
	b, err := v1.Load(ctx, "acc")
	require.NoError(t, err)
	assert.Equal(t, 4, b.Balance, "the old format's snapshot is ignored")
	assert.Equal(t, 4, b.applied)

	require.NoError(t, eventsource.Raise(b, Deposited{1}), "version 5")
	require.NoError(t, eventsource.Raise(b, Deposited{1}), "version 6, crossing 6")
	require.NoError(t, v1.Save(ctx, b))
	snap, err := snaps.LoadSnapshot(ctx, "acc")
	require.NoError(t, err)
	assert.Equal(t, 1, snap.Format)
	assert.Equal(t, int64(6), snap.Version)

	// A snapshot of another format at the same version replaces it too.
	require.NoError(t, snaps.SaveSnapshot(ctx, eventsource.Snapshot{StreamID: "acc", Version: 6, Format: 2, Data: []byte(`{}`)}))
	snap, err = snaps.LoadSnapshot(ctx, "acc")
	require.NoError(t, err)
	assert.Equal(t, 2, snap.Format)
}

func TestDropSnapshot(t *testing.T) {
	ctx := context.Background()
	snaps := &eventsource.MemorySnapshots{}
	repo := newRepo(t, &eventsource.MemoryStore{}, eventsource.WithSnapshots(snaps, 1))
	a := repo.New("acc")
	require.NoError(t, eventsource.Raise(a, Deposited{3}))
	require.NoError(t, repo.Save(ctx, a))
	require.NoError(t, repo.DropSnapshot(ctx, "acc"))
	_, err := snaps.LoadSnapshot(ctx, "acc")
	require.ErrorIs(t, err, eventsource.ErrNotFound)
	b, err := repo.Load(ctx, "acc")
	require.NoError(t, err)
	assert.Equal(t, 3, b.Balance)
	assert.Equal(t, 1, b.applied)
	require.NoError(t, repo.DropSnapshot(ctx, "never-snapshotted"))

	plain := newRepo(t, &eventsource.MemoryStore{}, eventsource.WithSnapshots(struct{ eventsource.SnapshotStore }{snaps}, 1))
	assert.ErrorContains(t, plain.DropSnapshot(ctx, "acc"), "cannot delete snapshots")
}

func TestNewRepositoryErrors(t *testing.T) {
	_, err := eventsource.NewRepository[*Account](nil, nil, nil, eventsource.WithSnapshots(&eventsource.MemorySnapshots{}, 0))
	require.Error(t, err)
	for _, want := range []string{"store is nil", "registry is nil", "constructor newA is nil", "WithSnapshots(_, 0)"} {
		assert.Contains(t, err.Error(), want)
	}
}

func TestRegistry(t *testing.T) {
	reg := newRegistry()
	ne, err := reg.Encode(Deposited{7}, map[string]string{"k": "v"})
	require.NoError(t, err)
	assert.Equal(t, "account.deposited.v1", ne.Type)
	assert.JSONEq(t, `{"Amount":7}`, string(ne.Data))

	v, err := reg.Decode(eventsource.Event{Type: ne.Type, Data: ne.Data})
	require.NoError(t, err)
	assert.Equal(t, Deposited{7}, v)

	_, err = reg.Encode(struct{ X int }{1}, nil)
	require.ErrorIs(t, err, eventsource.ErrUnknownEventType)

	_, err = reg.Decode(eventsource.Event{Type: "account.closed.v9", StreamID: "acc", Version: 3})
	require.ErrorIs(t, err, eventsource.ErrUnknownEventType)
	assert.Contains(t, err.Error(), `"account.closed.v9"`, "the error names the type")

	_, err = reg.Decode(eventsource.Event{Type: "account.deposited.v1", Data: []byte("{not json")})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "account.deposited.v1")
}

func TestRegistryPanicsOnMistakes(t *testing.T) {
	reg := newRegistry()
	assert.PanicsWithValue(t, `eventsource: Register[eventsource_test.Withdrawn]("account.deposited.v1"): name already registered for eventsource_test.Deposited`,
		func() { eventsource.Register[Withdrawn](reg, "account.deposited.v1") })
	assert.Panics(t, func() { eventsource.Register[Deposited](reg, "other") }, "a type registered twice")
	assert.Panics(t, func() { eventsource.Register[struct{}](reg, "") })
	assert.Panics(t, func() {
		reg.Upcast("account.deposited.v1", func(e eventsource.Event) (eventsource.Event, error) { return e, nil })
	})
}

func TestUpcasters(t *testing.T) {
	reg := newRegistry()
	// v0 stored cents as a string; v0.5 renamed the field; v1 is current.
	reg.Upcast("account.deposited.v0", func(e eventsource.Event) (eventsource.Event, error) {
		var old struct{ Cents string }
		if err := json.Unmarshal(e.Data, &old); err != nil {
			return e, err
		}
		var n int
		if _, err := fmt.Sscan(old.Cents, &n); err != nil {
			return e, err
		}
		e.Type, e.Data = "account.deposited.v0.5", fmt.Appendf(nil, `{"Value":%d}`, n)
		return e, nil
	})
	reg.Upcast("account.deposited.v0.5", func(e eventsource.Event) (eventsource.Event, error) {
		e.Type = "account.deposited.v1"
		e.Data = []byte(strings.Replace(string(e.Data), "Value", "Amount", 1))
		return e, nil
	})
	v, err := reg.Decode(eventsource.Event{Type: "account.deposited.v0", Data: []byte(`{"Cents":"250"}`)})
	require.NoError(t, err)
	assert.Equal(t, Deposited{250}, v)

	_, err = reg.Decode(eventsource.Event{Type: "account.deposited.v0", Data: []byte(`{"Cents":"lots"}`)})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "upcasting account.deposited.v0")

	reg.Upcast("loop.a", func(e eventsource.Event) (eventsource.Event, error) { e.Type = "loop.b"; return e, nil })
	reg.Upcast("loop.b", func(e eventsource.Event) (eventsource.Event, error) { e.Type = "loop.a"; return e, nil })
	_, err = reg.Decode(eventsource.Event{Type: "loop.a"})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "cycle")
}

func TestRepositoryUpcastsOnLoad(t *testing.T) {
	ctx := context.Background()
	store := &eventsource.MemoryStore{}
	reg := newRegistry()
	reg.Upcast("account.deposited.v0", func(e eventsource.Event) (eventsource.Event, error) {
		e.Type = "account.deposited.v1"
		return e, nil
	})
	_, err := store.Append(ctx, "acc", eventsource.NoStream, eventsource.NewEvent{Type: "account.deposited.v0", Data: []byte(`{"Amount":3}`)})
	require.NoError(t, err)
	repo, err := eventsource.NewRepository(store, reg, func() *Account { return &Account{} })
	require.NoError(t, err)
	a, err := repo.Load(ctx, "acc")
	require.NoError(t, err)
	assert.Equal(t, 3, a.Balance)

	_, err = store.Append(ctx, "acc", eventsource.Any, eventsource.NewEvent{Type: "account.frozen.v1", Data: []byte(`{}`)})
	require.NoError(t, err)
	_, err = repo.Load(ctx, "acc")
	require.ErrorIs(t, err, eventsource.ErrUnknownEventType, "an unknown type on read is a clear error, not a panic")
}

// gobCodec is another codec, to show the registry does not assume JSON.
type gobCodec struct{}

func (gobCodec) Marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	err := gob.NewEncoder(&buf).Encode(v)
	return buf.Bytes(), err
}

func (gobCodec) Unmarshal(data []byte, v any) error {
	return gob.NewDecoder(bytes.NewReader(data)).Decode(v)
}

func TestRegistryCodec(t *testing.T) {
	reg := eventsource.NewRegistry(eventsource.WithCodec(gobCodec{}))
	eventsource.Register[Deposited](reg, "account.deposited.v1")
	ne, err := reg.Encode(Deposited{9}, nil)
	require.NoError(t, err)
	assert.False(t, json.Valid(ne.Data), "encoded with the codec given, not JSON")
	v, err := reg.Decode(eventsource.Event{Type: ne.Type, Data: ne.Data})
	require.NoError(t, err)
	assert.Equal(t, Deposited{9}, v)
}

// TestMemorySnapshotsRejectWhatStoresCannotKeep protects against input that
// MemorySnapshots took and pgstore refuses, so that tests in memory pass
// where production fails.
func TestMemorySnapshotsRejectWhatStoresCannotKeep(t *testing.T) {
	var s eventsource.MemorySnapshots
	for _, snap := range []eventsource.Snapshot{
		{StreamID: "", Version: 1},
		{StreamID: "a", Version: -1},
		{StreamID: "a\x00", Version: 1},
		{StreamID: "a\xff", Version: 1},
	} {
		if err := s.SaveSnapshot(context.Background(), snap); !errors.Is(err, eventsource.ErrInvalidArgument) {
			t.Errorf("SaveSnapshot(%q, %d) = %v; want ErrInvalidArgument", snap.StreamID, snap.Version, err)
		}
		if _, err := s.LoadSnapshot(context.Background(), snap.StreamID); !errors.Is(err, eventsource.ErrNotFound) {
			t.Errorf("LoadSnapshot(%q) = %v; want ErrNotFound", snap.StreamID, err)
		}
	}
}

// lostReply is a store whose appends commit and then fail, as when the
// connection drops after the commit and before the reply.
type lostReply struct {
	eventsource.Store
	lose bool
}

func (s *lostReply) Append(ctx context.Context, id string, expected eventsource.ExpectedVersion, events ...eventsource.NewEvent) ([]eventsource.Event, error) {
	out, err := s.Store.Append(ctx, id, expected, events...)
	if err == nil && s.lose {
		s.lose = false
		return nil, errors.New("connection reset by peer")
	}
	return out, err
}

// TestSaveRetryAfterLostReply protects Save's retry rule: a Save whose
// commit's reply was lost, called again with the same aggregate, succeeds
// without saving the events twice (it conflicted before, and the
// documented reload applied the deposit twice).
func TestSaveRetryAfterLostReply(t *testing.T) {
	ctx := context.Background()
	mem := &eventsource.MemoryStore{}
	store := &lostReply{Store: mem}
	repo := newRepo(t, store)
	a := repo.New("acc-lost")
	require.NoError(t, eventsource.Raise(a, Opened{"ada"}))
	require.NoError(t, repo.Save(ctx, a))

	require.NoError(t, eventsource.Raise(a, Deposited{10}))
	store.lose = true
	require.Error(t, repo.Save(ctx, a), "the reply is lost")
	require.NoError(t, repo.Save(ctx, a), "the retry is recognised")
	assert.Empty(t, a.Uncommitted())
	assert.Equal(t, int64(2), a.Version())

	loaded, err := repo.Load(ctx, "acc-lost")
	require.NoError(t, err)
	assert.Equal(t, 10, loaded.Balance, "the deposit is saved once")
	assert.Equal(t, int64(2), loaded.Version())
}

type failingSnapshots struct{ eventsource.MemorySnapshots }

func (*failingSnapshots) SaveSnapshot(context.Context, eventsource.Snapshot) error {
	return errors.New("snapshot store down")
}

// TestSaveSnapshotFailure: events saved and snapshot not is told apart
// from nothing saved.
func TestSaveSnapshotFailure(t *testing.T) {
	ctx := context.Background()
	repo := newRepo(t, &eventsource.MemoryStore{}, eventsource.WithSnapshots(&failingSnapshots{}, 2))
	a := repo.New("acc-snap")
	require.NoError(t, eventsource.Raise(a, Opened{"ada"}))
	require.NoError(t, eventsource.Raise(a, Deposited{5}))
	err := repo.Save(ctx, a)
	var se *eventsource.SnapshotError
	require.ErrorIs(t, err, eventsource.ErrSnapshotNotSaved)
	require.ErrorAs(t, err, &se)
	assert.Equal(t, "acc-snap", se.StreamID)
	assert.Equal(t, int64(2), se.Version)
	assert.ErrorContains(t, err, "snapshot store down")
	assert.Empty(t, a.Uncommitted(), "the events are committed")
	loaded, err := repo.Load(ctx, "acc-snap")
	require.NoError(t, err)
	assert.Equal(t, 5, loaded.Balance)
}
