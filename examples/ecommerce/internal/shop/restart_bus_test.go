package shop

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/otelpatterns/patterns/hexagonal"
	"github.com/otelpatterns/patterns/internal/testenv"
)

// On PostgreSQL with the in-memory bus, what the relay published and the
// consumers had not handled when the process stopped dies with the bus:
// the next process must publish it again, or the order is never
// projected and its saga never starts.
func TestRestartMemoryBus(t *testing.T) {
	b := realBackends(t)
	b.NATS, b.Redis = nil, nil
	logger := slog.New(slog.DiscardHandler)

	// A first process whose consumers do not get to run before it stops.
	first, err := newShop(context.Background(), Config{Backends: b, Logger: logger}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var comps []hexagonal.Component
	for _, c := range first.Components() {
		if c.Name != "order-consumers" {
			comps = append(comps, c)
		}
	}
	app, err := hexagonal.New(hexagonal.WithLogger(logger), hexagonal.WithSignals(make(chan os.Signal)),
		hexagonal.WithComponent(comps...))
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- app.Run(ctx) }()
	eventually(t, 10*time.Second, func() error {
		resp, err := http.Get(first.URLs().Orders + "/readyz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("readyz %d", resp.StatusCode)
		}
		return nil
	})
	code, out := placeOrder(t, first, "k-membus", "ivan", Line{"MUG-1", 1})
	if code != http.StatusAccepted {
		t.Fatalf("POST /orders: %d %v", code, out)
	}
	id, _ := out["order_id"].(string)
	// Stopped once the relay has published the order's events.
	eventually(t, 10*time.Second, func() error {
		pos, err := first.relayCheckpoints.LoadCheckpoint(testenv.Context(t, 5*time.Second), relayName)
		if err != nil || pos == 0 {
			return fmt.Errorf("the relay's checkpoint is at %d (%v)", pos, err)
		}
		return nil
	})
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	first.Close()
	http.DefaultClient.CloseIdleConnections()

	second := started(t, Config{Backends: b})
	orderEnds(t, second, id, "completed", 15*time.Second)
}
