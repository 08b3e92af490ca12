// Package domainsvc is the bank example's domain service: the rules of a
// transfer, which no single account can check because they span two.
//
// It sits on the domain model (package model) and below the application
// services; it does no I/O and knows nothing of how accounts are stored.
package domainsvc

import (
	"context"
	"fmt"

	"github.com/otelpatterns/patterns/examples/bank/model"
)

// Transfer is a transfer of Amount between two loaded accounts.
type Transfer struct {
	From, To *model.Account
	Amount   model.Money
}

// Transfers moves money between two accounts in memory; the caller saves
// both. The zero value calls the model's commands directly.
type Transfers struct {
	// Withdraw and Deposit are the model's commands ([model.Withdraw] and
	// [model.Deposit] when nil), as functions so that the composition
	// root can wrap each in a span of the model's layer.
	Withdraw, Deposit func(context.Context, model.Movement) error
}

// Transfer checks the rules of t: two different accounts, both open, in
// the currency of the amount, a positive amount and a balance that
// covers it. Then it withdraws from one account and deposits to the
// other. A broken rule changes neither account.
func (s Transfers) Transfer(ctx context.Context, t Transfer) error {
	if err := Check(t); err != nil {
		return err
	}
	withdraw, deposit := s.Withdraw, s.Deposit
	if withdraw == nil {
		withdraw = model.Withdraw
	}
	if deposit == nil {
		deposit = model.Deposit
	}
	if err := withdraw(ctx, model.Movement{Account: t.From, Amount: t.Amount}); err != nil {
		return err
	}
	// Check has made sure the deposit keeps the account's rules; should it
	// fail all the same, the withdrawal above is only in memory, and the
	// caller, which saves nothing after an error, drops it.
	return deposit(ctx, model.Movement{Account: t.To, Amount: t.Amount})
}

// Check returns the first rule of a transfer that t breaks, or nil.
func Check(t Transfer) error {
	from, to, amount := t.From, t.To, t.Amount
	switch {
	case from.ID() == to.ID():
		return fmt.Errorf("%w: %s to itself", model.ErrSameAccount, from.ID())
	case !from.Opened:
		return fmt.Errorf("%w: %q", model.ErrNotOpen, from.ID())
	case !to.Opened:
		return fmt.Errorf("%w: %q", model.ErrNotOpen, to.ID())
	case !amount.IsPositive():
		return fmt.Errorf("%w, not %s", model.ErrInvalidAmount, amount)
	case from.Balance.Currency != amount.Currency || to.Balance.Currency != amount.Currency:
		return fmt.Errorf("%w: %s keeps %s and %s keeps %s; cannot transfer %s",
			model.ErrCurrencyMismatch, from.ID(), from.Balance.Currency, to.ID(), to.Balance.Currency, amount)
	case !from.Balance.Covers(amount):
		return fmt.Errorf("%w: %s has %s, cannot withdraw %s", model.ErrInsufficientFunds, from.ID(), from.Balance, amount)
	}
	return nil
}
