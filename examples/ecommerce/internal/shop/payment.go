package shop

import (
	"context"
	"fmt"
	"net/http"
	"sync"

	"github.com/otelpatterns/patterns/hexagonal"
)

// ChargeRequest asks the payment service for money; its Idempotency-Key
// header makes a charge sent again charge once.
type ChargeRequest struct {
	OrderID     string `json:"order_id"`
	CustomerID  string `json:"customer_id"`
	AmountCents int64  `json:"amount_cents"`
}

// Charge is a payment taken.
type Charge struct {
	PaymentID   string `json:"payment_id"`
	OrderID     string `json:"order_id"`
	AmountCents int64  `json:"amount_cents"`
	Refunded    bool   `json:"refunded"`
}

// payments is the payment service's core: charges by idempotency key.
type payments struct {
	faults *Faults
	mu     sync.Mutex
	byKey  map[string]Charge
	byOrd  map[string]string // order ID -> key
	// refunded holds the orders refunded, charged or not.
	refunded map[string]bool
	charge   func(context.Context, chargeIn) (Charge, error)
	refund   func(context.Context, string) (Charge, error)
}

type chargeIn struct {
	key string
	req ChargeRequest
}

func newPayments(f *Faults) *payments {
	p := &payments{faults: f, byKey: map[string]Charge{}, byOrd: map[string]string{}, refunded: map[string]bool{}}
	p.charge = hexagonal.Instrument(hexagonal.Application, "Payments", "Charge", p.doCharge)
	p.refund = hexagonal.Instrument(hexagonal.Application, "Payments", "Refund", p.doRefund)
	return p
}

// doCharge takes the payment once per key, or declines it: a customer
// the faults decline gets 402 Payment Required.
func (p *payments) doCharge(_ context.Context, in chargeIn) (Charge, error) {
	if in.req.OrderID == "" || in.req.AmountCents <= 0 {
		return Charge{}, hexagonal.Errorf(hexagonal.KindInvalid, "a charge needs an order_id and a positive amount_cents")
	}
	key := in.key
	if key == "" {
		key = "order:" + in.req.OrderID
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	// The key is looked up first: a charge sent again after its answer
	// was lost is the charge taken, not a new decision (a decline now
	// would leave the money taken behind a refusal).
	if c, ok := p.byKey[key]; ok {
		return c, nil
	}
	// A refund that found no charge stands: this charge's request was
	// overtaken by the saga's refund, and is too late to take money.
	if p.refunded[in.req.OrderID] {
		return Charge{}, hexagonal.Errorf(hexagonal.KindConflict, "order %s was refunded: it takes no payment", in.req.OrderID)
	}
	if p.faults.declines(in.req.CustomerID) {
		return Charge{}, hexagonal.Errorf(kindDeclined, "the card of customer %s was declined", in.req.CustomerID)
	}
	c := Charge{PaymentID: fmt.Sprintf("pay-%d", len(p.byKey)+1), OrderID: in.req.OrderID, AmountCents: in.req.AmountCents}
	p.byKey[key] = c
	p.byOrd[c.OrderID] = key
	return c, nil
}

// doRefund gives back the payment of an order; refunding twice is
// refunding once, and refunding an order never charged refunds nothing
// (a saga compensating a charge whose outcome it does not know) and
// refuses the order's later charges.
func (p *payments) doRefund(_ context.Context, orderID string) (Charge, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.refunded[orderID] = true
	key, ok := p.byOrd[orderID]
	if !ok {
		return Charge{OrderID: orderID, Refunded: true}, nil
	}
	c := p.byKey[key]
	c.Refunded = true
	p.byKey[key] = c
	return c, nil
}

// kindDeclined is a declined payment's kind: 402 at the edge.
const kindDeclined = "payment_required"

// charged returns the order's charge, for tests.
func (p *payments) charged(orderID string) (Charge, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	key, ok := p.byOrd[orderID]
	return p.byKey[key], ok
}

// RefundRequest asks for the payment of an order back.
type RefundRequest struct {
	OrderID string `json:"order_id"`
}

// routes mounts the payment API: POST /charges and POST /refunds.
func (p *payments) routes(mux *http.ServeMux) {
	mux.HandleFunc("POST /charges", func(w http.ResponseWriter, r *http.Request) {
		var req ChargeRequest
		if !readJSON(w, r, &req) {
			return
		}
		c, err := p.charge(r.Context(), chargeIn{key: r.Header.Get("Idempotency-Key"), req: req})
		if isKind(err, kindDeclined) {
			// hexagonal answers a kind of its own with 422; a decline is 402.
			err = &hexagonal.Problem{Title: "Payment declined", Status: http.StatusPaymentRequired, Detail: err.Error()}
		}
		if err != nil {
			hexagonal.WriteProblem(w, err)
			return
		}
		writeJSON(w, http.StatusCreated, c)
	})
	mux.HandleFunc("POST /refunds", func(w http.ResponseWriter, r *http.Request) {
		var req RefundRequest
		if !readJSON(w, r, &req) {
			return
		}
		c, err := p.refund(r.Context(), req.OrderID)
		if err != nil {
			hexagonal.WriteProblem(w, err)
			return
		}
		writeJSON(w, http.StatusOK, c)
	})
}
