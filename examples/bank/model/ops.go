package model

import "context"

// The account's commands as functions of a context and an input, the
// shape that the composition root (main) wraps in a span of the domain
// model's layer with hexagonal.Instrument. They ignore the context: the
// model does no I/O; it is there for the wrapper.

// Opening is the input of [Open].
type Opening struct {
	Account         *Account
	Owner, Currency string
}

// Movement is the input of [Deposit] and [Withdraw].
type Movement struct {
	Account *Account
	Amount  Money
}

// Open runs [Account.Open].
func Open(_ context.Context, o Opening) error { return o.Account.Open(o.Owner, o.Currency) }

// Deposit runs [Account.Deposit].
func Deposit(_ context.Context, m Movement) error { return m.Account.Deposit(m.Amount) }

// Withdraw runs [Account.Withdraw].
func Withdraw(_ context.Context, m Movement) error { return m.Account.Withdraw(m.Amount) }
