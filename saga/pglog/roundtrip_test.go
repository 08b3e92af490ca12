package pglog_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/otelpatterns/patterns/internal/testenv"
	"github.com/otelpatterns/patterns/saga"
	"github.com/otelpatterns/patterns/saga/pglog"
)

// statementCounter is a pgx tracer that counts the statements sent to the
// server, by their first word, and the round trips of each (a statement
// pgx prepares first costs one more: its Prepare is counted apart).
type statementCounter struct {
	mu       sync.Mutex
	on       bool
	byVerb   map[string]int
	prepares int
}

func (c *statementCounter) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.on {
		verb, _, _ := strings.Cut(strings.TrimSpace(d.SQL), " ")
		c.byVerb[strings.ToUpper(verb)]++
	}
	return ctx
}

func (c *statementCounter) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

func (c *statementCounter) TracePrepareStart(ctx context.Context, _ *pgx.Conn, d pgx.TracePrepareStartData) context.Context {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.on {
		c.prepares++
	}
	return ctx
}

func (c *statementCounter) TracePrepareEnd(context.Context, *pgx.Conn, pgx.TracePrepareEndData) {}

// TestSagaStatements counts, at the driver, the statements that a saga of
// three no-op steps sends to PostgreSQL from Start to the end of Wait, in
// steady state (statements prepared already): the log's writes and
// nothing else (no Load, no Renew, no Claim on the way), as many as the
// raw-pgx-batched baseline of BenchmarkSagaThroughput sends.
func TestSagaStatements(t *testing.T) {
	cfg, err := pgxpool.ParseConfig(testenv.PostgresURL(t))
	require.NoError(t, err)
	cfg.MaxConns = 1 // one connection: prepared once, then reused
	counter := &statementCounter{byVerb: map[string]int{}}
	cfg.ConnConfig.Tracer = counter
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	l, err := pglog.New(pool, pglog.WithSchema(schemaName(t)))
	require.NoError(t, err)
	ctx := testenv.Context(t, 20*time.Second)
	require.NoError(t, l.Migrate(ctx))
	o, err := saga.NewOrchestrator(l)
	require.NoError(t, err)
	defer func() { require.NoError(t, o.Close(context.Background())) }()
	def := benchDefinition(t)
	run := func() {
		id, err := o.Start(ctx, def, benchOrder{ID: "order-1", Customer: "Ada", Cents: 6400})
		require.NoError(t, err)
		st, err := o.Wait(ctx, id)
		require.NoError(t, err)
		require.Equal(t, saga.Completed, st)
	}
	run() // prepares the statements
	const sagas = 20
	counter.mu.Lock()
	counter.on = true
	counter.mu.Unlock()
	for range sagas {
		run()
	}
	counter.mu.Lock()
	defer counter.mu.Unlock()
	t.Logf("statements per %d sagas: %v, prepares: %d", sagas, counter.byVerb, counter.prepares)
	require.Equal(t, map[string]int{"INSERT": sagas, "WITH": sagas * (callsPerSaga - 1)}, counter.byVerb, "statements")
	require.Zero(t, counter.prepares, "prepares in steady state")
}
