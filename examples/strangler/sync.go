package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/otelpatterns/patterns/eventsource"
	"github.com/otelpatterns/patterns/gateway/strangler/pgcdc"
)

// backfill copies the legacy orders that exist when the migration starts
// into the new store, once. Each event's id comes from the legacy row's
// id, so a backfill run again appends nothing. On PostgreSQL it runs
// after the CDC slot was created, so that later writes are streamed;
// a write between the two would come both ways (with two event ids), so
// a real migration stops writes for the moment, or copies from the
// snapshot that the slot's creation exports.
func backfill(ctx context.Context, db legacyDB, store eventsource.Store) (int, error) {
	orders, err := db.all(ctx)
	if err != nil {
		return 0, err
	}
	for _, o := range orders {
		data, err := json.Marshal(orderData{LegacyID: o.ID, User: o.User, Status: o.Status, TotalCents: o.TotalCents, PlacedAt: o.PlacedAt})
		if err != nil {
			return 0, err
		}
		if _, err := store.Append(ctx, "order-"+o.ID, eventsource.Any, eventsource.NewEvent{
			ID: uuid.NewSHA1(idSpace, []byte("backfill/"+o.ID)), Type: typeImported, Data: data,
		}); err != nil {
			return 0, err
		}
	}
	return len(orders), nil
}

// cdcHandler appends the changes of the legacy orders table, streamed by
// pgcdc, to the new system's store. It is safe for concurrent use.
type cdcHandler struct {
	store eventsource.Store

	mu       sync.Mutex
	arrived  []string // what arrived, for the output
	last     pgcdc.Transaction
	changes  int // changes appended
	skipped  int // transactions skipped: the dual write's
	origins  map[string]bool
	progress progress // counts changes and skipped transactions
}

// handle is the pgcdc.Handler. Delivery is at least once: a transaction
// handled but not confirmed before a crash comes again. The event ids
// are derived from the transaction's commit LSN and the change's index,
// which a redelivery repeats, and the store skips ids it has.
func (h *cdcHandler) handle(ctx context.Context, tx pgcdc.Transaction) error {
	if tx.Origin != "" {
		// The dual write from the new system (see pgLegacy.applyFromNew):
		// its data is in the store already.
		h.mu.Lock()
		defer h.mu.Unlock()
		h.skipped++
		if h.origins == nil {
			h.origins = map[string]bool{}
		}
		h.origins[tx.Origin] = true
		h.progress.handled(int64(h.changes + h.skipped))
		return nil
	}
	var lines []string
	for i, ch := range tx.Changes {
		d, err := rowData(ch)
		if err != nil {
			return fmt.Errorf("change %d of the transaction at %s: %w", i, tx.CommitLSN, err)
		}
		data, err := json.Marshal(d)
		if err != nil {
			return err
		}
		id := uuid.NewSHA1(idSpace, fmt.Appendf(nil, "cdc/%s/%d", tx.CommitLSN, i))
		stream := "order-" + d.LegacyID
		if _, err := h.store.Append(ctx, stream, eventsource.Any,
			eventsource.NewEvent{ID: id, Type: typeCDCPrefix + string(ch.Op), Data: data}); err != nil {
			return err // the transaction comes again after a backoff
		}
		lines = append(lines, fmt.Sprintf("   commit %s change %d: %-6s %s %s %s %.2f → event %s%s in stream %s",
			tx.CommitLSN, i, ch.Op, d.LegacyID, d.User, d.Status, float64(d.TotalCents)/100, typeCDCPrefix, ch.Op, stream))
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.arrived = append(h.arrived, lines...)
	h.last = tx
	h.changes += len(lines)
	h.progress.handled(int64(h.changes + h.skipped))
	return nil
}

// rowData reads an orders row of a change, as pgx decoded its columns.
func rowData(ch pgcdc.Change) (orderData, error) {
	row := ch.New
	if row == nil {
		row = ch.Key // a delete carries the key alone
	}
	var d orderData
	var ok bool
	if d.LegacyID, ok = row["id"].(string); !ok {
		return d, fmt.Errorf("%s: id is %T, not text", ch.Table, row["id"])
	}
	if ch.Op == pgcdc.OpDelete {
		return d, nil
	}
	d.User, _ = row["user_id"].(string)
	d.Status, _ = row["status"].(string)
	d.TotalCents, _ = row["total_cents"].(int64)
	d.PlacedAt, ok = row["placed_at"].(time.Time)
	if !ok || d.User == "" || d.Status == "" {
		return d, fmt.Errorf("%s: unexpected row %v", ch.Table, row)
	}
	return d, nil
}

// report returns what arrived, how many transactions were skipped, and
// the last transaction appended.
func (h *cdcHandler) report() (arrived []string, changes, skipped int, origins []string, last pgcdc.Transaction) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for o := range h.origins {
		origins = append(origins, o)
	}
	return append([]string(nil), h.arrived...), h.changes, h.skipped, origins, h.last
}

// dualWrite is the projection that writes the orders placed on the new
// service into the legacy table, so that the monolith, which still
// serves the other users and runs the reports, sees them.
type dualWrite struct {
	progress
	db legacyDB

	mu      sync.Mutex
	written []string // legacy ids written
}

// Name implements cqrs.Projection.
func (p *dualWrite) Name() string { return "dual-write-to-legacy" }

// Handle implements cqrs.Projection. Events that came from legacy are
// left alone: their rows are there. The legacy row's id is derived from
// the event's id, and applyFromNew inserts it only if absent, so a
// redelivered event writes nothing.
func (p *dualWrite) Handle(ctx context.Context, e eventsource.Event) error {
	defer p.handled(e.Position)
	if e.Type != typePlaced {
		return nil
	}
	var d orderData
	if err := json.Unmarshal(e.Data, &d); err != nil {
		return fmt.Errorf("event %s: %w", e.ID, err)
	}
	id := legacyIDOf(e.ID)
	inserted, err := p.db.applyFromNew(ctx, legacyOrder{ID: id, User: d.User, Status: d.Status, TotalCents: d.TotalCents, PlacedAt: d.PlacedAt})
	if err != nil {
		return err
	}
	if inserted {
		p.mu.Lock()
		p.written = append(p.written, id)
		p.mu.Unlock()
	}
	return nil
}

// legacyIDOf is the legacy id of an order placed on the new service.
func legacyIDOf(event uuid.UUID) string { return "V2-" + strings.ToUpper(event.String()) }

func (p *dualWrite) rows() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.written)
}
