package pgcdc_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/otelpatterns/patterns/gateway/strangler/pgcdc"
	"github.com/otelpatterns/patterns/internal/testenv"
)

// prefix starts the schemas of the package's tests, and so their slots
// and publications, which are named after the schema.
const prefix = "pgcdc_test_"

// fixture is a test's own schema, with a slot and a publication of the
// schema's name, dropped when the test ends.
type fixture struct {
	t      testing.TB
	url    string
	pool   *pgxpool.Pool
	schema string // also the slot's and the publication's name
}

// newFixture skips the test without PostgreSQL, fails it (or skips it)
// when the server lacks wal_level=logical, and registers the drop of the
// slot and the publication, which runs even when the test failed.
func newFixture(t testing.TB) *fixture {
	t.Helper()
	url := testenv.PostgresURL(t)
	requireLogical(t, url)
	f := &fixture{t: t, url: url, pool: testenv.PostgresPool(t, 4), schema: testenv.Schema(t, prefix)}
	// Registered after the schema's drop, so run before it.
	t.Cleanup(func() { dropSlotAndPublication(t, url, f.schema) })
	f.exec("CREATE SCHEMA " + f.schema)
	return f
}

// requireLogical skips the test, or fails it under
// PATTERNS_REQUIRE_INTEGRATION=1, when the server has not
// wal_level=logical.
func requireLogical(t testing.TB, url string) {
	t.Helper()
	ctx := testenv.Context(t, 10*time.Second)
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connecting to PostgreSQL: %v", err)
	}
	defer conn.Close(ctx)
	var level string
	if err := conn.QueryRow(ctx, "SHOW wal_level").Scan(&level); err != nil {
		t.Fatalf("SHOW wal_level: %v", err)
	}
	if level != "logical" {
		msg := "these tests need logical replication, and PostgreSQL has wal_level=" + level +
			": run .ci/services, which sets wal_level=logical and restarts the local cluster"
		if testenv.Required() {
			t.Fatal(msg + " (" + testenv.RequireVar + "=1 makes this a failure)")
		}
		t.Skip(msg)
	}
}

// dropSlotAndPublication drops the slot called name, first ending the
// connection that streams from it if any (a consumer a failed test left
// running, a killed child's that the server has not noticed yet), and
// the publication of that name. A leftover slot would keep the server's
// WAL forever.
func dropSlotAndPublication(t testing.TB, url, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Errorf("dropping slot %s: %v", name, err)
		return
	}
	defer conn.Close(ctx)
	for {
		_, err = conn.Exec(ctx, "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = $1 AND active_pid IS NOT NULL", name)
		if err == nil {
			_, err = conn.Exec(ctx, "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1", name)
		}
		var pgErr *pgconn.PgError
		if err == nil || !errors.As(err, &pgErr) || pgErr.Code != "55006" || ctx.Err() != nil { // object_in_use: not ended yet
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		t.Errorf("dropping slot %s: %v", name, err)
	}
	if _, err := conn.Exec(ctx, "DROP PUBLICATION IF EXISTS "+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Errorf("dropping publication %s: %v", name, err)
	}
}

// sweep drops the slots and publications of this package's tests whose
// schema is gone and whose slot is not in use: those of a test binary
// killed before its cleanup ran. A running test's schema exists.
func sweep(url string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots
WHERE slot_name LIKE 'pgcdc\_test\_%' AND NOT active AND NOT EXISTS (SELECT FROM pg_namespace WHERE nspname = slot_name)`); err != nil {
		return err
	}
	rows, err := conn.Query(ctx, `SELECT pubname FROM pg_publication
WHERE pubname LIKE 'pgcdc\_test\_%' AND NOT EXISTS (SELECT FROM pg_namespace WHERE nspname = pubname)`)
	if err != nil {
		return err
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return err
	}
	for _, n := range names {
		if _, err := conn.Exec(ctx, "DROP PUBLICATION IF EXISTS "+pgx.Identifier{n}.Sanitize()); err != nil {
			return err
		}
	}
	return nil
}

func (f *fixture) exec(sql string, args ...any) {
	f.t.Helper()
	if _, err := f.pool.Exec(testenv.Context(f.t, 30*time.Second), sql, args...); err != nil {
		f.t.Fatalf("%s: %v", sql, err)
	}
}

// table returns the schema-qualified name of a table of the fixture.
func (f *fixture) table(name string) string { return f.schema + "." + name }

// consumer returns a consumer of tables of the fixture's schema through
// its slot, with a short backoff, sending what it handles on the
// returned channel.
func (f *fixture) consumer(tables []string, h pgcdc.Handler, opts ...pgcdc.Option) *pgcdc.Consumer {
	f.t.Helper()
	qualified := make([]string, len(tables))
	for i, t := range tables {
		qualified[i] = f.table(t)
	}
	opts = append([]pgcdc.Option{pgcdc.WithBackoff(10*time.Millisecond, 200*time.Millisecond), pgcdc.WithStatusInterval(time.Second)}, opts...)
	c, err := pgcdc.New(f.url, f.schema, qualified, h, opts...)
	if err != nil {
		f.t.Fatal(err)
	}
	return c
}

// setup calls c.Setup.
func (f *fixture) setup(c *pgcdc.Consumer) {
	f.t.Helper()
	if err := c.Setup(testenv.Context(f.t, 60*time.Second)); err != nil {
		f.t.Fatalf("Setup() = %v", err)
	}
}

// run runs c until the returned stop is called (or the test ends), which
// returns Run's error.
func run(t testing.TB, c *pgcdc.Consumer) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	var err error
	stopped := false
	stop = func() error {
		if !stopped {
			stopped = true
			cancel()
			err = <-done
		}
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

// channel returns a handler that sends each transaction on the returned
// channel (buffered generously) and succeeds.
func channel() (pgcdc.Handler, chan pgcdc.Transaction) {
	ch := make(chan pgcdc.Transaction, 100)
	return func(ctx context.Context, tx pgcdc.Transaction) error {
		select {
		case ch <- tx:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}, ch
}

// next returns the next transaction on ch, failing the test after 30s.
func next(t testing.TB, ch <-chan pgcdc.Transaction) pgcdc.Transaction {
	t.Helper()
	select {
	case tx := <-ch:
		return tx
	case <-time.After(30 * time.Second):
		t.Fatal("no transaction within 30s")
		return pgcdc.Transaction{}
	}
}

// within returns the next transaction on ch, or false after d.
func within(ch <-chan pgcdc.Transaction, d time.Duration) (pgcdc.Transaction, bool) {
	select {
	case tx := <-ch:
		return tx, true
	case <-time.After(d):
		return pgcdc.Transaction{}, false
	}
}

// slotPosition returns the confirmed_flush_lsn of the slot called name.
func (f *fixture) slotPosition() pgcdc.LSN {
	f.t.Helper()
	var lsn string
	if err := f.pool.QueryRow(testenv.Context(f.t, 10*time.Second),
		"SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1", f.schema).Scan(&lsn); err != nil {
		f.t.Fatalf("reading the slot's position: %v", err)
	}
	var hi, lo uint32
	if _, err := fmt.Sscanf(lsn, "%X/%X", &hi, &lo); err != nil {
		f.t.Fatalf("parsing %q: %v", lsn, err)
	}
	return pgcdc.LSN(uint64(hi)<<32 | uint64(lo))
}

// proxy forwards TCP connections to a PostgreSQL server; freeze makes the
// connections open at the time go silent both ways (what it reads is
// dropped), as a connection does whose server vanished behind a NAT or
// a load balancer, while new connections go through.
type proxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	conns  []*proxied
	wg     sync.WaitGroup
	done   chan struct{}
}

type proxied struct {
	client, server net.Conn
	frozen         atomic.Bool
}

func newProxy(t *testing.T, target string) *proxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &proxy{ln: ln, target: target, done: make(chan struct{})}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

func (p *proxy) accept() {
	defer p.wg.Done()
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		server, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = client.Close()
			continue
		}
		pc := &proxied{client: client, server: server}
		p.mu.Lock()
		p.conns = append(p.conns, pc)
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pipe(pc, client, server)
		go p.pipe(pc, server, client)
	}
}

func (p *proxy) pipe(pc *proxied, from, to net.Conn) {
	defer p.wg.Done()
	buf := make([]byte, 32<<10)
	for {
		n, err := from.Read(buf)
		if pc.frozen.Load() {
			if err != nil {
				// Silent to the end: the other side is not told either.
				<-p.done
				return
			}
			continue
		}
		if n > 0 {
			if _, werr := to.Write(buf[:n]); werr != nil {
				_ = from.Close()
				return
			}
		}
		if err != nil {
			_ = to.Close()
			return
		}
	}
}

// freeze silences the connections open now.
func (p *proxy) freeze() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, pc := range p.conns {
		pc.frozen.Store(true)
	}
	return len(p.conns)
}

func (p *proxy) close() {
	close(p.done)
	_ = p.ln.Close()
	p.mu.Lock()
	for _, pc := range p.conns {
		_ = pc.client.Close()
		_ = pc.server.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}
