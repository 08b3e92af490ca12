package pgcdc

import (
	"testing"

	"github.com/jackc/pglogrepl"
)

// BenchmarkDecode compares the decoding of an insert of a row of three
// columns into a Change (bounds checks, parsing, values decoded by type)
// with pglogrepl's parsing alone, the baseline.
func BenchmarkDecode(b *testing.B) {
	d := newDecoder(map[string]bool{"public.orders": true})
	rel, err := pglogrepl.Parse(relationMsg(16385, "orders"))
	if err != nil {
		b.Fatal(err)
	}
	if err := d.relation(rel.(*pglogrepl.RelationMessage)); err != nil {
		b.Fatal(err)
	}
	insert := msg{'I'}.u32(16385).byte('N').u16(3).text("7").text("a note").text("open")
	b.Run("pglogrepl.Parse", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := pglogrepl.Parse(insert); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("decode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			m, err := parse(insert)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := d.change(m); err != nil {
				b.Fatal(err)
			}
		}
	})
}
