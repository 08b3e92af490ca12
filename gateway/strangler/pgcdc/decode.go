package pgcdc

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgtype"
)

// column is a column of a relation, as its Relation message describes it.
type column struct {
	name string
	oid  uint32
	key  bool // part of the replica identity
}

// relation is a table as the server described it on this connection.
type relation struct {
	table   string // schema.name
	wanted  bool   // one of the consumer's tables
	columns []column
}

// decoder turns pgoutput's messages into changes. It keeps the relations
// the server described on one connection, for the server describes a
// table once per connection (and again after its schema changed) and
// refers to it by id afterwards. It is not safe for concurrent use.
type decoder struct {
	types     *pgtype.Map
	relations map[uint32]*relation
	wanted    map[string]bool
}

func newDecoder(wanted map[string]bool) *decoder {
	return &decoder{types: newTypeMap(), relations: map[uint32]*relation{}, wanted: wanted}
}

// newTypeMap returns pgx's types, but for json, jsonb and "char" (and
// their arrays): json numbers are decoded as json.Number, for float64
// loses the digits of integers beyond 2^53 (an id, an amount in cents)
// and fails on numbers beyond its range, which a change must not make
// into other values or errors; a "char" is a string, as it is a
// character to the tables that use it, not the rune (int32) pgx makes
// of it.
func newTypeMap() *pgtype.Map {
	m := pgtype.NewMap()
	for _, t := range []struct {
		name          string
		oid, arrayOID uint32
		codec         pgtype.Codec
	}{
		{"json", pgtype.JSONOID, pgtype.JSONArrayOID, &pgtype.JSONCodec{Marshal: json.Marshal, Unmarshal: unmarshalJSON}},
		{"jsonb", pgtype.JSONBOID, pgtype.JSONBArrayOID, &pgtype.JSONBCodec{Marshal: json.Marshal, Unmarshal: unmarshalJSON}},
		{"char", pgtype.QCharOID, pgtype.QCharArrayOID, qcharCodec{}},
	} {
		elem := &pgtype.Type{Name: t.name, OID: t.oid, Codec: t.codec}
		m.RegisterType(elem)
		m.RegisterType(&pgtype.Type{Name: "_" + t.name, OID: t.arrayOID, Codec: &pgtype.ArrayCodec{ElementType: elem}})
	}
	return m
}

// unmarshalJSON is json.Unmarshal with numbers as json.Number.
func unmarshalJSON(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("json: data after the value")
	}
	return nil
}

// qcharCodec decodes a "char" as a string: its one character, "" for
// the zero byte, and, for a byte of 128 or more, the escape PostgreSQL
// writes in text (\ooo, in octal), which is no character of UTF-8.
type qcharCodec struct{ pgtype.QCharCodec }

func (qcharCodec) DecodeValue(_ *pgtype.Map, _ uint32, format int16, src []byte) (any, error) {
	if src == nil {
		return nil, nil
	}
	if format == pgtype.BinaryFormatCode && len(src) != 1 {
		return nil, fmt.Errorf("a \"char\" of %d bytes", len(src))
	}
	return string(src), nil
}

// relation records (or replaces) the description of a table. A table of
// the consumer's described again under a name it was not asked for has
// been renamed (or moved to another schema): it is still published, and
// its changes must not be dropped as another table's, so that is an
// error that stops the consumer before it confirms them.
func (d *decoder) relation(m *pglogrepl.RelationMessage) error {
	r := &relation{table: m.Namespace + "." + m.RelationName, columns: make([]column, len(m.Columns))}
	r.wanted = d.wanted[r.table]
	if prev, ok := d.relations[m.RelationID]; ok && prev.wanted && !r.wanted {
		return fatal("pgcdc: table %s was renamed %s, which the consumer was not asked for; "+
			"its changes are still published: stream it under its new name", prev.table, r.table)
	}
	for i, c := range m.Columns {
		r.columns[i] = column{name: c.Name, oid: c.DataType, key: c.Flags&1 != 0}
	}
	d.relations[m.RelationID] = r
	return nil
}

func (d *decoder) lookup(id uint32) (*relation, error) {
	r, ok := d.relations[id]
	if !ok {
		return nil, fatal("pgcdc: change to relation %d, which the server did not describe", id)
	}
	return r, nil
}

// change decodes a row change: nil, nil for a table not wanted.
func (d *decoder) change(msg pglogrepl.Message) (*Change, error) {
	var (
		id       uint32
		op       Op
		old, new *pglogrepl.TupleData
		oldKey   bool // old holds the key alone
	)
	switch m := msg.(type) {
	case *pglogrepl.InsertMessage:
		id, op, new = m.RelationID, OpInsert, m.Tuple
	case *pglogrepl.UpdateMessage:
		id, op, old, new = m.RelationID, OpUpdate, m.OldTuple, m.NewTuple
		oldKey = m.OldTupleType == pglogrepl.UpdateMessageTupleTypeKey
	case *pglogrepl.DeleteMessage:
		id, op, old = m.RelationID, OpDelete, m.OldTuple
		oldKey = m.OldTupleType == pglogrepl.DeleteMessageTupleTypeKey
	default:
		return nil, nil
	}
	r, err := d.lookup(id)
	if err != nil || !r.wanted {
		return nil, err
	}
	c := &Change{Table: r.table, Op: op}
	if new != nil {
		if c.New, c.Unchanged, err = d.tuple(r, new, false); err != nil {
			return nil, err
		}
	}
	if old != nil {
		if c.Old, _, err = d.tuple(r, old, oldKey); err != nil {
			return nil, err
		}
	}
	src := c.Old
	if src == nil {
		src = c.New
	}
	c.Key = map[string]any{}
	for _, col := range r.columns {
		if v, ok := src[col.name]; ok && col.key {
			c.Key[col.name] = v
		}
	}
	return c, nil
}

// truncate returns the changes of a truncate, one per wanted table.
func (d *decoder) truncate(m *pglogrepl.TruncateMessage) ([]Change, error) {
	var out []Change
	for _, id := range m.RelationIDs {
		r, err := d.lookup(id)
		if err != nil {
			return nil, err
		}
		if r.wanted {
			out = append(out, Change{Table: r.table, Op: OpTruncate})
		}
	}
	return out, nil
}

// tuple decodes a row; with keyOnly, the replica identity's columns alone
// (the server sends the others as NULLs).
func (d *decoder) tuple(r *relation, t *pglogrepl.TupleData, keyOnly bool) (map[string]any, []string, error) {
	if len(t.Columns) != len(r.columns) {
		return nil, nil, fatal("pgcdc: %s: a row of %d columns; the relation has %d", r.table, len(t.Columns), len(r.columns))
	}
	row := make(map[string]any, len(t.Columns))
	var unchanged []string
	for i, tc := range t.Columns {
		col := r.columns[i]
		if keyOnly && !col.key {
			continue
		}
		switch tc.DataType {
		case pglogrepl.TupleDataTypeNull:
			row[col.name] = nil
		case pglogrepl.TupleDataTypeToast:
			unchanged = append(unchanged, col.name)
		case pglogrepl.TupleDataTypeText, pglogrepl.TupleDataTypeBinary:
			format := int16(pgtype.TextFormatCode)
			if tc.DataType == pglogrepl.TupleDataTypeBinary {
				format = pgtype.BinaryFormatCode
			}
			v, err := d.value(col.oid, format, tc.Data)
			if err != nil {
				return nil, nil, fatal("pgcdc: %s.%s: %w", r.table, col.name, err)
			}
			row[col.name] = v
		default:
			return nil, nil, fatal("pgcdc: %s.%s: unknown tuple data type %q", r.table, col.name, tc.DataType)
		}
	}
	return row, unchanged, nil
}

// value decodes a column's value by its type's OID, as pgx would scan it
// into an any, but for arrays, which [decoder.array] decodes. The value
// of a type pgx does not know, or that pgx fails to decode, is its text:
// the server sends the same value again on every connection, so an
// error would stop the consumer for good, and the value is valid, only
// beyond what pgx reads (a json document nested deeper than encoding/json
// goes, a "char" escaped in octal...). Changes come in text, as the
// consumer does not ask for binary; a binary value pgx fails to decode
// is an error.
func (d *decoder) value(oid uint32, format int16, data []byte) (any, error) {
	t, ok := d.types.TypeForOID(oid)
	if !ok {
		return string(data), nil
	}
	var v any
	var err error
	if _, isArray := t.Codec.(*pgtype.ArrayCodec); isArray {
		v, err = d.array(oid, format, data)
	} else {
		v, err = t.Codec.DecodeValue(d.types, oid, format, data)
	}
	if err != nil && format == pgtype.TextFormatCode {
		return string(data), nil
	}
	return v, err
}

// array decodes an array as nested slices, one level for each of its
// dimensions: '{{1,2},{3,4}}' is [][]any{{1, 2}, {3, 4}} (as []any
// holding []any), not the four elements flattened into the value of
// '{1,2,3,4}'. An array whose indexes do not start at 1 ('[0:1]={1,2}')
// is its text, as a slice would lose its bounds.
func (d *decoder) array(oid uint32, format int16, data []byte) (any, error) {
	var a pgtype.Array[any]
	if err := d.types.PlanScan(oid, format, &a).Scan(data, &a); err != nil {
		return nil, err
	}
	n := 1
	for _, dim := range a.Dims {
		if dim.LowerBound != 1 {
			if format != pgtype.TextFormatCode {
				return nil, fmt.Errorf("an array with lower bound %d", dim.LowerBound)
			}
			return string(data), nil
		}
		if dim.Length <= 0 {
			return nil, fmt.Errorf("an array dimension of length %d", dim.Length)
		}
		if n *= int(dim.Length); n > len(a.Elements) {
			break
		}
	}
	if len(a.Dims) > 0 && n != len(a.Elements) {
		return nil, fmt.Errorf("an array of %d elements in dimensions %v", len(a.Elements), a.Dims)
	}
	return nest(a.Elements, a.Dims), nil
}

// nest shapes elements, in PostgreSQL's order (the last index varies
// fastest), by dims: a slice of len(dims[0]), of slices of the rest.
func nest(elements []any, dims []pgtype.ArrayDimension) []any {
	if len(dims) <= 1 {
		if elements == nil {
			return []any{}
		}
		return elements
	}
	out := make([]any, dims[0].Length)
	size := len(elements) / len(out)
	for i := range out {
		out[i] = nest(elements[i*size:(i+1)*size], dims[1:])
	}
	return out
}
