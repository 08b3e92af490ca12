package pgschema_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelpatterns/patterns/cqrs/pgcheckpoint"
	"github.com/otelpatterns/patterns/eventsource"
	"github.com/otelpatterns/patterns/eventsource/pgstore"
	"github.com/otelpatterns/patterns/internal/testenv"
	"github.com/otelpatterns/patterns/saga"
	"github.com/otelpatterns/patterns/saga/pglog"
)

// pkg is one of the module's PostgreSQL packages, as a schema holds it.
type pkg struct {
	name string
	// migrate migrates the package's tables in schema.
	migrate func(ctx context.Context, pool *pgxpool.Pool, schema string) error
	// use writes and reads back through the package, failing the test if
	// its tables are missing or wrong.
	use func(t *testing.T, ctx context.Context, pool *pgxpool.Pool, schema string)
}

var pkgs = []pkg{
	{
		name: "pgstore",
		migrate: func(ctx context.Context, pool *pgxpool.Pool, schema string) error {
			s, err := pgstore.New(pool, pgstore.WithSchema(schema))
			if err != nil {
				return err
			}
			return s.Migrate(ctx)
		},
		use: func(t *testing.T, ctx context.Context, pool *pgxpool.Pool, schema string) {
			s, err := pgstore.New(pool, pgstore.WithSchema(schema))
			require.NoError(t, err)
			_, err = s.Append(ctx, "a", eventsource.Any, eventsource.NewEvent{Type: "test.v1"})
			require.NoError(t, err, "pgstore: Append")
			require.NoError(t, s.SaveSnapshot(ctx, eventsource.Snapshot{StreamID: "a", Version: 1, Format: 2}), "pgstore: SaveSnapshot")
			n := 0
			for _, err := range s.ReadStream(ctx, "a", 1) {
				require.NoError(t, err, "pgstore: ReadStream")
				n++
			}
			assert.Positive(t, n, "pgstore: ReadStream")
		},
	},
	{
		name: "pglog",
		migrate: func(ctx context.Context, pool *pgxpool.Pool, schema string) error {
			l, err := pglog.New(pool, pglog.WithSchema(schema))
			if err != nil {
				return err
			}
			return l.Migrate(ctx)
		},
		use: func(t *testing.T, ctx context.Context, pool *pgxpool.Pool, schema string) {
			l, err := pglog.New(pool, pglog.WithSchema(schema))
			require.NoError(t, err)
			id := fmt.Sprintf("saga-%d", time.Now().UnixNano())
			require.NoError(t, l.Create(ctx, saga.Record{ID: id, Name: "test", Version: 1}, "me", time.Minute), "pglog: Create")
			require.NoError(t, l.Append(ctx, id, "me", saga.Transition{Seq: 1, Status: saga.Completed}), "pglog: Append")
			rec, _, err := l.Load(ctx, id)
			require.NoError(t, err, "pglog: Load")
			assert.Equal(t, saga.Completed, rec.Status)
		},
	},
	{
		name: "pgcheckpoint",
		migrate: func(ctx context.Context, pool *pgxpool.Pool, schema string) error {
			s, err := pgcheckpoint.New(pool, pgcheckpoint.WithSchema(schema))
			if err != nil {
				return err
			}
			return s.Migrate(ctx)
		},
		use: func(t *testing.T, ctx context.Context, pool *pgxpool.Pool, schema string) {
			s, err := pgcheckpoint.New(pool, pgcheckpoint.WithSchema(schema))
			require.NoError(t, err)
			require.NoError(t, s.SaveCheckpoint(ctx, "p", 7), "pgcheckpoint: SaveCheckpoint")
			pos, err := s.LoadCheckpoint(ctx, "p")
			require.NoError(t, err, "pgcheckpoint: LoadCheckpoint")
			assert.Equal(t, int64(7), pos)
		},
	},
}

// TestPackagesShareASchema migrates every pair of the module's PostgreSQL
// packages into one schema, in both orders, and all three at once from
// several instances each, and uses each: versions kept per schema made
// pgstore skip its events table after pglog, and pglog fail after
// pgstore (issue 14 item 10).
func TestPackagesShareASchema(t *testing.T) {
	pool := testenv.PostgresPool(t, 12)
	ctx := testenv.Context(t, 60*time.Second)
	for _, first := range pkgs {
		for _, second := range pkgs {
			if first.name == second.name {
				continue
			}
			t.Run(first.name+" then "+second.name, func(t *testing.T) {
				schema := testenv.Schema(t, "pgschema_test_")
				for _, p := range []pkg{first, second} {
					require.NoError(t, p.migrate(ctx, pool, schema), "%s: Migrate", p.name)
				}
				for _, p := range []pkg{first, second} {
					require.NoError(t, p.migrate(ctx, pool, schema), "%s: Migrate again", p.name)
					p.use(t, ctx, pool, schema)
				}
			})
		}
	}
	t.Run("concurrently", func(t *testing.T) {
		schema := testenv.Schema(t, "pgschema_test_")
		var wg sync.WaitGroup
		gate := make(chan struct{})
		for range 3 {
			for _, p := range pkgs {
				wg.Go(func() {
					<-gate
					assert.NoError(t, p.migrate(ctx, pool, schema), "%s: Migrate", p.name)
				})
			}
		}
		close(gate)
		wg.Wait()
		for _, p := range pkgs {
			p.use(t, ctx, pool, schema)
		}
	})
}

// TestSharedLegacySchemaIsRepaired starts from what earlier releases left
// in a schema shared by pglog and pgstore: pglog's version 1, then
// pgstore's Migrate, which took version 1 for its own, skipped its events
// table and created its commands table as version 2. Both packages then
// migrate, in either order, and work.
func TestSharedLegacySchemaIsRepaired(t *testing.T) {
	pool := testenv.PostgresPool(t, 4)
	ctx := testenv.Context(t, 30*time.Second)
	for _, order := range [][]pkg{{pkgs[0], pkgs[1]}, {pkgs[1], pkgs[0]}} {
		t.Run(order[0].name+" first", func(t *testing.T) {
			schema := testenv.Schema(t, "pgschema_test_")
			q := pgx.Identifier{schema}.Sanitize()
			require.NoError(t, pkgs[1].migrate(ctx, pool, schema)) // pglog's tables
			for _, stmt := range []string{
				"DROP TABLE " + q + ".schema_migrations",
				"CREATE TABLE " + q + ".schema_migrations (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())",
				"INSERT INTO " + q + ".schema_migrations (version) VALUES (1), (2)",
				"CREATE TABLE " + q + `.commands (
	command_id  text NOT NULL,
	stream_id   text NOT NULL,
	recorded_at timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (command_id, stream_id)
)`,
			} {
				_, err := pool.Exec(ctx, stmt)
				require.NoError(t, err, stmt)
			}
			for _, p := range order {
				require.NoError(t, p.migrate(ctx, pool, schema), "%s: Migrate", p.name)
			}
			for _, p := range order {
				p.use(t, ctx, pool, schema)
			}
		})
	}
}
