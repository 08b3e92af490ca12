package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/otelpatterns/patterns/eventsource"
)

// Money is an amount in cents. It is stored as a JSON number of cents, so
// no amount is ever rounded.
type Money int64

// String formats m as units and cents: 1250 is "12.50".
func (m Money) String() string {
	sign := ""
	if m < 0 {
		sign, m = "-", -m
	}
	return fmt.Sprintf("%s%d.%02d", sign, m/100, m%100)
}

// The events of an account. Their names in the registry ("bank.….v1") are
// part of the stored data: a change of shape gets a new name and an
// upcaster from the old one, as bank.deposited.v0 has.
type (
	// AccountOpened is the first event of every account.
	AccountOpened struct {
		Owner string `json:"owner"`
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

// The event type names.
const (
	typeAccountOpened = "bank.account_opened.v1"
	typeDeposited     = "bank.deposited.v1"
	typeWithdrawn     = "bank.withdrawn.v1"
	// typeDepositedV0 is the deposit event of an earlier version of the
	// service, which wrote {"value": "12.50", "currency": "EUR"}. Stored
	// events of this type are upcast to Deposited on read.
	typeDepositedV0 = "bank.deposited.v0"
)

// currency is the one currency the bank keeps accounts in.
const currency = "EUR"

// The errors of the account's commands. A command that fails raises no
// event, so the account is unchanged.
var (
	ErrInvalidAmount     = errors.New("bank: amount must be positive")
	ErrInsufficientFunds = errors.New("bank: insufficient funds")
	ErrNotOpen           = errors.New("bank: account is not open")
	ErrAlreadyOpen       = errors.New("bank: account is already open")
	ErrNoOwner           = errors.New("bank: an account needs an owner")
)

// Account is a bank account, an event-sourced aggregate: its state is
// rebuilt from its events, and its commands (Open, Deposit, Withdraw) check
// the rules against that state before they raise a new event.
//
// The exported fields are the state that a snapshot keeps.
type Account struct {
	eventsource.Base
	Owner   string `json:"owner"`
	Balance Money  `json:"balance"`
	Opened  bool   `json:"opened"`
}

// newAccount is the repository's constructor.
func newAccount() *Account { return &Account{} }

// Apply implements [eventsource.Aggregate]: it changes the state for one
// event, without checking any rule (the event is a fact).
func (a *Account) Apply(event any) error {
	switch e := event.(type) {
	case AccountOpened:
		a.Owner, a.Opened = e.Owner, true
	case Deposited:
		a.Balance += e.Amount
	case Withdrawn:
		a.Balance -= e.Amount
	default:
		return fmt.Errorf("bank: an account has no event of type %T", event)
	}
	return nil
}

// Open opens the account for owner.
func (a *Account) Open(owner string) error {
	switch {
	case a.Opened:
		return fmt.Errorf("%w: %q belongs to %s", ErrAlreadyOpen, a.ID(), a.Owner)
	case strings.TrimSpace(owner) == "":
		return ErrNoOwner
	}
	return eventsource.Raise(a, AccountOpened{Owner: owner})
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
	if amount > a.Balance {
		return fmt.Errorf("%w: %s has %s, cannot withdraw %s", ErrInsufficientFunds, a.ID(), a.Balance, amount)
	}
	return eventsource.Raise(a, Withdrawn{Amount: amount})
}

// check enforces the rules that deposits and withdrawals share.
func (a *Account) check(amount Money) error {
	if !a.Opened {
		return fmt.Errorf("%w: %q", ErrNotOpen, a.ID())
	}
	if amount <= 0 {
		return fmt.Errorf("%w, not %s", ErrInvalidAmount, amount)
	}
	return nil
}

// newRegistry returns a registry of the account's events, with the upcaster
// of the old deposit event.
func newRegistry() *eventsource.Registry {
	reg := eventsource.NewRegistry()
	eventsource.Register[AccountOpened](reg, typeAccountOpened)
	eventsource.Register[Deposited](reg, typeDeposited)
	eventsource.Register[Withdrawn](reg, typeWithdrawn)
	reg.Upcast(typeDepositedV0, upcastDepositedV0)
	return reg
}

// depositedV0 is the shape of a bank.deposited.v0 event: the amount as a
// decimal string, and a currency.
type depositedV0 struct {
	Value    string `json:"value"`
	Currency string `json:"currency"`
}

// upcastDepositedV0 turns a bank.deposited.v0 event into a
// bank.deposited.v1 one.
func upcastDepositedV0(e eventsource.Event) (eventsource.Event, error) {
	var old depositedV0
	if err := json.Unmarshal(e.Data, &old); err != nil {
		return e, err
	}
	if old.Currency != currency {
		return e, fmt.Errorf("deposit in %q; the bank keeps %s only", old.Currency, currency)
	}
	amount, err := parseMoney(old.Value)
	if err != nil {
		return e, err
	}
	data, err := json.Marshal(Deposited{Amount: amount})
	if err != nil {
		return e, err
	}
	e.Type, e.Data = typeDeposited, data
	return e, nil
}

// parseMoney parses a non-negative decimal amount with at most two
// decimals, such as "12.5" or "12.50", into cents.
func parseMoney(s string) (Money, error) {
	units, cents, hasCents := strings.Cut(s, ".")
	bad := fmt.Errorf("bad amount %q", s)
	if units == "" || len(cents) > 2 || (hasCents && cents == "") {
		return 0, bad
	}
	u, err := strconv.ParseUint(units, 10, 40)
	if err != nil {
		return 0, bad
	}
	var c uint64
	if hasCents {
		if c, err = strconv.ParseUint(cents, 10, 8); err != nil {
			return 0, bad
		}
		if len(cents) == 1 {
			c *= 10
		}
	}
	return Money(u*100 + c), nil
}
