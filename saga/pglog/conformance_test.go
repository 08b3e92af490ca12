package pglog_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/otelpatterns/patterns/internal/testenv"
	"github.com/otelpatterns/patterns/saga"
	"github.com/otelpatterns/patterns/saga/logtest"
)

// TestConformance runs the suite every saga.Log passes, each subtest
// against a schema of its own.
func TestConformance(t *testing.T) {
	t.Parallel()
	logtest.Run(t, func(t *testing.T) saga.Log {
		l, _, _ := newLog(t, 10)
		return l
	})
}

// TestConformanceSharedSchema runs the suite with every subtest on one
// schema, as the services sharing a database do: the subtests' sagas sit
// side by side.
func TestConformanceSharedSchema(t *testing.T) {
	t.Parallel()
	l, _, _ := newLog(t, 10)
	logtest.Run(t, func(t *testing.T) saga.Log { return l })
}

// TestConformanceSimpleProtocol runs the suite on a pool that sends its
// queries with the simple protocol, as behind PgBouncer in transaction
// mode: the arguments travel as literals, not typed values.
func TestConformanceSimpleProtocol(t *testing.T) {
	t.Parallel()
	logtest.Run(t, func(t *testing.T) saga.Log {
		cfg, err := pgxpool.ParseConfig(testenv.PostgresURL(t))
		require.NoError(t, err)
		cfg.ConnConfig.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
		pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
		require.NoError(t, err)
		t.Cleanup(pool.Close)
		l := newLogIn(t, pool, schemaName(t))
		require.NoError(t, l.Migrate(testenv.Context(t, 10*time.Second)))
		return l
	})
}
