package pgstore_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelpatterns/patterns/eventsource"
	"github.com/otelpatterns/patterns/eventsource/pgstore"
	"github.com/otelpatterns/patterns/internal/testenv"
)

// unconnectedPool returns a pool that has not connected, and never will:
// enough for New, which does not touch the database.
func unconnectedPool(t *testing.T) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), "postgres://nobody@127.0.0.1:1/nothing?connect_timeout=1")
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	return pool
}

func TestNewRejectsBadArguments(t *testing.T) {
	t.Parallel()
	pool := unconnectedPool(t)
	tests := []struct {
		name string
		pool *pgxpool.Pool
		opts []pgstore.Option
		want []string
	}{
		{"nil pool", nil, nil, []string{"pool is nil"}},
		{"empty schema", pool, []pgstore.Option{pgstore.WithSchema("")}, []string{`WithSchema("")`, "empty schema name"}},
		{"long schema", pool, []pgstore.Option{pgstore.WithSchema(strings.Repeat("s", pgstore.MaxSchemaLen+1))}, []string{"WithSchema", "at most 56"}},
		{"reserved schema", pool, []pgstore.Option{pgstore.WithSchema("pg_events")}, []string{`WithSchema("pg_events")`, "reserved"}},
		{"NUL in schema", pool, []pgstore.Option{pgstore.WithSchema("a\x00b")}, []string{"WithSchema", "NUL"}},
		{"invalid UTF-8 schema", pool, []pgstore.Option{pgstore.WithSchema("a\xffb")}, []string{"WithSchema", "UTF-8"}},
		{"zero poll interval", pool, []pgstore.Option{pgstore.WithPollInterval(0)}, []string{"WithPollInterval(0s)", "positive"}},
		{"negative poll interval", pool, []pgstore.Option{pgstore.WithPollInterval(-time.Second)}, []string{"WithPollInterval(-1s)"}},
		{"sub-millisecond idle timeout", pool, []pgstore.Option{pgstore.WithAppendIdleTimeout(time.Microsecond)}, []string{"WithAppendIdleTimeout(1µs)", "at least 1ms"}},
		{"zero subscription timeout", pool, []pgstore.Option{pgstore.WithSubscriptionTimeout(0)}, []string{"WithSubscriptionTimeout(0s)", "positive"}},
		{"nil option", pool, []pgstore.Option{pgstore.WithSchema("s"), nil}, []string{"opts[1] is nil"}},
		{"all at once", nil, []pgstore.Option{pgstore.WithSchema(""), nil, pgstore.WithPollInterval(0)}, []string{"pool is nil", "opts[1] is nil", "WithSchema", "WithPollInterval"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := pgstore.New(tt.pool, tt.opts...)
			require.Error(t, err, "New() = %v, nil; want an error", s)
			assert.Nil(t, s)
			assert.True(t, strings.HasPrefix(err.Error(), "pgstore: New: "), "New() = %q; want the package and function named", err)
			for _, w := range tt.want {
				assert.Contains(t, err.Error(), w)
			}
		})
	}
}

func TestNewAcceptsGoodArguments(t *testing.T) {
	t.Parallel()
	pool := unconnectedPool(t)
	for _, schema := range []string{"eventsource", "Orders", "with space", `quo"te`, "ünïcødé", strings.Repeat("s", pgstore.MaxSchemaLen), "PG_upper"} {
		s, err := pgstore.New(pool, pgstore.WithSchema(schema), pgstore.WithPollInterval(time.Millisecond))
		assert.NoError(t, err, "New(WithSchema(%q))", schema)
		assert.NotNil(t, s)
	}
	s1, _ := pgstore.New(pool, pgstore.WithSchema("a"))
	s2, _ := pgstore.New(pool, pgstore.WithSchema("b"))
	a1, m1 := pgstore.LockKeys(s1, "x")
	a2, _ := pgstore.LockKeys(s2, "x")
	b1, _ := pgstore.LockKeys(s1, "y")
	assert.NotEqual(t, a1, a2, "a stream of two schemas shares an append lock")
	assert.NotEqual(t, a1, b1, "two streams share an append lock")
	assert.NotEqual(t, a1, m1, "appends and Migrate share a lock")
}

// TestQuotedSchema runs a store in a schema whose name needs quoting.
func TestQuotedSchema(t *testing.T) {
	t.Parallel()
	pool := testenv.PostgresPool(t, 4)
	schema := testenv.DropSchemaAtEnd(t, `pgstore "Test"; `+uuid.NewString()[:8])
	s := newStoreIn(t, pool, schema, pgstore.WithPollInterval(time.Hour))
	listening := make(chan uint32, 1)
	pgstore.SetListening(s, func(pid uint32) { listening <- pid })
	ctx := testenv.Context(t, 10*time.Second)
	require.NoError(t, s.Migrate(ctx))
	got, err := s.Append(ctx, "a", eventsource.NoStream, events(2, "test.v1")...)
	require.NoError(t, err)
	require.NoError(t, s.AwaitVisible(ctx))
	assert.Equal(t, got, readVisible(t, ctx, s, 0))

	// Notifications reach subscribers on the channel of the quoted name.
	f := follow(t, s, got[1].Position)
	<-listening
	more, err := s.Append(ctx, "a", eventsource.Exact(2), events(1, "test.v1")...)
	require.NoError(t, err)
	// Woken by the notification, the subscriber polls every 10 ms while
	// other tests' transactions hold the event back.
	require.NoError(t, s.AwaitVisible(ctx))
	assert.Equal(t, more, f.next(t, 1, 5*time.Second))
}

func TestMigrateIsIdempotent(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t, 4)
	ctx := testenv.Context(t, 10*time.Second)
	require.NoError(t, s.Migrate(ctx), "second Migrate")
	require.NoError(t, s.Migrate(ctx), "third Migrate")
	_, err := s.Append(ctx, "a", eventsource.NoStream, events(1, "test.v1")...)
	require.NoError(t, err)
	require.NoError(t, s.Migrate(ctx), "Migrate with events stored")
	assert.Len(t, readVisible(t, ctx, s, 0), 1, "Migrate lost events")
}

func TestMigrateConcurrently(t *testing.T) {
	t.Parallel()
	pool := testenv.PostgresPool(t, 8)
	schema := schemaName(t)
	ctx := testenv.Context(t, 20*time.Second)
	const n = 6
	errs := make([]error, n)
	var wg sync.WaitGroup
	gate := make(chan struct{})
	for i := range n {
		// Stores of their own, as in several processes.
		s := newStoreIn(t, pool, schema)
		wg.Go(func() {
			<-gate
			errs[i] = s.Migrate(ctx)
		})
	}
	close(gate)
	wg.Wait()
	for i, err := range errs {
		assert.NoError(t, err, "Migrate %d", i)
	}
	var versions []int32
	rows, err := pool.Query(ctx, fmt.Sprintf(`SELECT version FROM %q.schema_migrations WHERE component = $1 ORDER BY version`, schema), pgstore.ScopeName)
	require.NoError(t, err)
	for rows.Next() {
		var v int32
		require.NoError(t, rows.Scan(&v))
		versions = append(versions, v)
	}
	require.NoError(t, rows.Err())
	var want []int32
	for v := range pgstore.SchemaVersion {
		want = append(want, int32(v+1))
	}
	assert.Equal(t, want, versions, "schema_migrations")
}

func TestMigrateRefusesNewerSchema(t *testing.T) {
	t.Parallel()
	pool := testenv.PostgresPool(t, 4)
	schema := schemaName(t)
	s := newStoreIn(t, pool, schema)
	ctx := testenv.Context(t, 10*time.Second)
	require.NoError(t, s.Migrate(ctx))
	_, err := pool.Exec(ctx, fmt.Sprintf(`INSERT INTO %q.schema_migrations (component, version) VALUES ($1, 99)`, schema), pgstore.ScopeName)
	require.NoError(t, err)
	err = s.Migrate(ctx)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "version 99, newer than this package's")
}

func TestCallsBeforeMigrateSayWhy(t *testing.T) {
	t.Parallel()
	pool := testenv.PostgresPool(t, 4)
	s := newStoreIn(t, pool, schemaName(t))
	ctx := testenv.Context(t, 10*time.Second)
	_, err := s.Append(ctx, "a", eventsource.Any, events(1, "test.v1")...)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "has Migrate been called?")
	for _, err := range s.ReadAll(ctx, 0) {
		require.Error(t, err)
		assert.Contains(t, err.Error(), "has Migrate been called?")
	}
}

func TestIdempotentReappend(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t, 4)
	ctx := testenv.Context(t, 10*time.Second)
	batch := events(3, "test.v1")
	for i := range batch {
		batch[i].ID = uuid.New()
	}
	first, err := s.Append(ctx, "a", eventsource.NoStream, batch...)
	require.NoError(t, err)
	// A retry, whatever version it expects, returns the stored events.
	for _, expected := range []eventsource.ExpectedVersion{eventsource.NoStream, eventsource.Exact(1), eventsource.Any} {
		again, err := s.Append(ctx, "a", expected, batch...)
		require.NoError(t, err, "retry expecting %v", expected)
		assert.Equal(t, first, again, "retry expecting %v", expected)
	}
	// Ids are global, but an id is a retry only in its own stream: in
	// another it is an error naming both (issue 12 item 6).
	_, err = s.Append(ctx, "b", eventsource.NoStream, batch[1])
	var taken *eventsource.EventIDTakenError
	require.ErrorAs(t, err, &taken)
	assert.Equal(t, eventsource.EventIDTakenError{ID: batch[1].ID, StreamID: "b", StoredIn: "a"}, *taken)
	assert.Empty(t, collect(t, s.ReadStream(ctx, "b", 1)))
	// A batch of stored and new events appends the new ones only.
	more := append(batch[:2:2], events(1, "test.v1")...)
	got, err := s.Append(ctx, "a", eventsource.Exact(3), more...)
	require.NoError(t, err)
	require.Len(t, got, 1)
	assert.Equal(t, int64(4), got[0].Version)
	require.NoError(t, s.AwaitVisible(ctx))
	assert.Len(t, readVisible(t, ctx, s, 0), 4)
}

// Account is an aggregate for TestUnknownEventTypeOnRead.
type Account struct {
	eventsource.Base
	Balance int
}

type Deposited struct{ Amount int }

func (a *Account) Apply(event any) error {
	if e, ok := event.(Deposited); ok {
		a.Balance += e.Amount
	}
	return nil
}

func TestUnknownEventTypeOnRead(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t, 4)
	ctx := testenv.Context(t, 10*time.Second)
	reg := eventsource.NewRegistry()
	eventsource.Register[Deposited](reg, "account.deposited.v1")
	_, err := s.Append(ctx, "account-1", eventsource.NoStream,
		eventsource.NewEvent{Type: "account.deposited.v1", Data: []byte(`{"Amount":5}`)},
		eventsource.NewEvent{Type: "account.frozen.v7", Data: []byte(`{}`)},
	)
	require.NoError(t, err)

	repo, err := eventsource.NewRepository(s, reg, func() *Account { return &Account{} })
	require.NoError(t, err)
	_, err = repo.Load(ctx, "account-1")
	require.ErrorIs(t, err, eventsource.ErrUnknownEventType)
	assert.Contains(t, err.Error(), `"account.frozen.v7"`)
}

func TestRejectsBadInput(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t, 4)
	ctx := testenv.Context(t, 10*time.Second)
	tooMany := events(eventsource.MaxBatch+1, "test.v1")
	nulMetadata := events(1, "test.v1")
	nulMetadata[0].Metadata = map[string]string{"k": "a\x00b"}
	tests := []struct {
		name   string
		stream string
		events []eventsource.NewEvent
	}{
		{"empty stream id", "", events(1, "test.v1")},
		{"oversize batch", "a", tooMany},
		{"no events", "a", nil},
		{"empty type", "a", events(1, "")},
		{"NUL in stream id", "a\x00b", events(1, "test.v1")},
		{"invalid UTF-8 stream id", "a\xff", events(1, "test.v1")},
		{"NUL in type", "a", events(1, "test\x00v1")},
		{"NUL in metadata", "a", nulMetadata},
	}
	for _, tt := range tests {
		got, err := s.Append(ctx, tt.stream, eventsource.Any, tt.events...)
		assert.ErrorIs(t, err, eventsource.ErrInvalidArgument, "Append with %s = %v, %v", tt.name, got, err)
	}
	assert.Empty(t, readVisible(t, ctx, s, 0), "events stored by rejected appends")
	assert.Empty(t, collect(t, s.ReadStream(ctx, "a\x00b", 1)), "ReadStream of an impossible stream id")
}

func TestClosedPool(t *testing.T) {
	t.Parallel()
	s, pool := newStore(t, 4)
	pool.Close()
	ctx := testenv.Context(t, 10*time.Second)
	check := func(what string, err error) {
		t.Helper()
		if assert.Error(t, err, what) {
			assert.Regexp(t, `^pgstore: .*: closed pool`, err.Error(), what)
		}
	}
	_, err := s.Append(ctx, "a", eventsource.Any, events(1, "test.v1")...)
	check("Append", err)
	first := func(seq func(func(eventsource.Event, error) bool)) error {
		for _, err := range seq {
			return err
		}
		return errors.New("yielded nothing")
	}
	check("ReadStream", first(s.ReadStream(ctx, "a", 1)))
	check("ReadAll", first(s.ReadAll(ctx, 0)))
	check("Subscribe", first(s.Subscribe(ctx, 0)))
	_, err = s.LoadSnapshot(ctx, "a")
	check("LoadSnapshot", err)
	check("SaveSnapshot", s.SaveSnapshot(ctx, eventsource.Snapshot{StreamID: "a", Version: 1}))
	check("Migrate", s.Migrate(ctx))
}

// TestSnapshotsWithRepository saves and loads an aggregate through a
// repository that snapshots to the store.
func TestSnapshotsWithRepository(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t, 4)
	ctx := testenv.Context(t, 10*time.Second)
	reg := eventsource.NewRegistry()
	eventsource.Register[Deposited](reg, "account.deposited.v1")
	repo, err := eventsource.NewRepository(s, reg, func() *Account { return &Account{} }, eventsource.WithSnapshots(s, 2))
	require.NoError(t, err)
	a := repo.New("account-1")
	for i := range 5 {
		require.NoError(t, eventsource.Raise(a, Deposited{Amount: i + 1}))
		require.NoError(t, repo.Save(ctx, a))
	}
	snap, err := s.LoadSnapshot(ctx, "account-1")
	require.NoError(t, err)
	assert.Equal(t, int64(4), snap.Version)
	loaded, err := repo.Load(ctx, "account-1")
	require.NoError(t, err)
	assert.Equal(t, 15, loaded.Balance)
	assert.Equal(t, int64(5), loaded.Version())

	// A repository of a new snapshot format ignores the stored snapshot
	// (a wrong one here, so that using it shows), replays, and replaces
	// it at its next snapshot (issue 14 item 12).
	_, err = s.Append(ctx, "account-1", eventsource.Exact(5), eventsource.NewEvent{Type: "account.deposited.v1", Data: []byte(`{"Amount":100}`)})
	require.NoError(t, err)
	require.NoError(t, s.SaveSnapshot(ctx, eventsource.Snapshot{StreamID: "account-1", Version: 6, Data: []byte(`{"Balance":-1}`)}))
	v2, err := eventsource.NewRepository(s, reg, func() *Account { return &Account{} },
		eventsource.WithSnapshots(s, 2), eventsource.WithSnapshotFormat(2))
	require.NoError(t, err)
	loaded, err = v2.Load(ctx, "account-1")
	require.NoError(t, err)
	assert.Equal(t, 115, loaded.Balance, "the snapshot of format 0 was used")
	require.NoError(t, eventsource.Raise(loaded, Deposited{Amount: 1}))
	require.NoError(t, eventsource.Raise(loaded, Deposited{Amount: 1}))
	require.NoError(t, v2.Save(ctx, loaded))
	snap, err = s.LoadSnapshot(ctx, "account-1")
	require.NoError(t, err)
	assert.Equal(t, eventsource.Snapshot{StreamID: "account-1", Version: 8, Format: 2, Data: snap.Data}, snap)

	// DropSnapshot deletes it; the next load replays.
	require.NoError(t, v2.DropSnapshot(ctx, "account-1"))
	_, err = s.LoadSnapshot(ctx, "account-1")
	require.ErrorIs(t, err, eventsource.ErrNotFound)
	loaded, err = v2.Load(ctx, "account-1")
	require.NoError(t, err)
	assert.Equal(t, 117, loaded.Balance)
}

// TestSchemasAreIndependent runs two stores in one database.
func TestSchemasAreIndependent(t *testing.T) {
	t.Parallel()
	pool := testenv.PostgresPool(t, 6)
	ctx := testenv.Context(t, 10*time.Second)
	a := newStoreIn(t, pool, schemaName(t))
	b := newStoreIn(t, pool, schemaName(t))
	require.NoError(t, a.Migrate(ctx))
	require.NoError(t, b.Migrate(ctx))
	ea, err := a.Append(ctx, "s", eventsource.NoStream, events(2, "test.v1")...)
	require.NoError(t, err)
	eb, err := b.Append(ctx, "s", eventsource.NoStream, events(1, "test.v1")...)
	require.NoError(t, err)
	require.NoError(t, b.AwaitVisible(ctx))
	assert.Equal(t, ea, readVisible(t, ctx, a, 0))
	assert.Equal(t, eb, readVisible(t, ctx, b, 0))
}

// TestRecordedAtIsTheInsert holds the append lock while an append waits
// for it: the events are recorded when they are inserted, after the
// wait, not when the append's transaction began (issue 14 item 14).
func TestRecordedAtIsTheInsert(t *testing.T) {
	t.Parallel()
	s, pool := newStore(t, 4)
	ctx := testenv.Context(t, 10*time.Second)
	appendKey, _ := pgstore.LockKeys(s, "a")
	tx, err := pool.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(ctx) }()
	_, err = tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", appendKey)
	require.NoError(t, err)

	type result struct {
		events []eventsource.Event
		err    error
	}
	done := make(chan result, 1)
	go func() {
		got, err := s.Append(ctx, "a", eventsource.NoStream, events(2, "test.v1")...)
		done <- result{got, err}
	}()
	// Wait until the append waits for the lock, then make it wait longer.
	require.Eventually(t, func() bool {
		var waiting bool
		err := pool.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_locks WHERE locktype = 'advisory' AND NOT granted
AND ((classid::bigint << 32) | objid::bigint) = $1)`, appendKey).Scan(&waiting)
		return err == nil && waiting
	}, 5*time.Second, 10*time.Millisecond, "the append never waited for the lock")
	time.Sleep(200 * time.Millisecond)
	var released time.Time
	require.NoError(t, tx.QueryRow(ctx, "SELECT clock_timestamp()").Scan(&released))
	require.NoError(t, tx.Commit(ctx))

	r := <-done
	require.NoError(t, r.err)
	for _, e := range r.events {
		assert.False(t, e.RecordedAt.Before(released), "RecordedAt %v is before the lock was released at %v", e.RecordedAt, released)
	}
	stored := collect(t, s.ReadStream(ctx, "a", 1))
	require.Len(t, stored, 2)
	assert.Equal(t, r.events[0].RecordedAt, stored[0].RecordedAt)
}

// TestStagedUploadsCommitNothing uploads every append's events before the
// lock and goes through each way an append ends (inserted, a conflict, a
// retry, a retry under a recorded command, an ID of another stream): the
// uploads table never keeps a row.
func TestStagedUploadsCommitNothing(t *testing.T) {
	t.Parallel()
	pool := testenv.PostgresPool(t, 4)
	schema := schemaName(t)
	s := newStoreIn(t, pool, schema)
	pgstore.SetStageAbove(s, 0)
	ctx := testenv.Context(t, 10*time.Second)
	require.NoError(t, s.Migrate(ctx))
	batch := events(3, "test.v1")
	for i := range batch {
		batch[i].ID = uuid.New()
	}
	cctx := eventsource.WithCommandID(ctx, "cmd")
	stored, err := s.Append(cctx, "a", eventsource.NoStream, batch...)
	require.NoError(t, err)
	_, err = s.Append(ctx, "a", eventsource.NoStream, events(1, "test.v1")...)
	require.ErrorIs(t, err, eventsource.ErrConcurrencyConflict)
	again, err := s.Append(ctx, "a", eventsource.NoStream, batch...)
	require.NoError(t, err)
	assert.Equal(t, stored, again)
	again, err = s.Append(eventsource.WithCommandID(ctx, "cmd2"), "a", eventsource.NoStream, batch...)
	require.NoError(t, err, "a retry under a new command, which is kept")
	assert.Equal(t, stored, again)
	_, err = s.Append(ctx, "b", eventsource.NoStream, batch[0])
	require.ErrorIs(t, err, eventsource.ErrEventIDTaken)
	var n int
	require.NoError(t, pool.QueryRow(ctx, fmt.Sprintf("SELECT count(*) FROM %q.uploads", schema)).Scan(&n))
	assert.Zero(t, n, "rows left in the uploads table")
}
