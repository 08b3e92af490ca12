package saga_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"

	"github.com/otelpatterns/patterns/cqrs"
	"github.com/otelpatterns/patterns/internal/telemetry/telemetrytest"
	"github.com/otelpatterns/patterns/saga"
)

// delivery is a message as a reaction of the shop saw it.
type delivery struct {
	step, id, sagaID, phase string
	attempt                 int
}

// shop is a three-participant choreographed saga: order → payment →
// inventory, with compensations that refund the payment and cancel the
// order when inventory fails.
type shop struct {
	inStock   bool
	mu        sync.Mutex
	seen      []delivery
	done      chan string // "confirmed" or "cancelled", once per saga
	reserveFn func(ctx context.Context, m cqrs.Message) (saga.Outcome, error)
}

func newShop(inStock bool) *shop {
	return &shop{inStock: inStock, done: make(chan string, 16)}
}

func (s *shop) record(step string, m cqrs.Message) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seen = append(s.seen, delivery{step, m.ID, saga.CorrelationID(m), m.Metadata[saga.MetadataPhase], m.Delivery})
}

func (s *shop) deliveries() []delivery {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]delivery(nil), s.seen...)
}

func (s *shop) steps() []string {
	var out []string
	for _, d := range s.deliveries() {
		out = append(out, d.step)
	}
	return out
}

// reactions returns the saga's reactions, with opts on the reserve step.
func (s *shop) reactions(opts ...cqrs.SubscribeOption) []saga.Reaction {
	pass := func(step, topic string, compensate bool) func(context.Context, cqrs.Message) (saga.Outcome, error) {
		return func(_ context.Context, m cqrs.Message) (saga.Outcome, error) {
			s.record(step, m)
			next := cqrs.Message{Type: topic, Data: m.Data}
			if compensate {
				return saga.Compensation(topic, next), nil
			}
			return saga.Next(topic, next), nil
		}
	}
	finish := func(step, result string) func(context.Context, cqrs.Message) (saga.Outcome, error) {
		return func(_ context.Context, m cqrs.Message) (saga.Outcome, error) {
			s.record(step, m)
			s.done <- result
			return saga.Outcome{}, nil
		}
	}
	reserve := s.reserveFn
	if reserve == nil {
		reserve = func(ctx context.Context, m cqrs.Message) (saga.Outcome, error) {
			if s.inStock {
				return pass("reserve", "inventory.reserved", false)(ctx, m)
			}
			return pass("reserve", "inventory.failed", true)(ctx, m)
		}
	}
	return []saga.Reaction{
		{Name: "charge", On: "order.placed", Group: "payment", Handle: pass("charge", "payment.charged", false)},
		{Name: "reserve", On: "payment.charged", Group: "inventory", Handle: reserve, Options: opts,
			GiveUp: func(_ context.Context, m cqrs.Message, _ error) saga.Outcome {
				return saga.Compensation("inventory.failed", cqrs.Message{Type: "inventory.failed", Data: m.Data})
			}},
		{Name: "confirm", On: "inventory.reserved", Group: "order", Handle: finish("confirm", "confirmed")},
		{Name: "refund", On: "inventory.failed", Group: "payment", Handle: pass("refund", "payment.refunded", false)},
		{Name: "cancel", On: "payment.refunded", Group: "order", Handle: finish("cancel", "cancelled")},
	}
}

// start builds a choreography of the shop on bus and subscribes its
// reactions; it is closed when the test ends.
func (s *shop) start(t testing.TB, bus cqrs.EventBus, copts []saga.ChoreographyOption, opts ...cqrs.SubscribeOption) *saga.Choreography {
	t.Helper()
	c, err := saga.NewChoreography("order", bus, copts...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	for _, r := range s.reactions(opts...) {
		require.NoError(t, c.React(context.Background(), r))
	}
	return c
}

func (s *shop) wait(t testing.TB) string {
	t.Helper()
	select {
	case r := <-s.done:
		return r
	case <-time.After(10 * time.Second):
		t.Fatalf("saga did not finish; steps so far: %v", s.steps())
		return ""
	}
}

func newMemoryBus(t testing.TB, opts ...cqrs.BusOption) *cqrs.MemoryBus {
	bus := cqrs.NewMemoryBus(opts...)
	t.Cleanup(func() { _ = bus.Close() })
	return bus
}

func placeOrder(t testing.TB, bus cqrs.EventBus, id string) {
	t.Helper()
	require.NoError(t, bus.Publish(context.Background(), "order.placed",
		cqrs.Message{ID: id, Type: "order.placed", Data: []byte(id)}))
}

func TestChoreography_flow(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		inStock bool
		result  string
		steps   []string
		phases  []string // of the message each step handled
	}{
		{"in stock", true, "confirmed",
			[]string{"charge", "reserve", "confirm"},
			[]string{"", "forward", "forward"}},
		{"out of stock compensates", false, "cancelled",
			[]string{"charge", "reserve", "refund", "cancel"},
			[]string{"", "forward", "compensate", "compensate"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			bus := newMemoryBus(t)
			s := newShop(tt.inStock)
			c := s.start(t, bus, nil)
			placeOrder(t, bus, "order-1")
			require.Equal(t, tt.result, s.wait(t))
			require.NoError(t, c.Close())

			assert.Equal(t, tt.steps, s.steps())
			ids := map[string]bool{}
			for i, d := range s.deliveries() {
				assert.Equal(t, "order-1", d.sagaID, "CorrelationID() at step %s", d.step)
				assert.Equal(t, tt.phases[i], d.phase, "phase at step %s", d.step)
				assert.NotEmpty(t, d.id, "message ID at step %s", d.step)
				assert.False(t, ids[d.id], "message ID %s at step %s seen before", d.id, d.step)
				ids[d.id] = true
			}
		})
	}
}

func TestChoreography_traceAndMetrics(t *testing.T) {
	t.Parallel()
	tel := telemetrytest.New(t)
	bus := newMemoryBus(t, cqrs.WithTracerProvider(tel.TracerProvider))
	s := newShop(false)
	c := s.start(t, bus, []saga.ChoreographyOption{
		saga.WithTracerProvider(tel.TracerProvider),
		saga.WithMeterProvider(tel.MeterProvider),
	})
	placeOrder(t, bus, "order-1")
	require.Equal(t, "cancelled", s.wait(t))
	require.NoError(t, c.Close()) // waits for the last reaction's span to end

	spans := tel.Spans.Ended()
	require.NotEmpty(t, spans)
	traceID := spans[0].SpanContext().TraceID()
	byName := map[string]sdktrace.ReadOnlySpan{}
	for _, sp := range spans {
		assert.Equal(t, traceID, sp.SpanContext().TraceID(), "span %q is in another trace", sp.Name())
		byName[sp.Name()] = sp
	}
	// Each hop: process <topic> → saga.react <step> → publish <next topic>.
	chain := []string{
		"publish order.placed", "process order.placed", "saga.react charge",
		"publish payment.charged", "process payment.charged", "saga.react reserve",
		"publish inventory.failed", "process inventory.failed", "saga.react refund",
		"publish payment.refunded", "process payment.refunded", "saga.react cancel",
	}
	for i := 1; i < len(chain); i++ {
		child, parent := byName[chain[i]], byName[chain[i-1]]
		require.NotNil(t, child, "no span %q", chain[i])
		require.NotNil(t, parent, "no span %q", chain[i-1])
		assert.Equal(t, parent.SpanContext().SpanID(), child.Parent().SpanID(), "parent of %q; want %q", chain[i], chain[i-1])
	}

	want := map[string][]attribute.KeyValue{
		"saga.react reserve": {attribute.String("saga.name", "order"), attribute.String("saga.step", "reserve"),
			attribute.String("saga.id", "order-1"), attribute.String("saga.phase", "forward"), attribute.String("saga.outcome", "compensation")},
		"saga.react refund": {attribute.String("saga.step", "refund"),
			attribute.String("saga.phase", "compensate"), attribute.String("saga.outcome", "next")},
		"saga.react cancel": {attribute.String("saga.step", "cancel"),
			attribute.String("saga.phase", "compensate"), attribute.String("saga.outcome", "done")},
	}
	for name, attrs := range want {
		assert.Subset(t, byName[name].Attributes(), attrs, "attributes of %q", name)
	}

	steps := func(step, phase, outcome string) int64 {
		return tel.Int64(t, "saga.steps", attribute.String("saga.name", "order"), attribute.String("saga.step", step),
			attribute.String("saga.phase", phase), attribute.String("saga.outcome", outcome))
	}
	for _, tt := range []struct{ step, phase, outcome string }{
		{"charge", "forward", "next"},
		{"reserve", "forward", "compensation"},
		{"refund", "compensate", "next"},
		{"cancel", "compensate", "done"},
	} {
		assert.Equal(t, int64(1), steps(tt.step, tt.phase, tt.outcome), "saga.steps %v; all: %s", tt, tel.Describe(t, "saga.steps"))
	}
}

// A participant that keeps failing is retried with the subscription's
// backoff, and after its last delivery the saga compensates instead of
// hanging.
func TestChoreography_giveUpCompensates(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		tel := telemetrytest.New(t)
		bus := cqrs.NewMemoryBus()
		defer bus.Close()
		s := newShop(true)
		var attempts atomic.Int32
		s.reserveFn = func(_ context.Context, m cqrs.Message) (saga.Outcome, error) {
			s.record("reserve", m)
			attempts.Add(1)
			return saga.Outcome{}, errors.New("inventory service down")
		}
		var deadLettered atomic.Int32
		c := s.start(t, bus, []saga.ChoreographyOption{saga.WithMeterProvider(tel.MeterProvider)},
			cqrs.WithMaxDeliver(3),
			cqrs.WithRedeliveryBackoff(func(int) time.Duration { return time.Second }),
			cqrs.WithDeadLetter(func(context.Context, cqrs.Message, error) { deadLettered.Add(1) }))
		defer c.Close()

		start := time.Now()
		placeOrder(t, bus, "order-1")
		require.Equal(t, "cancelled", <-s.done)
		assert.Equal(t, 2*time.Second, time.Since(start), "time to give up; want two backoffs")
		assert.Equal(t, int32(3), attempts.Load(), "attempts of reserve")
		assert.Equal(t, int32(0), deadLettered.Load(), "DeadLetter calls; want none, as the saga compensated")
		assert.Equal(t, []string{"charge", "reserve", "reserve", "reserve", "refund", "cancel"}, s.steps())
		refund := s.deliveries()[4]
		assert.Equal(t, "order-1", refund.sagaID)
		assert.Equal(t, "compensate", refund.phase)

		require.NoError(t, c.Close())
		kv := func(outcome string, more ...attribute.KeyValue) int64 {
			return tel.Int64(t, "saga.steps", append([]attribute.KeyValue{attribute.String("saga.name", "order"), attribute.String("saga.step", "reserve"),
				attribute.String("saga.phase", "forward"), attribute.String("saga.outcome", outcome)}, more...)...)
		}
		assert.Equal(t, int64(3), kv("error", semconv.ErrorTypeOther), "failures carry error.type")
		assert.Equal(t, int64(1), kv("gave_up"))
	})
}

// Without a give-up outcome, the message goes to the subscription's
// DeadLetter function.
func TestChoreography_deadLetter(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		giveUp func(context.Context, cqrs.Message, error) saga.Outcome
	}{
		{"no GiveUp", nil},
		{"GiveUp publishes nothing", func(context.Context, cqrs.Message, error) saga.Outcome { return saga.Outcome{} }},
		{"GiveUp panics", func(context.Context, cqrs.Message, error) saga.Outcome { panic("boom") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				tel := telemetrytest.New(t)
				bus := cqrs.NewMemoryBus()
				defer bus.Close()
				c, err := saga.NewChoreography("order", bus, saga.WithMeterProvider(tel.MeterProvider))
				require.NoError(t, err)
				defer c.Close()
				cause := errors.New("down")
				var mu sync.Mutex
				var got []error
				require.NoError(t, c.React(context.Background(), saga.Reaction{
					Name: "reserve", On: "payment.charged",
					Handle: func(context.Context, cqrs.Message) (saga.Outcome, error) { return saga.Outcome{}, cause },
					GiveUp: tt.giveUp,
					Options: []cqrs.SubscribeOption{cqrs.WithMaxDeliver(2),
						cqrs.WithDeadLetter(func(_ context.Context, _ cqrs.Message, err error) {
							mu.Lock()
							defer mu.Unlock()
							got = append(got, err)
						})},
				}))
				require.NoError(t, bus.Publish(context.Background(), "payment.charged", cqrs.Message{ID: "p1"}))
				time.Sleep(time.Minute)
				synctest.Wait()
				mu.Lock()
				defer mu.Unlock()
				require.Len(t, got, 1, "DeadLetter calls")
				assert.ErrorIs(t, got[0], cause)
				// A dead letter is a failure: it carries the error.type of
				// the last delivery's error (an errors.New one).
				assert.Equal(t, int64(1), tel.Int64(t, "saga.steps", saga.AttrName.String("order"), saga.AttrStep.String("reserve"),
					saga.AttrPhase.String("forward"), saga.AttrOutcome.String("dead_letter"), semconv.ErrorTypeOther),
					"saga.steps: %s", tel.Describe(t, "saga.steps"))
			})
		})
	}
}

// recorder is a consumer group on a topic that keeps what it receives.
type recorder struct {
	mu   sync.Mutex
	msgs []cqrs.Message
	got  chan struct{}
}

func record(t testing.TB, bus cqrs.EventBus, topic string) *recorder {
	t.Helper()
	r := &recorder{got: make(chan struct{}, 64)}
	sub, err := bus.Subscribe(context.Background(), topic, "recorder", func(_ context.Context, m cqrs.Message) error {
		r.mu.Lock()
		r.msgs = append(r.msgs, m)
		r.mu.Unlock()
		r.got <- struct{}{}
		return nil
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = sub.Close() })
	return r
}

func (r *recorder) wait(t testing.TB, n int) []cqrs.Message {
	t.Helper()
	for range n {
		select {
		case <-r.got:
		case <-time.After(10 * time.Second):
			t.Fatalf("recorder: timed out waiting for %d messages", n)
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]cqrs.Message(nil), r.msgs...)
}

// A trigger delivered twice (a redelivery, or a publisher retrying)
// republishes the next event with the same ID, so that the bus and the
// consumers can drop the duplicate; other triggers get other IDs.
func TestChoreography_deterministicIDs(t *testing.T) {
	t.Parallel()
	bus := newMemoryBus(t)
	c, err := saga.NewChoreography("order", bus)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	rec := record(t, bus, "payment.charged")
	require.NoError(t, c.React(context.Background(), saga.Reaction{
		Name: "charge", On: "order.placed",
		Handle: func(_ context.Context, m cqrs.Message) (saga.Outcome, error) {
			if string(m.Data) == "own" {
				return saga.Next("payment.charged", cqrs.Message{ID: "mine"}), nil
			}
			return saga.Next("payment.charged", cqrs.Message{}, cqrs.Message{}), nil
		},
	}))
	placeOrder(t, bus, "order-1")
	placeOrder(t, bus, "order-1")
	placeOrder(t, bus, "order-2")
	require.NoError(t, bus.Publish(context.Background(), "order.placed", cqrs.Message{Data: []byte("no id")}))
	require.NoError(t, bus.Publish(context.Background(), "order.placed", cqrs.Message{Data: []byte("no id")}))
	require.NoError(t, bus.Publish(context.Background(), "order.placed", cqrs.Message{ID: "order-3", Data: []byte("own")}))
	got := rec.wait(t, 11)

	ids := make([]string, len(got))
	for i, m := range got {
		ids[i] = m.ID
	}
	assert.Equal(t, ids[0:2], ids[2:4], "IDs for a duplicate trigger; want the same")
	assert.NotEqual(t, ids[0], ids[1], "IDs of two messages of one outcome")
	seen := map[string]bool{}
	for _, id := range append(ids[2:], "") {
		assert.False(t, seen[id], "ID %q repeated in %v", id, ids[2:])
		seen[id] = true
	}
	assert.Equal(t, "mine", ids[10], "an ID the reaction set is kept")
	assert.Equal(t, "order-3", saga.CorrelationID(got[10]))
}

// flakyBus fails the first publish to a topic.
type flakyBus struct {
	cqrs.EventBus
	topic  string
	failed atomic.Bool
}

func (b *flakyBus) Publish(ctx context.Context, topic string, msgs ...cqrs.Message) error {
	if topic == b.topic && b.failed.CompareAndSwap(false, true) {
		return errors.New("broker unavailable")
	}
	return b.EventBus.Publish(ctx, topic, msgs...)
}

// A reaction whose outcome could not be published runs again on the
// redelivered trigger and publishes the same message; a panic is a failed
// delivery like an error.
func TestChoreography_retriesFailures(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		panic bool
	}{{"publish fails", false}, {"handler panics", true}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tel := telemetrytest.New(t)
			mem := newMemoryBus(t)
			bus := &flakyBus{EventBus: mem}
			if !tt.panic {
				bus.topic = "payment.charged"
			}
			c, err := saga.NewChoreography("order", bus,
				saga.WithTracerProvider(tel.TracerProvider), saga.WithMeterProvider(tel.MeterProvider))
			require.NoError(t, err)
			t.Cleanup(func() { _ = c.Close() })
			rec := record(t, mem, "payment.charged")
			var calls atomic.Int32
			require.NoError(t, c.React(context.Background(), saga.Reaction{
				Name: "charge", On: "order.placed",
				Options: []cqrs.SubscribeOption{cqrs.WithRedeliveryBackoff(func(int) time.Duration { return 0 })},
				Handle: func(_ context.Context, m cqrs.Message) (saga.Outcome, error) {
					if calls.Add(1) == 1 && tt.panic {
						panic("boom")
					}
					return saga.Next("payment.charged", cqrs.Message{}), nil
				},
			}))
			placeOrder(t, mem, "order-1")
			got := rec.wait(t, 1)
			require.NoError(t, c.Close())
			assert.Equal(t, int32(2), calls.Load(), "Handle calls")
			assert.Equal(t, "order-1", saga.CorrelationID(got[0]))

			var failed sdktrace.ReadOnlySpan
			for _, sp := range tel.Spans.Ended() {
				if sp.Name() == "saga.react charge" && sp.Status().Code == codes.Error {
					failed = sp
				}
			}
			require.NotNil(t, failed, "no failed saga.react span")
			assert.Contains(t, failed.Attributes(), attribute.String("saga.outcome", "error"))
			assert.Equal(t, int64(1), tel.Int64(t, "saga.steps", attribute.String("saga.name", "order"), attribute.String("saga.step", "charge"),
				attribute.String("saga.phase", "forward"), attribute.String("saga.outcome", "error"), semconv.ErrorTypeOther))
		})
	}
}

func TestNewChoreography_invalid(t *testing.T) {
	t.Parallel()
	_, err := saga.NewChoreography("", nil)
	require.Error(t, err)
	assert.ErrorContains(t, err, "name must not be empty")
	assert.ErrorContains(t, err, "bus must not be nil")
}

func TestChoreography_React_invalid(t *testing.T) {
	t.Parallel()
	bus := newMemoryBus(t)
	c, err := saga.NewChoreography("order", bus)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	handle := func(context.Context, cqrs.Message) (saga.Outcome, error) { return saga.Outcome{}, nil }
	require.NoError(t, c.React(context.Background(), saga.Reaction{Name: "charge", On: "order.placed", Handle: handle}))

	tests := []struct {
		name string
		r    saga.Reaction
		want []string
	}{
		{"empty", saga.Reaction{}, []string{"reaction.Name must not be empty", "reaction.On must not be empty", "reaction.Handle must not be nil"}},
		{"bad option", saga.Reaction{Name: "x", On: "t", Handle: handle, Options: []cqrs.SubscribeOption{cqrs.WithMaxDeliver(0)}},
			[]string{"WithMaxDeliver(0)"}},
		{"name taken", saga.Reaction{Name: "charge", On: "other", Handle: handle}, []string{"a reaction has that name"}},
	}
	for _, tt := range tests {
		err := c.React(context.Background(), tt.r)
		require.Error(t, err, tt.name)
		assert.ErrorIs(t, err, saga.ErrInvalidDefinition, tt.name)
		for _, w := range tt.want {
			assert.ErrorContains(t, err, w, tt.name)
		}
	}

	// The bus's error.
	bus.Close()
	err = c.React(context.Background(), saga.Reaction{Name: "refund", On: "inventory.failed", Handle: handle})
	assert.ErrorIs(t, err, cqrs.ErrBusClosed)
}

func TestChoreography_Close(t *testing.T) {
	t.Parallel()
	bus := newMemoryBus(t)
	c, err := saga.NewChoreography("order", bus)
	require.NoError(t, err)
	var calls atomic.Int32
	handle := func(context.Context, cqrs.Message) (saga.Outcome, error) { calls.Add(1); return saga.Outcome{}, nil }
	require.NoError(t, c.React(context.Background(), saga.Reaction{Name: "charge", On: "order.placed", Handle: handle}))
	require.NoError(t, c.Close())
	require.NoError(t, c.Close(), "second Close")

	placeOrder(t, bus, "order-1")
	err = c.React(context.Background(), saga.Reaction{Name: "refund", On: "inventory.failed", Handle: handle})
	assert.ErrorIs(t, err, saga.ErrClosed)
	time.Sleep(10 * time.Millisecond)
	assert.Equal(t, int32(0), calls.Load(), "Handle calls after Close")
}

// Close racing React leaves no subscription behind (goleak, in TestMain,
// would see its goroutines).
func TestChoreography_CloseDuringReact(t *testing.T) {
	t.Parallel()
	for i := range 20 {
		bus := newMemoryBus(t)
		c, err := saga.NewChoreography("order", bus)
		require.NoError(t, err)
		var wg sync.WaitGroup
		for j := range 4 {
			wg.Go(func() {
				_ = c.React(context.Background(), saga.Reaction{Name: fmt.Sprint(i, j), On: "t",
					Handle: func(context.Context, cqrs.Message) (saga.Outcome, error) { return saga.Outcome{}, nil }})
			})
		}
		require.NoError(t, c.Close())
		wg.Wait()
	}
}

// downBus fails every publish to a topic.
type downBus struct {
	cqrs.EventBus
	topic string
}

func (b *downBus) Publish(ctx context.Context, topic string, msgs ...cqrs.Message) error {
	if topic == b.topic {
		return errors.New("broker unavailable")
	}
	return b.EventBus.Publish(ctx, topic, msgs...)
}

// GiveUp is not called for a message whose Handle committed and whose
// outcome only could not be published: the compensation it publishes made
// the earlier participants undo their work while the charge stayed. The
// message goes to the dead-letter function instead, with an error saying
// so. Issue 14 item 8.
func TestChoreography_noGiveUpOnACommittedStep(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		mem := cqrs.NewMemoryBus()
		defer mem.Close()
		bus := &downBus{EventBus: mem, topic: "payment.charged"}
		c, err := saga.NewChoreography("order", bus)
		require.NoError(t, err)
		defer c.Close()
		var charges, giveUps atomic.Int32
		var mu sync.Mutex
		var dead []error
		require.NoError(t, c.React(context.Background(), saga.Reaction{
			Name: "charge", On: "order.placed",
			Handle: func(context.Context, cqrs.Message) (saga.Outcome, error) {
				charges.Add(1) // committed (idempotently, on the message's ID)
				return saga.Next("payment.charged", cqrs.Message{Type: "PaymentCharged"}), nil
			},
			GiveUp: func(context.Context, cqrs.Message, error) saga.Outcome {
				giveUps.Add(1)
				return saga.Compensation("order.cancelled", cqrs.Message{Type: "OrderCancelled"})
			},
			Options: []cqrs.SubscribeOption{cqrs.WithMaxDeliver(2),
				cqrs.WithRedeliveryBackoff(func(int) time.Duration { return time.Second }),
				cqrs.WithDeadLetter(func(_ context.Context, _ cqrs.Message, err error) {
					mu.Lock()
					defer mu.Unlock()
					dead = append(dead, err)
				})},
		}))
		var cancelled atomic.Int32
		sub, err := mem.Subscribe(context.Background(), "order.cancelled", "test",
			func(context.Context, cqrs.Message) error { cancelled.Add(1); return nil })
		require.NoError(t, err)
		defer sub.Close()

		require.NoError(t, mem.Publish(context.Background(), "order.placed", cqrs.Message{ID: "order-1"}))
		time.Sleep(time.Minute)
		synctest.Wait()
		assert.Equal(t, int32(2), charges.Load(), "Handle calls")
		assert.Zero(t, giveUps.Load(), "GiveUp calls")
		assert.Zero(t, cancelled.Load(), "compensations published")
		mu.Lock()
		defer mu.Unlock()
		require.Len(t, dead, 1, "DeadLetter calls")
		assert.ErrorIs(t, dead[0], saga.ErrOutcomeNotPublished)
		assert.ErrorContains(t, dead[0], "broker unavailable")
	})
}
