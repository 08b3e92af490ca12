package shop

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

// Orders placed at once all complete: the services, the saga and the
// projection hold up under concurrency (with -race, their data too).
func TestManyOrders(t *testing.T) {
	s := started(t, Config{})
	const n, clients = 200, 20
	ids := make([]string, n)
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			for i := c; i < n; i += clients {
				code, out := placeOrder(t, s, fmt.Sprintf("k-many-%d", i), fmt.Sprintf("cust-%d", i%7), Line{"STICKER-1", 1})
				if code != 202 {
					t.Errorf("order %d: %d %v", i, code, out)
					continue
				}
				ids[i], _ = out["order_id"].(string)
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	eventually(t, 30*time.Second, func() error {
		if st := s.OrderStats(); st.ByStatus["completed"] != n {
			return fmt.Errorf("stats %+v, want %d completed", st, n)
		}
		return nil
	})
	for _, id := range ids {
		orderEnds(t, s, id, "completed", 5*time.Second)
	}
	if got, want := s.stock.level("STICKER-1"), products[3].stock-n; got != want {
		t.Errorf("STICKER-1 on hand %d, want %d", got, want)
	}
}
