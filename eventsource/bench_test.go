package eventsource_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/otelpatterns/patterns/eventsource"
)

// BenchmarkMemoryAppend measures appending one event to the in-memory
// store, against a bare slice append.
func BenchmarkMemoryAppend(b *testing.B) {
	ctx := context.Background()
	b.Run("bare", func(b *testing.B) {
		var events []eventsource.Event
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			events = append(events, eventsource.Event{StreamID: "s", Version: int64(i + 1), Type: "t", Data: []byte("{}")})
		}
		if len(events) == 0 {
			b.Fatal("no events appended")
		}
	})
	b.Run("memory", func(b *testing.B) {
		store := &eventsource.MemoryStore{}
		e := eventsource.NewEvent{Type: "t", Data: []byte("{}")}
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			if _, err := store.Append(ctx, fmt.Sprint(i%100), eventsource.Any, e); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkRepositoryLoad measures loading an aggregate of 1,000 events,
// with and without a snapshot.
func BenchmarkRepositoryLoad(b *testing.B) {
	ctx := context.Background()
	for _, snapshot := range []bool{false, true} {
		b.Run(fmt.Sprintf("snapshot=%v", snapshot), func(b *testing.B) {
			store := &eventsource.MemoryStore{}
			var opts []eventsource.RepositoryOption
			if snapshot {
				opts = append(opts, eventsource.WithSnapshots(&eventsource.MemorySnapshots{}, 100))
			}
			repo, err := eventsource.NewRepository(store, newRegistry(), func() *Account { return &Account{} }, opts...)
			if err != nil {
				b.Fatal(err)
			}
			a := repo.New("acc")
			for range 1000 {
				_ = eventsource.Raise(a, Deposited{1})
				if a.Version()%100 == 0 {
					if err := repo.Save(ctx, a); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := repo.Load(ctx, "acc"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
