package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/otelpatterns/patterns/eventsource"
)

// The event types in the new system's store.
const (
	// typeImported: a legacy order copied by the one-off backfill.
	typeImported = "legacy.order.imported.v1"
	// typeCDCPrefix + the change's op (insert, update, delete): a change
	// of the legacy orders table streamed by CDC.
	typeCDCPrefix = "legacy.order."
	// typePlaced: an order placed on the new service itself.
	typePlaced = "orders.placed.v2"
)

// orderData is the data of every order event.
type orderData struct {
	LegacyID   string    `json:"legacy_id,omitempty"` // for orders that came from legacy
	User       string    `json:"user"`
	Status     string    `json:"status"`
	TotalCents int64     `json:"total_cents"`
	PlacedAt   time.Time `json:"placed_at"`
}

// fromLegacy reports whether an event came from the legacy system
// (backfill or CDC), rather than from the new service's own writes.
func fromLegacy(e eventsource.Event) bool { return strings.HasPrefix(e.Type, typeCDCPrefix) }

// idSpace derives the new system's ids of legacy orders, and the ids of
// the events the backfill and the CDC handler append.
var idSpace = uuid.MustParse("3d0b8f5e-2c1a-4f7e-9b6d-5a4c3e2f1d0b")

// v2Status is how the new service names the legacy statuses. The
// misspelt CANCELED is the deliberate difference that shadowing finds.
var v2Status = map[string]string{"NEW": "NEW", "SHIPPED": "SHIPPED", "CANCELLED": "CANCELED"}

// v2Order is an order as the new service keeps it.
type v2Order struct {
	id uuid.UUID
	orderData
}

// readModel is the new orders service's view of the orders, built from
// the event store by a projection: legacy orders (backfill, CDC) and its
// own. It is safe for concurrent use.
type readModel struct {
	progress
	mu     sync.Mutex
	orders map[string]*v2Order // by stream
}

func newReadModel() *readModel { return &readModel{orders: map[string]*v2Order{}} }

// Name implements cqrs.Projection.
func (m *readModel) Name() string { return "orders-v2-read-model" }

// Handle implements cqrs.Projection. Applying an event again sets the
// same state, so redelivery is harmless.
func (m *readModel) Handle(_ context.Context, e eventsource.Event) error {
	defer m.handled(e.Position)
	var d orderData
	if err := json.Unmarshal(e.Data, &d); err != nil {
		return fmt.Errorf("event %s: %w", e.ID, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	switch {
	case e.Type == typeCDCPrefix+"delete":
		delete(m.orders, e.StreamID)
	case fromLegacy(e):
		// Ids of the new system's own, stable for a legacy order.
		m.orders[e.StreamID] = &v2Order{id: uuid.NewSHA1(idSpace, []byte(d.LegacyID)), orderData: d}
	case e.Type == typePlaced:
		m.orders[e.StreamID] = &v2Order{id: e.ID, orderData: d}
	}
	return nil
}

// ordersOf returns a user's orders, oldest first.
func (m *readModel) ordersOf(user string) []v2Order {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []v2Order
	for _, o := range m.orders {
		if o.User == user {
			out = append(out, *o)
		}
	}
	slices.SortFunc(out, func(a, b v2Order) int {
		return byPlacement(legacyOrder{ID: a.LegacyID, PlacedAt: a.PlacedAt}, legacyOrder{ID: b.LegacyID, PlacedAt: b.PlacedAt})
	})
	return out
}

// ordersService is orders-v2, the new orders service.
type ordersService struct {
	store eventsource.Store
	model *readModel
}

func (s *ordersService) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set(servedByHeader, "orders-v2")
	switch {
	case r.URL.Path == "/orders" && r.Method == http.MethodGet:
		user := r.Header.Get(userHeader)
		list := []map[string]any{}
		for _, o := range s.model.ordersOf(user) {
			list = append(list, map[string]any{
				"id": o.id, "status": v2Status[o.Status], "total": float64(o.TotalCents) / 100,
				"placed_at": o.PlacedAt.UTC().Format(time.RFC3339),
			})
		}
		writeJSON(w, http.StatusOK, map[string]any{"user": user, "orders": list})
	case r.URL.Path == "/orders" && r.Method == http.MethodPost:
		o, ok := readOrder(w, r)
		if !ok {
			return
		}
		id := uuid.New()
		data, err := json.Marshal(orderData{User: o.User, Status: o.Status, TotalCents: o.TotalCents, PlacedAt: o.PlacedAt})
		if err == nil {
			_, err = s.store.Append(r.Context(), "order-"+id.String(), eventsource.NoStream,
				eventsource.NewEvent{ID: id, Type: typePlaced, Data: data})
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		writeJSON(w, http.StatusCreated, map[string]any{"id": id})
	default:
		http.NotFound(w, r)
	}
}

// catalogService is catalog-v2, which took /products over wholesale.
type catalogService struct{}

func (catalogService) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set(servedByHeader, "catalog-v2")
	if r.URL.Path != "/products" || r.Method != http.MethodGet {
		http.NotFound(w, r)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"products": catalog})
}

// progress tracks the position of the last event a projection handled,
// so that the program can wait for it to catch up.
type progress struct {
	pmu     sync.Mutex
	pos     int64
	changed chan struct{} // closed and replaced when pos moves
}

func (p *progress) handled(pos int64) {
	p.pmu.Lock()
	defer p.pmu.Unlock()
	if pos > p.pos {
		p.pos = pos
	}
	if p.changed != nil {
		close(p.changed)
		p.changed = nil
	}
}

// waitFor waits until an event at pos or after has been handled.
func (p *progress) waitFor(ctx context.Context, pos int64) error {
	for {
		p.pmu.Lock()
		if p.pos >= pos {
			p.pmu.Unlock()
			return nil
		}
		if p.changed == nil {
			p.changed = make(chan struct{})
		}
		ch := p.changed
		p.pmu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("waiting for position %d: %w", pos, context.Cause(ctx))
		}
	}
}
