package kafkabus_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel"

	"github.com/otelpatterns/patterns/cqrs"
	"github.com/otelpatterns/patterns/cqrs/kafkabus"
)

// errHandler is an otel.ErrorHandler that keeps the errors it gets.
type errHandler struct {
	mu   sync.Mutex
	errs []error
}

func (h *errHandler) Handle(err error) {
	h.mu.Lock()
	h.errs = append(h.errs, err)
	h.mu.Unlock()
}

func (h *errHandler) dataLoss() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, err := range h.errs {
		if _, ok := errors.AsType[*kgo.ErrDataLoss](err); ok {
			return true
		}
	}
	return false
}

// TestLeaderMoveReplaysBoundedly moves the leader of a partition whose
// records were all handled, before anything is written in the new leader
// epoch. kfake then answers the consumer's OffsetForLeaderEpoch with an
// undefined epoch (it derives epochs from the batches written, where
// Kafka's leader records the new epoch's start when elected), and franz-go
// resets the partition by ConsumeResetOffset (an ErrDataLoss). The bus
// leaves that at franz-go's default, RewindOffset(time.Minute): the
// replay is bounded to the minute before the last record handled, where
// the bus used to reset to the partition's start (AtStart), replaying the
// whole log: the records stamped ten minutes ago here.
func TestLeaderMoveReplaysBoundedly(t *testing.T) {
	c := newCluster(t, 3)
	if c.fake == nil {
		t.Skip("moves a kfake partition leader")
	}
	h := &errHandler{}
	otel.SetErrorHandler(h)
	t.Cleanup(func() { otel.SetErrorHandler(otel.ErrorHandlerFunc(func(error) {})) })

	b := newBus(t, c, kafkabus.WithPartitions(1))
	ctx := ctxWithin(t, 30*time.Second)
	require.NoError(t, b.Setup(ctx, "orders"))
	ktopic := b.KafkaTopic("orders")

	// Ten records stamped ten minutes ago, then ten of now.
	raw, err := kgo.NewClient(append(fastClient, kgo.SeedBrokers(c.brokers...))...)
	require.NoError(t, err)
	defer raw.Close()
	old := time.Now().Add(-10 * time.Minute)
	for i := range 10 {
		r := &kgo.Record{Topic: ktopic, Timestamp: old, Value: []byte("{}"),
			Headers: []kgo.RecordHeader{{Key: "cqrs-id", Value: fmt.Appendf(nil, "old-%d", i)}}}
		require.NoError(t, raw.ProduceSync(ctx, r).FirstErr())
	}
	for i := range 10 {
		require.NoError(t, b.Publish(ctx, "orders", cqrs.Message{ID: fmt.Sprintf("new-%d", i)}))
	}

	got := newLedger()
	subscribe(t, b, "orders", "billing", func(_ context.Context, m cqrs.Message) error {
		got.add(m.ID)
		return nil
	})
	waitFor(t, 10*time.Second, "the 20 records handled", func() bool { d, _ := got.count(); return d == 20 })

	leader := c.fake.LeaderFor(ktopic, 0)
	require.NoError(t, c.fake.MoveTopicPartition(ktopic, 0, (leader+1)%3))
	waitFor(t, 15*time.Second, "franz-go's data-loss reset", h.dataLoss)
	require.NoError(t, b.Publish(ctx, "orders", cqrs.Message{ID: "after"}))
	waitFor(t, 10*time.Second, "the record published after the move handled", func() bool { return got.has("after") })

	for i := range 10 {
		if n := got.times(fmt.Sprintf("old-%d", i)); n != 1 {
			t.Errorf("old-%d handled %d times; want 1 (a rewind of a minute does not reach it)", i, n)
		}
	}
	_, dups := got.count()
	t.Logf("%d duplicate deliveries after the reset", dups)
}

// times returns how many times id was seen.
func (l *ledger) times(id string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.seen[id]
}
