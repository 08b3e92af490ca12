package kafkabus

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

// BenchmarkDecodeRecord is what a subscription does to a record that a
// bare consumer handed its records does not: turning it into the
// cqrs.Message its handler gets (the ID, type and key of the record's
// headers as strings, its value as Data).
func BenchmarkDecodeRecord(b *testing.B) {
	r := &kgo.Record{Topic: "cqrs.orders", Key: []byte("stream-7"), Value: []byte(`{"order":"42","total":1200}`),
		Headers: []kgo.RecordHeader{{Key: idHeader, Value: []byte("m1042")}, {Key: typeHeader, Value: []byte("order.placed.v1")},
			{Key: keyHeader, Value: []byte("stream-7")}}}
	b.ReportAllocs()
	for b.Loop() {
		m, _ := decodeRecord("orders", r)
		if m.ID == "" {
			b.Fatal("no ID")
		}
	}
}
