package model

import (
	"fmt"
	"strings"

	"github.com/otelpatterns/patterns/eventsource"
)

// The events of an account. They are facts: Apply changes the state for
// them without checking any rule.
type (
	// AccountOpened is the first event of every account.
	AccountOpened struct {
		Owner    string `json:"owner"`
		Currency string `json:"currency"`
	}
	// Deposited adds money to an account.
	Deposited struct {
		Amount Money `json:"amount"`
	}
	// Withdrawn takes money out of an account.
	Withdrawn struct {
		Amount Money `json:"amount"`
	}
)

// Account is a bank account, an event-sourced aggregate: its state is
// rebuilt from its events, and its commands (Open, Deposit, Withdraw)
// check the rules against that state before they raise a new event. A
// command that breaks a rule returns an error and raises nothing.
//
// The exported fields are the state that a snapshot keeps.
type Account struct {
	eventsource.Base
	Owner   string `json:"owner"`
	Balance Money  `json:"balance"`
	Opened  bool   `json:"opened"`
}

// NewAccount returns an empty account, for a repository to load into.
func NewAccount() *Account { return &Account{} }

// Apply implements [eventsource.Aggregate]: it changes the state for one
// event.
func (a *Account) Apply(event any) error {
	switch e := event.(type) {
	case AccountOpened:
		a.Owner, a.Opened = e.Owner, true
		a.Balance = Money{Currency: e.Currency}
	case Deposited:
		a.Balance.Cents += e.Amount.Cents
	case Withdrawn:
		a.Balance.Cents -= e.Amount.Cents
	default:
		return fmt.Errorf("bank: an account has no event of type %T", event)
	}
	return nil
}

// Open opens the account for owner, in currency.
func (a *Account) Open(owner, currency string) error {
	switch {
	case a.Opened:
		return fmt.Errorf("%w: %q belongs to %s", ErrAlreadyOpen, a.ID(), a.Owner)
	case strings.TrimSpace(owner) == "":
		return ErrNoOwner
	case len(currency) != 3:
		return fmt.Errorf("%w: %q is no currency", ErrCurrencyMismatch, currency)
	}
	return eventsource.Raise(a, AccountOpened{Owner: owner, Currency: currency})
}

// Deposit adds amount to the account.
func (a *Account) Deposit(amount Money) error {
	if err := a.check(amount); err != nil {
		return err
	}
	return eventsource.Raise(a, Deposited{Amount: amount})
}

// Withdraw takes amount out of the account; the balance may not go below
// zero.
func (a *Account) Withdraw(amount Money) error {
	if err := a.check(amount); err != nil {
		return err
	}
	if !a.Balance.Covers(amount) {
		return fmt.Errorf("%w: %s has %s, cannot withdraw %s", ErrInsufficientFunds, a.ID(), a.Balance, amount)
	}
	return eventsource.Raise(a, Withdrawn{Amount: amount})
}

// check enforces the rules that deposits and withdrawals share.
func (a *Account) check(amount Money) error {
	switch {
	case !a.Opened:
		return fmt.Errorf("%w: %q", ErrNotOpen, a.ID())
	case !amount.IsPositive():
		return fmt.Errorf("%w, not %s", ErrInvalidAmount, amount)
	case amount.Currency != a.Balance.Currency:
		return fmt.Errorf("%w: %s keeps %s, not %s", ErrCurrencyMismatch, a.ID(), a.Balance.Currency, amount.Currency)
	}
	return nil
}
