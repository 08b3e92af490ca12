package pgcdc_test

import (
	"context"
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
