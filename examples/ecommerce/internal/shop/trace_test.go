package shop

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelpatterns/patterns/examples/ecommerce/internal/shop/orders/adapters"
	"github.com/otelpatterns/patterns/examples/ecommerce/internal/shop/orders/app"
	"github.com/otelpatterns/patterns/saga"
)

// One order is one trace: the POST, the saga started by the placed
// event's consumer and its steps' calls, the relay's publications and the
// projection's processing of every event the saga appended.
func TestOneTracePerOrder(t *testing.T) {
	// As prodotel does for the program: W3C trace context, which the
	// services and the bus inject and extract through the global
	// propagator.
	prev := otel.GetTextMapPropagator()
	otel.SetTextMapPropagator(propagation.TraceContext{})
	t.Cleanup(func() { otel.SetTextMapPropagator(prev) })
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	s := started(t, Config{TracerProvider: tp})

	// The client's span, its context sent in traceparent.
	ctx, span := tp.Tracer("test").Start(context.Background(), "client")
	body, _ := json.Marshal(map[string]any{"customer_id": "heidi", "lines": []Line{{"BOOK-1", 1}}})
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.URLs().Orders+"/orders", bytes.NewReader(body))
	req.Header.Set("Idempotency-Key", "k-trace")
	client := &http.Client{Transport: otelhttp.NewTransport(http.DefaultTransport,
		otelhttp.WithTracerProvider(tp), otelhttp.WithPropagators(propagation.TraceContext{}))}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	resp.Body.Close()
	client.CloseIdleConnections()
	span.End()
	orderEnds(t, s, out["order_id"].(string), "completed", 15*time.Second)

	traceID := span.SpanContext().TraceID()
	has := func(kind trace.SpanKind, kv attribute.KeyValue) error {
		for _, sp := range rec.Ended() {
			if sp.SpanContext().TraceID() != traceID || sp.SpanKind() != kind {
				continue
			}
			for _, a := range sp.Attributes() {
				if a == kv {
					return nil
				}
			}
		}
		var names []string
		for _, sp := range rec.Ended() {
			if sp.SpanContext().TraceID() == traceID {
				names = append(names, sp.Name())
			}
		}
		return fmt.Errorf("no %v span with %v in the order's trace, of %d spans: %q", kind, kv, len(names), names)
	}
	eventually(t, 5*time.Second, func() error {
		for _, c := range []struct {
			kind trace.SpanKind
			kv   attribute.KeyValue
		}{
			{trace.SpanKindServer, semconv.HTTPRoute("/orders")},
			{trace.SpanKindConsumer, semconv.MessagingConsumerGroupName(adapters.GroupSaga)},
			{trace.SpanKindInternal, saga.AttrName.String(app.SagaName)},
			{trace.SpanKindServer, semconv.HTTPRoute("/shipments")},
			{trace.SpanKindConsumer, semconv.MessagingConsumerGroupName(adapters.GroupViews)},
		} {
			if err := has(c.kind, c.kv); err != nil {
				return err
			}
		}
		return nil
	})
}
