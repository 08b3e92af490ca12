package infra_test

import (
	"context"
	"errors"
	"testing"

	"go.opentelemetry.io/otel/metric/noop"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/otelpatterns/patterns/eventsource"
	"github.com/otelpatterns/patterns/examples/bank/appsvc"
	"github.com/otelpatterns/patterns/examples/bank/infra"
	"github.com/otelpatterns/patterns/examples/bank/model"
)

// TestAccounts checks the repository against the port's contract: the
// store's errors match the port's, and a request is recorded with the
// events it saved.
func TestAccounts(t *testing.T) {
	ctx := context.Background()
	be, err := infra.Open(ctx, "", tracenoop.NewTracerProvider(), noop.NewMeterProvider())
	if err != nil {
		t.Fatal(err)
	}
	repo, err := infra.NewAccounts(be, infra.NewRegistry(), 5, tracenoop.NewTracerProvider(), noop.NewMeterProvider())
	if err != nil {
		t.Fatal(err)
	}

	a, err := repo.Load(ctx, "acc-1")
	if !errors.Is(err, appsvc.ErrNotFound) || !errors.Is(err, eventsource.ErrNotFound) || a == nil || a.ID() != "acc-1" {
		t.Fatalf("Load of a new account = %v, %v; want a new account acc-1 and an error matching both ErrNotFound", a, err)
	}
	if err := a.Open("Alice", "EUR"); err != nil {
		t.Fatal(err)
	}
	if err := repo.Save(ctx, appsvc.Change{Account: a, RequestID: "req-1"}); err != nil {
		t.Fatalf("Save = %v; want nil", err)
	}
	for _, k := range []struct {
		key  appsvc.RequestKey
		want bool
	}{
		{appsvc.RequestKey{RequestID: "req-1", AccountID: "acc-1"}, true},
		{appsvc.RequestKey{RequestID: "req-1", AccountID: "acc-2"}, false},
		{appsvc.RequestKey{RequestID: "req-2", AccountID: "acc-1"}, false},
	} {
		if got, err := repo.Applied(ctx, k.key); err != nil || got != k.want {
			t.Errorf("Applied(%+v) = %v, %v; want %v", k.key, got, err, k.want)
		}
	}

	// The same request again, on a fresh load: refused, nothing saved.
	b, err := repo.Load(ctx, "acc-1")
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Deposit(model.EUR(100)); err != nil {
		t.Fatal(err)
	}
	if err := repo.Save(ctx, appsvc.Change{Account: b, RequestID: "req-1"}); !errors.Is(err, appsvc.ErrAlreadyApplied) || !errors.Is(err, eventsource.ErrDuplicateCommand) {
		t.Errorf("Save of the same request again = %v; want an error matching ErrAlreadyApplied", err)
	}

	// Two writers from one version: the second conflicts.
	c, err := repo.Load(ctx, "acc-1")
	if err != nil {
		t.Fatal(err)
	}
	d, err := repo.Load(ctx, "acc-1")
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range []*model.Account{c, d} {
		if err := x.Deposit(model.EUR(5)); err != nil {
			t.Fatal(err)
		}
	}
	if err := repo.Save(ctx, appsvc.Change{Account: c}); err != nil {
		t.Fatalf("first Save = %v; want nil", err)
	}
	err = repo.Save(ctx, appsvc.Change{Account: d})
	if !errors.Is(err, appsvc.ErrConflict) || !errors.Is(err, eventsource.ErrConcurrencyConflict) {
		t.Errorf("second Save = %v; want an error matching ErrConflict", err)
	}
	if got, err := repo.Load(ctx, "acc-1"); err != nil || got.Balance != model.EUR(5) || got.Version() != 2 {
		t.Errorf("Load = %v, %v; want balance 0.05 EUR at version 2", describe(got), err)
	}
}

func describe(a *model.Account) any {
	if a == nil {
		return nil
	}
	return a.Balance.String()
}
