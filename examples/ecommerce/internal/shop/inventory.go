package shop

import (
	"context"
	"net/http"
	"sync"

	"github.com/otelpatterns/patterns/hexagonal"
)

// ReserveRequest asks the inventory service to hold an order's lines.
type ReserveRequest struct {
	OrderID string `json:"order_id"`
	Lines   []Line `json:"lines"`
}

// Line is an order line: qty of sku.
type Line struct {
	SKU string `json:"sku"`
	Qty int    `json:"qty"`
}

// stock is the inventory service's core: what is on hand and what each
// order holds.
type stock struct {
	faults   *Faults
	mu       sync.Mutex
	onHand   map[string]int
	reserved map[string][]Line // by order ID
	reserve  func(context.Context, ReserveRequest) (ReserveRequest, error)
	release  func(context.Context, string) (bool, error)
}

func newStock(f *Faults) *stock {
	s := &stock{faults: f, onHand: map[string]int{}, reserved: map[string][]Line{}}
	for _, p := range products {
		s.onHand[p.SKU] = p.stock
	}
	s.reserve = hexagonal.Instrument(hexagonal.Application, "Inventory", "Reserve", s.doReserve)
	s.release = hexagonal.Instrument(hexagonal.Application, "Inventory", "Release", s.doRelease)
	return s
}

// doReserve holds every line of the order, or none (409 when one is short).
// Reserving an order again is reserving it once.
func (s *stock) doReserve(_ context.Context, req ReserveRequest) (ReserveRequest, error) {
	if req.OrderID == "" || len(req.Lines) == 0 {
		return req, hexagonal.Errorf(hexagonal.KindInvalid, "a reservation needs an order_id and lines")
	}
	for _, l := range req.Lines {
		// A line of no or negative quantity would add to the stock.
		if l.Qty < 1 {
			return req, hexagonal.Errorf(hexagonal.KindInvalid, "a line of %s asks for %d: a quantity is at least 1", l.SKU, l.Qty)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.reserved[req.OrderID]; ok {
		return req, nil
	}
	need := map[string]int{}
	for _, l := range req.Lines {
		need[l.SKU] += l.Qty
	}
	for sku, n := range need {
		if have, ok := s.onHand[sku]; !ok {
			return req, hexagonal.Errorf(hexagonal.KindNotFound, "no product %s", sku)
		} else if have < n {
			return req, hexagonal.Errorf(hexagonal.KindConflict, "%d of %s on hand, %d asked", have, sku, n)
		}
	}
	for sku, n := range need {
		s.onHand[sku] -= n
	}
	s.reserved[req.OrderID] = req.Lines
	return req, nil
}

// doRelease gives back what the order holds; it reports whether it held
// anything, so that releasing twice, or an order never reserved, is fine.
func (s *stock) doRelease(_ context.Context, orderID string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	lines, ok := s.reserved[orderID]
	if !ok {
		return false, nil
	}
	for _, l := range lines {
		s.onHand[l.SKU] += l.Qty
	}
	delete(s.reserved, orderID)
	return true, nil
}

// held reports whether order id holds stock, for tests and the story.
func (s *stock) held(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.reserved[id]
	return ok
}

// level returns what is on hand of sku.
func (s *stock) level(sku string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.onHand[sku]
}

// routes mounts the inventory API: POST /reservations,
// DELETE /reservations/{order_id}, GET /stock/{sku}. While FlakyInventory
// has failures left, each call uses one up and answers 503.
func (s *stock) routes(mux *http.ServeMux) {
	flaky := func(h http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if s.faults.flake() {
				hexagonal.WriteProblem(w, errUnavailable)
				return
			}
			h(w, r)
		}
	}
	mux.HandleFunc("POST /reservations", flaky(func(w http.ResponseWriter, r *http.Request) {
		var req ReserveRequest
		if !readJSON(w, r, &req) {
			return
		}
		res, err := s.reserve(r.Context(), req)
		if err != nil {
			hexagonal.WriteProblem(w, err)
			return
		}
		writeJSON(w, http.StatusCreated, res)
	}))
	mux.HandleFunc("DELETE /reservations/{order_id}", flaky(func(w http.ResponseWriter, r *http.Request) {
		if _, err := s.release(r.Context(), r.PathValue("order_id")); err != nil {
			hexagonal.WriteProblem(w, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	mux.HandleFunc("GET /stock/{sku}", flaky(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"sku": r.PathValue("sku"), "on_hand": s.level(r.PathValue("sku"))})
	}))
}
