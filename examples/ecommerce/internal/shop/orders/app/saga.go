package app

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/otelpatterns/patterns/examples/ecommerce/internal/shop/orders/domain"
	"github.com/otelpatterns/patterns/examples/ecommerce/internal/shop/orders/ports"
	"github.com/otelpatterns/patterns/retry"
	"github.com/otelpatterns/patterns/saga"
)

// SagaName is the order saga's definition name.
const SagaName = "order"

// The order saga's steps, in order.
const (
	StepOpen    = "open"
	StepReserve = "reserve"
	StepCharge  = "charge"
	StepShip    = "ship"
)

// OrderSaga is the order saga's data.
type OrderSaga struct {
	OrderID    domain.OrderID `json:"order_id"`
	CustomerID string         `json:"customer_id"`
	Lines      []domain.Line  `json:"lines"`
	TotalCents int64          `json:"total_cents"`
	PaymentID  string         `json:"payment_id,omitempty"`
	Carrier    string         `json:"carrier,omitempty"`
	Tracking   string         `json:"tracking,omitempty"`
}

// SagaConfig tunes the saga's retries; the zero value has the defaults.
type SagaConfig struct {
	// ShipRetry is the ship step's policy: it comes after the pivot, so
	// it is retried until shipping answers, and the saga needs attention
	// when the policy runs out. nil: 60 attempts, backing off from 100ms
	// to 2s (about a minute and a half of outage).
	ShipRetry *retry.Retrier
	// StepTimeout bounds each attempt of a step; 0 means 4s. Keep it
	// below the HTTP clients' timeout: an attempt that the step's timeout
	// cuts has an unknown outcome, which the saga compensates (a
	// reservation that may have been made is released), whereas an error
	// the client returns is taken as "not done".
	StepTimeout time.Duration
	// Logger receives the sagas that need attention; nil:
	// slog.Default().
	Logger *slog.Logger
}

// define builds the order saga:
//
//	open -> reserve (release) -> charge (pivot) -> ship (retriable)
//
// "open" does nothing forward; its compensation, the last to run, marks
// the order compensated, so that every saga that compensates leaves its
// order so, whichever step failed and why. The charge is the pivot: once
// paid, the order is not undone, and the shipment is retried until the
// shipping service answers (behind its breaker), then completes the order.
// A business refusal (stock short, payment declined) is recorded on the
// order as the reason, and is permanent: the saga compensates at once.
//
// A step's remote call is the last thing its action does: the saga
// compensates only the steps that completed (or whose outcome it does not
// know), so an action that took effect at another service and then failed
// to record it on the order would leave the stock held, or the money
// taken, behind a compensated order. Each step's outcome is recorded on
// the order by the next step instead (the reservation by charge, the
// payment by ship), whose failure undoes it, or, after the pivot, is
// retried.
func (o *Orders) define(cfg SagaConfig) (*saga.Definition[OrderSaga], error) {
	if cfg.ShipRetry == nil {
		cfg.ShipRetry = retry.New(retry.WithName("order.ship"), retry.WithMaxAttempts(60),
			retry.WithBackoff(retry.Exponential(100*time.Millisecond, 2, 2*time.Second)))
	}
	if cfg.StepTimeout == 0 {
		cfg.StepTimeout = 4 * time.Second
	}
	return saga.Define(SagaName, 1,
		saga.Step[OrderSaga]{
			Name:   StepOpen,
			Action: func(context.Context, OrderSaga) (func(*OrderSaga), error) { return nil, nil },
			Compensate: func(ctx context.Context, d OrderSaga) error {
				return o.change(ctx, d.OrderID, func(ord *domain.Order) {
					ord.Reject(StepOpen, "the order could not be completed")
					ord.Compensate()
				})
			},
		},
		saga.Step[OrderSaga]{
			Name:    StepReserve,
			Timeout: cfg.StepTimeout,
			// The reservation is recorded on the order by the next step:
			// see define.
			Action: func(ctx context.Context, d OrderSaga) (func(*OrderSaga), error) {
				return nil, o.refused(ctx, d.OrderID, StepReserve, o.p.Inventory.Reserve(ctx, d.OrderID, d.Lines))
			},
			Compensate: func(ctx context.Context, d OrderSaga) error {
				return o.p.Inventory.Release(ctx, d.OrderID)
			},
		},
		saga.Step[OrderSaga]{
			Name:       StepCharge,
			Pivot:      true,
			Idempotent: true, // the payment service charges once per key
			Timeout:    cfg.StepTimeout,
			Action: func(ctx context.Context, d OrderSaga) (func(*OrderSaga), error) {
				if err := o.change(ctx, d.OrderID, (*domain.Order).Reserve); err != nil {
					return nil, err
				}
				id, err := o.p.Payments.Charge(ctx, ports.Charge{
					OrderID: d.OrderID, CustomerID: d.CustomerID, AmountCents: d.TotalCents,
					IdempotencyKey: saga.IdempotencyKey(ctx),
				})
				if err := o.refused(ctx, d.OrderID, StepCharge, err); err != nil {
					return nil, err
				}
				// The payment is recorded on the order by the next step.
				return func(d *OrderSaga) { d.PaymentID = id }, nil
			},
			// Run only for a charge whose outcome is unknown when the saga
			// compensates anyway: the refund makes sure no money is kept.
			Compensate: func(ctx context.Context, d OrderSaga) error {
				return o.p.Payments.Refund(ctx, d.OrderID)
			},
		},
		saga.Step[OrderSaga]{
			Name:      StepShip,
			Retriable: true,
			Retry:     cfg.ShipRetry,
			Timeout:   cfg.StepTimeout,
			Action: func(ctx context.Context, d OrderSaga) (func(*OrderSaga), error) {
				if err := o.change(ctx, d.OrderID, func(ord *domain.Order) { ord.Charge(d.PaymentID) }); err != nil {
					return nil, err
				}
				sh, err := o.p.Shipping.Create(ctx, d.OrderID, d.CustomerID)
				if err != nil {
					return nil, err
				}
				if err := o.change(ctx, d.OrderID, func(ord *domain.Order) { ord.Ship(sh.Carrier, sh.Tracking) }); err != nil {
					return nil, err
				}
				return func(d *OrderSaga) { d.Carrier, d.Tracking = sh.Carrier, sh.Tracking }, nil
			},
		},
	)
}

// refused turns a business refusal of step into a permanent failure,
// recorded on the order as its reason; other errors are left transient.
func (o *Orders) refused(ctx context.Context, id domain.OrderID, step string, err error) error {
	if err == nil || !errors.Is(err, domain.ErrRejected) {
		return err
	}
	if rerr := o.change(ctx, id, func(ord *domain.Order) { ord.Reject(step, err.Error()) }); rerr != nil {
		return rerr
	}
	return retry.Permanent(err)
}

// needsAttention records on order id that its saga stopped half done
// (saga.WithNeedsAttention).
//
// It is logged, for the person it waits for, and so is a failure to
// record it: the order would otherwise show the status it had, and the
// saga's state would be in its log only.
func (o *Orders) needsAttention(ctx context.Context, id, _ string, err error) {
	o.logger.ErrorContext(ctx, "order saga needs attention", "order_id", id, "error", err)
	if rerr := o.change(ctx, domain.OrderID(id), func(ord *domain.Order) { ord.NeedAttention(err.Error()) }); rerr != nil {
		o.logger.ErrorContext(ctx, "recording that the order needs attention failed", "order_id", id, "error", rerr)
	}
}
