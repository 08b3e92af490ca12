package pgcheckpoint

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel/metric"

	"github.com/otelpatterns/patterns/cqrs"
	"github.com/otelpatterns/patterns/eventsource"
	"github.com/otelpatterns/patterns/internal/brief"
	"github.com/otelpatterns/patterns/internal/pgschema"
	"github.com/otelpatterns/patterns/internal/pgtel"
	"github.com/otelpatterns/patterns/internal/telemetry"
)

// ScopeName is the instrumentation scope name of the package's tracer and
// meter: its import path.
const ScopeName = "github.com/otelpatterns/patterns/cqrs/pgcheckpoint"

// Store keeps projection checkpoints in a PostgreSQL table, and runs
// projections whose read models live in the same database exactly once
// ([Store.Project]). Create it with [New] and its table with
// [Store.Migrate].
//
// A Store is safe for concurrent use, also by several processes sharing
// the database. It does not own the pool: close the pool after its last
// call.
type Store struct {
	pool   *pgxpool.Pool
	schema string
	tel    *pgtel.Ops[op]
	meter  metric.Meter
	sql    statements
	watch  time.Duration

	// rebuilt wakes the Project calls of this store when Rebuild resets a
	// checkpoint: rebuilds is closed and replaced at each Rebuild.
	mu       sync.Mutex
	rebuilds chan struct{}

	// beforeCommit, set only by tests (export_test.go) before the store is
	// used, runs in the transaction of each event handled by Project, after
	// handle and the checkpoint update and before the commit.
	beforeCommit func(ctx context.Context, e eventsource.Event)
}

type statements struct {
	schema, load, save, ensure, lock string
}

func newStatements(schema string) statements {
	q := pgx.Identifier{schema}.Sanitize()
	return statements{
		schema: q,
		load:   `SELECT position FROM ` + q + `.checkpoints WHERE name = $1`,
		save: `INSERT INTO ` + q + `.checkpoints (name, position) VALUES ($1, $2)
ON CONFLICT (name) DO UPDATE SET position = excluded.position, updated_at = now()`,
		ensure: `INSERT INTO ` + q + `.checkpoints (name, position) VALUES ($1, 0) ON CONFLICT (name) DO NOTHING`,
		lock:   `SELECT position FROM ` + q + `.checkpoints WHERE name = $1 FOR UPDATE`,
	}
}

var _ cqrs.CheckpointStore = (*Store)(nil)

// New returns a store that keeps its table in the schema of [WithSchema]
// ("cqrs" by default) of the pool's database. It does not touch the
// database: call [Store.Migrate] to create the table. It returns an error
// naming each bad argument: a nil pool, a bad schema name ([WithSchema]),
// a negative [WithCheckInterval], a nil option ("opts[i] is nil").
func New(pool *pgxpool.Pool, opts ...Option) (*Store, error) {
	c := config{schema: DefaultSchema, watch: DefaultCheckInterval}
	var errs []error
	for i, o := range opts {
		if o == nil {
			errs = append(errs, fmt.Errorf("opts[%d] is nil", i))
			continue
		}
		o.apply(&c)
	}
	if pool == nil {
		errs = append(errs, errors.New("pool is nil"))
	}
	if err := pgschema.CheckName(c.schema, MaxSchemaLen); err != nil {
		errs = append(errs, fmt.Errorf("WithSchema(%s): %w", brief.Quote(c.schema), err))
	}
	if c.watch < 0 {
		errs = append(errs, fmt.Errorf("WithCheckInterval(%v): must not be negative (0 turns the check off)", c.watch))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("pgcheckpoint: New: %w", err)
	}
	return &Store{
		pool:   pool,
		schema: c.schema,
		tel: pgtel.New[op](pool, c.schema, telemetry.Tracer(c.tracerProvider, ScopeName),
			telemetry.Meter(c.meterProvider, ScopeName), ops[:], c.optIn),
		meter:    telemetry.Meter(c.meterProvider, ScopeName),
		sql:      newStatements(c.schema),
		watch:    c.watch,
		rebuilds: make(chan struct{}),
	}, nil
}

// migrations are the versions of the store's table: migrations[i]
// upgrades it from version i to i+1. "{s}" stands for the quoted schema
// name. Released migrations are never changed; a change of the table is a
// new migration.
var migrations = [...]string{
	// 1: checkpoints.
	`CREATE TABLE {s}.checkpoints (
	name       text PRIMARY KEY,
	position   bigint NOT NULL,
	updated_at timestamptz DEFAULT now()
)`,
}

// released names the table that each migration released before versions
// were kept creates: an earlier release created the table without
// recording a version, and [Store.Migrate] adopts it.
var released = []string{"checkpoints"}

// SchemaVersion is the version of the table that [Store.Migrate] brings a
// schema to.
const SchemaVersion = len(migrations)

// Migrate creates the store's schema, unless it exists, and its table:
//
//	checkpoints(name text PRIMARY KEY, position bigint NOT NULL,
//	            updated_at timestamptz DEFAULT now())
//
// or upgrades it to [SchemaVersion], recording the version in the
// schema's schema_migrations table (which it creates). The schema may be
// shared with the read models' tables and with those of
// eventsource/pgstore and saga/pglog: schema_migrations keeps each
// package's versions apart (under its import path), and Migrate takes
// the same transaction advisory lock, derived from the schema name, as
// theirs. So it is idempotent and safe to run from several processes at
// once, and alongside the other packages' migrations. A checkpoints table
// that an earlier release created (which kept no version) is adopted.
func (s *Store) Migrate(ctx context.Context) error {
	ctx, span, start := s.tel.Start(ctx, opMigrate)
	err := pgschema.MigrateComponent(ctx, s.pool, s.schema, pgschema.Component{
		Name: ScopeName, Released: released, Migrations: migrations[:],
	})
	s.tel.End(ctx, span, opMigrate, start, err)
	if err != nil {
		return fmt.Errorf("pgcheckpoint: migrating schema %s: %w", brief.Quote(s.schema), pgschema.Err(ctx, err))
	}
	return nil
}

// LoadCheckpoint implements [cqrs.CheckpointStore.LoadCheckpoint]: it
// returns the position saved for name, or 0 if there is none.
func (s *Store) LoadCheckpoint(ctx context.Context, name string) (int64, error) {
	ctx, span, start := s.tel.Start(ctx, opLoad)
	var pos int64
	err := s.pool.QueryRow(ctx, s.sql.load, name).Scan(&pos)
	if errors.Is(err, pgx.ErrNoRows) {
		err = nil // no checkpoint: 0
	}
	s.tel.End(ctx, span, opLoad, start, err)
	if err != nil {
		return 0, fmt.Errorf("pgcheckpoint: loading checkpoint %s: %w", brief.Quote(name), pgschema.Err(ctx, err))
	}
	return pos, nil
}

// SaveCheckpoint implements [cqrs.CheckpointStore.SaveCheckpoint]: it sets
// the checkpoint of name to position, creating it if need be. It does not
// refuse to move a checkpoint backwards, which is how a projection is
// replayed.
func (s *Store) SaveCheckpoint(ctx context.Context, name string, position int64) error {
	ctx, span, start := s.tel.Start(ctx, opSave)
	_, err := s.pool.Exec(ctx, s.sql.save, name, position)
	s.tel.End(ctx, span, opSave, start, err)
	if err != nil {
		return fmt.Errorf("pgcheckpoint: saving checkpoint %s at %d: %w", brief.Quote(name), position, pgschema.Err(ctx, err))
	}
	return nil
}
