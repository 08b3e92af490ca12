package adapters

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/otelpatterns/patterns/cqrs"
)

// syncBuffer is a bytes.Buffer safe for the bus's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// A message the consumers fail on at every delivery is given up after
// the last one: each group says so in the log, naming the message, as
// an order whose saga never started or that the read model never saw
// needs a person (the bus's default drops it without a word).
func TestConsumersLogWhatTheyGiveUp(t *testing.T) {
	var out syncBuffer
	logger := slog.New(slog.NewTextHandler(&out, nil))
	bus := cqrs.NewMemoryBus()
	defer bus.Close()
	c := NewConsumers(bus, "orders", nil, logger)
	c.opts = []cqrs.SubscribeOption{cqrs.WithRedeliveryBackoff(func(int) time.Duration { return 0 })}
	ctx := context.Background()
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer c.Stop(ctx)
	// A known type whose data does not decode: no delivery succeeds.
	if err := bus.Publish(ctx, "orders", cqrs.Message{ID: "msg-bad", Type: TypePlaced, Data: []byte("{")}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := func() error {
			logged := out.String()
			for _, g := range []string{GroupSaga, GroupViews} {
				if !strings.Contains(logged, "level=ERROR") || !strings.Contains(logged, "group="+g) || !strings.Contains(logged, "msg-bad") {
					return fmt.Errorf("no error logged for group %s: %q", g, logged)
				}
			}
			return nil
		}()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
