package pgstore_test

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelpatterns/patterns/eventsource"
	"github.com/otelpatterns/patterns/internal/testenv"
)

// TestFailedRollbackEndsTheAppend makes the ROLLBACK of a direct append
// fail: the append's insert hits the unique violation of an event ID
// taken by another stream, which leaves its connection in the failed
// transaction, and its backend is terminated before the store sends the
// ROLLBACK. The append must end there with an error, and send nothing
// more on that connection: the checked append that a unique violation
// otherwise goes on to would run on a connection whose state the store
// no longer knows (still in the failed transaction, for all it can tell).
func TestFailedRollbackEndsTheAppend(t *testing.T) {
	t.Parallel()
	killer := newBackendKiller(t)
	cfg, err := pgxpool.ParseConfig(testenv.PostgresURL(t))
	require.NoError(t, err)
	cfg.MaxConns = 2
	cfg.ConnConfig.Tracer = killer
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	s := newStoreIn(t, pool, schemaName(t))
	ctx := testenv.Context(t, 20*time.Second)
	require.NoError(t, s.Migrate(ctx))

	e := events(1, "test.v1")[0]
	e.ID = uuid.New()
	_, err = s.Append(ctx, "a", eventsource.NoStream, e)
	require.NoError(t, err)

	killer.arm()
	_, err = s.Append(ctx, "b", eventsource.NoStream, e)
	killer.mu.Lock()
	killed, killErr, batchErr, after := killer.killed, killer.killErr, killer.batchErr, killer.after
	killer.mu.Unlock()
	require.NoError(t, killErr, "terminating the backend")
	require.True(t, killed, "the backend was terminated before the ROLLBACK")
	var pgErr *pgconn.PgError
	require.True(t, errors.As(batchErr, &pgErr), "the direct append's batch failed with %v", batchErr)
	require.Equal(t, "23505", pgErr.Code, "a unique violation: %v", pgErr)

	require.Error(t, err)
	t.Logf("the append's error: %v", err)
	assert.Empty(t, after, "statements sent on the connection after its ROLLBACK failed")
	assert.NotErrorIs(t, err, eventsource.ErrEventIDTaken, "the checked append's verdict, which never ran")
	// The unique violation is in the message, but not in the chain: the
	// store's retries and needsChecks act on a *pgconn.PgError of code
	// 23505, which would send the append on to the checked one again.
	assert.Contains(t, err.Error(), "23505")
	if errors.As(err, &pgErr) {
		assert.NotEqual(t, "23505", pgErr.Code, "the unique violation is in the error chain: %v", err)
	}
	// What is in the chain is the ROLLBACK's failure: the server's notice
	// that it terminated the session (57P01, which the client reads in
	// every run here), or the connection's end, if the client reads that
	// first.
	assert.True(t, errors.As(err, &pgErr) && pgErr.Code == "57P01" || isConnEnd(err),
		"the error wraps the ROLLBACK's failure: %#v", err)

	// The pool dropped the dead connection: the next append works.
	_, err = s.Append(ctx, "b", eventsource.NoStream, events(1, "test.v1")...)
	require.NoError(t, err)
}

// backendKiller is a pgx tracer that, once armed, terminates the backend
// of the first connection that a batch leaves in a failed transaction
// (as a unique violation leaves a direct append's), from a connection of
// its own, as the batch ends: before its caller can send anything else.
// It then records what that connection is asked to run.
type backendKiller struct {
	pool *pgxpool.Pool // the killer's, without the tracer

	mu       sync.Mutex
	armed    bool
	victim   *pgx.Conn
	batchErr error    // the error of the victim's failed batch
	killed   bool     // pg_terminate_backend's answer
	killErr  error    // the failure to run it
	after    []string // the statements sent on victim after the kill
}

func newBackendKiller(t *testing.T) *backendKiller {
	t.Helper()
	return &backendKiller{pool: testenv.PostgresPool(t, 1)}
}

func (k *backendKiller) arm() {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.armed = true
}

// record notes sql if conn is the victim.
func (k *backendKiller) record(conn *pgx.Conn, sql string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if conn == k.victim {
		k.after = append(k.after, sql)
	}
}

func (k *backendKiller) TraceQueryStart(ctx context.Context, conn *pgx.Conn, data pgx.TraceQueryStartData) context.Context {
	k.record(conn, data.SQL)
	return ctx
}

func (k *backendKiller) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

func (k *backendKiller) TraceBatchStart(ctx context.Context, conn *pgx.Conn, data pgx.TraceBatchStartData) context.Context {
	for _, q := range data.Batch.QueuedQueries {
		k.record(conn, q.SQL)
	}
	return ctx
}

func (k *backendKiller) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {}

// TraceBatchEnd runs after the batch's results were read to its end (the
// server's ReadyForQuery, which says whether the transaction failed).
func (k *backendKiller) TraceBatchEnd(ctx context.Context, conn *pgx.Conn, data pgx.TraceBatchEndData) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if !k.armed || k.victim != nil || conn.PgConn().TxStatus() != 'E' {
		return
	}
	k.victim, k.batchErr = conn, data.Err
	// With a timeout, pg_terminate_backend waits for the backend to
	// exit (PostgreSQL 14 and later), so the ROLLBACK finds it gone.
	k.killErr = k.pool.QueryRow(ctx, "SELECT pg_terminate_backend($1, 10000)", int32(conn.PgConn().PID())).Scan(&k.killed)
}

// isConnEnd reports whether err is the end of a connection: a failure
// to read from or write to it, or its end of file.
func isConnEnd(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}
