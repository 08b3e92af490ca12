package natsbus_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelpatterns/patterns/cqrs"
	"github.com/otelpatterns/patterns/cqrs/natsbus"
)

// A dead-lettered message is delivered no more, on the server the tests
// run against (nats-server 2.9.10 on our machines, which ignores a
// terminate with a reason): regression for dead letters delivered again
// every AckWait, DeadLetter running again each time.
func TestDeadLetterIsFinal(t *testing.T) {
	t.Parallel()
	bus, _, _ := newBus(t, natsbus.WithAckWait(time.Second))
	var deliveries, deadLetters atomic.Int32
	subscribe(t, bus, "t", "g", func(context.Context, cqrs.Message) error {
		deliveries.Add(1)
		return errors.New("always fails")
	}, cqrs.WithMaxDeliver(2), cqrs.WithRedeliveryBackoff(fastBackoff),
		cqrs.WithDeadLetter(func(context.Context, cqrs.Message, error) { deadLetters.Add(1) }))
	require.NoError(t, bus.Publish(ctxWithin(t, 5*time.Second), "t", msgs("final", 1)...))
	waitFor(t, 5*time.Second, "the dead letter", func() bool { return deadLetters.Load() >= 1 })
	time.Sleep(3500 * time.Millisecond) // three AckWaits: a redelivery would show by now
	assert.EqualValues(t, 2, deliveries.Load(), "deliveries")
	assert.EqualValues(t, 1, deadLetters.Load(), "DeadLetter calls")
}
