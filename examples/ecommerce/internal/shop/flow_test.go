package shop

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/otelpatterns/patterns/circuitbreaker"
	"github.com/otelpatterns/patterns/examples/ecommerce/internal/shop/orders/adapters"
	"github.com/otelpatterns/patterns/examples/ecommerce/internal/shop/orders/domain"
	"github.com/otelpatterns/patterns/examples/ecommerce/internal/shop/orders/ports"
	"github.com/otelpatterns/patterns/hexagonal"
)

// started runs the shop of cfg in an app until the test ends.
func started(t *testing.T, cfg Config) *Shop {
	t.Helper()
	s, stop := startedStop(t, cfg)
	t.Cleanup(stop)
	return s
}

// startedStop runs the shop of cfg in an app until stop is called.
func startedStop(t *testing.T, cfg Config) (*Shop, func()) {
	t.Helper()
	return startedTuned(t, cfg, nil)
}

// startedTuned is startedStop with tune, if not nil, changing the shop
// before it is built.
func startedTuned(t *testing.T, cfg Config, tune func(*Shop)) (*Shop, func()) {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s, err := newShop(context.Background(), cfg, func(s *Shop) {
		s.openFor = 300 * time.Millisecond
		if tune != nil {
			tune(s)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	app, err := hexagonal.New(
		hexagonal.WithLogger(cfg.Logger),
		hexagonal.WithSignals(make(chan os.Signal)),
		hexagonal.WithComponent(s.Components()...))
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- app.Run(ctx) }()
	var once sync.Once
	stopApp := func() {
		once.Do(func() {
			stop()
			if err := <-done; err != nil {
				t.Errorf("app.Run: %v", err)
			}
			s.Close()
			http.DefaultClient.CloseIdleConnections()
		})
	}
	// Started once the last component's server answers its readiness.
	u := s.URLs()
	for name, base := range map[string]string{Orders: u.Orders, Catalogue: u.Catalogue, Payment: u.Payment, Inventory: u.Inventory, Shipping: u.Shipping} {
		if !s.runs(name) {
			continue
		}
		eventually(t, 10*time.Second, func() error {
			resp, err := http.Get(base + "/readyz")
			if err != nil {
				return err
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("%s/readyz: %d", base, resp.StatusCode)
			}
			return nil
		})
	}
	return s, stopApp
}

// eventually calls f until it returns nil, failing the test after d.
func eventually(t *testing.T, d time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %v", d, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// placeOrder posts an order and returns the status and answer.
func placeOrder(t *testing.T, s *Shop, key, customer string, lines ...Line) (int, map[string]any) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"customer_id": customer, "lines": lines})
	req, _ := http.NewRequest(http.MethodPost, s.URLs().Orders+"/orders", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

// getOrder returns the order's read model, or an error while GET answers
// otherwise than 200.
func getOrder(s *Shop, id string) (ports.OrderView, error) {
	var v ports.OrderView
	resp, err := http.Get(s.URLs().Orders + "/orders/" + id)
	if err != nil {
		return v, err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return v, fmt.Errorf("GET /orders/%s: %d %s", id, resp.StatusCode, raw)
	}
	return v, json.Unmarshal(raw, &v)
}

// orderEnds waits for the order's read model to reach status.
func orderEnds(t *testing.T, s *Shop, id, status string, d time.Duration) ports.OrderView {
	t.Helper()
	var v ports.OrderView
	eventually(t, d, func() error {
		var err error
		if v, err = getOrder(s, id); err != nil {
			return err
		}
		if string(v.Status) != status {
			return fmt.Errorf("order %s is %s (%s), want %s", id, v.Status, v.Reason, status)
		}
		return nil
	})
	return v
}

// flow runs the scenario on the backends of cfg.
func flow(t *testing.T, cfg Config) {
	s := started(t, cfg)
	f := s.Faults()

	t.Run("completed", func(t *testing.T) {
		code, out := placeOrder(t, s, "k-complete", "ada", Line{"BOOK-1", 1}, Line{"MUG-1", 2})
		if code != http.StatusAccepted {
			t.Fatalf("POST /orders: %d %v", code, out)
		}
		id, _ := out["order_id"].(string)
		v := orderEnds(t, s, id, "completed", 15*time.Second)
		want := products[0].PriceCents + 2*products[1].PriceCents
		if v.TotalCents != want || v.CustomerID != "ada" || len(v.Lines) != 2 || v.UpdatedAt.IsZero() {
			t.Errorf("read model %+v, want total %d for ada's 2 lines", v, want)
		}
		if !s.stock.held(id) {
			t.Errorf("order %s holds no stock", id)
		}
		if c, ok := s.payments.charged(id); !ok || c.AmountCents != want {
			t.Errorf("charge %+v, %v; want %d", c, ok, want)
		}
	})

	t.Run("idempotency key", func(t *testing.T) {
		before := s.stock.level("TEE-1")
		_, first := placeOrder(t, s, "k-twice", "bob", Line{"TEE-1", 3})
		code, second := placeOrder(t, s, "k-twice", "bob", Line{"TEE-1", 3})
		if code != http.StatusAccepted || first["order_id"] != second["order_id"] {
			t.Fatalf("the same key gave %v then %d %v", first, code, second)
		}
		id, _ := first["order_id"].(string)
		orderEnds(t, s, id, "completed", 15*time.Second)
		if got := s.stock.level("TEE-1"); got != before-3 {
			t.Errorf("TEE-1 on hand %d, want %d: one order, reserved once", got, before-3)
		}
		// Another key is another order.
		_, third := placeOrder(t, s, "k-other", "bob", Line{"TEE-1", 3})
		if third["order_id"] == first["order_id"] {
			t.Errorf("another key gave the same order %v", third["order_id"])
		}
		orderEnds(t, s, third["order_id"].(string), "completed", 15*time.Second)
	})

	t.Run("declined", func(t *testing.T) {
		f.DeclineCustomer("mallory")
		t.Cleanup(f.Reset)
		before := s.stock.level("STICKER-1")
		_, out := placeOrder(t, s, "k-declined", "mallory", Line{"STICKER-1", 5})
		id, _ := out["order_id"].(string)
		v := orderEnds(t, s, id, "compensated", 15*time.Second)
		if v.Reason == "" {
			t.Errorf("a compensated order without a reason: %+v", v)
		}
		if s.stock.held(id) || s.stock.level("STICKER-1") != before {
			t.Errorf("the declined order's stock is not released: on hand %d, want %d", s.stock.level("STICKER-1"), before)
		}
		if _, ok := s.payments.charged(id); ok {
			t.Errorf("the declined order was charged")
		}
	})

	t.Run("flaky inventory", func(t *testing.T) {
		f.FlakyInventory(2)
		t.Cleanup(f.Reset)
		_, out := placeOrder(t, s, "k-flaky", "carol", Line{"MUG-1", 1})
		id, _ := out["order_id"].(string)
		orderEnds(t, s, id, "completed", 15*time.Second)
		if f.flaky.Load() != 0 {
			t.Errorf("%d inventory failures left: the calls were not made", f.flaky.Load())
		}
	})

	t.Run("shipping down", func(t *testing.T) {
		f.ShippingDown(true)
		t.Cleanup(f.Reset)
		_, out := placeOrder(t, s, "k-ship", "dave", Line{"BOOK-1", 1})
		id, _ := out["order_id"].(string)
		// The payment is the pivot: the order is paid and stays so while
		// the ship step retries behind an open breaker.
		orderEnds(t, s, id, "paid", 15*time.Second)
		eventually(t, 15*time.Second, func() error {
			if st := s.Breaker(Shipping).State(); st != circuitbreaker.StateOpen {
				return fmt.Errorf("shipping breaker %v, want open", st)
			}
			return nil
		})
		f.ShippingDown(false)
		orderEnds(t, s, id, "completed", 30*time.Second)
	})

	t.Run("unknown product", func(t *testing.T) {
		code, out := placeOrder(t, s, "k-unknown", "erin", Line{"NOPE-1", 1})
		if code != http.StatusUnprocessableEntity {
			t.Errorf("POST an unknown product: %d %v, want 422", code, out)
		}
		code, out = placeOrder(t, s, "k-empty", "erin")
		if code != http.StatusBadRequest {
			t.Errorf("POST no lines: %d %v, want 400", code, out)
		}
		if _, err := getOrder(s, "ord-none"); err == nil {
			t.Errorf("GET an unknown order succeeded")
		}
	})

	// The stats projection, fed from the store by a runner, saw the same:
	// five orders completed, one compensated.
	eventually(t, 10*time.Second, func() error {
		var st adapters.Stats
		if code := getJSON(t, s.URLs().Orders+"/stats", &st); code != http.StatusOK {
			return fmt.Errorf("GET /stats: %d", code)
		}
		if st.Orders != 6 || st.ByStatus[domain.Completed] != 5 || st.ByStatus[domain.Compensated] != 1 {
			return fmt.Errorf("stats %+v, want 6 orders, 5 completed and 1 compensated", st)
		}
		return nil
	})
}
