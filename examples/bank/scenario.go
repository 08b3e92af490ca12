package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelpatterns/patterns/eventsource"
	"github.com/otelpatterns/patterns/examples/bank/appsvc"
	"github.com/otelpatterns/patterns/examples/bank/infra"
	"github.com/otelpatterns/patterns/examples/bank/model"
	"github.com/otelpatterns/patterns/hexagonal"
)

// The accounts of the run.
const (
	alice = "account-alice"
	bob   = "account-bob"
)

// scenario plays the steps of the run, up to the report.
func (b *bank) scenario(ctx context.Context) error {
	fmt.Fprintln(b.out, "\nopen two accounts")
	for _, acc := range []struct {
		id, owner string
		deposit   model.Money
	}{{alice, "Alice", model.EUR(200_00)}, {bob, "Bob", model.EUR(50_00)}} {
		if _, err := b.account(ctx, "open", acc.id, func(ctx context.Context) (*model.Account, error) {
			return b.open(ctx, appsvc.OpenAccount{ID: acc.id, Owner: acc.owner, Currency: acc.deposit.Currency})
		}); err != nil {
			return err
		}
		a, err := b.account(ctx, "deposit", acc.id, func(ctx context.Context) (*model.Account, error) {
			return b.deposit(ctx, appsvc.Movement{ID: acc.id, Amount: acc.deposit})
		})
		if err != nil {
			return err
		}
		fmt.Fprintf(b.out, "  %s: opened for %s in %s, deposited %s → %s\n", acc.id, acc.owner, acc.deposit.Currency, acc.deposit, describe(a))
	}

	fmt.Fprintln(b.out, "\nbreak the rules of an account (domain model): each command returns an error and raises nothing")
	for _, c := range []struct {
		what, command, id string
		cmd               func(context.Context) (*model.Account, error)
	}{
		{"deposit -5.00 EUR to " + bob, "deposit", bob, func(ctx context.Context) (*model.Account, error) {
			return b.deposit(ctx, appsvc.Movement{ID: bob, Amount: model.EUR(-5_00)})
		}},
		{"withdraw 80.00 EUR from " + bob, "withdraw", bob, func(ctx context.Context) (*model.Account, error) {
			return b.withdraw(ctx, appsvc.Movement{ID: bob, Amount: model.EUR(80_00)})
		}},
		{"open " + alice + " again", "open", alice, func(ctx context.Context) (*model.Account, error) {
			return b.open(ctx, appsvc.OpenAccount{ID: alice, Owner: "Mallory", Currency: "EUR"})
		}},
	} {
		_, err := b.account(ctx, c.command, c.id, c.cmd)
		if !isRuleError(err) {
			return fmt.Errorf("%s: got %v; want a broken rule", c.what, err)
		}
		a, lerr := b.get(ctx, c.id)
		if lerr != nil {
			return lerr
		}
		fmt.Fprintf(b.out, "  %s: %v\n    %s unchanged: %s\n", c.what, err, c.id, describe(a))
	}

	sc, err := b.transferOnce(ctx, "transfer-1", alice, bob, model.EUR(75_00))
	if err != nil {
		return err
	}
	fmt.Fprintln(b.out, "  its trace: a span per layer, each child under its caller")
	b.traces.print(b.out, sc.TraceID())

	if err := b.upcast(ctx, bob); err != nil {
		return err
	}
	if err := b.race(ctx); err != nil {
		return err
	}
	if _, err := b.transferOnce(ctx, "transfer-3", bob, alice, model.EUR(40_00)); err != nil {
		return err
	}
	if err := b.retry(ctx, "transfer-3", bob, alice, model.EUR(40_00)); err != nil {
		return err
	}
	if _, err := b.transferOnce(ctx, "transfer-4", bob, alice, model.EUR(500_00)); !errors.Is(err, model.ErrInsufficientFunds) {
		return fmt.Errorf("transfer of 500.00 from %s: got %v; want %w", bob, err, model.ErrInsufficientFunds)
	}
	return b.transferRules(ctx)
}

// account runs a use case on account id as the command name.
func (b *bank) account(ctx context.Context, name, id string, f func(context.Context) (*model.Account, error), opts ...trace.SpanStartOption) (a *model.Account, err error) {
	opts = append(opts, trace.WithAttributes(attribute.String("bank.account", id)))
	_, err = b.command(ctx, name, func(ctx context.Context) ([]error, error) {
		a, err = f(ctx)
		return nil, err
	}, opts...)
	return a, err
}

// send runs the transfer use case as a bank.transfer command.
func (b *bank) send(ctx context.Context, req appsvc.TransferRequest, opts ...trace.SpanStartOption) (r appsvc.Receipt, sc trace.SpanContext, err error) {
	opts = append(opts, trace.WithAttributes(
		attribute.String("bank.request_id", req.RequestID),
		attribute.String("bank.from", req.From), attribute.String("bank.to", req.To),
		attribute.Int64("bank.amount_cents", req.Amount.Cents),
		attribute.String("bank.currency", req.Amount.Currency)))
	sc, err = b.command(ctx, "transfer", func(ctx context.Context) ([]error, error) {
		r, err = b.transfer(ctx, req)
		return r.Conflicts, err
	}, opts...)
	return r, sc, err
}

// transferOnce sends a transfer request and prints what it did.
func (b *bank) transferOnce(ctx context.Context, id, from, to string, amount model.Money) (trace.SpanContext, error) {
	fmt.Fprintf(b.out, "\ntransfer %s from %s to %s (request %s)\n", amount, from, to, id)
	r, sc, err := b.send(ctx, appsvc.TransferRequest{RequestID: id, From: from, To: to, Amount: amount})
	if isRuleError(err) {
		fmt.Fprintf(b.out, "  rejected: %v\n  nothing was written: %s %s\n", err, from, describe(r.From))
		return sc, err
	}
	if err != nil {
		return sc, err
	}
	fmt.Fprintf(b.out, "  withdrew %s from %s → %s\n", amount, from, describe(r.From))
	fmt.Fprintf(b.out, "  deposited %s to %s → %s\n", amount, to, describe(r.To))
	return sc, nil
}

// retry sends a transfer request again, as a client that lost the
// response does: it moves nothing.
func (b *bank) retry(ctx context.Context, id, from, to string, amount model.Money) error {
	fmt.Fprintf(b.out, "\nthe same request again (%s), as a client that lost the response sends it\n", id)
	r, sc, err := b.send(ctx, appsvc.TransferRequest{RequestID: id, From: from, To: to, Amount: amount})
	if err != nil {
		return err
	}
	if !r.Replayed {
		return fmt.Errorf("request %s sent again moved money again: %s %s, %s %s", id, from, describe(r.From), to, describe(r.To))
	}
	fmt.Fprintf(b.out, "  applied already: nothing moved\n  %s %s\n  %s %s\n", from, describe(r.From), to, describe(r.To))
	fmt.Fprintln(b.out, "  its trace: the request is found in the store's record, so no domain call and no save")
	b.traces.print(b.out, sc.TraceID())
	return nil
}

// race runs a transfer and a card payment on the same account at the same
// time: the transfer loads the account, the card payment withdraws and
// saves, and the transfer's save fails with a concurrency conflict. The
// transfer loads the accounts again and decides again.
func (b *bank) race(ctx context.Context) error {
	const id = "transfer-2"
	amount, payment := model.EUR(30_00), model.EUR(20_00)
	fmt.Fprintf(b.out, "\ntransfer %s from %s to %s (request %s), racing a card payment of %s from %s\n", amount, alice, bob, id, payment, alice)
	var paid error
	b.racer.arm(alice,
		func(a *model.Account) {
			fmt.Fprintf(b.out, "  transfer:     loaded %s → %s\n", alice, describe(a))
		},
		func(ctx context.Context) error {
			// Another request: a trace of its own.
			a, err := b.account(ctx, "withdraw", alice, func(ctx context.Context) (*model.Account, error) {
				return b.withdraw(ctx, appsvc.Movement{ID: alice, Amount: payment})
			}, trace.WithNewRoot())
			if err != nil {
				paid = err
				return err
			}
			fmt.Fprintf(b.out, "  card payment: withdrew %s and saved → %s\n", payment, describe(a))
			return nil
		})
	r, sc, err := b.send(ctx, appsvc.TransferRequest{RequestID: id, From: alice, To: bob, Amount: amount})
	if err != nil {
		return errors.Join(err, paid)
	}
	if len(r.Conflicts) != 1 || !errors.Is(r.Conflicts[0], eventsource.ErrConcurrencyConflict) {
		return fmt.Errorf("transfer %s: lost races %v; want one concurrency conflict", id, r.Conflicts)
	}
	fmt.Fprintf(b.out, "  transfer:     withdrew %s, save failed: %v\n", amount, r.Conflicts[0])
	fmt.Fprintln(b.out, "                (errors.Is(err, eventsource.ErrConcurrencyConflict) is true: nothing was written)")
	fmt.Fprintf(b.out, "  transfer:     reloaded, withdrew %s again and saved → %s\n", amount, describe(r.From))
	fmt.Fprintf(b.out, "  deposited %s to %s → %s\n", amount, bob, describe(r.To))
	fmt.Fprintln(b.out, "  its trace: the first save fails in the infrastructure, and the use case decides again")
	b.traces.print(b.out, sc.TraceID())
	return nil
}

// transferRules breaks each rule of a transfer (the domain service's)
// once: nothing is written.
func (b *bank) transferRules(ctx context.Context) error {
	fmt.Fprintln(b.out, "\nbreak the rules of a transfer (domain service): each is refused and nothing is written")
	for i, t := range []struct {
		from, to string
		amount   model.Money
		want     error
	}{
		{alice, alice, model.EUR(10_00), model.ErrSameAccount},
		{alice, bob, model.Money{Cents: 10_00, Currency: "USD"}, model.ErrCurrencyMismatch},
		{alice, bob, model.EUR(0), model.ErrInvalidAmount},
	} {
		_, _, err := b.send(ctx, appsvc.TransferRequest{RequestID: fmt.Sprintf("refused-%d", i+1), From: t.from, To: t.to, Amount: t.amount})
		if !errors.Is(err, t.want) {
			return fmt.Errorf("transfer %s from %s to %s: got %v; want %w", t.amount, t.from, t.to, err, t.want)
		}
		fmt.Fprintf(b.out, "  transfer %s from %s to %s: %v\n", t.amount, t.from, t.to, err)
	}
	for _, id := range []string{alice, bob} {
		a, err := b.get(ctx, id)
		if err != nil {
			return err
		}
		fmt.Fprintf(b.out, "  %s unchanged: %s\n", id, describe(a))
	}
	return nil
}

// v0Deposit is a deposit as an earlier version of the service stored it.
const v0Deposit = `{"value":"12.50","currency":"EUR"}`

// upcast appends a bank.deposited.v0 event to account id, raw, as the
// earlier version of the service did, and reads it back.
func (b *bank) upcast(ctx context.Context, id string) error {
	fmt.Fprintf(b.out, "\nan old event: a deposit stored by an earlier version of the service\n")
	a, err := b.get(ctx, id)
	if err != nil {
		return err
	}
	stored, err := b.be.Store.Append(ctx, id, eventsource.Exact(a.Version()),
		eventsource.NewEvent{Type: infra.TypeDepositedV0, Data: []byte(v0Deposit)})
	if err != nil {
		return err
	}
	v := stored[0].Version
	fmt.Fprintf(b.out, "  appended raw to %s at version %d: %s %s\n", id, v, infra.TypeDepositedV0, v0Deposit)

	for e, err := range b.be.Store.ReadStream(ctx, id, v) {
		if err != nil {
			return err
		}
		ev, err := b.reg.Decode(e)
		if err != nil {
			return err
		}
		d, ok := ev.(model.Deposited)
		if !ok {
			return fmt.Errorf("decoding %s: got %T; want Deposited", e.Type, ev)
		}
		fmt.Fprintf(b.out, "  read back: version %d, stored as %s, decoded as Deposited{Amount: %s}\n", e.Version, e.Type, d.Amount)
	}
	if a, err = b.get(ctx, id); err != nil {
		return err
	}
	fmt.Fprintf(b.out, "  %s loaded → %s\n", id, describe(a))
	return nil
}

// report prints the snapshots and the projection's balances, and checks the
// projection against the accounts.
func (b *bank) report(ctx context.Context, proj *infra.Projection) error {
	fmt.Fprintf(b.out, "\nsnapshots (taken by a save that crosses a multiple of %d events)\n", snapshotEvery)
	accounts := map[string]*model.Account{}
	for _, id := range []string{alice, bob} {
		a, err := b.get(ctx, id)
		if err != nil {
			return err
		}
		accounts[id] = a
		snap, err := b.be.Snapshots.LoadSnapshot(ctx, id)
		if errors.Is(err, eventsource.ErrNotFound) {
			fmt.Fprintf(b.out, "  %s: none; a load replays all %s\n", id, plural(a.Version(), "event"))
			continue
		}
		if err != nil {
			return err
		}
		var state model.Account
		if err := json.Unmarshal(snap.Data, &state); err != nil {
			return fmt.Errorf("decoding the snapshot of %s: %w", id, err)
		}
		fmt.Fprintf(b.out, "  %s: at version %d (owner %s, balance %s); a load replays %s after it\n",
			id, snap.Version, state.Owner, state.Balance, plural(a.Version()-snap.Version, "event"))
	}

	// A rebuild: every event in the global order, as a new read model
	// would start.
	rebuilt := infra.NewProjection(b.reg, nil)
	if err := awaitVisible(ctx, b.be.Store); err != nil {
		return err
	}
	n := 0
	for e, err := range b.be.Store.ReadAll(ctx, 0) {
		if err != nil {
			return err
		}
		if err := rebuilt.Apply(ctx, e); err != nil {
			return err
		}
		n++
	}
	// The live projection has seen them all once it has handled n distinct
	// events.
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := proj.WaitFor(wctx, n); err != nil {
		return err
	}

	live := proj.View()
	fmt.Fprintf(b.out, "\nprojection: balances from the %d events in the store's global order (%d of them upcast)\n", live.Events, live.Upcast)
	total := model.EUR(0)
	for _, id := range live.IDs() {
		fmt.Fprintf(b.out, "  %-14s %-6s %12s\n", id, live.Owners[id], live.Balances[id])
		var err error
		if total, err = total.Add(live.Balances[id]); err != nil {
			return err
		}
	}
	fmt.Fprintf(b.out, "  %-21s %12s\n", "total", total)

	if r := rebuilt.View(); !r.Equal(live) {
		return fmt.Errorf("the live projection (Subscribe) shows %v; the rebuild (ReadAll) %v", live, r)
	}
	for id, a := range accounts {
		if live.Balances[id] != a.Balance || live.Owners[id] != a.Owner {
			return fmt.Errorf("projection: %s of %s has %s; the repository loads %s of %s with %s",
				id, live.Owners[id], live.Balances[id], id, a.Owner, a.Balance)
		}
	}
	fmt.Fprintln(b.out, "  the same as a rebuild from ReadAll and as the accounts loaded through the repository")
	return nil
}

// describe gives an account's balance and version.
func describe(a *model.Account) string {
	if a == nil {
		return "(not loaded)"
	}
	return fmt.Sprintf("balance %s (version %d)", a.Balance, a.Version())
}

// plural gives n and noun, in the plural unless n is 1.
func plural(n int64, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// isRuleError reports whether err is a broken rule: a domain error, as
// package hexagonal reads it.
func isRuleError(err error) bool {
	_, ok := hexagonal.DomainKind(err)
	return ok
}

// awaitVisible waits, on a store that can hold committed events back from
// readers (pgstore, while a transaction that could still commit a lower
// position runs anywhere on the server), until the events written so far
// can be read: a read model is eventually consistent, and the rebuild
// above must see every event.
func awaitVisible(ctx context.Context, store eventsource.Store) error {
	if v, ok := store.(interface{ AwaitVisible(context.Context) error }); ok {
		return v.AwaitVisible(ctx)
	}
	return nil
}
