package pgcheckpoint_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sync/errgroup"

	"github.com/otelpatterns/patterns/cqrs"
	"github.com/otelpatterns/patterns/cqrs/pgcheckpoint"
	"github.com/otelpatterns/patterns/eventsource"
	"github.com/otelpatterns/patterns/internal/testenv"
)

var _ cqrs.CheckpointStore = (*pgcheckpoint.Store)(nil)

// TestProjectRebuild_rejectBadArguments checks the arguments of Project
// and Rebuild before they touch the database.
func TestProjectRebuild_rejectBadArguments(t *testing.T) {
	s, _, _ := newStore(t)
	ctx := context.Background()
	var nilEvents *eventsource.MemoryStore
	tests := []struct {
		name string
		call func() error
		want []string
	}{
		{"Project: all", func() error { return s.Project(ctx, "", nil, nil) },
			[]string{"pgcheckpoint: Project", "empty projection name", "nil event store", "nil handler"}},
		{"Project: typed nil store", func() error {
			return s.Project(ctx, "p", nilEvents, func(context.Context, pgx.Tx, eventsource.Event) error { return nil })
		}, []string{"nil event store"}},
		{"Rebuild: all", func() error { return s.Rebuild(ctx, "", nil) },
			[]string{"pgcheckpoint: Rebuild", "empty projection name", "nil reset function"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			require.NotPanics(t, func() { err = tt.call() })
			require.Error(t, err)
			for _, w := range tt.want {
				assert.Contains(t, err.Error(), w)
			}
		})
	}
}

func TestNew_rejectsBadArguments(t *testing.T) {
	pool := &pgxpool.Pool{} // never used
	tests := []struct {
		name string
		pool *pgxpool.Pool
		opts []pgcheckpoint.Option
		want []string
	}{
		{"nil pool", nil, nil, []string{"pool is nil"}},
		{"empty schema", pool, []pgcheckpoint.Option{pgcheckpoint.WithSchema("")}, []string{`WithSchema("")`, "empty schema name"}},
		{"reserved schema", pool, []pgcheckpoint.Option{pgcheckpoint.WithSchema("pg_x")}, []string{"reserved"}},
		{"long schema", pool, []pgcheckpoint.Option{pgcheckpoint.WithSchema(string(make([]byte, 64)))}, []string{"64 bytes"}},
		{"negative check interval", pool, []pgcheckpoint.Option{pgcheckpoint.WithCheckInterval(-time.Second)},
			[]string{"WithCheckInterval(-1s): must not be negative"}},
		{"nil option", pool, []pgcheckpoint.Option{pgcheckpoint.WithSchema("s"), nil}, []string{"pgcheckpoint: New: ", "opts[1] is nil"}},
		{"all at once", nil, []pgcheckpoint.Option{nil, pgcheckpoint.WithSchema(""), pgcheckpoint.WithCheckInterval(-1)},
			[]string{"pool is nil", "opts[0] is nil", "empty schema name", "WithCheckInterval(-1ns)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := pgcheckpoint.New(tt.pool, tt.opts...)
			require.Error(t, err, "New() = %v; want an error", s)
			for _, w := range tt.want {
				assert.Contains(t, err.Error(), w)
			}
			assert.Contains(t, err.Error(), "pgcheckpoint: New:")
		})
	}
}

func TestCheckpoint_loadSaveUpsert(t *testing.T) {
	s, _, _ := newStore(t)
	ctx := testenv.Context(t, 10*time.Second)

	pos, err := s.LoadCheckpoint(ctx, "unknown")
	require.NoError(t, err)
	assert.Zero(t, pos, "LoadCheckpoint(unknown)")

	require.NoError(t, s.SaveCheckpoint(ctx, "a", 7))
	require.NoError(t, s.SaveCheckpoint(ctx, "b", 3))
	require.NoError(t, s.SaveCheckpoint(ctx, "a", 12)) // upsert
	for name, want := range map[string]int64{"a": 12, "b": 3, "c": 0} {
		got, err := s.LoadCheckpoint(ctx, name)
		require.NoError(t, err)
		assert.Equal(t, want, got, "LoadCheckpoint(%q)", name)
	}
	require.NoError(t, s.SaveCheckpoint(ctx, "a", 0)) // backwards: a replay
	got, err := s.LoadCheckpoint(ctx, "a")
	require.NoError(t, err)
	assert.Zero(t, got, "LoadCheckpoint(a) after saving 0")
}

func TestMigrate_idempotentAndConcurrent(t *testing.T) {
	pool := testenv.PostgresPool(t, 0)
	schema := schemaName(t)
	ctx := testenv.Context(t, 10*time.Second)
	var g errgroup.Group
	for range 4 {
		g.Go(func() error {
			s, err := pgcheckpoint.New(pool, pgcheckpoint.WithSchema(schema))
			if err != nil {
				return err
			}
			return s.Migrate(ctx)
		})
	}
	require.NoError(t, g.Wait())
	s, err := pgcheckpoint.New(pool, pgcheckpoint.WithSchema(schema))
	require.NoError(t, err)
	require.NoError(t, s.SaveCheckpoint(ctx, "x", 5))
	require.NoError(t, s.Migrate(ctx))
	got, err := s.LoadCheckpoint(ctx, "x")
	require.NoError(t, err)
	assert.Equal(t, int64(5), got, "LoadCheckpoint after a second Migrate")
}

func TestLoadCheckpoint_beforeMigrateHints(t *testing.T) {
	pool := testenv.PostgresPool(t, 0)
	s, err := pgcheckpoint.New(pool, pgcheckpoint.WithSchema(schemaName(t)))
	require.NoError(t, err)
	_, err = s.LoadCheckpoint(context.Background(), "x")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "has Migrate been called?")
}

// TestMigrate_adoptsAnEarlierTable: an earlier release created the
// checkpoints table and recorded no version; Migrate adopts it, keeping
// the checkpoints, and records the version.
func TestMigrate_adoptsAnEarlierTable(t *testing.T) {
	pool := testenv.PostgresPool(t, 0)
	schema := schemaName(t)
	ctx := testenv.Context(t, 10*time.Second)
	q := pgx.Identifier{schema}.Sanitize()
	for _, stmt := range []string{
		"CREATE SCHEMA " + q,
		"CREATE TABLE " + q + ".checkpoints (name text PRIMARY KEY, position bigint NOT NULL, updated_at timestamptz DEFAULT now())",
		"INSERT INTO " + q + ".checkpoints (name, position) VALUES ('x', 9)",
	} {
		_, err := pool.Exec(ctx, stmt)
		require.NoError(t, err, stmt)
	}
	s, err := pgcheckpoint.New(pool, pgcheckpoint.WithSchema(schema))
	require.NoError(t, err)
	require.NoError(t, s.Migrate(ctx))
	got, err := s.LoadCheckpoint(ctx, "x")
	require.NoError(t, err)
	assert.Equal(t, int64(9), got)
	var v int
	require.NoError(t, pool.QueryRow(ctx, "SELECT max(version) FROM "+q+".schema_migrations WHERE component = $1", pgcheckpoint.ScopeName).Scan(&v))
	assert.Equal(t, pgcheckpoint.SchemaVersion, v)
}
