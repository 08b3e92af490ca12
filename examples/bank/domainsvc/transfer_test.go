package domainsvc_test

import (
	"context"
	"errors"
	"testing"

	"github.com/otelpatterns/patterns/eventsource"

	"github.com/otelpatterns/patterns/examples/bank/domainsvc"
	"github.com/otelpatterns/patterns/examples/bank/model"
)

// account returns a new account id, open in currency
// with cents on it (not saved: the domain service does not care).
func account(t *testing.T, id, currency string, cents int64) *model.Account {
	t.Helper()
	repo, err := eventsource.NewRepository(&eventsource.MemoryStore{}, eventsource.NewRegistry(), model.NewAccount)
	if err != nil {
		t.Fatal(err)
	}
	a := repo.New(id)
	if currency == "" {
		return a // not open
	}
	if err := a.Open("Owner", currency); err != nil {
		t.Fatal(err)
	}
	if cents > 0 {
		if err := a.Deposit(model.Money{Cents: cents, Currency: currency}); err != nil {
			t.Fatal(err)
		}
	}
	return a
}

// TestTransfer checks the rules of a transfer: a transfer that breaks one
// changes neither account; one that keeps them all moves the money.
func TestTransfer(t *testing.T) {
	eur := model.EUR
	// From is open in EUR with 1.00 on it; To is open in toCurrency with
	// nothing, or not open when toCurrency is empty.
	tests := []struct {
		name       string
		toCurrency string
		amount     model.Money
		wantErr    error
	}{
		{"moves the money", "EUR", eur(60), nil},
		{"the whole balance", "EUR", eur(100), nil},
		{"not covered", "EUR", eur(101), model.ErrInsufficientFunds},
		{"zero", "EUR", eur(0), model.ErrInvalidAmount},
		{"negative", "EUR", eur(-1), model.ErrInvalidAmount},
		{"amount in another currency", "EUR", model.Money{Cents: 10, Currency: "USD"}, model.ErrCurrencyMismatch},
		{"accounts in two currencies", "USD", eur(10), model.ErrCurrencyMismatch},
		{"to an account not open", "", eur(10), model.ErrNotOpen},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			from, to := account(t, "from", "EUR", 100), account(t, "to", tt.toCurrency, 0)
			fromBefore, toBefore := from.Balance, to.Balance
			nFrom, nTo := len(from.Uncommitted()), len(to.Uncommitted())
			err := domainsvc.Transfers{}.Transfer(context.Background(), domainsvc.Transfer{From: from, To: to, Amount: tt.amount})
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Transfer = %v; want %v", err, tt.wantErr)
			}
			if tt.wantErr != nil {
				if from.Balance != fromBefore || to.Balance != toBefore || len(from.Uncommitted()) != nFrom || len(to.Uncommitted()) != nTo {
					t.Errorf("a refused transfer changed the accounts: %s → %s, %s → %s", fromBefore, from.Balance, toBefore, to.Balance)
				}
				return
			}
			if want, _ := fromBefore.Sub(tt.amount); from.Balance != want {
				t.Errorf("from's balance = %s; want %s", from.Balance, want)
			}
			if want, _ := toBefore.Add(tt.amount); to.Balance != want {
				t.Errorf("to's balance = %s; want %s", to.Balance, want)
			}
		})
	}
}

// TestTransferSameAccount checks that an account cannot pay itself, even
// loaded twice.
func TestTransferSameAccount(t *testing.T) {
	a := account(t, "a", "EUR", 100)
	err := domainsvc.Transfers{}.Transfer(context.Background(), domainsvc.Transfer{From: a, To: a, Amount: model.EUR(10)})
	if !errors.Is(err, model.ErrSameAccount) {
		t.Errorf("Transfer to itself = %v; want %v", err, model.ErrSameAccount)
	}
}

// TestTransferCallsTheModel checks that the injected commands are the
// ones called, which is how main wraps them in spans.
func TestTransferCallsTheModel(t *testing.T) {
	var calls []string
	s := domainsvc.Transfers{
		Withdraw: func(ctx context.Context, m model.Movement) error {
			calls = append(calls, "withdraw")
			return model.Withdraw(ctx, m)
		},
		Deposit: func(ctx context.Context, m model.Movement) error {
			calls = append(calls, "deposit")
			return model.Deposit(ctx, m)
		},
	}
	from, to := account(t, "from", "EUR", 100), account(t, "to", "EUR", 0)
	if err := s.Transfer(context.Background(), domainsvc.Transfer{From: from, To: to, Amount: model.EUR(10)}); err != nil {
		t.Fatal(err)
	}
	if len(calls) != 2 || calls[0] != "withdraw" || calls[1] != "deposit" {
		t.Errorf("calls = %v; want [withdraw deposit]", calls)
	}
}
