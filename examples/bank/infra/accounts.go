package infra

import (
	"context"
	"errors"
	"fmt"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelpatterns/patterns/eventsource"
	"github.com/otelpatterns/patterns/examples/bank/appsvc"
	"github.com/otelpatterns/patterns/examples/bank/model"
	"github.com/otelpatterns/patterns/hexagonal"
)

// PortName is the name of the repository's port in its spans and
// metrics: "AccountRepository.Load", ".Save" and ".Applied".
const PortName = "AccountRepository"

// Accounts is the repository of accounts on an event store: it
// implements [appsvc.AccountRepository], each call in a span of the
// infrastructure layer.
type Accounts struct {
	load    func(context.Context, string) (*model.Account, error)
	save    func(context.Context, appsvc.Change) error
	applied func(context.Context, appsvc.RequestKey) (bool, error)
}

var _ appsvc.AccountRepository = (*Accounts)(nil)

// NewAccounts returns the repository of accounts on be, taking a snapshot
// of an account whenever a save crosses a multiple of snapshotEvery
// events. Its store must be an [eventsource.CommandLog] (MemoryStore and
// pgstore are): that is where the record of each request is kept.
func NewAccounts(be *Backend, reg *eventsource.Registry, snapshotEvery int, tp trace.TracerProvider, mp metric.MeterProvider) (*Accounts, error) {
	log, ok := be.Store.(eventsource.CommandLog)
	if !ok {
		return nil, fmt.Errorf("infra: the store %T keeps no command log", be.Store)
	}
	repo, err := eventsource.NewRepository(be.Store, reg, model.NewAccount,
		eventsource.WithSnapshots(be.Snapshots, snapshotEvery))
	if err != nil {
		return nil, err
	}
	opts := []hexagonal.InstrumentOption{hexagonal.WithTracerProvider(tp), hexagonal.WithMeterProvider(mp)}
	return &Accounts{
		load: hexagonal.Instrument(hexagonal.Infrastructure, PortName, "Load",
			func(ctx context.Context, id string) (*model.Account, error) {
				a, err := repo.Load(ctx, id)
				return a, portError(err)
			}, opts...),
		save: hexagonal.InstrumentErr(hexagonal.Infrastructure, PortName, "Save",
			func(ctx context.Context, c appsvc.Change) error {
				if c.RequestID != "" {
					ctx = eventsource.WithCommandID(ctx, c.RequestID)
				}
				return portError(repo.Save(ctx, c.Account))
			}, opts...),
		applied: hexagonal.Instrument(hexagonal.Infrastructure, PortName, "Applied",
			func(ctx context.Context, k appsvc.RequestKey) (bool, error) {
				return log.CommandRecordedIn(ctx, k.RequestID, k.AccountID)
			}, opts...),
	}, nil
}

// Load implements [appsvc.AccountRepository].
func (r *Accounts) Load(ctx context.Context, id string) (*model.Account, error) {
	return r.load(ctx, id)
}

// Save implements [appsvc.AccountRepository]: the events are appended
// under the request id (eventsource.WithCommandID), which the store
// records in the same append.
func (r *Accounts) Save(ctx context.Context, c appsvc.Change) error { return r.save(ctx, c) }

// Applied implements [appsvc.AccountRepository] with the store's command
// log.
func (r *Accounts) Applied(ctx context.Context, k appsvc.RequestKey) (bool, error) {
	return r.applied(ctx, k)
}

// portError makes the store's errors match the port's as well.
func portError(err error) error {
	var port error
	switch {
	case err == nil:
		return nil
	case errors.Is(err, eventsource.ErrNotFound):
		port = appsvc.ErrNotFound
	case errors.Is(err, eventsource.ErrConcurrencyConflict):
		port = appsvc.ErrConflict
	case errors.Is(err, eventsource.ErrDuplicateCommand):
		port = appsvc.ErrAlreadyApplied
	default:
		return err
	}
	return &adaptedError{err: err, port: port}
}

// adaptedError is an error of the store that matches an error of the
// port too, with the store's message.
type adaptedError struct{ err, port error }

func (e *adaptedError) Error() string   { return e.err.Error() }
func (e *adaptedError) Unwrap() []error { return []error{e.err, e.port} }
