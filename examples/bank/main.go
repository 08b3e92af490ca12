// Command bank shows event sourcing with a bank transfer: accounts whose
// state is the sequence of events that changed it, kept in an
// [eventsource.Store] and loaded and saved through an
// [eventsource.Repository].
//
// An [Account] (account.go) embeds [eventsource.Base]. Its commands, Open,
// Deposit and Withdraw, check the rules against the account's current state
// (an account opens once, amounts are positive, there is no overdraft) and
// then raise one of three events: AccountOpened, Deposited or Withdrawn,
// registered in an [eventsource.Registry] as bank.account_opened.v1,
// bank.deposited.v1 and bank.withdrawn.v1. A command that breaks a rule
// returns an error and raises nothing, so nothing is saved. The repository
// takes a snapshot of an account whenever a save crosses a multiple of 5
// events, and a load starts from the latest snapshot.
//
// The program opens two accounts and then, one step at a time, so that the
// run is repeatable:
//
//   - breaks each rule once and shows that the account did not change;
//   - transfers money from one account to the other: withdraw from the
//     first and save, then deposit to the second and save. The two saves
//     are separate appends to separate streams; a real service would run
//     the transfer as a saga (package saga), so that a crash between them is
//     recovered;
//   - races two withdrawals on one account: both load it at the same
//     version, the first save wins, and the second fails with an error
//     matching [eventsource.ErrConcurrencyConflict] instead of overwriting
//     it. The loser loads the account again and retries its command, which
//     checks the rules against the new balance;
//   - appends, raw, a deposit as an earlier version of the service wrote it
//     (bank.deposited.v0, with the amount as a decimal string), and reads it
//     back as a Deposited event through the registry's upcaster;
//   - attempts a transfer that the balance does not cover;
//   - shows the snapshots, and the balances kept by a projection: a reader
//     that subscribed to the store's global order ([eventsource.Store]'s
//     Subscribe) before the first command, checked against a rebuild from
//     ReadAll and against the accounts as the repository loads them.
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
// Each command runs in a span of its own (bank.open, bank.deposit,
// bank.withdraw, under bank.transfer for a transfer), and the
// bank.commands metric counts commands by bank.command and bank.outcome
// (accepted, rejected, conflict or failed). The projection handles each
// event in a bank.project span linked to the span of the command that
// appended it: the store keeps the W3C trace context of the append in
// the event's metadata, through the global propagator, which main sets to
// W3C Trace Context. On PostgreSQL the store adds spans for its database calls and
// its own metrics. By default the spans and metrics are written to stderr
// as JSON, once, at the end of the run, so stdout stays readable (add
// 2>/dev/null to hide them). To send them to an OpenTelemetry collector
// over OTLP/HTTP instead, set the standard variables:
//
//	OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4318 go run ./examples/bank
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelpatterns/patterns/eventsource"
)

// scopeName is the instrumentation scope of the program's own telemetry.
const scopeName = "github.com/otelpatterns/patterns/examples/bank"

// snapshotEvery is the snapshot interval of the repository, in events.
const snapshotEvery = 5

// maxAttempts bounds how often a command is tried when it keeps losing
// races on its account.
const maxAttempts = 3

// The accounts of the run.
const (
	alice = "account-alice"
	bob   = "account-bob"
)

func main() {
	// The store records the trace context of each append in the events'
	// metadata through the global propagator: W3C Trace Context here, as
	// in a service that propagates it over HTTP.
	otel.SetTextMapPropagator(propagation.TraceContext{})
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	err := run(ctx, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bank example:", err)
		os.Exit(1)
	}
}

// run plays the scenario, writing what happens to out and the telemetry
// (when it is not sent over OTLP) to telemetryOut. It returns once the
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

	be, err := openBackend(ctx, otelp)
	if err != nil {
		return err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if cerr := be.close(cctx); cerr != nil {
			err = errors.Join(err, fmt.Errorf("closing the store: %w", cerr))
		}
	}()

	b, err := newBank(be, otelp, out)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "bank: event-sourced accounts on %s\n", be.name)
	fmt.Fprintf(out, "snapshots every %d events\n", snapshotEvery)

	// The projection follows the store from the start, as a separate read
	// model would, while the commands below write.
	proj := newProjection(b.reg, b.tracer)
	proj.start(ctx, be.store)
	defer func() {
		if perr := proj.shutdown(); perr != nil {
			err = errors.Join(err, fmt.Errorf("projection: %w", perr))
		}
	}()

	if err := b.scenario(ctx); err != nil {
		return err
	}
	return b.report(ctx, proj)
}

// bank runs the commands of the scenario and prints what they do.
type bank struct {
	store     eventsource.Store
	snapshots eventsource.SnapshotStore
	reg       *eventsource.Registry
	repo      *eventsource.Repository[*Account]
	tracer    trace.Tracer
	commands  metric.Int64Counter
	out       io.Writer
}

func newBank(be *backend, otelp *providers, out io.Writer) (*bank, error) {
	reg := newRegistry()
	repo, err := eventsource.NewRepository(be.store, reg, newAccount,
		eventsource.WithSnapshots(be.snapshots, snapshotEvery))
	if err != nil {
		return nil, err
	}
	commands, err := otelp.mp.Meter(scopeName).Int64Counter("bank.commands",
		metric.WithUnit("{command}"),
		metric.WithDescription("Commands on accounts, by command and outcome."))
	if err != nil {
		return nil, err
	}
	return &bank{
		store: be.store, snapshots: be.snapshots, reg: reg, repo: repo,
		tracer: otelp.tp.Tracer(scopeName), commands: commands, out: out,
	}, nil
}

// scenario plays the steps of the run, up to the report.
func (b *bank) scenario(ctx context.Context) error {
	fmt.Fprintln(b.out, "\nopen two accounts")
	for _, acc := range []struct {
		id, owner string
		deposit   Money
	}{{alice, "Alice", 200_00}, {bob, "Bob", 50_00}} {
		if _, err := b.execute(ctx, "open", acc.id, 0, func(a *Account) error { return a.Open(acc.owner) }); err != nil {
			return err
		}
		a, err := b.execute(ctx, "deposit", acc.id, acc.deposit, func(a *Account) error { return a.Deposit(acc.deposit) })
		if err != nil {
			return err
		}
		fmt.Fprintf(b.out, "  %s: opened for %s, deposited %s → %s\n", acc.id, acc.owner, acc.deposit, describe(a))
	}

	fmt.Fprintln(b.out, "\nbreak the rules: each command returns an error and raises nothing")
	for _, c := range []struct {
		what, command, id string
		amount            Money
		cmd               func(*Account) error
	}{
		{"deposit -5.00 to " + bob, "deposit", bob, -5_00, func(a *Account) error { return a.Deposit(-5_00) }},
		{"withdraw 80.00 from " + bob, "withdraw", bob, 80_00, func(a *Account) error { return a.Withdraw(80_00) }},
		{"open " + alice + " again", "open", alice, 0, func(a *Account) error { return a.Open("Mallory") }},
	} {
		_, err := b.execute(ctx, c.command, c.id, c.amount, c.cmd)
		if !isRuleError(err) {
			return fmt.Errorf("%s: got %v; want a broken rule", c.what, err)
		}
		a, lerr := b.repo.Load(ctx, c.id)
		if lerr != nil {
			return lerr
		}
		fmt.Fprintf(b.out, "  %s: %v\n    %s unchanged: %s\n", c.what, err, c.id, describe(a))
	}

	if err := b.transfer(ctx, alice, bob, 75_00); err != nil {
		return err
	}
	if err := b.upcast(ctx, bob); err != nil {
		return err
	}
	if err := b.race(ctx); err != nil {
		return err
	}
	if err := b.transfer(ctx, bob, alice, 40_00); err != nil {
		return err
	}
	if err := b.transfer(ctx, bob, alice, 500_00); !errors.Is(err, ErrInsufficientFunds) {
		return fmt.Errorf("transfer of 500.00 from %s: got %v; want %w", bob, err, ErrInsufficientFunds)
	}
	return nil
}

// execute runs cmd on account id in a span of its own: it loads the
// account (for "open", a new one when there is none), runs cmd and saves the events
// it raised. When the save loses a race with another writer, it loads the
// account again and retries cmd, which checks its rules against the new
// state; up to maxAttempts times. A broken rule is returned as it is, with
// nothing saved.
func (b *bank) execute(ctx context.Context, command, id string, amount Money, cmd func(*Account) error) (a *Account, err error) {
	ctx, span := b.tracer.Start(ctx, "bank."+command, trace.WithAttributes(
		attribute.String("bank.account", id), attribute.Int64("bank.amount_cents", int64(amount))))
	defer func() { b.end(ctx, span, command, err) }()

	for attempt := 1; ; attempt++ {
		a, err = b.repo.Load(ctx, id)
		if command == "open" && errors.Is(err, eventsource.ErrNotFound) {
			a, err = b.repo.New(id), nil
		}
		if err != nil {
			return nil, err
		}
		if err := cmd(a); err != nil {
			return a, err
		}
		err := b.repo.Save(ctx, a)
		if !errors.Is(err, eventsource.ErrConcurrencyConflict) || attempt == maxAttempts {
			return a, err
		}
		b.conflict(ctx, span, command, err)
	}
}

// conflict counts a lost race and notes it on span; the command is retried,
// so the span's status is left alone.
func (b *bank) conflict(ctx context.Context, span trace.Span, command string, err error) {
	b.commands.Add(ctx, 1, metric.WithAttributes(
		attribute.String("bank.command", command), attribute.String("bank.outcome", "conflict")))
	span.AddEvent("bank.conflict", trace.WithAttributes(semconv.ErrorType(err), attribute.String("exception.message", err.Error())))
}

// end ends a command's span and counts the command: accepted, rejected (a
// broken rule, which is the caller's error rather than a failure) or
// failed.
func (b *bank) end(ctx context.Context, span trace.Span, command string, err error) {
	outcome := "accepted"
	switch {
	case err == nil:
	case isRuleError(err):
		outcome = "rejected"
		span.SetAttributes(attribute.String("bank.rejected", err.Error()))
	default:
		outcome = "failed"
		if errors.Is(err, eventsource.ErrConcurrencyConflict) {
			outcome = "conflict"
		}
		span.SetStatus(codes.Error, err.Error())
		span.SetAttributes(semconv.ErrorType(err))
	}
	b.commands.Add(ctx, 1, metric.WithAttributes(
		attribute.String("bank.command", command), attribute.String("bank.outcome", outcome)))
	span.End()
}

// transfer moves amount from one account to another: withdraw and save,
// then deposit and save.
func (b *bank) transfer(ctx context.Context, from, to string, amount Money) (err error) {
	fmt.Fprintf(b.out, "\ntransfer %s from %s to %s\n", amount, from, to)
	ctx, span := b.tracer.Start(ctx, "bank.transfer", trace.WithAttributes(
		attribute.String("bank.from", from), attribute.String("bank.to", to), attribute.Int64("bank.amount_cents", int64(amount))))
	defer span.End()

	src, err := b.execute(ctx, "withdraw", from, amount, func(a *Account) error { return a.Withdraw(amount) })
	if isRuleError(err) {
		fmt.Fprintf(b.out, "  rejected: %v\n  nothing was written: %s %s\n", err, from, describe(src))
		span.SetAttributes(attribute.String("bank.rejected", err.Error()))
		return err
	}
	if err != nil {
		span.SetStatus(codes.Error, err.Error())
		return err
	}
	fmt.Fprintf(b.out, "  withdrew %s from %s → %s\n", amount, from, describe(src))
	return b.deposit(ctx, span, to, amount)
}

// deposit is the second half of a transfer.
func (b *bank) deposit(ctx context.Context, span trace.Span, to string, amount Money) error {
	dst, err := b.execute(ctx, "deposit", to, amount, func(a *Account) error { return a.Deposit(amount) })
	if err != nil {
		// The money has left the source account. A saga would now retry the
		// deposit or refund the source; the example stops.
		span.SetStatus(codes.Error, err.Error())
		return fmt.Errorf("depositing %s to %s after the withdrawal: %w", amount, to, err)
	}
	fmt.Fprintf(b.out, "  deposited %s to %s → %s\n", amount, to, describe(dst))
	return nil
}

// race runs a transfer and a card payment on the same account at the same
// time: both load it at the same version and withdraw; the card payment
// saves first, and the transfer's save fails with a concurrency conflict.
// The transfer loads the account again and retries.
func (b *bank) race(ctx context.Context) (err error) {
	const amount, payment = Money(30_00), Money(20_00)
	fmt.Fprintf(b.out, "\ntransfer %s from %s to %s, racing a card payment of %s from %s\n", amount, alice, bob, payment, alice)
	ctx, span := b.tracer.Start(ctx, "bank.transfer", trace.WithAttributes(
		attribute.String("bank.from", alice), attribute.String("bank.to", bob), attribute.Int64("bank.amount_cents", int64(amount))))
	defer span.End()

	transfer, err := b.repo.Load(ctx, alice)
	if err != nil {
		return err
	}
	fmt.Fprintf(b.out, "  transfer:     loaded %s → %s\n", alice, describe(transfer))
	card, err := b.repo.Load(ctx, alice)
	if err != nil {
		return err
	}
	fmt.Fprintf(b.out, "  card payment: loaded %s → %s\n", alice, describe(card))

	if err := card.Withdraw(payment); err != nil {
		return err
	}
	if err := b.repo.Save(ctx, card); err != nil {
		return err
	}
	fmt.Fprintf(b.out, "  card payment: withdrew %s and saved → %s\n", payment, describe(card))

	if err := transfer.Withdraw(amount); err != nil {
		return err
	}
	err = b.repo.Save(ctx, transfer)
	if !errors.Is(err, eventsource.ErrConcurrencyConflict) {
		return fmt.Errorf("second save: got %v; want %w", err, eventsource.ErrConcurrencyConflict)
	}
	fmt.Fprintf(b.out, "  transfer:     withdrew %s, save failed: %v\n", amount, err)
	fmt.Fprintln(b.out, "                (errors.Is(err, eventsource.ErrConcurrencyConflict) is true: nothing was written)")
	b.conflict(ctx, span, "withdraw", err)

	// Load again and decide again: the retry checks the rules against the
	// balance after the card payment.
	src, err := b.execute(ctx, "withdraw", alice, amount, func(a *Account) error { return a.Withdraw(amount) })
	if err != nil {
		span.SetStatus(codes.Error, err.Error())
		return err
	}
	fmt.Fprintf(b.out, "  transfer:     reloaded, withdrew %s again and saved → %s\n", amount, describe(src))
	return b.deposit(ctx, span, bob, amount)
}

// v0Deposit is a deposit as an earlier version of the service stored it.
const v0Deposit = `{"value":"12.50","currency":"EUR"}`

// upcast appends a bank.deposited.v0 event to account id, raw, as the
// earlier version of the service did, and reads it back.
func (b *bank) upcast(ctx context.Context, id string) error {
	fmt.Fprintf(b.out, "\nan old event: a deposit stored by an earlier version of the service\n")
	a, err := b.repo.Load(ctx, id)
	if err != nil {
		return err
	}
	stored, err := b.store.Append(ctx, id, eventsource.Exact(a.Version()),
		eventsource.NewEvent{Type: typeDepositedV0, Data: []byte(v0Deposit)})
	if err != nil {
		return err
	}
	v := stored[0].Version
	fmt.Fprintf(b.out, "  appended raw to %s at version %d: %s %s\n", id, v, typeDepositedV0, v0Deposit)

	for e, err := range b.store.ReadStream(ctx, id, v) {
		if err != nil {
			return err
		}
		ev, err := b.reg.Decode(e)
		if err != nil {
			return err
		}
		d, ok := ev.(Deposited)
		if !ok {
			return fmt.Errorf("decoding %s: got %T; want Deposited", e.Type, ev)
		}
		fmt.Fprintf(b.out, "  read back: version %d, stored as %s, decoded as Deposited{Amount: %s}\n", e.Version, e.Type, d.Amount)
	}
	if a, err = b.repo.Load(ctx, id); err != nil {
		return err
	}
	fmt.Fprintf(b.out, "  %s loaded → %s\n", id, describe(a))
	return nil
}

// report prints the snapshots and the projection's balances, and checks the
// projection against the accounts.
func (b *bank) report(ctx context.Context, proj *projection) error {
	fmt.Fprintf(b.out, "\nsnapshots (taken by a save that crosses a multiple of %d events)\n", snapshotEvery)
	accounts := map[string]*Account{}
	for _, id := range []string{alice, bob} {
		a, err := b.repo.Load(ctx, id)
		if err != nil {
			return err
		}
		accounts[id] = a
		snap, err := b.snapshots.LoadSnapshot(ctx, id)
		if errors.Is(err, eventsource.ErrNotFound) {
			fmt.Fprintf(b.out, "  %s: none; a load replays all %s\n", id, plural(a.Version(), "event"))
			continue
		}
		if err != nil {
			return err
		}
		var state Account
		if err := json.Unmarshal(snap.Data, &state); err != nil {
			return fmt.Errorf("decoding the snapshot of %s: %w", id, err)
		}
		fmt.Fprintf(b.out, "  %s: at version %d (owner %s, balance %s); a load replays %s after it\n",
			id, snap.Version, state.Owner, state.Balance, plural(a.Version()-snap.Version, "event"))
	}

	// A rebuild: every event in the global order, as a new read model
	// would start.
	rebuilt := newProjection(b.reg, nil)
	n := 0
	for e, err := range b.store.ReadAll(ctx, 0) {
		if err != nil {
			return err
		}
		if err := rebuilt.apply(ctx, e); err != nil {
			return err
		}
		n++
	}
	// The live projection has seen them all once it has handled n distinct
	// events.
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := proj.waitFor(wctx, n); err != nil {
		return err
	}

	live := proj.view()
	fmt.Fprintf(b.out, "\nprojection: balances from the %d events in the store's global order (%d of them upcast)\n", live.events, live.upcast)
	var total Money
	for _, id := range live.ids() {
		fmt.Fprintf(b.out, "  %-14s %-6s %8s\n", id, live.owners[id], live.balances[id])
		total += live.balances[id]
	}
	fmt.Fprintf(b.out, "  %-21s %8s\n", "total", total)

	if r := rebuilt.view(); !r.equal(live) {
		return fmt.Errorf("the live projection (Subscribe) shows %v; the rebuild (ReadAll) %v", live, r)
	}
	for id, a := range accounts {
		if live.balances[id] != a.Balance || live.owners[id] != a.Owner {
			return fmt.Errorf("projection: %s of %s has %s; the repository loads %s of %s with %s",
				id, live.owners[id], live.balances[id], id, a.Owner, a.Balance)
		}
	}
	fmt.Fprintln(b.out, "  the same as a rebuild from ReadAll and as the accounts loaded through the repository")
	return nil
}

// describe gives an account's balance and version.
func describe(a *Account) string {
	return fmt.Sprintf("balance %s (version %d)", a.Balance, a.Version())
}

// plural gives n and noun, in the plural unless n is 1.
func plural(n int64, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// isRuleError reports whether err is a broken rule of a command.
func isRuleError(err error) bool {
	for _, rule := range []error{ErrInvalidAmount, ErrInsufficientFunds, ErrNotOpen, ErrAlreadyOpen, ErrNoOwner} {
		if errors.Is(err, rule) {
			return true
		}
	}
	return false
}
