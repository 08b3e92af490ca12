package shop

import (
	"context"
	"fmt"
	"net/http"
	"sync"

	"github.com/otelpatterns/patterns/hexagonal"
)

// ShipmentRequest asks the shipping service to ship an order.
type ShipmentRequest struct {
	OrderID    string `json:"order_id"`
	CustomerID string `json:"customer_id"`
}

// Shipment is an order's parcel, as GET /shipments/{order_id} answers it.
type Shipment struct {
	OrderID  string `json:"order_id"`
	Status   string `json:"status"` // "created" or "cancelled"
	Carrier  string `json:"carrier"`
	Tracking string `json:"tracking"`
}

// shipments is the shipping service's core.
type shipments struct {
	faults *Faults
	mu     sync.Mutex
	byID   map[string]Shipment
	create func(context.Context, ShipmentRequest) (Shipment, error)
	cancel func(context.Context, string) (Shipment, error)
	get    func(context.Context, string) (Shipment, error)
}

func newShipments(f *Faults) *shipments {
	s := &shipments{faults: f, byID: map[string]Shipment{}}
	s.create = hexagonal.Instrument(hexagonal.Application, "Shipping", "Create", s.doCreate)
	s.cancel = hexagonal.Instrument(hexagonal.Application, "Shipping", "Cancel", s.doCancel)
	s.get = hexagonal.Instrument(hexagonal.Application, "Shipping", "Get", s.doGet)
	return s
}

// doCreate creates the order's shipment once.
func (s *shipments) doCreate(_ context.Context, req ShipmentRequest) (Shipment, error) {
	if req.OrderID == "" {
		return Shipment{}, hexagonal.Errorf(hexagonal.KindInvalid, "a shipment needs an order_id")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if sh, ok := s.byID[req.OrderID]; ok {
		return sh, nil
	}
	sh := Shipment{OrderID: req.OrderID, Status: "created", Carrier: "parcelco",
		Tracking: fmt.Sprintf("PC%08d", len(s.byID)+1)}
	s.byID[req.OrderID] = sh
	return sh, nil
}

// doCancel cancels the order's shipment, if it has one.
func (s *shipments) doCancel(_ context.Context, id string) (Shipment, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sh, ok := s.byID[id]
	if !ok {
		return Shipment{OrderID: id, Status: "cancelled"}, nil
	}
	sh.Status = "cancelled"
	s.byID[id] = sh
	return sh, nil
}

func (s *shipments) doGet(_ context.Context, id string) (Shipment, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sh, ok := s.byID[id]
	if !ok {
		return Shipment{}, hexagonal.Errorf(hexagonal.KindNotFound, "no shipment for order %s", id)
	}
	return sh, nil
}

// routes mounts the shipping API: POST /shipments, GET and DELETE
// /shipments/{order_id}. While ShippingDown holds, every call answers 503.
func (s *shipments) routes(mux *http.ServeMux) {
	up := func(h http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if s.faults.shippingDown() {
				hexagonal.WriteProblem(w, errUnavailable)
				return
			}
			h(w, r)
		}
	}
	mux.HandleFunc("POST /shipments", up(func(w http.ResponseWriter, r *http.Request) {
		var req ShipmentRequest
		if !readJSON(w, r, &req) {
			return
		}
		sh, err := s.create(r.Context(), req)
		if err != nil {
			hexagonal.WriteProblem(w, err)
			return
		}
		writeJSON(w, http.StatusCreated, sh)
	}))
	mux.HandleFunc("GET /shipments/{order_id}", up(func(w http.ResponseWriter, r *http.Request) {
		sh, err := s.get(r.Context(), r.PathValue("order_id"))
		if err != nil {
			hexagonal.WriteProblem(w, err)
			return
		}
		writeJSON(w, http.StatusOK, sh)
	}))
	mux.HandleFunc("DELETE /shipments/{order_id}", up(func(w http.ResponseWriter, r *http.Request) {
		sh, err := s.cancel(r.Context(), r.PathValue("order_id"))
		if err != nil {
			hexagonal.WriteProblem(w, err)
			return
		}
		writeJSON(w, http.StatusOK, sh)
	}))
}
