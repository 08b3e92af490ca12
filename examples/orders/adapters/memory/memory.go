// Package memory holds in-memory driven adapters: an inventory of stock
// levels and a notifier that writes messages where it is told.
package memory

import (
	"context"
	"fmt"
	"io"
	"sync"

	"github.com/otelpatterns/patterns/examples/orders/domain"
	"github.com/otelpatterns/patterns/examples/orders/ports"
)

// Inventory is a ports.Inventory on stock levels held in memory. It is safe
// for concurrent use.
type Inventory struct {
	mu       sync.Mutex
	stock    map[string]int
	reserved map[domain.OrderID][]domain.Line
}

// NewInventory returns an inventory with stock units of each SKU.
func NewInventory(stock map[string]int) *Inventory {
	s := make(map[string]int, len(stock))
	for k, v := range stock {
		s[k] = v
	}
	return &Inventory{stock: s, reserved: map[domain.OrderID][]domain.Line{}}
}

// Reserve takes the lines out of stock, all or none.
func (inv *Inventory) Reserve(_ context.Context, id domain.OrderID, lines []domain.Line) error {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	want := map[string]int{}
	for _, l := range lines {
		want[l.SKU] += l.Quantity
	}
	for sku, n := range want {
		if inv.stock[sku] < n {
			return fmt.Errorf("%w: %d of %s wanted, %d left", domain.ErrOutOfStock, n, sku, inv.stock[sku])
		}
	}
	for sku, n := range want {
		inv.stock[sku] -= n
	}
	inv.reserved[id] = append(inv.reserved[id], lines...)
	return nil
}

// Release puts what order id reserved back in stock.
func (inv *Inventory) Release(_ context.Context, id domain.OrderID) error {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	for _, l := range inv.reserved[id] {
		inv.stock[l.SKU] += l.Quantity
	}
	delete(inv.reserved, id)
	return nil
}

// Stock returns the units of sku in stock.
func (inv *Inventory) Stock(sku string) int {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	return inv.stock[sku]
}

// Notifier is a ports.Notifier that writes each message as a line to a
// writer, as an e-mail gateway would send it.
type Notifier struct {
	mu sync.Mutex
	w  io.Writer
}

// NewNotifier returns a notifier writing to w.
func NewNotifier(w io.Writer) *Notifier { return &Notifier{w: w} }

// Notify writes n.
func (nt *Notifier) Notify(_ context.Context, n ports.Notification) error {
	nt.mu.Lock()
	defer nt.mu.Unlock()
	_, err := fmt.Fprintf(nt.w, "  notify %s: order %s: %s\n", n.Customer, n.OrderID, n.Message)
	return err
}
