package pgstore_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelpatterns/patterns/eventsource"
	"github.com/otelpatterns/patterns/eventsource/pgstore"
	"github.com/otelpatterns/patterns/internal/testenv"
)

// TestMigrateAddsCommands upgrades a schema of version 1 holding events
// and appends under a command ID.
func TestMigrateAddsCommands(t *testing.T) {
	t.Parallel()
	pool := testenv.PostgresPool(t, 4)
	schema := schemaName(t)
	ctx := testenv.Context(t, 10*time.Second)
	q := pgx.Identifier{schema}.Sanitize()
	for _, sql := range []string{
		"CREATE SCHEMA " + q,
		"CREATE TABLE " + q + ".schema_migrations (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())",
		strings.ReplaceAll(pgstore.Migration(1), "{s}", q),
		"INSERT INTO " + q + ".schema_migrations (version) VALUES (1)",
		"INSERT INTO " + q + ".events (id, stream_id, version, type, data) VALUES (gen_random_uuid(), 'a', 1, 'test.v1', '')",
	} {
		_, err := pool.Exec(ctx, sql)
		require.NoError(t, err, sql)
	}
	s := newStoreIn(t, pool, schema)
	require.NoError(t, s.Migrate(ctx))

	cctx := eventsource.WithCommandID(ctx, "cmd-1")
	got, err := s.Append(cctx, "a", eventsource.Exact(1), events(1, "test.v1")...)
	require.NoError(t, err)
	assert.Equal(t, int64(2), got[0].Version)
	_, err = s.Append(cctx, "a", eventsource.Exact(2), events(1, "test.v1")...)
	require.ErrorIs(t, err, eventsource.ErrDuplicateCommand)
	assert.Len(t, collect(t, s.ReadStream(ctx, "a", 1)), 2)
}

// TestCommandCommitsWithEvents stalls an append under a command ID in
// its transaction until the server ends its session: neither its events
// nor its command are kept, and the command may be appended again. Once
// an append commits, both are kept.
func TestCommandCommitsWithEvents(t *testing.T) {
	t.Parallel()
	pool := testenv.PostgresPool(t, 4)
	s := newStoreIn(t, pool, schemaName(t), pgstore.WithAppendIdleTimeout(200*time.Millisecond))
	var stall atomic.Bool
	stall.Store(true)
	pgstore.SetBeforeCommit(s, func(ctx context.Context, streamID string) {
		if stall.Load() {
			time.Sleep(600 * time.Millisecond) // as a frozen process would
		}
	})
	ctx := testenv.Context(t, 10*time.Second)
	require.NoError(t, s.Migrate(ctx))
	cctx := eventsource.WithCommandID(ctx, "cmd-1")
	_, err := s.Append(cctx, "a", eventsource.NoStream, events(1, "test.v1")...)
	require.Error(t, err, "Append whose session ended before its commit")
	require.NotErrorIs(t, err, eventsource.ErrDuplicateCommand)
	ok, err := s.CommandRecorded(ctx, "cmd-1")
	require.NoError(t, err)
	assert.False(t, ok, "CommandRecorded after a failed commit")
	assert.Empty(t, collect(t, s.ReadStream(ctx, "a", 1)))

	stall.Store(false)
	got, err := s.Append(cctx, "a", eventsource.NoStream, events(1, "test.v1")...)
	require.NoError(t, err, "Append retried")
	_, err = s.Append(cctx, "a", eventsource.NoStream, events(1, "test.v1")...)
	var dup *eventsource.DuplicateCommandError
	require.ErrorAs(t, err, &dup)
	assert.Equal(t, eventsource.DuplicateCommandError{CommandID: "cmd-1", StreamID: "a"}, *dup)
	assert.Equal(t, got, collect(t, s.ReadStream(ctx, "a", 1)))
	ok, err = s.CommandRecorded(ctx, "cmd-1")
	require.NoError(t, err)
	assert.True(t, ok, "CommandRecorded after the commit")
	ok, err = s.CommandRecorded(ctx, "cmd-2")
	require.NoError(t, err)
	assert.False(t, ok, "CommandRecorded of another command")
}

// TestCommandRecordedBadIDs asks about IDs that Append rejects: none is
// recorded.
func TestCommandRecordedBadIDs(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t, 2)
	ctx := testenv.Context(t, 10*time.Second)
	for _, id := range []string{"", "\xff", "a\x00", strings.Repeat("x", eventsource.MaxCommandIDLen+1)} {
		ok, err := s.CommandRecorded(ctx, id)
		assert.NoError(t, err, "CommandRecorded(%q)", id)
		assert.False(t, ok, "CommandRecorded(%q)", id)
	}
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	_, err := s.CommandRecorded(canceled, "x")
	require.ErrorIs(t, err, context.Canceled)
}
