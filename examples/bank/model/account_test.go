package model_test

import (
	"errors"
	"testing"

	"github.com/otelpatterns/patterns/examples/bank/model"
)

// TestAccount checks the account's rules: a command that breaks one returns
// the error and raises nothing.
func TestAccount(t *testing.T) {
	eur := model.EUR
	opened := func() *model.Account {
		a := model.NewAccount()
		if err := a.Open("Alice", "EUR"); err != nil {
			t.Fatalf("Open() = %v; want nil", err)
		}
		if err := a.Deposit(eur(100)); err != nil {
			t.Fatalf("Deposit(100) = %v; want nil", err)
		}
		return a
	}
	empty := model.NewAccount
	usd := model.Money{Cents: 10, Currency: "USD"}
	tests := []struct {
		name    string
		account func() *model.Account
		cmd     func(*model.Account) error
		wantErr error
		want    any // the event raised, when wantErr is nil
		balance model.Money
	}{
		{"open", empty, func(a *model.Account) error { return a.Open("Bob", "EUR") }, nil, model.AccountOpened{Owner: "Bob", Currency: "EUR"}, eur(0)},
		{"open without an owner", empty, func(a *model.Account) error { return a.Open(" ", "EUR") }, model.ErrNoOwner, nil, model.Money{}},
		{"open without a currency", empty, func(a *model.Account) error { return a.Open("Bob", "") }, model.ErrCurrencyMismatch, nil, model.Money{}},
		{"open twice", opened, func(a *model.Account) error { return a.Open("Bob", "EUR") }, model.ErrAlreadyOpen, nil, eur(100)},
		{"deposit", opened, func(a *model.Account) error { return a.Deposit(eur(50)) }, nil, model.Deposited{Amount: eur(50)}, eur(150)},
		{"deposit zero", opened, func(a *model.Account) error { return a.Deposit(eur(0)) }, model.ErrInvalidAmount, nil, eur(100)},
		{"deposit negative", opened, func(a *model.Account) error { return a.Deposit(eur(-1)) }, model.ErrInvalidAmount, nil, eur(100)},
		{"deposit another currency", opened, func(a *model.Account) error { return a.Deposit(usd) }, model.ErrCurrencyMismatch, nil, eur(100)},
		{"deposit before opening", empty, func(a *model.Account) error { return a.Deposit(eur(1)) }, model.ErrNotOpen, nil, model.Money{}},
		{"withdraw", opened, func(a *model.Account) error { return a.Withdraw(eur(40)) }, nil, model.Withdrawn{Amount: eur(40)}, eur(60)},
		{"withdraw everything", opened, func(a *model.Account) error { return a.Withdraw(eur(100)) }, nil, model.Withdrawn{Amount: eur(100)}, eur(0)},
		{"overdraw", opened, func(a *model.Account) error { return a.Withdraw(eur(101)) }, model.ErrInsufficientFunds, nil, eur(100)},
		{"withdraw negative", opened, func(a *model.Account) error { return a.Withdraw(eur(-5)) }, model.ErrInvalidAmount, nil, eur(100)},
		{"withdraw another currency", opened, func(a *model.Account) error { return a.Withdraw(usd) }, model.ErrCurrencyMismatch, nil, eur(100)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := tt.account()
			before := len(a.Uncommitted())
			err := tt.cmd(a)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("command = %v; want %v", err, tt.wantErr)
			}
			raised := a.Uncommitted()[before:]
			switch {
			case tt.wantErr != nil && len(raised) != 0:
				t.Errorf("command raised %v; want nothing", raised)
			case tt.wantErr == nil && (len(raised) != 1 || raised[0] != tt.want):
				t.Errorf("command raised %v; want [%v]", raised, tt.want)
			}
			if a.Balance != tt.balance {
				t.Errorf("Balance = %s; want %s", a.Balance, tt.balance)
			}
		})
	}
}

// TestMoney checks the value object's arithmetic and format.
func TestMoney(t *testing.T) {
	for _, tt := range []struct {
		m    model.Money
		want string
	}{{model.EUR(1250), "12.50 EUR"}, {model.EUR(-5), "-0.05 EUR"}, {model.Money{Cents: 700, Currency: "USD"}, "7.00 USD"}} {
		if got := tt.m.String(); got != tt.want {
			t.Errorf("%#v.String() = %q; want %q", tt.m, got, tt.want)
		}
	}
	if got, err := model.EUR(100).Add(model.EUR(50)); err != nil || got != model.EUR(150) {
		t.Errorf("100 + 50 = %v, %v; want 1.50 EUR", got, err)
	}
	if got, err := model.EUR(100).Sub(model.EUR(150)); err != nil || got != model.EUR(-50) {
		t.Errorf("100 - 150 = %v, %v; want -0.50 EUR", got, err)
	}
	if _, err := model.EUR(100).Add(model.Money{Cents: 1, Currency: "USD"}); !errors.Is(err, model.ErrCurrencyMismatch) {
		t.Errorf("EUR + USD = %v; want %v", err, model.ErrCurrencyMismatch)
	}
	if model.EUR(100).Covers(model.Money{Cents: 1, Currency: "USD"}) || !model.EUR(100).Covers(model.EUR(100)) || model.EUR(99).Covers(model.EUR(100)) {
		t.Error("Covers: want true only for an amount at most the balance, in its currency")
	}
}

// TestRuleErrorKinds checks that the rules are domain errors, with a kind
// that package hexagonal reads through a wrapped error.
func TestRuleErrorKinds(t *testing.T) {
	a := model.NewAccount()
	werr := a.Deposit(model.EUR(1)) // not open: wraps ErrNotOpen
	var d interface{ DomainKind() string }
	if !errors.As(werr, &d) || d.DomainKind() != "rejected" {
		t.Errorf("Deposit on a closed account = %v; want a domain error of kind rejected", werr)
	}
	var et interface{ ErrorType() string }
	if !errors.As(werr, &et) || et.ErrorType() != "bank.not_open" {
		t.Errorf("Deposit on a closed account = %v; want error.type bank.not_open", werr)
	}
}
