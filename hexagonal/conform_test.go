package hexagonal_test

import (
	"context"
	"errors"
	"runtime"
	"slices"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelpatterns/patterns/hexagonal"
	"github.com/otelpatterns/patterns/internal/telemetry/telemetrytest"
)

var callAttrs = []attribute.Key{hexagonal.AttrLayer, hexagonal.AttrPort, hexagonal.AttrOperation}

// documented is the package's telemetry as doc.go describes it.
var documented = []telemetrytest.Instrument{
	{Name: "hexagonal.calls", Kind: telemetrytest.Counter, Unit: "{call}",
		Required: append(callAttrs[:3:3], hexagonal.AttrOutcome)},
	{Name: "hexagonal.call.duration", Kind: telemetrytest.Histogram, Unit: "s",
		Required: append(callAttrs[:3:3], hexagonal.AttrOutcome), Optional: []attribute.Key{semconv.ErrorTypeKey}},
	{Name: "hexagonal.check.status", Kind: telemetrytest.Gauge, Unit: "{status}",
		Required: []attribute.Key{hexagonal.AttrCheck, hexagonal.AttrCheckKind}},
	{Name: "hexagonal.check.transitions", Kind: telemetrytest.Counter, Unit: "{transition}",
		Required: []attribute.Key{hexagonal.AttrCheck, hexagonal.AttrCheckKind, hexagonal.AttrCheckStatus}},
}

var documentedSpans = []telemetrytest.Span{
	{Name: "hexagonal.startup", Kind: trace.SpanKindInternal, Optional: []attribute.Key{semconv.ErrorTypeKey}},
	{Name: "hexagonal.shutdown", Kind: trace.SpanKindInternal, Optional: []attribute.Key{semconv.ErrorTypeKey}},
	{Name: "start {component}", Kind: trace.SpanKindInternal, Parented: true,
		Required: []attribute.Key{hexagonal.AttrComponent}, Optional: []attribute.Key{semconv.ErrorTypeKey}},
	{Name: "stop {component}", Kind: trace.SpanKindInternal, Parented: true,
		Required: []attribute.Key{hexagonal.AttrComponent}, Optional: []attribute.Key{semconv.ErrorTypeKey}},
	// The wrapped calls of the test below: one per kind.
	{Name: "Pricing.Quote", Kind: trace.SpanKindInternal, Parented: true,
		Required: callAttrs, Optional: []attribute.Key{semconv.ErrorTypeKey}},
	{Name: "OrderRepository.Save", Kind: trace.SpanKindClient,
		Required: callAttrs, Optional: []attribute.Key{semconv.ErrorTypeKey}},
	{Name: "OrdersAPI.Place", Kind: trace.SpanKindServer,
		Required: callAttrs, Optional: []attribute.Key{semconv.ErrorTypeKey}},
}

// TestTelemetryConforms runs an app with a failing stop, health checks
// that change status and wrapped calls of three kinds, and checks every
// span and data point against the documented ones, and doc.go against
// them.
func TestTelemetryConforms(t *testing.T) {
	p := telemetrytest.New(t)
	var failing atomic.Bool
	failing.Store(true)
	h, err := hexagonal.NewHealth(quiet(), hexagonal.WithMeterProvider(p.MeterProvider), hexagonal.WithCheckInterval(0),
		hexagonal.WithReadinessCheck("db", func(context.Context) error {
			if failing.Load() {
				return errors.New("down")
			}
			return nil
		}),
		hexagonal.WithLivenessCheck("loop", ok))
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	app, sigs := newApp(t, hexagonal.WithHealth(h), hexagonal.WithTracerProvider(p.TracerProvider), hexagonal.WithDrainDelay(time.Millisecond),
		hexagonal.WithComponent(
			hexagonal.Component{Name: "db", Stop: func(context.Context) error { return errors.New("close failed") }},
			ready(started)))
	done := make(chan error, 1)
	go func() { done <- app.Run(context.Background()) }()
	<-started
	h.Ready(context.Background())
	failing.Store(false)
	h.Ready(context.Background())
	sigs <- syscall.SIGTERM
	if err := <-done; err == nil {
		t.Fatal("Run() = nil; want the stop error")
	}

	opts := telemetryOpts(p)
	quoteFn := hexagonal.Instrument(hexagonal.Domain, "Pricing", "Quote", price, opts...)
	save := hexagonal.InstrumentErr(hexagonal.DrivenAdapter, "OrderRepository", "Save",
		func(context.Context, int) error { return errors.New("timeout") }, opts...)
	place := hexagonal.Instrument(hexagonal.DrivingAdapter, "OrdersAPI", "Place", func(ctx context.Context, qty int) (quote, error) {
		q, err := quoteFn(ctx, qty)
		if err != nil {
			return q, err
		}
		return q, save(ctx, qty)
	}, opts...)
	_, _ = place(context.Background(), 1)
	_, _ = place(context.Background(), 0)

	p.CheckMetrics(t, hexagonal.ScopeName, documented,
		"hexagonal.calls", "hexagonal.call.duration", "hexagonal.check.status", "hexagonal.check.transitions")
	p.CheckSpans(t, hexagonal.ScopeName, documentedSpans,
		"hexagonal.startup", "hexagonal.shutdown", "start {component}", "stop {component}",
		"Pricing.Quote", "OrderRepository.Save", "OrdersAPI.Place")
	telemetrytest.CheckDoc(t, "doc.go", documented, documentedSpans[:4])
	for _, name := range []string{"{port}.{operation}", "hexagonal.drain", string(semconv.ErrorTypeKey)} {
		telemetrytest.CheckDoc(t, "doc.go", []telemetrytest.Instrument{{Name: name}}, nil)
	}

	// The health metrics: db failed, then passed.
	db := []attribute.KeyValue{hexagonal.AttrCheck.String("db"), hexagonal.AttrCheckKind.String("readiness")}
	if got := p.Int64(t, "hexagonal.check.status", db...); got != 1 {
		t.Errorf("hexagonal.check.status{db} = %d; want 1", got)
	}
	for _, status := range []string{"pass", "fail"} {
		if got := p.Int64(t, "hexagonal.check.transitions", append(db[:2:2], hexagonal.AttrCheckStatus.String(status))...); got != 1 {
			t.Errorf("hexagonal.check.transitions{db, %s} = %d; want 1: %s", status, got, p.Describe(t, "hexagonal.check.transitions"))
		}
	}
	// Health and wrapped calls report while they are reachable.
	runtime.KeepAlive(h)
	runtime.KeepAlive(place)
	// The shutdown links to the start-up.
	startup, shutdown := p.SpansNamed("hexagonal.startup"), p.SpansNamed("hexagonal.shutdown")
	if len(startup) != 1 || len(shutdown) != 1 || len(shutdown[0].Links()) != 1 ||
		shutdown[0].Links()[0].SpanContext.SpanID() != startup[0].SpanContext().SpanID() {
		t.Errorf("hexagonal.shutdown is not linked to hexagonal.startup")
	}
	if len(shutdown) == 1 && !slices.ContainsFunc(shutdown[0].Events(), func(e sdktrace.Event) bool { return e.Name == "hexagonal.drain" }) {
		t.Errorf("hexagonal.shutdown has no hexagonal.drain event: %v", shutdown[0].Events())
	}
	// The failed stop is on its span.
	for _, s := range p.SpansNamed("stop db") {
		if telemetrytest.Attrs(s)[semconv.ErrorTypeKey].AsString() == "" {
			t.Errorf("stop db span has no error.type: %v", s.Attributes())
		}
	}
}

// TestRunIsNotPartOfTheStartup protects the traces of a component's
// work: its Run's context does not carry the start-up span, so what a
// consumer does all day does not hang under hexagonal.startup.
func TestRunIsNotPartOfTheStartup(t *testing.T) {
	p := telemetrytest.New(t)
	spanInRun := make(chan bool, 1)
	app, _ := newApp(t, hexagonal.WithTracerProvider(p.TracerProvider), hexagonal.WithComponent(hexagonal.Component{
		Name: "consumer",
		Run: func(ctx context.Context) error {
			spanInRun <- trace.SpanContextFromContext(ctx).IsValid()
			return nil
		},
	}))
	if err := app.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if <-spanInRun {
		t.Error("Run's context carries a span")
	}
}
