package shop

import (
	"sync"
	"sync/atomic"
)

// Faults are the failures the scenario scripts into the services. A Faults
// is safe for concurrent use; its zero value injects none.
type Faults struct {
	mu       sync.Mutex
	declined map[string]bool
	flaky    atomic.Int64
	down     atomic.Bool
}

// DeclineCustomer makes the payment service decline every charge of
// customer id's orders: a business failure, which the order saga answers
// by compensating (the stock it reserved is released).
func (f *Faults) DeclineCustomer(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.declined == nil {
		f.declined = map[string]bool{}
	}
	f.declined[id] = true
}

// FlakyInventory makes the next n calls to the inventory service answer
// 503 Service Unavailable, which the order service's retry transport
// absorbs. n <= 0 ends the flakiness.
func (f *Faults) FlakyInventory(n int) { f.flaky.Store(int64(max(n, 0))) }

// ShippingDown makes the shipping service answer every call with 503
// while down is true, so that the order service's breaker on it opens;
// false brings it back.
func (f *Faults) ShippingDown(down bool) { f.down.Store(down) }

// Reset removes every fault.
func (f *Faults) Reset() {
	f.mu.Lock()
	f.declined = nil
	f.mu.Unlock()
	f.flaky.Store(0)
	f.down.Store(false)
}

// declines reports whether customer's charges are to be declined.
func (f *Faults) declines(customer string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.declined[customer]
}

// flake reports whether this inventory call is to fail, using up one of
// the failures FlakyInventory asked for.
func (f *Faults) flake() bool {
	for {
		n := f.flaky.Load()
		if n <= 0 {
			return false
		}
		if f.flaky.CompareAndSwap(n, n-1) {
			return true
		}
	}
}

// shippingDown reports whether the shipping service is down.
func (f *Faults) shippingDown() bool { return f.down.Load() }
