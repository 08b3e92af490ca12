package app

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/otelpatterns/patterns/examples/ecommerce/internal/shop/orders/domain"
	"github.com/otelpatterns/patterns/examples/ecommerce/internal/shop/orders/ports"
	"github.com/otelpatterns/patterns/retry"
	"github.com/otelpatterns/patterns/saga"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// repo keeps each order as its events, as an event store would.
type repo struct {
	mu     sync.Mutex
	events map[domain.OrderID][]any
	// failSave, if set, fails the saves whose changes it returns an error
	// for, as a store out of reach would.
	failSave func(changes []any) error
}

func (r *repo) Load(_ context.Context, id domain.OrderID) (*domain.Order, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	es, ok := r.events[id]
	if !ok {
		return nil, domain.NotFound("no order")
	}
	o := &domain.Order{}
	for _, e := range es {
		if err := o.Apply(e); err != nil {
			return nil, err
		}
	}
	return o, nil
}

func (r *repo) Save(_ context.Context, o *domain.Order) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.failSave != nil {
		if err := r.failSave(o.Changes()); err != nil {
			return err
		}
	}
	if int64(len(r.events[o.ID()])) != o.Version()-int64(len(o.Changes())) {
		return errors.New("conflict")
	}
	r.events[o.ID()] = append(r.events[o.ID()], o.Changes()...)
	o.Saved()
	return nil
}

// services are the other services, failing as told.
type services struct {
	reserveErr, chargeErr, shipErr error
	mu                             sync.Mutex
	reserved, charged              bool
	priced                         int
	released, refunded             bool
}

func (s *services) Price(context.Context, string) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.priced++
	return 500, nil
}
func (s *services) Reserve(context.Context, domain.OrderID, []domain.Line) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reserved = s.reserved || s.reserveErr == nil
	return s.reserveErr
}
func (s *services) Release(context.Context, domain.OrderID) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.released = true
	return nil
}
func (s *services) Charge(context.Context, ports.Charge) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.charged = s.charged || s.chargeErr == nil
	return "pay-1", s.chargeErr
}
func (s *services) Refund(context.Context, domain.OrderID) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refunded = true
	return nil
}
func (s *services) Create(context.Context, domain.OrderID, string) (ports.Shipment, error) {
	return ports.Shipment{Carrier: "c", Tracking: "t"}, s.shipErr
}

type noViews struct{}

func (noViews) Get(context.Context, domain.OrderID) (ports.OrderView, error) {
	return ports.OrderView{}, domain.NotFound("none")
}
func (noViews) Apply(context.Context, any, time.Time) error { return nil }

// run places an order and runs its saga to its end with svc, returning
// the saga's result and the order.
func run(t *testing.T, svc *services) (saga.Result[OrderSaga], *domain.Order) {
	t.Helper()
	return runOn(t, svc, &repo{events: map[domain.OrderID][]any{}})
}

// runOn is run with the orders kept in r.
func runOn(t *testing.T, svc *services, r *repo) (saga.Result[OrderSaga], *domain.Order) {
	t.Helper()
	return runLogged(t, svc, r, slog.New(slog.DiscardHandler))
}

// runLogged is runOn with the application logging to logger.
func runLogged(t *testing.T, svc *services, r *repo, logger *slog.Logger) (saga.Result[OrderSaga], *domain.Order) {
	t.Helper()
	ctx := context.Background()
	fast := func() *retry.Retrier {
		return retry.New(retry.WithMaxAttempts(2), retry.WithBackoff(retry.Constant(time.Millisecond)))
	}
	o, err := New(Ports{Orders: r, Views: noViews{}, Catalogue: svc, Inventory: svc, Payments: svc, Shipping: svc},
		SagaConfig{ShipRetry: fast(), Logger: logger},
		func(opts ...saga.Option) (*saga.Orchestrator, error) {
			return saga.NewOrchestrator(&saga.MemoryLog{}, append(opts, saga.WithCompensationRetry(fast()))...)
		})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = o.Orchestrator().Close(ctx) })
	cmd := NewPlaceOrder("k", "ada", []LineInput{{SKU: "A", Qty: 2}})
	if err := o.doPlace(ctx, cmd); err != nil {
		t.Fatal(err)
	}
	placed, _ := r.Load(ctx, cmd.OrderID)
	if err := o.StartSaga(ctx, domain.OrderPlaced{OrderID: cmd.OrderID, CustomerID: "ada", Lines: placed.Lines()}); err != nil {
		t.Fatal(err)
	}
	// A second start (the event delivered again) is the same saga.
	if err := o.StartSaga(ctx, domain.OrderPlaced{OrderID: cmd.OrderID, CustomerID: "ada", Lines: placed.Lines()}); err != nil {
		t.Fatalf("the saga started again: %v", err)
	}
	res, err := saga.Wait(ctx, o.Orchestrator(), o.Definition(), string(cmd.OrderID))
	if err != nil {
		t.Fatal(err)
	}
	// NeedsAttention records after the status is in the log: close the
	// orchestrator, which waits for it, before reading the order.
	_ = o.Orchestrator().Close(ctx)
	ord, err := r.Load(ctx, cmd.OrderID)
	if err != nil {
		t.Fatal(err)
	}
	return res, ord
}

func TestSagaOutcomes(t *testing.T) {
	for _, c := range []struct {
		name     string
		svc      *services
		saga     saga.Status
		order    domain.Status
		reason   string
		released bool
	}{
		{"completed", &services{}, saga.Completed, domain.Completed, "", false},
		{"out of stock", &services{reserveErr: domain.Refused("2 of A asked, 1 on hand")}, saga.Compensated, domain.Compensated, "on hand", false},
		// A 503 reserved nothing: there is nothing to release.
		{"inventory unreachable", &services{reserveErr: errors.New("inventory answered 503")}, saga.Compensated, domain.Compensated, "could not be completed", false},
		{"declined", &services{chargeErr: domain.Refused("card declined")}, saga.Compensated, domain.Compensated, "card declined", true},
		{"shipping never back", &services{shipErr: errors.New("shipping answered 503")}, saga.NeedsAttention, domain.NeedsAttention, "503", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			res, ord := run(t, c.svc)
			if res.Status != c.saga || ord.Status() != c.order {
				t.Fatalf("saga %v, order %v (%s); want %v, %v", res.Status, ord.Status(), ord.Reason(), c.saga, c.order)
			}
			if !strings.Contains(ord.Reason(), c.reason) {
				t.Errorf("reason %q, want it to say %q", ord.Reason(), c.reason)
			}
			if c.svc.released != c.released {
				t.Errorf("released %v, want %v", c.svc.released, c.released)
			}
			if c.svc.refunded {
				t.Errorf("a refund was asked: no charge had an unknown outcome")
			}
		})
	}
}

// A step whose remote call took effect and whose record on the order then
// failed (the store out of reach for longer than the step's retries) is
// a failed step to the saga, which compensates only the steps that
// completed: the remote effect must not outlive the compensation. A
// charge taken must be kept with the order going forward (the pivot) or
// refunded; a reservation made must be released.
func TestSagaStoreFailsAfterTheRemoteCall(t *testing.T) {
	storeDown := errors.New("store out of reach")
	for _, c := range []struct {
		name string
		fail func(any) bool
	}{
		{"after the reservation", func(e any) bool { _, ok := e.(domain.StockReserved); return ok }},
		{"after the charge", func(e any) bool { _, ok := e.(domain.PaymentCharged); return ok }},
	} {
		t.Run(c.name, func(t *testing.T) {
			svc := &services{}
			r := &repo{events: map[domain.OrderID][]any{}, failSave: func(changes []any) error {
				for _, e := range changes {
					if c.fail(e) {
						return storeDown
					}
				}
				return nil
			}}
			res, ord := runOn(t, svc, r)
			svc.mu.Lock()
			defer svc.mu.Unlock()
			if svc.reserved && !svc.released && res.Status == saga.Compensated {
				t.Errorf("the saga compensated (order %v) and left the stock reserved", ord.Status())
			}
			if svc.charged && !svc.refunded && res.Status == saga.Compensated {
				t.Errorf("the saga compensated (order %v) and kept the money", ord.Status())
			}
		})
	}
}

// A saga that needs attention is logged for the person it waits for, and
// so is a failure to record it on the order, which would otherwise show
// the status it had (paid) without a word.
func TestNeedsAttentionIsLogged(t *testing.T) {
	var out bytes.Buffer
	r := &repo{events: map[domain.OrderID][]any{}, failSave: func(changes []any) error {
		for _, e := range changes {
			if _, ok := e.(domain.OrderNeedsAttention); ok {
				return errors.New("store out of reach")
			}
		}
		return nil
	}}
	res, ord := runLogged(t, &services{shipErr: errors.New("shipping answered 503")}, r, slog.New(slog.NewTextHandler(&out, nil)))
	if res.Status != saga.NeedsAttention {
		t.Fatalf("saga %v, want needs attention", res.Status)
	}
	logged := out.String()
	for _, want := range []string{"needs attention", "store out of reach", string(ord.ID())} {
		if !strings.Contains(logged, want) {
			t.Errorf("the log does not say %q: %q", want, logged)
		}
	}
}
