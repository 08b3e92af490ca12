package pgcdc

import (
	"encoding/binary"
	"testing"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// msg builds a pgoutput message, as the server sends it.
type msg []byte

func (m msg) byte(b byte) msg   { return append(m, b) }
func (m msg) str(s string) msg  { return append(append(m, s...), 0) }
func (m msg) u16(v uint16) msg  { return binary.BigEndian.AppendUint16(m, v) }
func (m msg) u32(v uint32) msg  { return binary.BigEndian.AppendUint32(m, v) }
func (m msg) text(s string) msg { return append(m.byte('t').u32(uint32(len(s))), s...) }
func (m msg) null() msg         { return m.byte('n') }
func (m msg) unchanged() msg    { return m.byte('u') }
func (m msg) col(name string, oid uint32, key bool) msg {
	flags := byte(0)
	if key {
		flags = 1
	}
	return m.byte(flags).str(name).u32(oid).u32(0xFFFFFFFF)
}

// relationMsg describes public.orders (id int4 key, note text, state
// an unknown type) as relation 16385, and public.other as 16390.
func relationMsg(id uint32, table string) msg {
	return msg{'R'}.u32(id).str("public").str(table).byte('d').u16(3).
		col("id", pgtype.Int4OID, true).col("note", pgtype.TextOID, false).col("state", 99999, false)
}

func mustParse(t *testing.T, m msg) pglogrepl.Message {
	t.Helper()
	pm, err := parse(m)
	require.NoError(t, err)
	return pm
}

func TestDecoder(t *testing.T) {
	d := newDecoder(map[string]bool{"public.orders": true})
	require.NoError(t, d.relation(mustParse(t, relationMsg(16385, "orders")).(*pglogrepl.RelationMessage)))
	require.NoError(t, d.relation(mustParse(t, relationMsg(16390, "other")).(*pglogrepl.RelationMessage)))

	ins, err := d.change(mustParse(t, msg{'I'}.u32(16385).byte('N').u16(3).text("7").null().text("open")))
	require.NoError(t, err)
	assert.Equal(t, &Change{Table: "public.orders", Op: OpInsert,
		New: map[string]any{"id": int32(7), "note": nil, "state": "open"}, Key: map[string]any{"id": int32(7)}}, ins)

	upd, err := d.change(mustParse(t, msg{'U'}.u32(16385).byte('K').u16(3).text("7").null().null().
		byte('N').u16(3).text("8").unchanged().text("closed")))
	require.NoError(t, err)
	assert.Equal(t, &Change{Table: "public.orders", Op: OpUpdate,
		New: map[string]any{"id": int32(8), "state": "closed"}, Old: map[string]any{"id": int32(7)},
		Key: map[string]any{"id": int32(7)}, Unchanged: []string{"note"}}, upd)

	del, err := d.change(mustParse(t, msg{'D'}.u32(16385).byte('O').u16(3).text("8").text("n").text("closed")))
	require.NoError(t, err)
	assert.Equal(t, &Change{Table: "public.orders", Op: OpDelete,
		Old: map[string]any{"id": int32(8), "note": "n", "state": "closed"}, Key: map[string]any{"id": int32(8)}}, del)

	other, err := d.change(mustParse(t, msg{'I'}.u32(16390).byte('N').u16(3).text("1").null().null()))
	require.NoError(t, err)
	assert.Nil(t, other, "a table the consumer did not ask for")

	tr, err := d.truncate(mustParse(t, msg{'T'}.u32(2).byte(0).u32(16390).u32(16385)).(*pglogrepl.TruncateMessage))
	require.NoError(t, err)
	assert.Equal(t, []Change{{Table: "public.orders", Op: OpTruncate}}, tr)

	_, err = d.change(mustParse(t, msg{'I'}.u32(1).byte('N').u16(1).null()))
	assert.ErrorContains(t, err, "relation 1, which the server did not describe")
	_, err = d.change(mustParse(t, msg{'I'}.u32(16385).byte('N').u16(1).text("1")))
	assert.ErrorContains(t, err, "a row of 1 columns; the relation has 3")
	_, err = d.change(mustParse(t, msg{'I'}.u32(16385).byte('N').u16(3).text("x").null().null()))
	assert.ErrorContains(t, err, "public.orders.id")

	assert.ErrorContains(t, d.relation(mustParse(t, relationMsg(16385, "orders_old")).(*pglogrepl.RelationMessage)),
		"public.orders was renamed public.orders_old", "a wanted table renamed")
	assert.NoError(t, d.relation(mustParse(t, relationMsg(16390, "orders")).(*pglogrepl.RelationMessage)))
}

func TestParseMalformed(t *testing.T) {
	for _, m := range []msg{
		msg{'I'}.u32(16385).byte('N').u16(3).byte('t'), // a column cut short
		msg{'R'}.u32(1),
		msg{'U'}.u32(16385).byte('N').u16(5),
		msg{'I'}.u32(16385).byte('N').u16(1).byte('t').u32(1 << 31), // a length past the end
		msg{'D'}.u32(16385).byte('N').u16(1).null(),                 // not K or O
	} {
		_, err := parse(m)
		assert.Error(t, err, "%q", m)
	}
}

// FuzzDecode feeds messages to the parser and the decoder, which must
// return errors and never panic, whatever the server sends.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(relationMsg(16385, "orders")), []byte(msg{'I'}.u32(16385).byte('N').u16(3).text("7").null().text("open")))
	f.Add([]byte(relationMsg(16385, "orders")), []byte(msg{'U'}.u32(16385).byte('K').u16(3).text("7").null().null().
		byte('N').u16(3).text("8").unchanged().text("closed")))
	f.Add([]byte(relationMsg(16385, "orders")), []byte(msg{'D'}.u32(16385).byte('O').u16(3).text("8").text("n").text("closed")))
	f.Add([]byte(relationMsg(16385, "orders")), []byte(msg{'T'}.u32(1).byte(0).u32(16385)))
	f.Fuzz(func(t *testing.T, rel, change []byte) {
		d := newDecoder(map[string]bool{"public.orders": true})
		if m, err := parse(rel); err == nil {
			if r, ok := m.(*pglogrepl.RelationMessage); ok {
				_ = d.relation(r)
			}
		}
		m, err := parse(change)
		if err != nil {
			return
		}
		if tr, ok := m.(*pglogrepl.TruncateMessage); ok {
			_, _ = d.truncate(tr)
			return
		}
		_, _ = d.change(m)
	})
}
