package adapters

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/otelpatterns/patterns/cqrs"
	"github.com/otelpatterns/patterns/examples/ecommerce/internal/shop/orders/app"
	"github.com/otelpatterns/patterns/examples/ecommerce/internal/shop/orders/domain"
	"github.com/otelpatterns/patterns/examples/ecommerce/internal/shop/orders/ports"
	"github.com/otelpatterns/patterns/hexagonal"
)

// maxBody bounds the body of POST /orders.
const maxBody = 1 << 20

// PlaceOrderRequest is the body of POST /orders.
type PlaceOrderRequest struct {
	CustomerID string          `json:"customer_id"`
	Lines      []app.LineInput `json:"lines"`
}

// PlaceOrderResponse is the answer to POST /orders: 202 Accepted, the
// saga goes on after it.
type PlaceOrderResponse struct {
	OrderID string        `json:"order_id"`
	Status  domain.Status `json:"status"`
}

// Routes mounts the order API on mux, sending commands and queries
// through bus: POST /orders (PlaceOrder, de-duplicated by its
// Idempotency-Key header) and GET /orders/{id} (GetOrder, from the read
// model: 404 until the projection has seen the order).
//
// POST answers 202 with the order's ID and status "pending": the saga
// goes on after the answer. A copy of a request (the same customer and
// Idempotency-Key) names the same order and is answered the same, whatever
// the order has become since and whatever its body says: the first
// request's order stands. A request without a key places a new order each
// time. A request the domain refuses answers 400 or 422; one that failed
// for want of a dependency answers 503 with Retry-After, to be sent again
// with the same key.
func Routes(mux *http.ServeMux, bus *cqrs.Bus) {
	mux.HandleFunc("POST /orders", func(w http.ResponseWriter, r *http.Request) {
		var req PlaceOrderRequest
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody)).Decode(&req); err != nil {
			// Over the limit is 413, not a malformed order: sent again as
			// it is, it would fail again.
			if tooLarge := new(http.MaxBytesError); errors.As(err, &tooLarge) {
				hexagonal.WriteProblem(w, &hexagonal.Problem{Status: http.StatusRequestEntityTooLarge,
					Detail: fmt.Sprintf("an order's body is at most %d bytes", maxBody)})
				return
			}
			hexagonal.WriteProblem(w, hexagonal.Errorf(hexagonal.KindInvalid, "the body is not an order: %v", err))
			return
		}
		cmd := app.NewPlaceOrder(r.Header.Get("Idempotency-Key"), req.CustomerID, req.Lines)
		if err := bus.Dispatch(r.Context(), cmd); err != nil {
			if _, ok := hexagonal.DomainKind(err); !ok {
				// Not the request's fault (the catalogue or the store did
				// not answer): the client may send it again, with the
				// same key, as the order was not placed or was placed
				// once.
				w.Header().Set("Retry-After", "1")
				err = &hexagonal.Problem{Status: http.StatusServiceUnavailable,
					Detail: "the order could not be placed now; send it again with the same Idempotency-Key"}
			}
			hexagonal.WriteProblem(w, err)
			return
		}
		w.Header().Set("Location", "/orders/"+string(cmd.OrderID))
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusAccepted)
		_ = json.NewEncoder(w).Encode(PlaceOrderResponse{OrderID: string(cmd.OrderID), Status: domain.Pending})
	})
	mux.HandleFunc("GET /orders/{id}", func(w http.ResponseWriter, r *http.Request) {
		id, err := domain.ParseOrderID(r.PathValue("id"))
		if err != nil {
			hexagonal.WriteProblem(w, err)
			return
		}
		v, err := cqrs.Ask[app.GetOrder, ports.OrderView](r.Context(), bus, app.GetOrder{OrderID: id})
		if err != nil {
			hexagonal.WriteProblem(w, err)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(v)
	})
}
