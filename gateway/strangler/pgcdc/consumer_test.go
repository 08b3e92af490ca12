package pgcdc_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgtype"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelpatterns/patterns/gateway/strangler/pgcdc"
)

func TestNewReportsEveryError(t *testing.T) {
	h := func(context.Context, pgcdc.Transaction) error { return nil }
	tests := []struct {
		name  string
		conn  string
		slot  string
		table []string
		h     pgcdc.Handler
		opts  []pgcdc.Option
		want  []string
	}{
		{"all at once", "postgres://x:notaport/db", "Bad-Slot", nil, nil,
			[]pgcdc.Option{pgcdc.WithPublication("a b"), nil, pgcdc.WithStatusInterval(0), pgcdc.WithBackoff(0, -1), pgcdc.WithMaxAttempts(-1)},
			[]string{"connString", `slot "Bad-Slot"`, "tables: none", "handler: nil", `WithPublication("a b")`, "opts[1] is nil", "WithStatusInterval(0s)", "WithBackoff(0s, -1ns)", "WithMaxAttempts(-1)"}},
		{"nil option", "", "s", []string{"t"}, h, []pgcdc.Option{pgcdc.WithPublication("p"), nil}, []string{"pgcdc: New: ", "opts[1] is nil"}},
		{"long slot", "", strings.Repeat("a", 64), []string{"t"}, h, nil, []string{"slot"}},
		{"bad tables", "", "s", []string{"", "a.", ".b", strings.Repeat("x", 64)}, h, nil,
			[]string{"tables[0]", "tables[1]", "tables[2]", "tables[3]"}},
		{"empty publication", "", "s", []string{"t"}, h, []pgcdc.Option{pgcdc.WithPublication("")}, []string{`WithPublication("")`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := pgcdc.New(tt.conn, tt.slot, tt.table, tt.h, tt.opts...)
			require.Error(t, err)
			assert.Nil(t, c)
			for _, w := range tt.want {
				assert.Contains(t, err.Error(), w)
			}
		})
	}
	c, err := pgcdc.New("", "orders_cdc", []string{"orders", "sales.orders", "orders"}, h)
	require.NoError(t, err)
	assert.Equal(t, "orders_cdc", c.Slot())
	assert.Equal(t, "orders_cdc", c.Publication(), "the slot's name by default")
	_, err = pgcdc.New("", "Slot", []string{"t"}, h)
	require.Error(t, err)
	assert.NotContains(t, err.Error(), "WithPublication", "the slot's bad name reported once")
}

func TestLSNString(t *testing.T) {
	assert.Equal(t, "16/B374D848", pgcdc.LSN(0x16_B374D848).String())
	assert.Equal(t, "0/0", pgcdc.LSN(0).String())
}

// TestChangesArriveInCommitOrder: inserts, updates, deletes, a
// transaction of several rows over two tables and a truncate arrive one
// transaction at a time, in commit order, with their values; changes to
// a table outside the publication do not.
func TestChangesArriveInCommitOrder(t *testing.T) {
	f := newFixture(t)
	f.exec("CREATE TABLE " + f.table("items") + " (id int PRIMARY KEY, name text NOT NULL, price numeric(10,2), at timestamptz, tags text[])")
	f.exec("CREATE TABLE " + f.table("notes") + " (id bigint PRIMARY KEY, body text)")
	f.exec("CREATE TABLE " + f.table("other") + " (id int PRIMARY KEY)")
	h, ch := channel()
	c := f.consumer([]string{"items", "notes"}, h)
	f.setup(c)
	stop := run(t, c)

	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	f.exec("INSERT INTO "+f.table("items")+" VALUES (1, 'pen', 1.50, $1, '{a,b}')", at)
	f.exec("INSERT INTO " + f.table("other") + " VALUES (1)")
	f.exec("UPDATE " + f.table("items") + " SET name = 'blue pen' WHERE id = 1")
	f.exec("UPDATE " + f.table("items") + " SET id = 2 WHERE id = 1")
	f.exec("DELETE FROM " + f.table("items") + " WHERE id = 2")
	f.exec("INSERT INTO " + f.table("other") + " VALUES (2)")
	f.exec(`INSERT INTO ` + f.table("items") + ` VALUES (10, 'a', NULL, NULL, NULL), (11, 'b', NULL, NULL, NULL);
INSERT INTO ` + f.table("other") + ` VALUES (3);
INSERT INTO ` + f.table("notes") + ` VALUES (7, 'note');
UPDATE ` + f.table("items") + ` SET name = 'c' WHERE id = 10`) // one implicit transaction
	f.exec("TRUNCATE " + f.table("notes"))

	items, notes := f.table("items"), f.table("notes")
	var txs []pgcdc.Transaction
	for range 6 {
		txs = append(txs, next(t, ch))
	}
	require.NoError(t, stop())

	for i, tx := range txs {
		assert.NotZero(t, tx.XID)
		assert.False(t, tx.CommitTime.IsZero())
		assert.Greater(t, tx.EndLSN, tx.CommitLSN)
		if i > 0 {
			assert.Greater(t, tx.CommitLSN, txs[i-1].CommitLSN, "commit order")
		}
		for _, c := range tx.Changes {
			assert.NotEqual(t, f.table("other"), c.Table, "a change to a table outside the publication")
		}
	}

	ins := one(t, txs[0])
	assert.Equal(t, items, ins.Table)
	assert.Equal(t, pgcdc.OpInsert, ins.Op)
	assert.Equal(t, int32(1), ins.New["id"])
	assert.Equal(t, "pen", ins.New["name"])
	assert.Equal(t, "1.50", numeric(t, ins.New["price"]))
	assert.True(t, at.Equal(ins.New["at"].(time.Time)), "at = %v", ins.New["at"])
	assert.Equal(t, []any{"a", "b"}, ins.New["tags"])
	assert.Nil(t, ins.Old)
	assert.Equal(t, map[string]any{"id": int32(1)}, ins.Key)

	upd := one(t, txs[1])
	assert.Equal(t, pgcdc.OpUpdate, upd.Op)
	assert.Equal(t, "blue pen", upd.New["name"])
	assert.Nil(t, upd.Old, "an update that keeps the key carries no old row under the default replica identity")
	assert.Equal(t, map[string]any{"id": int32(1)}, upd.Key)

	rekey := one(t, txs[2])
	assert.Equal(t, pgcdc.OpUpdate, rekey.Op)
	assert.Equal(t, map[string]any{"id": int32(1)}, rekey.Old, "the old key of an update that changed it")
	assert.Equal(t, int32(2), rekey.New["id"])
	assert.Equal(t, map[string]any{"id": int32(1)}, rekey.Key)

	del := one(t, txs[3])
	assert.Equal(t, pgcdc.OpDelete, del.Op)
	assert.Nil(t, del.New)
	assert.Equal(t, map[string]any{"id": int32(2)}, del.Old, "a delete carries the old key alone")
	assert.Equal(t, map[string]any{"id": int32(2)}, del.Key)

	multi := txs[4]
	require.Len(t, multi.Changes, 4)
	want := []struct {
		table string
		op    pgcdc.Op
		id    any
	}{{items, pgcdc.OpInsert, int32(10)}, {items, pgcdc.OpInsert, int32(11)}, {notes, pgcdc.OpInsert, int64(7)}, {items, pgcdc.OpUpdate, int32(10)}}
	for i, w := range want {
		assert.Equal(t, w.table, multi.Changes[i].Table, "change %d", i)
		assert.Equal(t, w.op, multi.Changes[i].Op, "change %d", i)
		assert.Equal(t, w.id, multi.Changes[i].Key["id"], "change %d", i)
	}
	assert.Nil(t, multi.Changes[0].New["price"], "NULL")
	assert.Contains(t, multi.Changes[0].New, "price")

	trunc := one(t, txs[5])
	assert.Equal(t, pgcdc.Change{Table: notes, Op: pgcdc.OpTruncate}, trunc)
}

// one returns the only change of tx.
func one(t *testing.T, tx pgcdc.Transaction) pgcdc.Change {
	t.Helper()
	require.Len(t, tx.Changes, 1, "changes of %+v", tx)
	return tx.Changes[0]
}

func numeric(t *testing.T, v any) string {
	t.Helper()
	n, ok := v.(pgtype.Numeric)
	require.True(t, ok, "%T is not a pgtype.Numeric", v)
	b, err := n.MarshalJSON()
	require.NoError(t, err)
	return string(b)
}
