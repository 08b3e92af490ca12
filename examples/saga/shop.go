package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/otelpatterns/patterns/retry"
	"github.com/otelpatterns/patterns/saga"
)

// Money is an amount in cents.
type Money int64

func (m Money) String() string { return fmt.Sprintf("%d.%02d", m/100, m%100) }

// Item is a line of an order.
type Item struct {
	SKU   string
	Qty   int
	Price Money // of one
}

// Order is the data of the order saga: what the customer asked for, and
// what the steps did about it. The orchestrator keeps it in the log, as
// JSON, after every step.
type Order struct {
	ID       string
	Customer string
	Items    []Item

	PaymentID     string // set by the payment step
	ReservationID string // set by the inventory step
	Label         string // set by the shipping step
}

// Total is what the order costs.
func (o Order) Total() Money {
	var t Money
	for _, it := range o.Items {
		t += Money(it.Qty) * it.Price
	}
	return t
}

func (o Order) describeItems() string {
	parts := make([]string, len(o.Items))
	for i, it := range o.Items {
		parts[i] = fmt.Sprintf("%d × %s", it.Qty, it.SKU)
	}
	return strings.Join(parts, ", ")
}

// The latencies of the fake services, so that the spans have a length.
const (
	ordersLatency    = 2 * time.Millisecond
	paymentsLatency  = 8 * time.Millisecond
	inventoryLatency = 3 * time.Millisecond
	shippingLatency  = 5 * time.Millisecond
)

// serviceError is an error of a service, with a stable error.type for the
// spans that record it.
type serviceError struct{ msg, typ string }

func (e *serviceError) Error() string     { return e.msg }
func (e *serviceError) ErrorType() string { return e.typ }

// errConnReset is the transient failure of the payment service's network.
var errConnReset = &serviceError{"payments: connection reset by peer", "payments.connection_reset"}

// errNoReply is the failure of a shipping request that the courier never
// answered.
var errNoReply = &serviceError{"shipping: no reply from the courier", "shipping.no_reply"}

// errOutOfStock is the failure of a reservation that the stock does not
// cover.
func errOutOfStock(it Item, left int) error {
	return &serviceError{fmt.Sprintf("inventory: out of stock: %d × %s wanted, %d left", it.Qty, it.SKU, left), "inventory.out_of_stock"}
}

// shop plays the four services the saga calls. Each takes an idempotency
// key with every request that changes something, as real payment and
// shipping APIs do (an Idempotency-Key header), and applies a request it
// has seen before once only: the saga passes [saga.IdempotencyKey], which
// is the same for every attempt of one step of one saga, so a retry after
// a lost reply, or after a crash, does not charge or ship twice.
type shop struct {
	mu  sync.Mutex
	out io.Writer

	// seen maps an idempotency key to the result of the request that
	// first used it.
	seen  map[string]string
	stock map[string]int
	next  map[string]int // per prefix, for the ids of payments, reservations and labels

	// loseReplyOf names the order whose first charge succeeds but whose
	// reply is lost: the step sees an error and retries.
	loseReplyOf string
	// hangOn names the order whose first shipping request hangs, until
	// its context ends; hung is closed when it does.
	hangOn string
	hung   chan struct{}
}

func newShop(out io.Writer) *shop {
	return &shop{
		out:   out,
		seen:  map[string]string{},
		stock: map[string]int{"book": 5, "lamp": 1},
		next:  map[string]int{},
		hung:  make(chan struct{}),
	}
}

// say prints what a service did.
func (s *shop) say(service, format string, args ...any) {
	fmt.Fprintf(s.out, "  %-10s %s\n", service, fmt.Sprintf(format, args...))
}

// once runs do for the first request with key, and returns its result and
// false; for later requests with key, it returns the first result and true.
// s.mu is held.
func (s *shop) once(key string, do func() (string, error)) (string, bool, error) {
	if r, ok := s.seen[key]; ok {
		return r, true, nil
	}
	r, err := do()
	if err == nil {
		s.seen[key] = r
	}
	return r, false, err
}

func (s *shop) newID(prefix string) string {
	s.next[prefix]++
	return fmt.Sprintf("%s-%d", prefix, s.next[prefix])
}

// sleep waits for d or ctx.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// placeOrder is the action of step "order": the order service records the
// order as pending.
func (s *shop) placeOrder(ctx context.Context, o Order) (func(*Order), error) {
	if err := sleep(ctx, ordersLatency); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	_, dup, _ := s.once(saga.IdempotencyKey(ctx), func() (string, error) { return o.ID, nil })
	if !dup {
		s.say("orders", "%s for %s: %s, %s, pending", o.ID, o.Customer, o.describeItems(), o.Total())
	}
	return nil, nil
}

// cancelOrder compensates step "order".
func (s *shop) cancelOrder(ctx context.Context, o Order) error {
	if err := sleep(ctx, ordersLatency); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	_, dup, _ := s.once(saga.IdempotencyKey(ctx), func() (string, error) { return o.ID, nil })
	if !dup {
		s.say("orders", "%s cancelled", o.ID)
	}
	return nil
}

// charge is the action of step "payment".
func (s *shop) charge(ctx context.Context, o Order) (func(*Order), error) {
	if err := sleep(ctx, paymentsLatency); err != nil {
		return nil, err
	}
	key := saga.IdempotencyKey(ctx)
	s.mu.Lock()
	defer s.mu.Unlock()
	id, dup, _ := s.once(key, func() (string, error) { return s.newID("pay"), nil })
	if dup {
		s.say("payments", "%s seen before: already charged as %s, not charged again", key, id)
	} else {
		s.say("payments", "charged %s as %s (idempotency key %s)", o.Total(), id, key)
		if o.ID == s.loseReplyOf {
			s.loseReplyOf = ""
			s.say("payments", "… and the reply is lost on the way back")
			return nil, errConnReset
		}
	}
	return func(o *Order) { o.PaymentID = id }, nil
}

// refund compensates step "payment". The data is the saga's latest: its
// PaymentID is empty if the charge never completed.
func (s *shop) refund(ctx context.Context, o Order) error {
	if err := sleep(ctx, paymentsLatency); err != nil {
		return err
	}
	key := saga.IdempotencyKey(ctx)
	s.mu.Lock()
	defer s.mu.Unlock()
	if o.PaymentID == "" {
		s.say("payments", "nothing to refund for %s", o.ID)
		return nil
	}
	if _, dup, _ := s.once(key, func() (string, error) { return o.PaymentID, nil }); !dup {
		s.say("payments", "refunded %s to %s (idempotency key %s)", o.PaymentID, o.Customer, key)
	}
	return nil
}

// reserve is the action of step "inventory". Running out of stock is a
// business failure: no retry helps, so it is [retry.Permanent], and the
// saga compensates at once.
func (s *shop) reserve(ctx context.Context, o Order) (func(*Order), error) {
	if err := sleep(ctx, inventoryLatency); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	id, dup, err := s.once(saga.IdempotencyKey(ctx), func() (string, error) {
		for _, it := range o.Items {
			if left := s.stock[it.SKU]; left < it.Qty {
				return "", retry.Permanent(errOutOfStock(it, left))
			}
		}
		for _, it := range o.Items {
			s.stock[it.SKU] -= it.Qty
		}
		return s.newID("res"), nil
	})
	switch {
	case err != nil:
		s.say("inventory", "%s", strings.TrimPrefix(err.Error(), "inventory: "))
		return nil, err
	case !dup:
		s.say("inventory", "reserved %s as %s", o.describeItems(), id)
	}
	return func(o *Order) { o.ReservationID = id }, nil
}

// release compensates step "inventory".
func (s *shop) release(ctx context.Context, o Order) error {
	if err := sleep(ctx, inventoryLatency); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if o.ReservationID == "" {
		return nil
	}
	if _, dup, _ := s.once(saga.IdempotencyKey(ctx), func() (string, error) { return o.ReservationID, nil }); !dup {
		for _, it := range o.Items {
			s.stock[it.SKU] += it.Qty
		}
		s.say("inventory", "released %s", o.ReservationID)
	}
	return nil
}

// ship is the action of step "shipping", the saga's pivot: once the
// courier has the parcel, the order is not undone.
func (s *shop) ship(ctx context.Context, o Order) (func(*Order), error) {
	if err := sleep(ctx, shippingLatency); err != nil {
		return nil, err
	}
	key := saga.IdempotencyKey(ctx)
	s.mu.Lock()
	label, dup, _ := s.once(key, func() (string, error) { return s.newID("label"), nil })
	hang := o.ID == s.hangOn && !dup
	if dup {
		s.say("shipping", "%s seen before: label %s booked already, not booked again", key, label)
	} else {
		s.say("shipping", "booked label %s for %s (idempotency key %s)", label, o.ID, key)
	}
	if hang {
		s.say("shipping", "… and the courier's reply does not come")
	}
	s.mu.Unlock()
	if hang {
		close(s.hung)
		<-ctx.Done()
		return nil, errNoReply
	}
	return func(o *Order) { o.Label = label }, nil
}
