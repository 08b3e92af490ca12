package pgstore_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelpatterns/patterns/eventsource"
	"github.com/otelpatterns/patterns/eventsource/pgstore"
	"github.com/otelpatterns/patterns/internal/testenv"
)

// TestMigrateUpgradesVersion3InPlace builds the tables of release 3 (one
// append lock per schema, positions from a sequence), stores events the
// way that release did, and migrates: the events keep their positions,
// below every new one; readers read old and new events in one order; and
// an insert of that release, which takes its position from the sequence,
// now fails rather than land below positions readers have passed.
func TestMigrateUpgradesVersion3InPlace(t *testing.T) {
	t.Parallel()
	pool := testenv.PostgresPool(t, 4)
	schema := schemaName(t)
	s := newStoreIn(t, pool, schema)
	ctx := testenv.Context(t, 20*time.Second)
	require.NoError(t, pgstore.MigrateTo(ctx, s, 3))
	q := pgx.Identifier{schema}.Sanitize()
	oldInsert := fmt.Sprintf(`INSERT INTO %s.events (id, stream_id, version, type, data) VALUES ($1, $2, $3, 'test.v1', '') RETURNING position`, q)
	var old []int64
	for v := int64(1); v <= 3; v++ {
		var pos int64
		require.NoError(t, pool.QueryRow(ctx, oldInsert, uuid.New(), "a", v).Scan(&pos))
		old = append(old, pos)
	}
	assert.Equal(t, []int64{1, 2, 3}, old, "release 3 positions")

	require.NoError(t, s.Migrate(ctx))
	var version int
	require.NoError(t, pool.QueryRow(ctx, fmt.Sprintf(`SELECT max(version) FROM %s.schema_migrations WHERE component = $1`, q),
		pgstore.ScopeName).Scan(&version))
	assert.Equal(t, pgstore.SchemaVersion, version)
	require.NoError(t, s.Migrate(ctx), "a second Migrate")

	appended, err := s.Append(ctx, "a", eventsource.Exact(3), events(2, "test.v1")...)
	require.NoError(t, err, "appending to a stream of release 3")
	assert.Equal(t, int64(4), appended[0].Version)
	assert.Greater(t, appended[0].Position, old[2], "a new position is below an old one")
	_, err = s.Append(ctx, "b", eventsource.NoStream, events(1, "test.v1")...)
	require.NoError(t, err)

	all := readVisible(t, ctx, s, 0)
	require.Len(t, all, 6)
	for i, e := range all[:3] {
		assert.Equal(t, old[i], e.Position, "event %d kept its position", i)
	}
	assert.Equal(t, appended, all[3:5])
	from3 := readVisible(t, ctx, s, 3)
	assert.Equal(t, all[3:], from3, "reading on from a checkpoint of release 3")

	var pos int64
	err = pool.QueryRow(ctx, oldInsert, uuid.New(), "c", 1).Scan(&pos)
	require.Error(t, err, "an insert of release 3 took position %d", pos)
	assert.Contains(t, err.Error(), "position", "the failure names the position")
	var seq *int64
	require.NoError(t, pool.QueryRow(ctx, fmt.Sprintf(`SELECT seq FROM %s.events WHERE position = $1`, q), appended[1].Position).Scan(&seq))
	require.NotNil(t, seq, "new events are numbered in seq")
	assert.Greater(t, *seq, int64(3), "seq goes on from release 3's positions")
}

// TestMigrateRefusesPositionsAboveTheNewOnes: a table of release 3 whose
// positions reach past the first that migration 4 would give (a bulk
// import with positions of its own) is not migrated, and keeps working
// as it was.
func TestMigrateRefusesPositionsAboveTheNewOnes(t *testing.T) {
	t.Parallel()
	pool := testenv.PostgresPool(t, 4)
	schema := schemaName(t)
	s := newStoreIn(t, pool, schema)
	ctx := testenv.Context(t, 20*time.Second)
	require.NoError(t, pgstore.MigrateTo(ctx, s, 3))
	q := pgx.Identifier{schema}.Sanitize()
	_, err := pool.Exec(ctx, fmt.Sprintf(`INSERT INTO %s.events (position, id, stream_id, version, type, data) VALUES ($1, $2, 'a', 1, 'test.v1', '')`, q),
		int64(1)<<62, uuid.New())
	require.NoError(t, err)
	err = s.Migrate(ctx)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "renumber")
	var version int
	require.NoError(t, pool.QueryRow(ctx, fmt.Sprintf(`SELECT max(version) FROM %s.schema_migrations WHERE component = $1`, q),
		pgstore.ScopeName).Scan(&version))
	assert.Equal(t, 3, version, "a failed Migrate changed the version")
}
