package natsbus_test

import (
	"testing"

	"github.com/otelpatterns/patterns/cqrs"
	"github.com/otelpatterns/patterns/cqrs/bustest"
)

// TestConformance runs the event bus conformance suite, each subtest with
// a stream of its own. It is not parallel: one subtest sets the global
// propagator.
func TestConformance(t *testing.T) {
	bustest.Run(t, func(t *testing.T) cqrs.EventBus {
		b, _, _ := newBus(t)
		return b
	})
}
