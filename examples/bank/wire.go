package main

import (
	"context"
	"errors"
	"io"
	"sync"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelpatterns/patterns/eventsource"
	"github.com/otelpatterns/patterns/examples/bank/appsvc"
	"github.com/otelpatterns/patterns/examples/bank/domainsvc"
	"github.com/otelpatterns/patterns/examples/bank/infra"
	"github.com/otelpatterns/patterns/examples/bank/model"
	"github.com/otelpatterns/patterns/hexagonal"
)

// bank is the wired service: the use cases, each wrapped in a span of the
// application services' layer, over the domain and the infrastructure.
type bank struct {
	be       *infra.Backend
	reg      *eventsource.Registry
	racer    *racer
	open     func(context.Context, appsvc.OpenAccount) (*model.Account, error)
	deposit  func(context.Context, appsvc.Movement) (*model.Account, error)
	withdraw func(context.Context, appsvc.Movement) (*model.Account, error)
	get      func(context.Context, string) (*model.Account, error)
	transfer func(context.Context, appsvc.TransferRequest) (appsvc.Receipt, error)

	tracer   trace.Tracer
	commands metric.Int64Counter
	traces   *traces
	out      io.Writer
}

// newBank wires the layers from the inside out. Each layer gets the calls
// into the layer inside it already wrapped by hexagonal.Instrument, so
// that a traced request shows a span per layer while no inner package
// imports hexagonal or OpenTelemetry.
func newBank(be *infra.Backend, otelp *providers, out io.Writer) (*bank, error) {
	opts := []hexagonal.InstrumentOption{hexagonal.WithTracerProvider(otelp.tp), hexagonal.WithMeterProvider(otelp.mp)}

	// The domain model and the domain service.
	domain := appsvc.Domain{
		Open:     hexagonal.InstrumentErr(hexagonal.DomainModel, "Account", "Open", model.Open, opts...),
		Deposit:  hexagonal.InstrumentErr(hexagonal.DomainModel, "Account", "Deposit", model.Deposit, opts...),
		Withdraw: hexagonal.InstrumentErr(hexagonal.DomainModel, "Account", "Withdraw", model.Withdraw, opts...),
	}
	domain.Transfer = hexagonal.InstrumentErr(hexagonal.DomainService, "TransferService", "Transfer",
		domainsvc.Transfers{Withdraw: domain.Withdraw, Deposit: domain.Deposit}.Transfer, opts...)

	// The infrastructure: the repository implements the application's
	// port, each call in a span of its own layer.
	reg := infra.NewRegistry()
	repo, err := infra.NewAccounts(be, reg, snapshotEvery, otelp.tp, otelp.mp)
	if err != nil {
		return nil, err
	}
	race := &racer{AccountRepository: repo}

	// The application services. The transfers see the repository through
	// the racer, which can make a card payment race them.
	accounts, err := appsvc.NewAccounts(repo, domain)
	if err != nil {
		return nil, err
	}
	transfers, err := appsvc.NewTransfers(race, domain)
	if err != nil {
		return nil, err
	}
	commands, err := otelp.mp.Meter(scopeName).Int64Counter("bank.commands",
		metric.WithUnit("{command}"),
		metric.WithDescription("Commands on accounts, by command and outcome."))
	if err != nil {
		return nil, err
	}
	app := hexagonal.ApplicationService
	return &bank{
		be: be, reg: reg, racer: race,
		open:     hexagonal.Instrument(app, "Accounts", "Open", accounts.Open, opts...),
		deposit:  hexagonal.Instrument(app, "Accounts", "Deposit", accounts.Deposit, opts...),
		withdraw: hexagonal.Instrument(app, "Accounts", "Withdraw", accounts.Withdraw, opts...),
		get:      hexagonal.Instrument(app, "Accounts", "Get", accounts.Get, opts...),
		transfer: hexagonal.Instrument(app, "Transfers", "Transfer", transfers.Transfer, opts...),
		tracer:   otelp.tp.Tracer(scopeName), commands: commands,
		traces: otelp.traces, out: out,
	}, nil
}

// command runs f in a span named bank.{name}, standing for the server
// span of a request in a service, and counts it by outcome: accepted,
// rejected (a broken rule, which is the caller's error rather than a
// failure), conflict or failed. conflicts is how many races f lost and
// retried; each is counted, and noted on the span as a bank.conflict
// event. opts start the span.
func (b *bank) command(ctx context.Context, name string, f func(context.Context) (conflicts []error, err error), opts ...trace.SpanStartOption) (trace.SpanContext, error) {
	ctx, span := b.tracer.Start(ctx, "bank."+name, opts...)
	defer span.End()
	conflicts, err := f(ctx)
	count := func(outcome string) {
		b.commands.Add(ctx, 1, metric.WithAttributes(
			attribute.String("bank.command", name), attribute.String("bank.outcome", outcome)))
	}
	for _, c := range conflicts {
		count("conflict")
		span.AddEvent("bank.conflict", trace.WithAttributes(semconv.ErrorType(c), attribute.String("exception.message", c.Error())))
	}
	outcome := "accepted"
	if _, rule := hexagonal.DomainKind(err); rule {
		outcome = "rejected"
		span.SetAttributes(attribute.String("bank.rejected", err.Error()))
	} else if err != nil {
		outcome = "failed"
		if errors.Is(err, eventsource.ErrConcurrencyConflict) {
			outcome = "conflict"
		}
		span.SetStatus(codes.Error, err.Error())
		span.SetAttributes(semconv.ErrorType(err))
	}
	count(outcome)
	return span.SpanContext(), err
}

// racer is the repository as the transfers see it. Armed, it runs a
// function (a card payment) just before the next save of one account,
// after the transfer loaded it: the run's way of making two writers race
// at the same moment every time.
type racer struct {
	appsvc.AccountRepository

	mu      sync.Mutex
	account string
	loaded  func(*model.Account)
	before  func(context.Context) error
}

// arm makes the next load of account call loaded, and the next save of it
// call before first.
func (r *racer) arm(account string, loaded func(*model.Account), before func(context.Context) error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.account, r.loaded, r.before = account, loaded, before
}

// Load implements appsvc.AccountRepository.
func (r *racer) Load(ctx context.Context, id string) (*model.Account, error) {
	a, err := r.AccountRepository.Load(ctx, id)
	r.mu.Lock()
	loaded := r.loaded
	if id != r.account || err != nil {
		loaded = nil
	}
	if loaded != nil {
		r.loaded = nil
	}
	r.mu.Unlock()
	if loaded != nil {
		loaded(a)
	}
	return a, err
}

// Save implements appsvc.AccountRepository.
func (r *racer) Save(ctx context.Context, c appsvc.Change) error {
	r.mu.Lock()
	before := r.before
	if c.Account.ID() != r.account {
		before = nil
	}
	if before != nil {
		r.before = nil
	}
	r.mu.Unlock()
	if before != nil {
		if err := before(ctx); err != nil {
			return err
		}
	}
	return r.AccountRepository.Save(ctx, c)
}
