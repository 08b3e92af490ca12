package pgcdc

import (
	"encoding/binary"
	"encoding/json"
	"strings"
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

	// The server sends the same WAL on every connection: what the
	// decoder cannot read is an error Run returns (fatal), or a value
	// it delivers as it can, never one to connect again after forever.
	_, err = d.change(mustParse(t, msg{'I'}.u32(1).byte('N').u16(1).null()))
	assert.ErrorContains(t, err, "relation 1, which the server did not describe")
	assert.True(t, isFatal(err), "fatal: %v", err)
	_, err = d.change(mustParse(t, msg{'I'}.u32(16385).byte('N').u16(1).text("1")))
	assert.ErrorContains(t, err, "a row of 1 columns; the relation has 3")
	assert.True(t, isFatal(err), "fatal: %v", err)
	_, err = d.change(mustParse(t, msg{'I'}.u32(16385).byte('N').u16(3).byte('b').u32(1).byte(7).null().null()))
	assert.ErrorContains(t, err, "public.orders.id", "a binary value pgx cannot decode")
	assert.True(t, isFatal(err), "fatal: %v", err)
	bad, err := d.change(mustParse(t, msg{'I'}.u32(16385).byte('N').u16(3).text("x").null().null()))
	require.NoError(t, err)
	assert.Equal(t, "x", bad.New["id"], "a value pgx fails to decode, as its text")

	assert.ErrorContains(t, d.relation(mustParse(t, relationMsg(16385, "orders_old")).(*pglogrepl.RelationMessage)),
		"public.orders was renamed public.orders_old", "a wanted table renamed")
	assert.NoError(t, d.relation(mustParse(t, relationMsg(16390, "orders")).(*pglogrepl.RelationMessage)))
}

// TestDecodeValues: json numbers keep their digits (json.Number), arrays
// keep their dimensions (nested slices), a "char" is a string, and a
// value pgx fails to decode, or an array whose indexes do not start at
// 1, is its text.
func TestDecodeValues(t *testing.T) {
	d := newDecoder(nil)
	deep := strings.Repeat("[", 10001) + strings.Repeat("]", 10001)
	for _, tt := range []struct {
		oid  uint32
		text string
		want any
	}{
		{pgtype.JSONBOID, `{"id": 9007199254740993, "a": [1.10, "x", null, true]}`,
			map[string]any{"id": json.Number("9007199254740993"), "a": []any{json.Number("1.10"), "x", nil, true}}},
		{pgtype.JSONOID, `12345678901234567890`, json.Number("12345678901234567890")},
		{pgtype.JSONOID, `1e400`, json.Number("1e400")},
		{pgtype.JSONOID, deep, deep},
		{pgtype.JSONBArrayOID, `{"{\"n\": 1}",NULL}`, []any{map[string]any{"n": json.Number("1")}, nil}},
		{pgtype.QCharOID, `a`, "a"},
		{pgtype.QCharOID, ``, ""},
		{pgtype.QCharOID, `\200`, `\200`},
		{pgtype.QCharArrayOID, `{a,"\\200"}`, []any{"a", `\200`}},
		{pgtype.Int4ArrayOID, `{1,2,3,4}`, []any{int32(1), int32(2), int32(3), int32(4)}},
		{pgtype.Int4ArrayOID, `{{1,2},{3,4}}`, []any{[]any{int32(1), int32(2)}, []any{int32(3), int32(4)}}},
		{pgtype.Int4ArrayOID, `{{{1,2,3}},{{4,5,6}}}`, []any{[]any{[]any{int32(1), int32(2), int32(3)}}, []any{[]any{int32(4), int32(5), int32(6)}}}},
		{pgtype.TextArrayOID, `{{a,NULL}}`, []any{[]any{"a", nil}}},
		{pgtype.Int4ArrayOID, `{}`, []any{}},
		{pgtype.Int4ArrayOID, `[0:1]={1,2}`, `[0:1]={1,2}`},
		{pgtype.Int4ArrayOID, `[1:2][1:1]={{1},{2}}`, []any{[]any{int32(1)}, []any{int32(2)}}},
		{pgtype.Int4ArrayOID, `[1:2][3:3]={{1},{2}}`, `[1:2][3:3]={{1},{2}}`},
		{pgtype.Int4OID, `x`, "x"},
		{99999, `open`, "open"},
	} {
		got, err := d.value(tt.oid, pgtype.TextFormatCode, []byte(tt.text))
		require.NoError(t, err, "value(%d, %.40q)", tt.oid, tt.text)
		assert.Equal(t, tt.want, got, "value(%d, %.40q)", tt.oid, tt.text)
	}
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
	arrays := msg{'R'}.u32(16385).str("public").str("orders").byte('d').u16(3).
		col("id", pgtype.Int4OID, true).col("m", pgtype.Int4ArrayOID, false).col("j", pgtype.JSONBArrayOID, false)
	f.Add([]byte(arrays), []byte(msg{'I'}.u32(16385).byte('N').u16(3).text("7").text("[1:2][1:2]={{1,2},{3,4}}").text(`{"{\"n\": 1e400}"}`)))
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
