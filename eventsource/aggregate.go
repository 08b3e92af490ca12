package eventsource

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/google/uuid"

	"github.com/otelpatterns/patterns/internal/brief"
	"github.com/otelpatterns/patterns/internal/nilcheck"
)

// Aggregate is a consistency boundary whose state is rebuilt from its
// events. Implement it by embedding [Base] and writing Apply:
//
//	type Account struct {
//		eventsource.Base
//		Balance int
//	}
//
//	func (a *Account) Apply(event any) error {
//		switch e := event.(type) {
//		case Deposited:
//			a.Balance += e.Amount
//		}
//		return nil
//	}
//
// Commands check their rules and then record facts with [Raise].
type Aggregate interface {
	// Apply changes the state for one event. It is called for every loaded
	// event and for every event raised; it must not have side effects.
	Apply(event any) error
	base() *Base
}

// Base carries what the [Repository] needs to know about an aggregate: its
// stream id, the version it was loaded at and the events raised since.
// Embed it; its zero value is a new aggregate.
type Base struct {
	id      string
	version int64
	pending []any
	// ids are the event IDs of pending, drawn when the events are raised,
	// so that every Save of them sends the same IDs and a retried Save is
	// recognised by the store.
	ids []uuid.UUID
}

// base is how Raise and the Repository reach the Base embedded in a
// user's aggregate type; only such types implement Aggregate.
//
//lint:ignore U1000 called through Aggregate on the user's types that embed Base.
func (b *Base) base() *Base { return b }

// ID returns the aggregate's stream id.
func (b *Base) ID() string { return b.id }

// Version returns the version of the last event applied, stored or not.
func (b *Base) Version() int64 { return b.version + int64(len(b.pending)) }

// Uncommitted returns the events raised since the aggregate was loaded or
// last saved.
func (b *Base) Uncommitted() []any { return b.pending }

// Raise applies event to a and records it to be saved by
// [Repository.Save]: command methods call it once they have checked their
// rules. If Apply fails, a is left as Apply left it and nothing is
// recorded. A nil aggregate or a nil event is an error matching
// [ErrInvalidArgument].
func Raise(a Aggregate, event any) error {
	switch {
	case nilcheck.IsNil(a):
		return invalid("Raise: aggregate is nil")
	case event == nil:
		return invalid("Raise(%T): event is nil", a)
	}
	if err := a.Apply(event); err != nil {
		return err
	}
	b := a.base()
	b.pending = append(b.pending, event)
	b.ids = append(b.ids, uuid.New())
	return nil
}

// Snapshot is an aggregate's state at a version, encoded.
type Snapshot struct {
	StreamID string
	// Version is the version of the stream's last event the state holds.
	Version int64
	// Format is the version of the encoding of the state, which
	// WithSnapshotFormat sets: a Repository ignores snapshots of
	// another format.
	Format int
	Data   []byte
}

// SnapshotStore keeps the latest snapshot of each stream, for
// [WithSnapshots]. [MemorySnapshots] and
// [github.com/otelpatterns/patterns/eventsource/pgstore] implement it.
// Implementations are safe for concurrent use, and pass the suite
// storetest.RunSnapshots of
// [github.com/otelpatterns/patterns/eventsource/storetest].
type SnapshotStore interface {
	// LoadSnapshot returns the stream's snapshot, or an error matching
	// ErrNotFound when there is none.
	LoadSnapshot(ctx context.Context, streamID string) (Snapshot, error)
	// SaveSnapshot replaces the stream's snapshot with s if s is of a
	// newer version or of another format, and may skip s if it is of an
	// older or the same version and the same format. An empty stream id,
	// one that is not valid UTF-8 or holds a NUL byte, or a negative
	// version is an error matching ErrInvalidArgument.
	SaveSnapshot(ctx context.Context, s Snapshot) error
}

// SnapshotDeleter is a [SnapshotStore] that can delete a stream's
// snapshot, for [Repository.DropSnapshot]. Deleting a snapshot that does
// not exist is not an error.
type SnapshotDeleter interface {
	DeleteSnapshot(ctx context.Context, streamID string) error
}

// MemorySnapshots is an in-process [SnapshotStore]. The zero value is ready
// to use; it is safe for concurrent use.
type MemorySnapshots struct {
	mu sync.Mutex
	m  map[string]Snapshot
}

// LoadSnapshot implements [SnapshotStore.LoadSnapshot].
func (s *MemorySnapshots) LoadSnapshot(ctx context.Context, streamID string) (Snapshot, error) {
	if err := ctx.Err(); err != nil {
		return Snapshot{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	snap, ok := s.m[streamID]
	if !ok {
		return Snapshot{}, fmt.Errorf("%w: no snapshot of stream %s", ErrNotFound, brief.Quote(streamID))
	}
	snap.Data = append([]byte(nil), snap.Data...)
	return snap, nil
}

// SaveSnapshot implements [SnapshotStore.SaveSnapshot].
func (s *MemorySnapshots) SaveSnapshot(ctx context.Context, snap Snapshot) error {
	if err := checkSnapshot(snap); err != nil {
		return fmt.Errorf("eventsource: saving a snapshot: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[string]Snapshot{}
	}
	if old, ok := s.m[snap.StreamID]; ok && old.Version >= snap.Version && old.Format == snap.Format {
		return nil
	}
	snap.Data = append([]byte(nil), snap.Data...)
	s.m[snap.StreamID] = snap
	return nil
}

// DeleteSnapshot implements [SnapshotDeleter.DeleteSnapshot].
func (s *MemorySnapshots) DeleteSnapshot(ctx context.Context, streamID string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, streamID)
	return nil
}

// Repository loads and saves aggregates of type A through a [Store].
// It is safe for concurrent use; the aggregates it returns are not.
type Repository[A Aggregate] struct {
	store     Store
	reg       *Registry
	newA      func() A
	snapshots SnapshotStore
	every     int64
	format    int
}

// RepositoryOption configures a [Repository].
type RepositoryOption interface{ applyRepo(*repoConfig) }

type repoConfig struct {
	snapshots    SnapshotStore
	every        int64
	format       int
	withSnapshot bool // WithSnapshots was given, perhaps with a nil store
}

type repoOptionFunc func(*repoConfig)

func (f repoOptionFunc) applyRepo(c *repoConfig) { f(c) }

// WithSnapshots saves a snapshot of an aggregate (its JSON encoding) to s
// whenever a save crosses a multiple of every events, and loads start from
// the latest snapshot. The aggregate's exported fields are its snapshot
// state. every must be at least 1 and s must not be nil. By default there
// are no snapshots.
//
// A snapshot holds what the events meant when it was taken. When the
// aggregate's fields change, or an upcaster changes what old events mean,
// raise the format with [WithSnapshotFormat]: loads then ignore the old
// snapshots and replay the events instead, and saves write snapshots of
// the new format.
func WithSnapshots(s SnapshotStore, every int) RepositoryOption {
	return repoOptionFunc(func(c *repoConfig) { c.snapshots, c.every, c.withSnapshot = s, int64(every), true })
}

// WithSnapshotFormat sets the format of the repository's snapshots, a
// number of the user's choosing that identifies the aggregate's snapshot
// encoding (see [WithSnapshots]). Loads use only snapshots of this format.
// The default is 0.
func WithSnapshotFormat(format int) RepositoryOption {
	return repoOptionFunc(func(c *repoConfig) { c.format = format })
}

// NewRepository returns a repository of the aggregates of type A kept in
// store: it creates empty aggregates with newA, which returns a new,
// non-nil A each time, and encodes and decodes their events with reg.
// It returns one error that names every bad argument: a nil store,
// registry, constructor or option, or a bad [WithSnapshots].
func NewRepository[A Aggregate](store Store, reg *Registry, newA func() A, opts ...RepositoryOption) (*Repository[A], error) {
	var c repoConfig
	var errs []error
	if nilcheck.IsNil(store) {
		errs = append(errs, errors.New("store is nil"))
	}
	if reg == nil {
		errs = append(errs, errors.New("registry is nil"))
	}
	if newA == nil {
		errs = append(errs, errors.New("constructor newA is nil"))
	}
	for i, o := range opts {
		if o == nil {
			errs = append(errs, fmt.Errorf("opts[%d] is nil", i))
			continue
		}
		o.applyRepo(&c)
	}
	if c.withSnapshot && nilcheck.IsNil(c.snapshots) {
		errs = append(errs, fmt.Errorf("WithSnapshots(nil, %d): snapshot store is nil", c.every))
	}
	if c.withSnapshot && c.every < 1 {
		errs = append(errs, fmt.Errorf("WithSnapshots(_, %d): interval must be at least 1", c.every))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("eventsource: NewRepository: %w", err)
	}
	return &Repository[A]{store: store, reg: reg, newA: newA, snapshots: c.snapshots, every: c.every, format: c.format}, nil
}

// errNoRepository is the error of a method called on a Repository that
// NewRepository did not return.
var errNoRepository = invalid("the Repository is nil or was not created by NewRepository")

// DropSnapshot deletes the snapshot of stream id, so that the next Load
// replays the whole stream. It needs a snapshot store that is a
// [SnapshotDeleter] ([MemorySnapshots] and
// [github.com/otelpatterns/patterns/eventsource/pgstore] are), and does
// nothing without snapshots.
func (r *Repository[A]) DropSnapshot(ctx context.Context, id string) error {
	if r == nil || r.store == nil {
		return errNoRepository
	}
	if r.snapshots == nil {
		return nil
	}
	d, ok := r.snapshots.(SnapshotDeleter)
	if !ok {
		return fmt.Errorf("eventsource: DropSnapshot: the snapshot store %T cannot delete snapshots", r.snapshots)
	}
	if err := d.DeleteSnapshot(ctx, id); err != nil {
		return fmt.Errorf("eventsource: dropping the snapshot of %s: %w", brief.Quote(id), err)
	}
	return nil
}

// New returns an empty aggregate for a stream that has no events yet:
// raise its first events and [Repository.Save] it. It panics if the
// constructor given to [NewRepository] returns nil.
func (r *Repository[A]) New(id string) A {
	a, err := r.fresh(id)
	if err != nil {
		panic(err.Error())
	}
	return a
}

// fresh returns a new aggregate of stream id, or an error if there is no
// constructor or it returned nil.
func (r *Repository[A]) fresh(id string) (A, error) {
	var zero A
	if r == nil || r.newA == nil {
		return zero, errNoRepository
	}
	a := r.newA()
	if nilcheck.IsNil(a) {
		return zero, fmt.Errorf("eventsource: the constructor newA given to NewRepository returned a nil %T", a)
	}
	a.base().id = id
	return a, nil
}

// Load rebuilds the aggregate of stream id: from its latest snapshot, if
// any, then the events after it. A snapshot of another format than the
// repository's ([WithSnapshotFormat]), or one that does not decode, is
// ignored: Load replays the stream from its start instead, and the next
// snapshot that a Save takes replaces it. Load returns an error matching
// [ErrNotFound] for a stream with no events.
func (r *Repository[A]) Load(ctx context.Context, id string) (A, error) {
	if r == nil || r.store == nil {
		var zero A
		return zero, errNoRepository
	}
	a, err := r.fresh(id)
	if err != nil {
		return a, err
	}
	b := a.base()
	if r.snapshots != nil {
		snap, err := r.snapshots.LoadSnapshot(ctx, id)
		switch {
		case err == nil && snap.Format == r.format:
			if json.Unmarshal(snap.Data, a) != nil {
				a, _ = r.fresh(id) // a half-decoded state is no start; fresh worked above
				b = a.base()
				break
			}
			b.version = snap.Version
		case err == nil, errors.Is(err, ErrNotFound):
		default:
			return a, fmt.Errorf("eventsource: loading the snapshot of %s: %w", brief.Quote(id), err)
		}
	}
	for e, err := range r.store.ReadStream(ctx, id, b.version+1) {
		if err != nil {
			return a, err
		}
		ev, err := r.reg.Decode(e)
		if err != nil {
			return a, err
		}
		if err := a.Apply(ev); err != nil {
			return a, fmt.Errorf("eventsource: applying %s event %d of %s: %w", brief.String(e.Type), e.Version, brief.Quote(id), err)
		}
		b.version = e.Version
	}
	if b.version == 0 {
		return a, fmt.Errorf("%w: stream %s", ErrNotFound, brief.Quote(id))
	}
	return a, nil
}

// Save appends the aggregate's uncommitted events, expecting the stream to
// be at the version the aggregate was loaded at (no stream for a new one),
// so that a concurrent change fails with an error matching
// [ErrConcurrencyConflict] instead of being overwritten: load again and
// decide the command again. On success the events are committed in the
// aggregate.
//
// Each event gets its ID when it is raised, and keeps it until it is
// saved. So after any other error, whose outcome may be unknown (a
// timeout, a lost connection), call Save again with the same aggregate:
// if the first Save was committed, the store recognises the IDs and the
// retry succeeds without appending them twice. Do not load again and
// decide again after such an error: that applies the command a second
// time if the first Save was committed. To make a command safe to retry
// from the start (a redelivered message, a new process), give it an ID
// with [WithCommandID].
//
// When the events are saved but the snapshot that was due is not, Save
// returns a [*SnapshotError] matching [ErrSnapshotNotSaved]: the events
// are committed in the aggregate, and there is nothing to retry.
func (r *Repository[A]) Save(ctx context.Context, a A) error {
	switch {
	case r == nil || r.store == nil:
		return errNoRepository
	case nilcheck.IsNil(a):
		return invalid("Save: aggregate is nil")
	}
	b := a.base()
	if len(b.pending) == 0 {
		return nil
	}
	events := make([]NewEvent, len(b.pending))
	for i, ev := range b.pending {
		ne, err := r.reg.Encode(ev, nil)
		if err != nil {
			return err
		}
		ne.ID = b.ids[i]
		events[i] = ne
	}
	if _, err := r.store.Append(ctx, b.id, Exact(b.version), events...); err != nil {
		return err
	}
	before := b.version
	b.version += int64(len(b.pending))
	b.pending, b.ids = nil, nil
	if r.snapshots != nil && before/r.every != b.version/r.every {
		data, err := json.Marshal(a)
		if err == nil {
			err = r.snapshots.SaveSnapshot(ctx, Snapshot{StreamID: b.id, Version: b.version, Format: r.format, Data: data})
		}
		if err != nil {
			return &SnapshotError{StreamID: b.id, Version: b.version, Err: err}
		}
	}
	return nil
}
