package pgcdc

import (
	"fmt"

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
	return &decoder{types: pgtype.NewMap(), relations: map[uint32]*relation{}, wanted: wanted}
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
		return nil, fmt.Errorf("pgcdc: change to relation %d, which the server did not describe", id)
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
		return nil, nil, fmt.Errorf("pgcdc: %s: a row of %d columns; the relation has %d", r.table, len(t.Columns), len(r.columns))
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
				return nil, nil, fmt.Errorf("pgcdc: %s.%s: %w", r.table, col.name, err)
			}
			row[col.name] = v
		default:
			return nil, nil, fmt.Errorf("pgcdc: %s.%s: unknown tuple data type %q", r.table, col.name, tc.DataType)
		}
	}
	return row, unchanged, nil
}

// value decodes a column's value by its type's OID, as pgx would scan it
// into an any; the text of a type pgx does not know.
func (d *decoder) value(oid uint32, format int16, data []byte) (any, error) {
	if t, ok := d.types.TypeForOID(oid); ok {
		return t.Codec.DecodeValue(d.types, oid, format, data)
	}
	return string(data), nil
}
