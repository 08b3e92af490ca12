package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// userHeader carries the caller's user id, the sticky key of the split.
const userHeader = "X-User-Id"

// servedByHeader says which service answered; the client counts it.
const servedByHeader = "X-Served-By"

// legacyOrder is a row of the legacy monolith's orders table.
type legacyOrder struct {
	ID         string
	User       string
	Status     string // NEW, SHIPPED or CANCELLED
	TotalCents int64
	PlacedAt   time.Time
}

// legacyDB is the monolith's storage: its orders table, in PostgreSQL or
// in memory. Implementations are safe for concurrent use.
type legacyDB interface {
	// place inserts an order, giving it the next id (L-1001, L-1002...).
	place(ctx context.Context, o legacyOrder) (string, error)
	// ship marks orders shipped, in one transaction.
	ship(ctx context.Context, ids ...string) error
	// ordersOf returns a user's orders, oldest first.
	ordersOf(ctx context.Context, user string) ([]legacyOrder, error)
	// all returns every order, oldest first (for the one-off backfill).
	all(ctx context.Context) ([]legacyOrder, error)
	// applyFromNew is the dual write from the new system: it inserts o
	// unless a row with its id is there, and reports whether it did.
	applyFromNew(ctx context.Context, o legacyOrder) (bool, error)
}

// byPlacement orders orders as both services list them.
func byPlacement(a, b legacyOrder) int {
	return cmp.Or(a.PlacedAt.Compare(b.PlacedAt), strings.Compare(a.ID, b.ID))
}

// legacyService is the monolith's HTTP API, as its clients know it.
type legacyService struct{ db legacyDB }

func (s *legacyService) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set(servedByHeader, "legacy")
	switch {
	case r.URL.Path == "/products" && r.Method == http.MethodGet:
		writeJSON(w, http.StatusOK, map[string]any{"products": catalog})
	case r.URL.Path == "/orders" && r.Method == http.MethodGet:
		user := r.Header.Get(userHeader)
		orders, err := s.db.ordersOf(r.Context(), user)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		list := make([]map[string]any, 0, len(orders))
		for _, o := range orders {
			list = append(list, map[string]any{
				"id": o.ID, "status": o.Status, "total": float64(o.TotalCents) / 100,
				// The monolith's own timestamp format, in UTC.
				"placed_at": o.PlacedAt.UTC().Format(time.DateTime),
			})
		}
		writeJSON(w, http.StatusOK, map[string]any{"user": user, "orders": list})
	case r.URL.Path == "/orders" && r.Method == http.MethodPost:
		o, ok := readOrder(w, r)
		if !ok {
			return
		}
		id, err := s.db.place(r.Context(), o)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		writeJSON(w, http.StatusCreated, map[string]any{"id": id})
	default:
		http.NotFound(w, r)
	}
}

// readOrder reads a new order, {"total": 12.34}, for the request's user.
func readOrder(w http.ResponseWriter, r *http.Request) (legacyOrder, bool) {
	var in struct{ Total float64 }
	user := r.Header.Get(userHeader)
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil || user == "" || in.Total <= 0 {
		http.Error(w, "want a user and {\"total\": amount}", http.StatusBadRequest)
		return legacyOrder{}, false
	}
	return legacyOrder{
		User: user, Status: "NEW", TotalCents: int64(in.Total*100 + 0.5),
		PlacedAt: time.Now().UTC().Truncate(time.Second),
	}, true
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// product is an item of the catalog, which has moved to catalog-v2
// wholesale; the monolith still has its copy.
type product struct {
	SKU   string  `json:"sku"`
	Name  string  `json:"name"`
	Price float64 `json:"price"`
}

var catalog = []product{
	{"LAMP-01", "Desk lamp", 39.9},
	{"MUG-02", "Mug", 8.5},
	{"RUG-03", "Rug", 129},
}

// memLegacy is the monolith's orders table in memory.
type memLegacy struct {
	mu     sync.Mutex
	next   int
	orders map[string]legacyOrder
}

func newMemLegacy() *memLegacy {
	return &memLegacy{next: firstOrderID, orders: map[string]legacyOrder{}}
}

// firstOrderID is the number of the monolith's first order.
const firstOrderID = 1001

func (m *memLegacy) place(ctx context.Context, o legacyOrder) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	o.ID = fmt.Sprintf("L-%d", m.next)
	m.next++
	m.orders[o.ID] = o
	return o.ID, ctx.Err()
}

func (m *memLegacy) ship(ctx context.Context, ids ...string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, id := range ids {
		if o, ok := m.orders[id]; ok {
			o.Status = "SHIPPED"
			m.orders[id] = o
		}
	}
	return ctx.Err()
}

func (m *memLegacy) ordersOf(ctx context.Context, user string) ([]legacyOrder, error) {
	all, err := m.all(ctx)
	return slices.DeleteFunc(all, func(o legacyOrder) bool { return o.User != user }), err
}

func (m *memLegacy) all(ctx context.Context) ([]legacyOrder, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.SortedFunc(maps.Values(m.orders), byPlacement), ctx.Err()
}

func (m *memLegacy) applyFromNew(ctx context.Context, o legacyOrder) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.orders[o.ID]; ok {
		return false, ctx.Err()
	}
	m.orders[o.ID] = o
	return true, ctx.Err()
}

// pgLegacy is the monolith's orders table in PostgreSQL.
type pgLegacy struct {
	pool   *pgxpool.Pool
	orders string // the table's qualified, quoted name
	seq    string // the order numbers' sequence, as a regclass literal

	// dual is the connection of the dual write, whose session is marked
	// with a replication origin (see applyFromNew); a pgx.Conn serves
	// one query at a time.
	mu     sync.Mutex
	dual   *pgx.Conn
	marked bool // the session is set up with the origin
}

// createLegacyTables creates the monolith's table in schema.
func createLegacyTables(ctx context.Context, pool *pgxpool.Pool, schema string) error {
	s := pgx.Identifier{schema}.Sanitize()
	_, err := pool.Exec(ctx, fmt.Sprintf(`
		CREATE SCHEMA %[1]s;
		CREATE SEQUENCE %[1]s.order_numbers START %[2]d;
		CREATE TABLE %[1]s.orders (
			id          text PRIMARY KEY,
			user_id     text NOT NULL,
			status      text NOT NULL,
			total_cents bigint NOT NULL,
			placed_at   timestamptz NOT NULL
		)`, s, firstOrderID))
	return err
}

func (p *pgLegacy) place(ctx context.Context, o legacyOrder) (string, error) {
	var id string
	err := p.pool.QueryRow(ctx, fmt.Sprintf(`
		INSERT INTO %s (id, user_id, status, total_cents, placed_at)
		VALUES ('L-' || nextval(%s), $1, $2, $3, $4) RETURNING id`, p.orders, p.seq),
		o.User, o.Status, o.TotalCents, o.PlacedAt).Scan(&id)
	return id, err
}

func (p *pgLegacy) ship(ctx context.Context, ids ...string) error {
	return pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		for _, id := range ids {
			if _, err := tx.Exec(ctx, "UPDATE "+p.orders+" SET status = 'SHIPPED' WHERE id = $1", id); err != nil {
				return err
			}
		}
		return nil
	})
}

func (p *pgLegacy) ordersOf(ctx context.Context, user string) ([]legacyOrder, error) {
	return p.query(ctx, "WHERE user_id = $1", user)
}

func (p *pgLegacy) all(ctx context.Context) ([]legacyOrder, error) { return p.query(ctx, "") }

func (p *pgLegacy) query(ctx context.Context, where string, args ...any) ([]legacyOrder, error) {
	rows, err := p.pool.Query(ctx, "SELECT id, user_id, status, total_cents, placed_at FROM "+p.orders+" "+where+" ORDER BY placed_at, id", args...)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (legacyOrder, error) {
		var o legacyOrder
		err := row.Scan(&o.ID, &o.User, &o.Status, &o.TotalCents, &o.PlacedAt)
		return o, err
	})
}

// applyFromNew writes on the connection whose session is marked with the
// dual write's replication origin: PostgreSQL records the origin with
// each transaction of that session, logical replication sends it along,
// and the CDC handler skips those transactions, so the new system's own
// orders do not come back to it as legacy changes. The alternative,
// a column marking each row's source that the CDC handler checks, would
// change the legacy schema, and would wrongly skip the monolith's later
// updates of such a row (it still says "from new" after the monolith
// ships it) unless every legacy write path reset it: the origin marks
// the transaction, the writer, which is what must be skipped.
//
// The row's id comes from the event's id, and ON CONFLICT DO NOTHING
// makes a redelivered event (the projection's checkpoint is saved after
// Handle) write nothing.
func (p *pgLegacy) applyFromNew(ctx context.Context, o legacyOrder) (bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.dual == nil {
		return false, errors.New("legacy: the dual-write connection is closed")
	}
	tag, err := p.dual.Exec(ctx, "INSERT INTO "+p.orders+" (id, user_id, status, total_cents, placed_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING",
		o.ID, o.User, o.Status, o.TotalCents, o.PlacedAt)
	return tag.RowsAffected() == 1, err
}

// closeDual closes the dual write's connection, after ending its
// session's use of the replication origin, so that the origin can be
// dropped: closing alone is not enough, as the server ends the session
// after the client has gone, and a drop that comes first finds the
// origin in use.
func (p *pgLegacy) closeDual(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.dual == nil {
		return nil
	}
	var err error
	if p.marked {
		_, err = p.dual.Exec(ctx, "SELECT pg_replication_origin_session_reset()")
	}
	err = errors.Join(err, p.dual.Close(ctx))
	p.dual = nil
	return err
}
