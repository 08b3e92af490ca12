// Command bank is the onion architecture with a bank transfer, on event
// sourcing: accounts whose state is the sequence of events that changed
// them, kept in an [eventsource.Store].
//
// # Layers
//
// The program is laid out as packages by layer, inner to outer, each
// depending only on those inside it:
//
//   - model, the domain model: the Account aggregate (it embeds
//     [eventsource.Base]) and the Money value object. Its commands, Open,
//     Deposit and Withdraw, check the rules against the account's current
//     state (an account opens once, amounts are positive and in the
//     account's currency, there is no overdraft) and then raise one of
//     three events: AccountOpened, Deposited or Withdrawn. A command that
//     breaks a rule returns an error and raises nothing, so nothing is
//     saved.
//   - domainsvc, the domain service: the rules of a transfer, which span
//     two accounts (two different accounts, the same currency, a positive
//     amount that the balance covers).
//   - appsvc, the application services: the use cases (open, deposit,
//     withdraw; transfer, idempotent by request id), and the port they
//     load and save accounts through, AccountRepository, with its errors.
//   - infra, the infrastructure: the event store ([eventsource.MemoryStore]
//     or eventsource/pgstore), the repository that implements the port on
//     it, the registry of stored event types (bank.account_opened.v1,
//     bank.deposited.v1, bank.withdrawn.v1, and the upcaster of
//     bank.deposited.v0), and the projection.
//   - main (this package), the composition root: it builds the layers,
//     hands each the calls into the layer inside it wrapped by
//     [hexagonal.Instrument] in a span of that layer, and plays the
//     scenario.
//
// Dependency inversion is strict: the application defines the port and
// the infrastructure implements it; the inner layers import no store,
// driver or telemetry. arch_test.go checks the rule with
// hexagonal/archtest.
//
// # The scenario
//
// The program opens two accounts and then, one step at a time, so that the
// run is repeatable:
//
//   - breaks each rule of an account once and shows that it did not change;
//   - transfers money from one account to the other, and prints the
//     transfer's trace: one span per layer (the application service, the
//     domain service, the domain model's commands, the repository in the
//     infrastructure). The withdrawal and the deposit are separate appends
//     to separate streams, the withdrawal first; a transfer stopped
//     between them is completed by a retry of its request;
//   - appends, raw, a deposit as an earlier version of the service wrote it
//     (bank.deposited.v0, with the amount as a decimal string), and reads it
//     back as a Deposited event through the registry's upcaster;
//   - races a transfer and a card payment on one account: the transfer
//     loads it, the card payment saves first, and the transfer's save fails
//     with an error matching [eventsource.ErrConcurrencyConflict] instead
//     of overwriting it. The transfer loads the accounts again and decides
//     again, against the new balance; its trace shows the failed save in
//     the infrastructure and the second decision;
//   - transfers money back, and then sends the same request again, as a
//     client does that lost the response: the request id is recorded with
//     the events, so the second call answers that it is done and moves
//     nothing (its trace shows no domain call and no save);
//   - attempts a transfer that the balance does not cover, and breaks each
//     rule of a transfer once;
//   - shows the snapshots (the repository takes one whenever a save
//     crosses a multiple of 5 events, and a load starts from the latest),
//     and the balances kept by a projection: a reader that subscribed to
//     the store's global order ([eventsource.Store]'s Subscribe) before the
//     first command, checked against a rebuild from ReadAll and against the
//     accounts as the repository loads them.
//
// Run it from the repository root:
//
//	go run ./examples/bank
//
// By default the events are kept in memory ([eventsource.MemoryStore] and
// [eventsource.MemorySnapshots]). To keep them in PostgreSQL instead, set
// PATTERNS_POSTGRES_URL: the program then uses eventsource/pgstore, in a
// schema of its own (bank_example_ and a random suffix) that it drops at
// the end, and keeps the snapshots in the same store:
//
//	PATTERNS_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test?sslmode=disable go run ./examples/bank
//
// The output is the same on both stores.
//
// # Telemetry
//
// Each command of the scenario runs in a span of its own (bank.open,
// bank.deposit, bank.withdraw, bank.transfer), standing for the server
// span of a request, and the bank.commands metric counts commands by
// bank.command and bank.outcome (accepted, rejected, conflict or failed).
// Under it, each layer's call is a span of package hexagonal
// ("Transfers.Transfer", "TransferService.Transfer", "Account.Withdraw",
// "AccountRepository.Save", ...) with hexagonal.layer set to the onion's
// names (application_service, domain_service, domain_model,
// infrastructure), and counted by hexagonal.calls. The projection handles
// each event in a bank.project span linked to the span of the command that
// appended it: the store keeps the W3C trace context of the append in the
// event's metadata, through the global propagator, which main sets to W3C
// Trace Context. On PostgreSQL the store adds spans for its database calls
// and its own metrics.
//
// The program keeps the spans and metrics in memory for what it prints.
// All of them are written to stderr as JSON, once, at the end, with
// -telemetry=json, and sent to an OpenTelemetry collector over OTLP/HTTP
// when the standard variables say so (see the README's "Try it"):
//
//	go run ./examples/bank -telemetry=json 2>telemetry.json
//	OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4318 go run ./examples/bank
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"

	"github.com/otelpatterns/patterns/examples/bank/infra"
	"github.com/otelpatterns/patterns/examples/internal/exampleotel"
	"github.com/otelpatterns/patterns/examples/internal/examplepg"
)

// scopeName is the instrumentation scope of the program's own telemetry.
const scopeName = "github.com/otelpatterns/patterns/examples/bank"

// snapshotEvery is the snapshot interval of the repository, in events.
const snapshotEvery = 5

func main() {
	// The store records the trace context of each append in the events'
	// metadata through the global propagator: W3C Trace Context here, as
	// in a service that propagates it over HTTP.
	otel.SetTextMapPropagator(propagation.TraceContext{})
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	err := run(ctx, os.Stdout, exampleotel.JSONOut())
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bank example:", err)
		os.Exit(1)
	}
}

// run plays the scenario, writing what happens to out and the telemetry
// (as JSON, all of it) to telemetryOut, if not nil. It returns once the
// projection has stopped, the store is closed (its schema dropped, on
// PostgreSQL) and the telemetry flushed, leaving no goroutine behind.
func run(ctx context.Context, out, telemetryOut io.Writer) (err error) {
	otelp, err := newProviders(ctx, telemetryOut)
	if err != nil {
		return err
	}
	defer func() {
		// Flush even when ctx was cancelled (Ctrl-C), with a deadline of
		// its own.
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if serr := otelp.shutdown(sctx); serr != nil {
			err = errors.Join(err, fmt.Errorf("shutting down telemetry: %w", serr))
		}
	}()

	be, err := infra.Open(ctx, os.Getenv(examplepg.URLVar), otelp.tp, otelp.mp)
	if err != nil {
		return err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if cerr := be.Close(cctx); cerr != nil {
			err = errors.Join(err, fmt.Errorf("closing the store: %w", cerr))
		}
	}()

	b, err := newBank(be, otelp, out)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "bank: event-sourced accounts on %s, in the layers of an onion\n", be.Name)
	fmt.Fprintf(out, "snapshots every %d events\n", snapshotEvery)

	// The projection follows the store from the start, as a separate read
	// model would, while the commands below write.
	proj := infra.NewProjection(b.reg, b.tracer)
	proj.Start(ctx, be.Store)
	defer func() {
		if perr := proj.Shutdown(); perr != nil {
			err = errors.Join(err, fmt.Errorf("projection: %w", perr))
		}
	}()

	if err := b.scenario(ctx); err != nil {
		return err
	}
	return b.report(ctx, proj)
}
