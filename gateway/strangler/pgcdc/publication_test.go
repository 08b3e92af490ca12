package pgcdc_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelpatterns/patterns/gateway/strangler/pgcdc"
	"github.com/otelpatterns/patterns/internal/testenv"
)

// TestExistingPublication: a consumer told not to create its publication
// fails when it is missing or leaves out a table, and streams from one
// that publishes more tables than it asks for without delivering theirs.
func TestExistingPublication(t *testing.T) {
	f := newFixture(t)
	f.exec("CREATE TABLE " + f.table("t") + " (id int PRIMARY KEY)")
	f.exec("CREATE TABLE " + f.table("extra") + " (id int PRIMARY KEY)")
	h, ch := channel()
	c := f.consumer([]string{"t"}, h, pgcdc.WithCreatePublication(false))
	ctx := testenv.Context(t, time.Minute)

	err := c.Setup(ctx)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "publication "+f.schema+" does not exist")
	require.Error(t, c.Run(ctx), "Run gives up on a missing publication")

	f.exec("CREATE PUBLICATION " + f.schema + " FOR TABLE " + f.table("extra"))
	err = c.Setup(ctx)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "does not publish "+f.table("t"))

	f.exec("ALTER PUBLICATION " + f.schema + " ADD TABLE " + f.table("t"))
	f.setup(c)
	stop := run(t, c)
	f.exec("INSERT INTO " + f.table("extra") + " VALUES (1)")
	f.exec("INSERT INTO " + f.table("t") + " VALUES (2)")
	tx := next(t, ch)
	require.NoError(t, stop())
	assert.Equal(t, []int32{2}, ids(tx), "only the consumer's table")
}

// TestReplicaIdentityFull: under REPLICA IDENTITY FULL updates and deletes
// carry the whole old row, and every column is part of the key.
func TestReplicaIdentityFull(t *testing.T) {
	f := newFixture(t)
	f.exec("CREATE TABLE " + f.table("t") + " (id int PRIMARY KEY, name text)")
	f.exec("ALTER TABLE " + f.table("t") + " REPLICA IDENTITY FULL")
	h, ch := channel()
	c := f.consumer([]string{"t"}, h)
	f.setup(c)
	stop := run(t, c)
	f.exec("INSERT INTO " + f.table("t") + " VALUES (1, 'a')")
	f.exec("UPDATE " + f.table("t") + " SET name = 'b'")
	f.exec("DELETE FROM " + f.table("t"))
	next(t, ch)
	upd, del := one(t, next(t, ch)), one(t, next(t, ch))
	require.NoError(t, stop())
	assert.Equal(t, map[string]any{"id": int32(1), "name": "a"}, upd.Old)
	assert.Equal(t, map[string]any{"id": int32(1), "name": "b"}, upd.New)
	assert.Equal(t, map[string]any{"id": int32(1), "name": "b"}, del.Old)
	assert.Equal(t, del.Old, del.Key)
}

// TestUnchangedToast: an update that leaves a large (TOASTed) value alone
// leaves it out of New and names it in Unchanged.
func TestUnchangedToast(t *testing.T) {
	f := newFixture(t)
	f.exec("CREATE TABLE " + f.table("t") + " (id int PRIMARY KEY, n int, big text)")
	f.exec("ALTER TABLE " + f.table("t") + " ALTER COLUMN big SET STORAGE EXTERNAL") // out of line, uncompressed
	h, ch := channel()
	c := f.consumer([]string{"t"}, h)
	f.setup(c)
	stop := run(t, c)
	f.exec("INSERT INTO " + f.table("t") + " VALUES (1, 1, repeat('x', 10000))")
	f.exec("UPDATE " + f.table("t") + " SET n = 2")
	ins, upd := one(t, next(t, ch)), one(t, next(t, ch))
	require.NoError(t, stop())
	assert.Len(t, ins.New["big"], 10000)
	assert.Equal(t, []string{"big"}, upd.Unchanged)
	assert.NotContains(t, upd.New, "big")
	assert.Equal(t, int32(2), upd.New["n"])
}

// TestRunTwice: a second Run of a running consumer fails at once; a
// second consumer of the slot waits for it, then takes over.
func TestRunTwice(t *testing.T) {
	f := newFixture(t)
	f.exec("CREATE TABLE " + f.table("t") + " (id int PRIMARY KEY)")
	h, ch := channel()
	c := f.consumer([]string{"t"}, h)
	f.setup(c)
	stop := run(t, c)
	f.insert(1)
	next(t, ch) // streaming
	require.ErrorIs(t, c.Run(context.Background()), pgcdc.ErrRunning)

	h2, ch2 := channel()
	stop2 := run(t, f.consumer([]string{"t"}, h2))
	f.insert(2)
	assert.Equal(t, []int32{2}, ids(next(t, ch)), "the first consumer keeps the slot")
	require.NoError(t, stop())
	f.insert(3)
	assert.Equal(t, []int32{3}, ids(next(t, ch2)), "the standby takes over")
	require.NoError(t, stop2())
	assert.Empty(t, ch2)
}

// TestDropSlot drops the slot, and succeeds when it is gone already.
func TestDropSlot(t *testing.T) {
	f := newFixture(t)
	f.exec("CREATE TABLE " + f.table("t") + " (id int PRIMARY KEY)")
	c := f.consumer([]string{"t"}, func(context.Context, pgcdc.Transaction) error { return nil })
	f.setup(c)
	assert.NotZero(t, c.Confirmed())
	ctx := testenv.Context(t, time.Minute)
	require.NoError(t, c.DropSlot(ctx))
	var n int
	require.NoError(t, f.pool.QueryRow(ctx, "SELECT count(*) FROM pg_replication_slots WHERE slot_name = $1", f.schema).Scan(&n))
	assert.Zero(t, n)
	require.NoError(t, c.DropSlot(ctx))
}

// TestSlotOfAnotherPlugin: a slot of the consumer's name made for another
// output plugin is an error that Run does not retry.
func TestSlotOfAnotherPlugin(t *testing.T) {
	f := newFixture(t)
	f.exec("CREATE TABLE " + f.table("t") + " (id int PRIMARY KEY)")
	f.exec("SELECT pg_create_logical_replication_slot($1, 'test_decoding')", f.schema)
	c := f.consumer([]string{"t"}, func(context.Context, pgcdc.Transaction) error { return nil })
	err := c.Run(testenv.Context(t, time.Minute))
	require.Error(t, err)
	assert.Contains(t, err.Error(), `exists for plugin "test_decoding"`)
}

// TestOrigin: a transaction of a session with a replication origin
// carries the origin's name, so that a handler can skip the writes of
// the system it copies changes to.
func TestOrigin(t *testing.T) {
	f := newFixture(t)
	f.exec("CREATE TABLE " + f.table("t") + " (id int PRIMARY KEY)")
	h, ch := channel()
	c := f.consumer([]string{"t"}, h)
	f.setup(c)
	stop := run(t, c)

	ctx := testenv.Context(t, time.Minute)
	conn, err := pgx.Connect(ctx, f.url)
	require.NoError(t, err)
	_, err = conn.Exec(ctx, "SELECT pg_replication_origin_create($1)", f.schema)
	require.NoError(t, err)
	t.Cleanup(func() {
		_ = conn.Close(context.Background()) // which ends the session's use of the origin
		if _, err := f.pool.Exec(context.Background(), "SELECT pg_replication_origin_drop($1)", f.schema); err != nil {
			t.Errorf("dropping the replication origin %s: %v", f.schema, err)
		}
	})
	_, err = conn.Exec(ctx, "SELECT pg_replication_origin_session_setup($1)", f.schema)
	require.NoError(t, err)
	_, err = conn.Exec(ctx, "INSERT INTO "+f.table("t")+" VALUES (1)")
	require.NoError(t, err)
	_, err = conn.Exec(ctx, "SELECT pg_replication_origin_session_reset()")
	require.NoError(t, err)
	f.insert(2)

	marked, plain := next(t, ch), next(t, ch)
	require.NoError(t, stop())
	assert.Equal(t, f.schema, marked.Origin)
	assert.Equal(t, []int32{1}, ids(marked))
	assert.Empty(t, plain.Origin)
}

// TestConcurrentSetupsShareThePublication: two consumers of one slot (a
// process and its standby, deployed together) set up at the same time.
// Both see no publication and create it; the server refuses the second
// CREATE PUBLICATION with a unique violation (23505), not
// duplicate_object (42710), and the consumer must check the publication
// the other one made instead of taking that for a fatal refusal.
func TestConcurrentSetupsShareThePublication(t *testing.T) {
	f := newFixture(t)
	f.exec("CREATE TABLE " + f.table("t") + " (id int PRIMARY KEY)")
	ctx := testenv.Context(t, time.Minute)
	// Holds both CREATE PUBLICATIONs: the first waits for the table's
	// lock after inserting its pg_publication row, the second for the
	// first's transaction on that row's unique index.
	lock, err := f.pool.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = lock.Rollback(context.Background()) }()
	_, err = lock.Exec(ctx, "LOCK TABLE "+f.table("t")+" IN ACCESS EXCLUSIVE MODE")
	require.NoError(t, err)

	errs := make(chan error, 2)
	for range 2 {
		c := f.consumer([]string{"t"}, func(context.Context, pgcdc.Transaction) error { return nil })
		go func() { errs <- c.Setup(ctx) }()
	}
	for {
		var n int
		require.NoError(t, f.pool.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
WHERE query LIKE 'CREATE PUBLICATION ' || $1::text || ' %' AND wait_event_type = 'Lock'`, f.schema).Scan(&n))
		if n == 2 {
			break
		}
		require.NoError(t, ctx.Err(), "both CREATE PUBLICATIONs did not wait")
		time.Sleep(20 * time.Millisecond)
	}
	require.NoError(t, lock.Rollback(ctx))
	for range 2 {
		assert.NoError(t, <-errs, "Setup of one of two consumers of the slot")
	}
}

// TestPublicationLeavingOutChangesRefused: a publication that publishes
// the consumer's tables but not all of their changes (an operation left
// out, a row filter, a column list) would lose those changes without a
// word, against "nothing is lost"; Setup and Run refuse it, naming the
// publication and what it lacks, and Run does not connect again. A
// filter on another table of the publication is no concern.
func TestPublicationLeavingOutChangesRefused(t *testing.T) {
	for _, tt := range []struct {
		name, with string
		pg15       bool   // the syntax is PostgreSQL 15's
		want       string // in the error; "" for none
	}{
		{"without deletes", " WITH (publish = 'insert, update')", false, "does not publish delete, truncate"},
		{"without truncates", " WITH (publish = 'insert, update, delete')", false, "does not publish truncate"},
		{"row filter", " WHERE (id > 10)", true, "row filter"},
		{"column list", " (id)", true, "column list"},
		{"column list of every column", " (id, name)", true, "column list"},
		{"row filter of another table", ", {extra} WHERE (id > 10)", true, ""},
		{"column list in another publication", "; CREATE PUBLICATION {other} FOR TABLE {t} (id)", true, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			ctx := testenv.Context(t, time.Minute)
			if tt.pg15 && serverVersion(t, f) < 150000 {
				t.Skip("row filters and column lists are PostgreSQL 15's")
			}
			f.exec("CREATE TABLE " + f.table("t") + " (id int PRIMARY KEY, name text)")
			f.exec("CREATE TABLE " + f.table("extra") + " (id int PRIMARY KEY)")
			other := f.schema + "_other"
			t.Cleanup(func() { f.exec("DROP PUBLICATION IF EXISTS " + other) })
			pub := "CREATE PUBLICATION " + f.schema + " FOR TABLE " + f.table("t") +
				strings.NewReplacer("{extra}", f.table("extra"), "{t}", f.table("t"), "{other}", other).Replace(tt.with)
			f.exec(pub)
			c := f.consumer([]string{"t"}, func(context.Context, pgcdc.Transaction) error { return nil },
				pgcdc.WithCreatePublication(false))
			err := c.Setup(ctx)
			if tt.want == "" {
				require.NoError(t, err, "Setup with publication %s", pub)
				return
			}
			require.Error(t, err, "Setup with publication %s", pub)
			assert.ErrorContains(t, err, "publication "+f.schema+" ")
			assert.ErrorContains(t, err, tt.want)
			err = c.Run(ctx)
			require.Error(t, err, "Run with publication %s", pub)
			assert.ErrorContains(t, err, tt.want)
		})
	}
}

// serverVersion returns the server's server_version_num.
func serverVersion(t *testing.T, f *fixture) int {
	t.Helper()
	var v int
	require.NoError(t, f.pool.QueryRow(testenv.Context(t, 10*time.Second), "SELECT current_setting('server_version_num')::int").Scan(&v))
	return v
}

// TestUpdateOfToastedKeyCarriesOld: under the default replica identity an
// update that keeps the key carries no old row, unless a key column
// holds a value stored out of line (TOASTed): the server then sends the
// old key, as Change.Old documents.
func TestUpdateOfToastedKeyCarriesOld(t *testing.T) {
	f := newFixture(t)
	f.exec("CREATE TABLE " + f.table("t") + " (k text PRIMARY KEY, n int)")
	f.exec("ALTER TABLE " + f.table("t") + " ALTER COLUMN k SET STORAGE EXTERNAL") // out of line, uncompressed
	h, ch := channel()
	c := f.consumer([]string{"t"}, h)
	f.setup(c)
	stop := run(t, c)
	key := strings.Repeat("k", 2500) // out of line, and within a btree entry's bounds
	f.exec("INSERT INTO "+f.table("t")+" VALUES ($1, 1)", key)
	f.exec("UPDATE " + f.table("t") + " SET n = 2")
	next(t, ch)
	upd := one(t, next(t, ch))
	require.NoError(t, stop())
	assert.Equal(t, map[string]any{"k": key}, upd.Old, "the old key of an update that kept it")
	assert.Equal(t, map[string]any{"k": key}, upd.Key)
	assert.Equal(t, int32(2), upd.New["n"])
}
