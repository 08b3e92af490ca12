package appsvc_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"go.opentelemetry.io/otel/metric/noop"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/otelpatterns/patterns/examples/bank/appsvc"
	"github.com/otelpatterns/patterns/examples/bank/infra"
	"github.com/otelpatterns/patterns/examples/bank/model"
)

// setup returns the use cases on an in-memory store (the
// infrastructure's own, so that the request record is the store's), with
// two open accounts: a with 100.00 EUR and b with nothing. wrap, when not
// nil, wraps the repository the transfers use.
func setup(t *testing.T, wrap func(appsvc.AccountRepository) appsvc.AccountRepository) (*appsvc.Accounts, *appsvc.Transfers, appsvc.AccountRepository) {
	t.Helper()
	ctx := context.Background()
	be, err := infra.Open(ctx, "", tracenoop.NewTracerProvider(), noop.NewMeterProvider())
	if err != nil {
		t.Fatal(err)
	}
	var repo appsvc.AccountRepository
	repo, err = infra.NewAccounts(be, infra.NewRegistry(), 100, tracenoop.NewTracerProvider(), noop.NewMeterProvider())
	if err != nil {
		t.Fatal(err)
	}
	accounts, err := appsvc.NewAccounts(repo, appsvc.Domain{})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"a", "b"} {
		if _, err := accounts.Open(ctx, appsvc.OpenAccount{ID: id, Owner: "Owner " + id, Currency: "EUR"}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := accounts.Deposit(ctx, appsvc.Movement{ID: "a", Amount: model.EUR(100_00)}); err != nil {
		t.Fatal(err)
	}
	if wrap != nil {
		repo = wrap(repo)
	}
	transfers, err := appsvc.NewTransfers(repo, appsvc.Domain{})
	if err != nil {
		t.Fatal(err)
	}
	return accounts, transfers, repo
}

// balances returns the balances of a and b.
func balances(t *testing.T, accounts *appsvc.Accounts) (a, b model.Money) {
	t.Helper()
	x, err := accounts.Get(context.Background(), "a")
	if err != nil {
		t.Fatal(err)
	}
	y, err := accounts.Get(context.Background(), "b")
	if err != nil {
		t.Fatal(err)
	}
	return x.Balance, y.Balance
}

// TestTransferIdempotent sends one request three times: the money moves
// once, and the later calls answer that it is done.
func TestTransferIdempotent(t *testing.T) {
	accounts, transfers, _ := setup(t, nil)
	req := appsvc.TransferRequest{RequestID: "req-1", From: "a", To: "b", Amount: model.EUR(30_00)}
	for i := range 3 {
		r, err := transfers.Transfer(context.Background(), req)
		if err != nil {
			t.Fatalf("call %d: Transfer = %v; want nil", i+1, err)
		}
		if r.Replayed != (i > 0) {
			t.Errorf("call %d: Replayed = %v; want %v", i+1, r.Replayed, i > 0)
		}
		if a, b := balances(t, accounts); a != model.EUR(70_00) || b != model.EUR(30_00) {
			t.Errorf("after call %d: balances %s, %s; want 70.00 EUR, 30.00 EUR", i+1, a, b)
		}
	}
	// Another request id is another transfer.
	req.RequestID = "req-2"
	if r, err := transfers.Transfer(context.Background(), req); err != nil || r.Replayed {
		t.Fatalf("Transfer(req-2) = %+v, %v; want a transfer", r, err)
	}
	if a, b := balances(t, accounts); a != model.EUR(40_00) || b != model.EUR(60_00) {
		t.Errorf("after req-2: balances %s, %s; want 40.00 EUR, 60.00 EUR", a, b)
	}
}

// TestTransferResumes: a transfer whose withdrawal was saved, and which
// stopped before the deposit (a crash), is completed by a retry of its
// request, which does not withdraw again.
func TestTransferResumes(t *testing.T) {
	accounts, transfers, repo := setup(t, nil)
	ctx := context.Background()
	// The first half of req-1, as a crashed attempt left it.
	a, err := repo.Load(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Withdraw(model.EUR(100_00)); err != nil {
		t.Fatal(err)
	}
	if err := repo.Save(ctx, appsvc.Change{Account: a, RequestID: "req-1"}); err != nil {
		t.Fatal(err)
	}
	// The whole balance is gone: deciding again would refuse it.
	r, err := transfers.Transfer(ctx, appsvc.TransferRequest{RequestID: "req-1", From: "a", To: "b", Amount: model.EUR(100_00)})
	if err != nil || r.Replayed {
		t.Fatalf("Transfer = %+v, %v; want the deposit done", r, err)
	}
	if a, b := balances(t, accounts); a != model.EUR(0) || b != model.EUR(100_00) {
		t.Errorf("balances %s, %s; want 0.00 EUR, 100.00 EUR", a, b)
	}
}

// racing runs a function just before the first save it sees.
type racing struct {
	appsvc.AccountRepository
	once   sync.Once
	before func()
}

func (r *racing) Save(ctx context.Context, c appsvc.Change) error {
	r.once.Do(r.before)
	return r.AccountRepository.Save(ctx, c)
}

// TestTransferRetriesConflicts: a save that loses a race makes the
// transfer decide again against the new balance.
func TestTransferRetriesConflicts(t *testing.T) {
	race := &racing{}
	accounts, transfers, _ := setup(t, func(r appsvc.AccountRepository) appsvc.AccountRepository {
		race.AccountRepository = r
		return race
	})
	race.before = func() {
		if _, err := accounts.Withdraw(context.Background(), appsvc.Movement{ID: "a", Amount: model.EUR(50_00)}); err != nil {
			t.Errorf("the racing withdrawal: %v", err)
		}
	}
	r, err := transfers.Transfer(context.Background(), appsvc.TransferRequest{RequestID: "req-1", From: "a", To: "b", Amount: model.EUR(40_00)})
	if err != nil {
		t.Fatalf("Transfer = %v; want nil", err)
	}
	if r.Attempts != 2 || len(r.Conflicts) != 1 || !errors.Is(r.Conflicts[0], appsvc.ErrConflict) {
		t.Errorf("Attempts = %d, Conflicts = %v; want 2 attempts and one conflict", r.Attempts, r.Conflicts)
	}
	if a, b := balances(t, accounts); a != model.EUR(10_00) || b != model.EUR(40_00) {
		t.Errorf("balances %s, %s; want 10.00 EUR, 40.00 EUR", a, b)
	}
}

// TestTransferRefused: a broken rule, or no request id, moves nothing and
// records nothing, so that a corrected request can go through.
func TestTransferRefused(t *testing.T) {
	accounts, transfers, repo := setup(t, nil)
	ctx := context.Background()
	for _, tt := range []struct {
		req  appsvc.TransferRequest
		want error
	}{
		{appsvc.TransferRequest{RequestID: "req-1", From: "a", To: "b", Amount: model.EUR(100_01)}, model.ErrInsufficientFunds},
		{appsvc.TransferRequest{RequestID: "req-1", From: "a", To: "a", Amount: model.EUR(1)}, model.ErrSameAccount},
		{appsvc.TransferRequest{RequestID: "req-1", From: "a", To: "nobody", Amount: model.EUR(1)}, appsvc.ErrNotFound},
		{appsvc.TransferRequest{From: "a", To: "b", Amount: model.EUR(1)}, appsvc.ErrNoRequestID},
	} {
		if _, err := transfers.Transfer(ctx, tt.req); !errors.Is(err, tt.want) {
			t.Errorf("Transfer(%+v) = %v; want %v", tt.req, err, tt.want)
		}
	}
	if ok, err := repo.Applied(ctx, appsvc.RequestKey{RequestID: "req-1", AccountID: "a"}); ok || err != nil {
		t.Errorf("Applied(req-1, a) = %v, %v; want false: refused requests are not recorded", ok, err)
	}
	if a, b := balances(t, accounts); a != model.EUR(100_00) || b != model.EUR(0) {
		t.Errorf("balances %s, %s; want unchanged", a, b)
	}
}
