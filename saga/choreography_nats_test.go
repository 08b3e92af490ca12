package saga_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelpatterns/patterns/cqrs"
	"github.com/otelpatterns/patterns/cqrs/natsbus"
	"github.com/otelpatterns/patterns/internal/testenv"
	"github.com/otelpatterns/patterns/saga"
)

// natsBus returns a JetStream bus on a stream of the test's own, deleted
// when the test ends, or skips the test without PATTERNS_NATS_URL.
func natsBus(t *testing.T) (*natsbus.Bus, jetstream.Stream) {
	t.Helper()
	url := testenv.NATSURL(t)
	var b [6]byte
	_, _ = rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	stream, prefix := "saga_choreography_test_"+id, "sagachoreotest."+id+"."

	nc, err := nats.Connect(url, nats.Name(t.Name()))
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := js.DeleteStream(ctx, stream); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
			t.Errorf("deleting stream %s: %v", stream, err)
		}
	})
	bus, err := natsbus.New(js, natsbus.WithStream(stream), natsbus.WithSubjectPrefix(prefix))
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, bus.Setup(ctx))
	st, err := js.Stream(ctx, stream)
	require.NoError(t, err)
	return bus, st
}

// The shop's saga end to end on NATS JetStream: the compensation after a
// business failure, and after a participant gave up on its last delivery
// (counted by the server).
func TestChoreography_NATS(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		fail  bool // reserve keeps failing instead of answering out of stock
		steps []string
	}{
		{"out of stock", false, []string{"charge", "reserve", "refund", "cancel"}},
		{"gives up", true, []string{"charge", "reserve", "reserve", "refund", "cancel"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			bus, stream := natsBus(t)
			s := newShop(false)
			if tt.fail {
				s.reserveFn = func(_ context.Context, m cqrs.Message) (saga.Outcome, error) {
					s.record("reserve", m)
					return saga.Outcome{}, errors.New("inventory service down")
				}
			}
			c := s.start(t, bus, nil, cqrs.WithMaxDeliver(2),
				cqrs.WithRedeliveryBackoff(func(int) time.Duration { return 10 * time.Millisecond }))

			placeOrder(t, bus, "order-1")
			placeOrder(t, bus, "order-1") // dropped by the stream as a duplicate
			require.Equal(t, "cancelled", s.wait(t))
			require.NoError(t, c.Close())

			assert.Equal(t, tt.steps, s.steps())
			var last int
			for _, d := range s.deliveries() {
				assert.Equal(t, "order-1", d.sagaID, "CorrelationID() at step %s", d.step)
				if d.step == "reserve" {
					assert.Greater(t, d.attempt, last, "delivery count of reserve")
					last = d.attempt
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			info, err := stream.Info(ctx)
			require.NoError(t, err)
			assert.Equal(t, uint64(4), info.State.Msgs, "messages in the stream: order.placed, payment.charged, inventory.failed, payment.refunded")
		})
	}
}
