package buskit_test

import (
	"context"
	"fmt"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelpatterns/patterns/cqrs"
	"github.com/otelpatterns/patterns/cqrs/buskit"
)

// A bus's Subscribe resolves its options, with one error that names every
// bad one.
func ExampleNewSubscribeConfig() {
	cfg, err := buskit.NewSubscribeConfig(cqrs.WithMaxDeliver(10))
	fmt.Println(cfg.MaxDeliver, cfg.Concurrency, cfg.Backoff(1), err)

	_, err = buskit.NewSubscribeConfig(cqrs.WithMaxDeliver(0), cqrs.WithConcurrency(0))
	fmt.Println(err)
	// Output:
	// 10 1 100ms <nil>
	// WithMaxDeliver(0): must be at least 1
	// WithConcurrency(0): must be at least 1
}

// Publish adds the context of its span to a message that carries none;
// the consumer's process span continues it.
func ExampleInjectTrace() {
	// The global propagator is a no-op until a service sets one.
	prev := otel.GetTextMapPropagator()
	otel.SetTextMapPropagator(propagation.TraceContext{})
	defer otel.SetTextMapPropagator(prev)

	sc := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID:    trace.TraceID{1},
		SpanID:     trace.SpanID{2},
		TraceFlags: trace.FlagsSampled,
	})
	publish := trace.ContextWithSpanContext(context.Background(), sc)
	m := cqrs.Message{ID: "1", Metadata: buskit.InjectTrace(publish, map[string]string{"tenant": "t1"})}
	fmt.Println(m.Metadata["traceparent"], m.Metadata["tenant"])

	// On delivery:
	process := buskit.ExtractTrace(context.Background(), m)
	fmt.Println(trace.SpanContextFromContext(process).TraceID() == sc.TraceID())
	// Output:
	// 00-01000000000000000000000000000000-0200000000000000-01 t1
	// true
}

// Publish keeps the creation context a message carries of its own, and
// links its span to it.
func ExampleCreationContext() {
	prev := otel.GetTextMapPropagator()
	otel.SetTextMapPropagator(propagation.TraceContext{})
	defer otel.SetTextMapPropagator(prev)

	m := cqrs.Message{ID: "1", Metadata: map[string]string{
		"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
	}}
	fmt.Println(buskit.CreationContext(m).SpanID())
	fmt.Println(buskit.CreationContext(cqrs.Message{ID: "2"}).IsValid())
	// Output:
	// b7ad6b7169203331
	// false
}
