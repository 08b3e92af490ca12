package adapters

import (
	"encoding/json"
	"io"
	"net/http"

	"github.com/otelpatterns/patterns/cqrs"
	"github.com/otelpatterns/patterns/examples/ecommerce/internal/shop/orders/app"
	"github.com/otelpatterns/patterns/examples/ecommerce/internal/shop/orders/domain"
	"github.com/otelpatterns/patterns/examples/ecommerce/internal/shop/orders/ports"
	"github.com/otelpatterns/patterns/hexagonal"
)

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
func Routes(mux *http.ServeMux, bus *cqrs.Bus) {
	mux.HandleFunc("POST /orders", func(w http.ResponseWriter, r *http.Request) {
		var req PlaceOrderRequest
		if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&req); err != nil {
			hexagonal.WriteProblem(w, hexagonal.Errorf(hexagonal.KindInvalid, "the body is not an order: %v", err))
			return
		}
		cmd := app.NewPlaceOrder(r.Header.Get("Idempotency-Key"), req.CustomerID, req.Lines)
		if err := bus.Dispatch(r.Context(), cmd); err != nil {
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
