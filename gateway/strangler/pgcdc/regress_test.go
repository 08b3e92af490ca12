package pgcdc_test

import (
	"context"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelpatterns/patterns/gateway/strangler/pgcdc"
	"github.com/otelpatterns/patterns/internal/testenv"
)

// TestPartitionedTable: the changes of a partitioned table arrive under
// the table's name, not lost as changes of its partitions, which the
// consumer was not asked for.
func TestPartitionedTable(t *testing.T) {
	f := newFixture(t)
	f.exec("CREATE TABLE " + f.table("t") + " (id int PRIMARY KEY) PARTITION BY RANGE (id)")
	f.exec("CREATE TABLE " + f.table("t_low") + " PARTITION OF " + f.table("t") + " FOR VALUES FROM (0) TO (100)")
	f.exec("CREATE TABLE " + f.table("marker") + " (id int PRIMARY KEY)")
	h, ch := channel()
	c := f.consumer([]string{"t", "marker"}, h)
	f.setup(c)
	stop := run(t, c)
	f.insert(1)
	f.exec("INSERT INTO " + f.table("marker") + " VALUES (1)")
	first := one(t, next(t, ch))
	require.NoError(t, stop())
	assert.Equal(t, pgcdc.Change{Table: f.table("t"), Op: pgcdc.OpInsert, New: map[string]any{"id": int32(1)}, Key: map[string]any{"id": int32(1)}}, first,
		"the partition's insert, under the partitioned table's name")
}

// TestPartitionTruncate: under publish_via_partition_root, which the
// consumer's publication has, PostgreSQL does not publish a TRUNCATE run
// on a partition: it is not delivered, as the package documentation
// warns (the rows are gone from the partitioned table, and the handler
// is not told); a TRUNCATE of the partitioned table is, as a truncate of
// it. If a server ever publishes the first, the documentation is to
// change with this test.
func TestPartitionTruncate(t *testing.T) {
	f := newFixture(t)
	f.exec("CREATE TABLE " + f.table("t") + " (id int PRIMARY KEY) PARTITION BY RANGE (id)")
	f.exec("CREATE TABLE " + f.table("t_low") + " PARTITION OF " + f.table("t") + " FOR VALUES FROM (0) TO (100)")
	f.exec("CREATE TABLE " + f.table("t_high") + " PARTITION OF " + f.table("t") + " FOR VALUES FROM (100) TO (200)")
	h, ch := channel()
	c := f.consumer([]string{"t"}, h)
	f.setup(c)
	stop := run(t, c)
	f.insert(1)
	assert.Equal(t, []int32{1}, ids(next(t, ch)))
	f.exec("TRUNCATE " + f.table("t_low"))
	f.insert(150) // a marker, after the truncate
	assert.Equal(t, pgcdc.Change{Table: f.table("t"), Op: pgcdc.OpInsert, New: map[string]any{"id": int32(150)}, Key: map[string]any{"id": int32(150)}},
		one(t, next(t, ch)), "the change after a TRUNCATE of a partition: the marker's insert")
	f.exec("TRUNCATE " + f.table("t"))
	assert.Equal(t, pgcdc.Change{Table: f.table("t"), Op: pgcdc.OpTruncate}, one(t, next(t, ch)),
		"a TRUNCATE of the partitioned table")
	require.NoError(t, stop())
}

// TestRenamedTable: a table renamed while the consumer streams is still
// published, under its new name; the consumer stops at its first change
// instead of dropping it as a change of a table it was not asked for,
// and a consumer of the new name gets it.
func TestRenamedTable(t *testing.T) {
	f := newFixture(t)
	f.exec("CREATE TABLE " + f.table("t") + " (id int PRIMARY KEY)")
	f.exec("CREATE TABLE " + f.table("marker") + " (id int PRIMARY KEY)")
	h, ch := channel()
	c := f.consumer([]string{"t", "marker"}, h)
	f.setup(c)
	done := make(chan error, 1)
	go func() { done <- c.Run(testenv.Context(t, 20*time.Second)) }()
	f.insert(1)
	assert.Equal(t, []int32{1}, ids(next(t, ch)))
	f.exec("ALTER TABLE " + f.table("t") + " RENAME TO t2")
	f.exec("INSERT INTO " + f.table("t2") + " VALUES (2)")
	f.exec("INSERT INTO " + f.table("marker") + " VALUES (3)")
	err := <-done
	require.Error(t, err, "Run went on past a change of the renamed table")
	assert.ErrorContains(t, err, "renamed")
	assert.Empty(t, ch, "the marker, after the renamed table's change")

	h2, ch2 := channel()
	stop := run(t, f.consumer([]string{"t2", "marker"}, h2))
	assert.Equal(t, []int32{2}, ids(next(t, ch2)))
	assert.Equal(t, []int32{3}, ids(next(t, ch2)))
	require.NoError(t, stop())
}

// TestServerOutputStyles: a server (or role, or database) set to output
// dates, intervals, bytea and floats in other styles than pgx reads does
// not make the consumer fail on every value forever.
func TestServerOutputStyles(t *testing.T) {
	f := newFixture(t)
	f.exec("CREATE TABLE " + f.table("t") + " (id int PRIMARY KEY, iv interval, d date, ts timestamp, by bytea, f float8)")
	h, ch := channel()
	var failures atomic.Int32
	c, err := pgcdc.New(f.url+"&options="+strings.ReplaceAll(url.QueryEscape("-c DateStyle=German -c IntervalStyle=sql_standard -c bytea_output=escape -c extra_float_digits=-3"), "+", "%20"),
		f.schema, []string{f.table("t")}, h, pgcdc.WithBackoff(10*time.Millisecond, 100*time.Millisecond),
		pgcdc.WithErrorHandler(func(err error) { failures.Add(1); t.Log(err) }))
	require.NoError(t, err)
	f.setup(c)
	stop := run(t, c)
	f.exec("INSERT INTO " + f.table("t") + " VALUES (1, '1 year 2 mons 3 days 04:05:06.7', '2020-01-02', '2020-01-02 03:04:05', '\\xdeadbeef', 0.1)")
	ins := one(t, next(t, ch))
	require.NoError(t, stop())
	assert.Zero(t, failures.Load())
	assert.Equal(t, pgtype.Interval{Months: 14, Days: 3, Microseconds: 14706700000, Valid: true}, ins.New["iv"])
	assert.Equal(t, time.Date(2020, 1, 2, 0, 0, 0, 0, time.UTC), ins.New["d"])
	assert.Equal(t, time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC), ins.New["ts"])
	assert.Equal(t, []byte{0xde, 0xad, 0xbe, 0xef}, ins.New["by"])
	assert.Equal(t, 0.1, ins.New["f"], "every digit of a float")
}

// TestConnStringWithoutDatabase: a connection string that names no
// database connects to the one named after the user, as libpq does; the
// consumer's slot is of that database, and Run streams from it.
func TestConnStringWithoutDatabase(t *testing.T) {
	base := testenv.PostgresURL(t)
	u, err := url.Parse(base)
	require.NoError(t, err)
	u.Path = "" // no database: the user's
	f := newFixture(t)
	ctx := testenv.Context(t, time.Minute)
	conn, err := pgx.Connect(ctx, u.String())
	require.NoError(t, err)
	t.Cleanup(func() {
		_, _ = conn.Exec(context.Background(), "DROP SCHEMA IF EXISTS "+f.schema+" CASCADE")
		_, _ = conn.Exec(context.Background(), "DROP PUBLICATION IF EXISTS "+f.schema)
		_ = conn.Close(context.Background())
	})
	_, err = conn.Exec(ctx, "CREATE SCHEMA "+f.schema)
	require.NoError(t, err)
	_, err = conn.Exec(ctx, "CREATE TABLE "+f.table("t")+" (id int PRIMARY KEY)")
	require.NoError(t, err)
	h, ch := channel()
	c, err := pgcdc.New(u.String(), f.schema, []string{f.table("t")}, h)
	require.NoError(t, err)
	f.setup(c)
	stop := run(t, c)
	_, err = conn.Exec(ctx, "INSERT INTO "+f.table("t")+" VALUES (1)")
	require.NoError(t, err)
	assert.Equal(t, []int32{1}, ids(next(t, ch)))
	require.NoError(t, stop())
}

// TestCreatePublicationInterrupted: a connection lost while the consumer
// creates its publication (here: ended by the server while the command
// waits for a lock) is one more reason to connect again, not a reason
// for Run to give up.
func TestCreatePublicationInterrupted(t *testing.T) {
	f := newFixture(t)
	f.exec("CREATE TABLE " + f.table("t") + " (id int PRIMARY KEY)")
	ctx := testenv.Context(t, time.Minute)
	lock, err := f.pool.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = lock.Rollback(context.Background()) }()
	_, err = lock.Exec(ctx, "LOCK TABLE "+f.table("t")+" IN ACCESS EXCLUSIVE MODE")
	require.NoError(t, err)

	h, ch := channel()
	stop := run(t, f.consumer([]string{"t"}, h))
	for { // until the consumer's CREATE PUBLICATION waits for the lock, then end its connection
		var n int
		require.NoError(t, f.pool.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
WHERE query LIKE 'CREATE PUBLICATION ' || $1::text || ' %' AND wait_event_type = 'Lock'`, f.schema).Scan(&n))
		if n > 0 {
			break
		}
		require.NoError(t, ctx.Err())
		time.Sleep(20 * time.Millisecond)
	}
	require.NoError(t, lock.Rollback(ctx))
	for !f.slotExists(ctx) { // the consumer connected again and set up
		require.NoError(t, ctx.Err(), "no slot: Run gave up")
		time.Sleep(20 * time.Millisecond)
	}
	f.insert(1)
	assert.Equal(t, []int32{1}, ids(next(t, ch)))
	require.NoError(t, stop())
}

func (f *fixture) slotExists(ctx context.Context) bool {
	f.t.Helper()
	var ok bool
	if err := f.pool.QueryRow(ctx, "SELECT EXISTS (SELECT FROM pg_replication_slots WHERE slot_name = $1)", f.schema).Scan(&ok); err != nil {
		f.t.Fatal(err)
	}
	return ok
}

// TestMissingTableIsFatal: a publication the server refuses to create
// (of a table that does not exist) is an error Run returns.
func TestMissingTableIsFatal(t *testing.T) {
	f := newFixture(t)
	c := f.consumer([]string{"nope"}, func(context.Context, pgcdc.Transaction) error { return nil })
	err := c.Run(testenv.Context(t, 30*time.Second))
	require.Error(t, err)
	assert.ErrorContains(t, err, "does not exist")
}

// TestSchemaChangesAndTruncates: a column added or retyped while the
// consumer streams comes with the rows after it (the server describes
// the table again), and a truncate of several tables is a change for
// each of the consumer's.
func TestSchemaChangesAndTruncates(t *testing.T) {
	f := newFixture(t)
	f.exec("CREATE TABLE " + f.table("t") + " (id int PRIMARY KEY, n int)")
	f.exec("CREATE TABLE " + f.table("u") + " (id int PRIMARY KEY, t_id int REFERENCES " + f.table("t") + ")")
	h, ch := channel()
	c := f.consumer([]string{"t", "u"}, h)
	f.setup(c)
	stop := run(t, c)
	f.exec("INSERT INTO " + f.table("t") + " VALUES (1, 1)")
	f.exec("ALTER TABLE " + f.table("t") + " ADD COLUMN note text DEFAULT 'x'")
	f.exec("INSERT INTO " + f.table("t") + " VALUES (2, 2, 'y')")
	f.exec("ALTER TABLE " + f.table("t") + " ALTER COLUMN n TYPE bigint")
	f.exec("INSERT INTO " + f.table("t") + " VALUES (3, 3)")
	f.exec("INSERT INTO " + f.table("u") + " VALUES (1, 1)")
	f.exec("TRUNCATE " + f.table("t") + " CASCADE")

	assert.Equal(t, map[string]any{"id": int32(1), "n": int32(1)}, one(t, next(t, ch)).New)
	assert.Equal(t, map[string]any{"id": int32(2), "n": int32(2), "note": "y"}, one(t, next(t, ch)).New)
	assert.Equal(t, map[string]any{"id": int32(3), "n": int64(3), "note": "x"}, one(t, next(t, ch)).New)
	next(t, ch)
	trunc := next(t, ch)
	require.NoError(t, stop())
	var tables []string
	for _, c := range trunc.Changes {
		assert.Equal(t, pgcdc.OpTruncate, c.Op)
		tables = append(tables, c.Table)
	}
	assert.ElementsMatch(t, []string{f.table("t"), f.table("u")}, tables)
}

// TestPublicationDropped: a publication dropped under a slot that is
// behind cannot be put back for the changes before it is created again
// (the server looks it up as of each change); Run says so instead of
// connecting again forever.
func TestPublicationDropped(t *testing.T) {
	f := newFixture(t)
	f.exec("CREATE TABLE " + f.table("t") + " (id int PRIMARY KEY)")
	h, ch := channel()
	c := f.consumer([]string{"t"}, h)
	f.setup(c)
	f.exec("DROP PUBLICATION " + f.schema)
	f.insert(1)
	var errs atomic.Int32
	c = f.consumer([]string{"t"}, h, pgcdc.WithErrorHandler(func(err error) { errs.Add(1); t.Log(err) }))
	err := c.Run(testenv.Context(t, 10*time.Second))
	require.Error(t, err, "Run went on connecting again, %d times", errs.Load())
	assert.ErrorContains(t, err, "does not exist")
	assert.Empty(t, ch)
}

// TestTableWithoutReplicaIdentity: creating the publication of a table
// that has neither a primary key nor another replica identity would make
// the server refuse every UPDATE and DELETE of it, the legacy system's
// included; the consumer refuses to create it instead.
func TestTableWithoutReplicaIdentity(t *testing.T) {
	f := newFixture(t)
	f.exec("CREATE TABLE " + f.table("t") + " (id int PRIMARY KEY)")
	f.exec("CREATE TABLE " + f.table("nokey") + " (id int)")
	f.exec("INSERT INTO " + f.table("nokey") + " VALUES (1)")
	f.exec(`CREATE TABLE ` + f.schema + `."o'dd\name" (id int)`)
	c := f.consumer([]string{"t", "nokey", `o'dd\name`}, func(context.Context, pgcdc.Transaction) error { return nil })
	err := c.Setup(testenv.Context(t, 30*time.Second))
	f.exec("UPDATE " + f.table("nokey") + " SET id = 2") // the legacy system's write
	f.exec("DELETE FROM " + f.table("nokey"))
	require.Error(t, err)
	assert.ErrorContains(t, err, f.table("nokey"))
	assert.ErrorContains(t, err, f.table(`o'dd\name`))
	assert.ErrorContains(t, err, "REPLICA IDENTITY")
	assert.NotContains(t, err.Error(), f.table("t")+",")
}

// TestOddValuesNeverStop: valid values of many types are delivered
// (as pgx decodes them, or as text), never stopping the consumer.
func TestOddValuesNeverStop(t *testing.T) {
	f := newFixture(t)
	f.exec("CREATE TYPE " + f.schema + ".mood AS ENUM ('ok', 'sad')")
	f.exec("CREATE TYPE " + f.schema + ".pair AS (a int, b text)")
	f.exec("CREATE DOMAIN " + f.schema + ".posint AS int CHECK (VALUE > 0)")
	cols := []struct{ typ, val string }{
		{"timestamp", "'infinity'"}, {"timestamptz", "'-infinity'"}, {"date", "'infinity'"},
		{"date", "'0044-03-15 BC'"}, {"timestamp", "'0044-03-15 10:00 BC'"}, {"timestamptz", "'4713-01-01 00:00+00 BC'"},
		{"numeric", "'NaN'"}, {"numeric", "'Infinity'"}, {"float8", "'NaN'"}, {"float4", "'-Infinity'"},
		{"interval", "'178000000 years'"}, {"interval", "'-178000000 years -1 day -00:00:01'"},
		{"time", "'24:00:00'"}, {"timetz", "'24:00:00+1459'"}, {"money", "'-92233720368547758.08'"},
		{"int4range", "'empty'"}, {"int8range", "'[1,)'"}, {"tsrange", "'[-infinity,infinity]'"}, {"int4multirange", "'{}'"},
		{"datemultirange", "'{[2000-01-01,infinity)}'"},
		{"point", "'(1e308,-1e308)'"}, {"circle", "'<(0,0),NaN>'"}, {"box", "'(1,1),(0,0)'"}, {"path", "'[(0,0),(1,1)]'"},
		{"polygon", "'((0,0),(1,1),(1,0))'"}, {"lseg", "'[(0,0),(1,1)]'"}, {"line", "'{1,2,3}'"},
		{"inet", "'::ffff:1.2.3.4/128'"}, {"cidr", "'10.0.0.0/8'"}, {"macaddr8", "'08:00:2b:01:02:03:04:05'"},
		{"bit(3)", "B'101'"}, {"varbit", "B''"}, {"tsvector", "'a:1 b:2'"}, {"tsquery", "'a & b'"}, {"xml", "'<a/>'"},
		{"pg_lsn", "'FFFFFFFF/FFFFFFFF'"}, {"xid8", "'18446744073709551615'"}, {"xid", "'4294967295'"}, {"oid", "'4294967295'"},
		{"pg_snapshot", "'10:20:10,14,15'"}, {"txid_snapshot", "'10:20:'"}, {"uuid", "'00000000-0000-0000-0000-000000000000'"},
		{"int2", "-32768"}, {"int8", "-9223372036854775808"}, {"name", "repeat('x', 63)"}, {"bpchar(3)", "'a'"},
		{"timestamp[]", "ARRAY['infinity'::timestamp, NULL]"}, {"date[]", "'{infinity,-infinity}'"},
		{"int[]", "'{{{1}},{{2}}}'"}, {"int[]", "'[-2:-1]={1,2}'"}, {"int[]", "'{{NULL,NULL},{NULL,NULL}}'"},
		{"text[]", `'{"a,b","c\"d",NULL,"NULL",""}'`}, {"bytea[]", `'{"\\x00ff"}'`}, {`"char"[]`, `ARRAY['\200'::"char", ''::"char", 'a']`},
		{"json[]", `ARRAY['{"a":1e400}'::json, '[]', 'null']`}, {"jsonb", `'"\u00e9\ud83d\ude00"'`},
		{"numeric[]", "'{NaN,Infinity,-1e-1000}'"}, {"interval[]", "'{\"1 year\"}'"}, {"point[]", "'{\"(1,2)\"}'"},
		{"int4range[]", "'{\"[1,2)\",empty}'"}, {"uuid[]", "'{}'"}, {"inet[]", "'{::1}'"},
		{f.schema + ".mood", "'sad'"}, {f.schema + ".mood[]", "'{ok,sad}'"}, {f.schema + ".pair", "ROW(1, 'x,y')"},
		{f.schema + ".pair[]", "ARRAY[ROW(1,'a')::" + f.schema + ".pair]"}, {f.schema + ".posint", "3"},
		{f.schema + ".posint[]", "'{1,2}'"}, {"regclass", "'pg_class'"}, {"regtype", "'int4'"},
		{"aclitem", "'postgres=r/postgres'"}, {"int2vector", "'1 2'"}, {"oidvector", "'1 2'"},
	}
	create := "CREATE TABLE " + f.table("t") + " (id int PRIMARY KEY"
	insert := "INSERT INTO " + f.table("t") + " VALUES (1"
	for i, c := range cols {
		create += ", c" + itoa(i) + " " + c.typ
		insert += ", " + c.val
	}
	f.exec(create + ")")
	var failures atomic.Int32
	var lastErr atomic.Value
	h, ch := channel()
	c := f.consumer([]string{"t"}, h, pgcdc.WithErrorHandler(func(err error) {
		failures.Add(1)
		lastErr.Store(err.Error())
	}))
	f.setup(c)
	stop := run(t, c)
	f.exec(insert + ")")
	tx, ok := within(ch, 15*time.Second)
	err := stop()
	require.NoError(t, err, "Run")
	require.True(t, ok, "not delivered; %d reconnects, last: %v", failures.Load(), lastErr.Load())
	require.Len(t, tx.Changes[0].New, len(cols)+1)
	require.Zero(t, failures.Load(), "%v", lastErr.Load())
}

func itoa(i int) string {
	const d = "0123456789"
	if i < 10 {
		return d[i : i+1]
	}
	return itoa(i/10) + d[i%10:i%10+1]
}

// TestValidPublicationsAccepted: publications that publish every
// change of the consumer's tables, made otherwise than the consumer makes
// them, are accepted and stream.
func TestValidPublicationsAccepted(t *testing.T) {
	for _, tt := range []struct {
		name  string
		setup func(f *fixture) string // returns the CREATE PUBLICATION's tail
		table string
	}{
		{"for all tables", func(f *fixture) string { return "FOR ALL TABLES" }, "t"},
		{"tables in schema", func(f *fixture) string { return "FOR TABLES IN SCHEMA " + f.schema }, "t"},
		{"extra tables with filters", func(f *fixture) string {
			f.exec("CREATE TABLE " + f.table("o") + " (id int PRIMARY KEY, v int)")
			return "FOR TABLE " + f.table("t") + ", " + f.table("o") + " (id) WHERE (id > 5)"
		}, "t"},
		{"generated and dropped columns", func(f *fixture) string {
			f.exec("ALTER TABLE " + f.table("t") + " ADD COLUMN g int GENERATED ALWAYS AS (id * 2) STORED, ADD COLUMN d int")
			f.exec("ALTER TABLE " + f.table("t") + " DROP COLUMN d")
			return "FOR TABLE " + f.table("t")
		}, "t"},
		{"partitioned in schema via root", func(f *fixture) string {
			f.exec("CREATE TABLE " + f.table("p") + " (id int PRIMARY KEY) PARTITION BY RANGE (id)")
			f.exec("CREATE TABLE " + f.table("p1") + " PARTITION OF " + f.table("p") + " FOR VALUES FROM (0) TO (100)")
			return "FOR TABLES IN SCHEMA " + f.schema + " WITH (publish_via_partition_root = true)"
		}, "p"},
		{"mixed case names", func(f *fixture) string {
			f.exec("CREATE TABLE " + f.schema + `."Mixed Case" (id int PRIMARY KEY)`)
			return "FOR TABLE " + f.schema + `."Mixed Case"`
		}, "Mixed Case"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			f.exec("CREATE TABLE " + f.table("t") + " (id int PRIMARY KEY)")
			f.exec("CREATE PUBLICATION " + f.schema + " " + tt.setup(f))
			h, ch := channel()
			c := f.consumer([]string{tt.table}, h, pgcdc.WithCreatePublication(false))
			require.NoError(t, c.Setup(context.Background()), "Setup")
			stop := run(t, c)
			f.exec("INSERT INTO " + f.schema + `."` + tt.table + `" VALUES (7)`)
			tx, ok := within(ch, 15*time.Second)
			require.NoError(t, stop())
			require.True(t, ok, "not delivered")
			require.Equal(t, f.schema+"."+tt.table, tx.Changes[0].Table)
		})
	}
}

// TestLongDecodeNotTakenForSilence: a server busy decoding a large
// transaction (a table rewrite, whose changes PostgreSQL 15 replays
// without reading the consumer's status updates, nor replying) is
// silent for as long as the replay takes, which for a big table is more
// than the silence bound: with wal_sender_timeout off (bound: 3 status
// intervals), or on (bound: wal_sender_timeout; the server itself does
// not end the connection, as it reads the consumer's status updates
// before it checks its timeout). The consumer takes the connection for
// dead, and the next connection replays the same transaction again, for
// ever (the old walsender holding the slot meanwhile): the change after
// it is never delivered.
func TestLongDecodeNotTakenForSilence(t *testing.T) {
	for _, timeout := range []string{"0", "1s"} {
		t.Run("wal_sender_timeout="+timeout, func(t *testing.T) { testLongDecode(t, timeout) })
	}
}

func testLongDecode(t *testing.T, timeout string) {
	f := newFixture(t)
	f.exec("CREATE TABLE " + f.table("t") + " (id int PRIMARY KEY)")
	f.exec("CREATE TABLE " + f.table("big") + " (id int PRIMARY KEY, v int)")
	f.exec("INSERT INTO " + f.table("big") + " SELECT i, i FROM generate_series(1, 1000000) i")
	var reported atomic.Int32
	var lastErr atomic.Value
	h, ch := channel()
	c, err := pgcdc.New(f.url+"&options=-c%20wal_sender_timeout%3D"+timeout, f.schema, []string{f.table("t")}, h,
		pgcdc.WithStatusInterval(100*time.Millisecond), pgcdc.WithBackoff(10*time.Millisecond, 100*time.Millisecond),
		pgcdc.WithErrorHandler(func(err error) {
			reported.Add(1)
			if strings.Contains(err.Error(), "no message") {
				t.Logf("%v reconnecting after: %.150s", time.Now().Format("15:04:05.000"), err)
			}
			lastErr.Store(err.Error())
		}))
	require.NoError(t, err)
	f.setup(c)
	stop := run(t, c)
	start := time.Now()
	f.exec("BEGIN; ALTER TABLE " + f.table("big") + " ALTER COLUMN v TYPE bigint; INSERT INTO " + f.table("t") + " VALUES (1); COMMIT")
	t.Logf("rewrite took %v", time.Since(start))
	tx, ok := within(ch, 40*time.Second)
	require.NoError(t, stop())
	require.True(t, ok, "not delivered within 40s; %d reconnects, last: %v", reported.Load(), lastErr.Load())
	require.Equal(t, []int32{1}, ids(tx))
	require.Zero(t, reported.Load(), "reconnects; last: %v", lastErr.Load())
}

// TestCreatedPublicationChecked: the publication the consumer
// creates is not checked as one it finds is: for a partitioned table and
// one of its partitions, PostgreSQL publishes (through the root) the
// partitioned table alone, so Setup returns nil, and then Run, which
// finds the publication, refuses it as not publishing the partition.
// Setup should say so when it creates it, as it does on a second call.
func TestCreatedPublicationChecked(t *testing.T) {
	f := newFixture(t)
	f.exec("CREATE TABLE " + f.table("p") + " (id int PRIMARY KEY) PARTITION BY RANGE (id)")
	f.exec("CREATE TABLE " + f.table("p1") + " PARTITION OF " + f.table("p") + " FOR VALUES FROM (0) TO (100)")
	c := f.consumer([]string{"p", "p1"}, func(context.Context, pgcdc.Transaction) error { return nil })
	first := c.Setup(context.Background())
	second := c.Setup(context.Background())
	t.Logf("first: %v; second: %v", first, second)
	require.Equal(t, second == nil, first == nil, "Setup's verdict on the publication it created differs from the next Setup's")
}
