// Package kit holds what package cqrs and package cqrs/buskit share
// without an import cycle (buskit imports cqrs): the trace-context helpers
// of a message's metadata and the resolution of subscription options.
// Package cqrs's MemoryBus uses them unexported; buskit exports them to
// implementers of other buses.
package kit

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// Inject returns a copy of md with the trace context of ctx added through
// the global propagator, or md itself when the propagator adds nothing.
func Inject(ctx context.Context, md map[string]string) map[string]string {
	carrier := propagation.MapCarrier{}
	for k, v := range md {
		carrier[k] = v
	}
	otel.GetTextMapPropagator().Inject(ctx, carrier)
	if len(carrier) == 0 {
		return md
	}
	return carrier
}

// Extract returns ctx with the remote span context md carries, through
// the global propagator.
func Extract(ctx context.Context, md map[string]string) context.Context {
	return otel.GetTextMapPropagator().Extract(ctx, propagation.MapCarrier(md))
}

// Creation returns the span context md carries, or an invalid one.
func Creation(md map[string]string) trace.SpanContext {
	if len(md) == 0 {
		return trace.SpanContext{}
	}
	return trace.SpanContextFromContext(Extract(context.Background(), md))
}

// SubscribeConfig is the resolved configuration of a subscription, for
// messages of type M (cqrs.Message). buskit.SubscribeConfig has the same
// fields, so that one converts to the other.
type SubscribeConfig[M any] struct {
	MaxDeliver  int
	Backoff     func(n int) time.Duration
	DeadLetter  func(ctx context.Context, m M, err error)
	Concurrency int
}

// SubscribeOption is implemented by the concrete type of every
// cqrs.SubscribeOption, whose own interface is sealed.
type SubscribeOption[M any] interface {
	ApplySubscribe(*SubscribeConfig[M])
}

// DefaultBackoff doubles from 100ms up to 30s.
func DefaultBackoff(n int) time.Duration {
	d := 100 * time.Millisecond
	for i := 1; i < n && d < 30*time.Second; i++ {
		d *= 2
	}
	return min(d, 30*time.Second)
}

// NewSubscribeConfig applies opts (cqrs.SubscribeOption values; nil ones
// are skipped) to the defaults and checks the result, returning an error
// that names every bad setting.
func NewSubscribeConfig[M any, O any](opts []O) (SubscribeConfig[M], error) {
	c := SubscribeConfig[M]{MaxDeliver: 5, Backoff: DefaultBackoff, Concurrency: 1,
		DeadLetter: func(context.Context, M, error) {}}
	for _, o := range opts {
		if o, ok := any(o).(SubscribeOption[M]); ok {
			o.ApplySubscribe(&c)
		}
	}
	var errs []error
	if c.MaxDeliver < 1 {
		errs = append(errs, fmt.Errorf("WithMaxDeliver(%d): must be at least 1", c.MaxDeliver))
	}
	if c.Backoff == nil {
		errs = append(errs, errors.New("WithRedeliveryBackoff(nil): function must not be nil"))
	}
	if c.DeadLetter == nil {
		errs = append(errs, errors.New("WithDeadLetter(nil): function must not be nil"))
	}
	if c.Concurrency < 1 {
		errs = append(errs, fmt.Errorf("WithConcurrency(%d): must be at least 1", c.Concurrency))
	}
	return c, errors.Join(errs...)
}
