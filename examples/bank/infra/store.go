package infra

import (
	"context"
	"errors"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelpatterns/patterns/eventsource"
	"github.com/otelpatterns/patterns/eventsource/pgstore"
	"github.com/otelpatterns/patterns/examples/internal/examplepg"
)

// Backend is where a run keeps its events and snapshots.
type Backend struct {
	// Name names the store, for the output.
	Name      string
	Store     eventsource.Store
	Snapshots eventsource.SnapshotStore
	// Close releases the store: on PostgreSQL it drops the run's schema
	// and closes the pool.
	Close func(context.Context) error
}

// Open returns the in-memory store when url is empty, and otherwise a
// [pgstore.Store] on the PostgreSQL database at url, in a new schema of
// its own (bank_example_ and a random suffix), which Close drops with
// everything in it. The PostgreSQL store keeps the snapshots too, and
// reports its spans and metrics to tp and mp.
func Open(ctx context.Context, url string, tp trace.TracerProvider, mp metric.MeterProvider) (*Backend, error) {
	if url == "" {
		return &Backend{
			Name:      "the in-memory store",
			Store:     &eventsource.MemoryStore{},
			Snapshots: &eventsource.MemorySnapshots{},
			Close:     func(context.Context) error { return nil },
		}, nil
	}
	// The projection's subscription holds a connection while it runs; the
	// commands need one more.
	pool, schema, drop, err := examplepg.Open(ctx, url, "bank_example_", 4)
	if err != nil {
		return nil, err
	}
	store, err := pgstore.New(pool,
		pgstore.WithSchema(schema),
		pgstore.WithTracerProvider(tp),
		pgstore.WithMeterProvider(mp))
	if err == nil {
		err = store.Migrate(ctx)
	}
	if err != nil {
		return nil, errors.Join(err, drop(context.WithoutCancel(ctx)))
	}
	return &Backend{Name: "PostgreSQL", Store: store, Snapshots: store, Close: drop}, nil
}
