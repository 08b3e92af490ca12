package hexagonal_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelpatterns/patterns/hexagonal"
	"github.com/otelpatterns/patterns/internal/telemetry"
	"github.com/otelpatterns/patterns/internal/telemetry/telemetrytest"
)

type quote struct{ Cents int }

func price(_ context.Context, qty int) (quote, error) {
	if qty <= 0 {
		return quote{}, hexagonal.Errorf(hexagonal.KindInvalid, "quantity %d is not positive", qty)
	}
	if qty > 1000 {
		return quote{}, errors.New("pricing table unavailable")
	}
	return quote{Cents: 250 * qty}, nil
}

func telemetryOpts(p *telemetrytest.Providers) []hexagonal.InstrumentOption {
	return []hexagonal.InstrumentOption{hexagonal.WithTracerProvider(p.TracerProvider), hexagonal.WithMeterProvider(p.MeterProvider)}
}

func TestInstrumentSpans(t *testing.T) {
	p := telemetrytest.New(t)
	quoteFn := hexagonal.Instrument(hexagonal.Domain, "Pricing", "Quote", price, telemetryOpts(p)...)
	ctx, parent := p.TracerProvider.Tracer("test").Start(context.Background(), "request")
	if q, err := quoteFn(ctx, 2); err != nil || q.Cents != 500 {
		t.Fatalf("Quote(2) = %v, %v", q, err)
	}
	_, _ = quoteFn(ctx, 0)    // a domain error
	_, _ = quoteFn(ctx, 5000) // a failure
	parent.End()

	spans := p.SpansNamed("Pricing.Quote")
	if len(spans) != 3 {
		t.Fatalf("%d Pricing.Quote spans; want 3", len(spans))
	}
	for i, s := range spans {
		attrs := telemetrytest.Attrs(s)
		if attrs[hexagonal.AttrLayer].AsString() != "domain" || attrs[hexagonal.AttrPort].AsString() != "Pricing" ||
			attrs[hexagonal.AttrOperation].AsString() != "Quote" {
			t.Errorf("span %d attributes = %v", i, s.Attributes())
		}
		if s.SpanKind() != trace.SpanKindInternal {
			t.Errorf("span %d kind = %v; want internal", i, s.SpanKind())
		}
		if s.Parent().SpanID() != parent.SpanContext().SpanID() {
			t.Errorf("span %d is not a child of the caller's span", i)
		}
	}
	if s := spans[0]; s.Status().Code != codes.Unset || telemetrytest.Attrs(s)[semconv.ErrorTypeKey].Type() != attribute.EMPTY {
		t.Errorf("success: status %v, attributes %v", s.Status(), s.Attributes())
	}
	if s := spans[1]; s.Status().Code != codes.Unset || telemetrytest.Attrs(s)[semconv.ErrorTypeKey].AsString() != "hexagonal.invalid" {
		t.Errorf("domain error: status %v, attributes %v; want status unset and error.type hexagonal.invalid", s.Status(), s.Attributes())
	}
	if s := spans[2]; s.Status().Code != codes.Error || telemetrytest.Attrs(s)[semconv.ErrorTypeKey].AsString() != semconv.ErrorTypeOther.Value.AsString() {
		t.Errorf("failure: status %v, attributes %v; want status Error and error.type _OTHER", s.Status(), s.Attributes())
	}

	base := []attribute.KeyValue{hexagonal.AttrLayer.String("domain"), hexagonal.AttrPort.String("Pricing"), hexagonal.AttrOperation.String("Quote")}
	for _, tt := range []struct {
		outcome string
		want    int64
	}{{"success", 1}, {"domain_error", 1}, {"error", 1}} {
		attrs := append(base[:3:3], hexagonal.AttrOutcome.String(tt.outcome))
		if got := p.Int64(t, "hexagonal.calls", attrs...); got != tt.want {
			t.Errorf("hexagonal.calls{%s} = %d; want %d: %s", tt.outcome, got, tt.want, p.Describe(t, "hexagonal.calls"))
		}
	}
	if n := p.HistogramCount(t, "hexagonal.call.duration", append(base[:3:3], hexagonal.AttrOutcome.String("success"))...); n != 1 {
		t.Errorf("hexagonal.call.duration{success} count = %d; want 1", n)
	}
	errAttrs := append(base[:3:3], hexagonal.AttrOutcome.String("domain_error"), semconv.ErrorTypeKey.String("hexagonal.invalid"))
	if n := p.HistogramCount(t, "hexagonal.call.duration", errAttrs...); n != 1 {
		t.Errorf("hexagonal.call.duration{domain_error, error.type} count = %d; want 1: %s", n, p.Describe(t, "hexagonal.call.duration"))
	}
	runtime.KeepAlive(quoteFn) // a wrapped call reports while reachable
}

func TestInstrumentInnerLayerOutsideATrace(t *testing.T) {
	p := telemetrytest.New(t)
	quoteFn := hexagonal.Instrument(hexagonal.Domain, "Pricing", "Quote", price, telemetryOpts(p)...)
	_, _ = quoteFn(context.Background(), 1)
	if n := len(p.Spans.Ended()); n != 0 {
		t.Errorf("a domain call outside any trace made %d spans; want none", n)
	}
	attrs := []attribute.KeyValue{hexagonal.AttrLayer.String("domain"), hexagonal.AttrPort.String("Pricing"),
		hexagonal.AttrOperation.String("Quote"), hexagonal.AttrOutcome.String("success")}
	if got := p.Int64(t, "hexagonal.calls", attrs...); got != 1 {
		t.Errorf("hexagonal.calls = %d; want 1 (counted all the same)", got)
	}
	runtime.KeepAlive(quoteFn)
}

func TestInstrumentSpanKinds(t *testing.T) {
	noop := func(context.Context, struct{}) (struct{}, error) { return struct{}{}, nil }
	tests := []struct {
		layer     hexagonal.Layer
		opts      []hexagonal.InstrumentOption
		wantLayer string
		wantKind  trace.SpanKind
	}{
		{hexagonal.Domain, nil, "domain", trace.SpanKindInternal},
		{hexagonal.Application, nil, "application", trace.SpanKindInternal},
		{hexagonal.Port, nil, "port", trace.SpanKindInternal},
		{hexagonal.DrivingAdapter, nil, "adapter", trace.SpanKindServer},
		{hexagonal.DrivenAdapter, nil, "adapter", trace.SpanKindClient},
		{hexagonal.DomainModel, nil, "domain_model", trace.SpanKindInternal},
		{hexagonal.DomainService, nil, "domain_service", trace.SpanKindInternal},
		{hexagonal.ApplicationService, nil, "application_service", trace.SpanKindInternal},
		{hexagonal.Infrastructure, nil, "infrastructure", trace.SpanKindClient},
		{hexagonal.Infrastructure, []hexagonal.InstrumentOption{hexagonal.WithSpanKind(trace.SpanKindServer)}, "infrastructure", trace.SpanKindServer},
		{hexagonal.Domain, []hexagonal.InstrumentOption{hexagonal.WithLayerName("core")}, "core", trace.SpanKindInternal},
	}
	for _, tt := range tests {
		t.Run(tt.wantLayer+"/"+tt.wantKind.String(), func(t *testing.T) {
			p := telemetrytest.New(t)
			f := hexagonal.Instrument(tt.layer, "Port", "Op", noop, append(telemetryOpts(p), tt.opts...)...)
			ctx, parent := p.TracerProvider.Tracer("test").Start(context.Background(), "request")
			_, _ = f(ctx, struct{}{})
			parent.End()
			s := p.SpansNamed("Port.Op")
			if len(s) != 1 {
				t.Fatalf("%d spans", len(s))
			}
			if got := telemetrytest.Attrs(s[0])[hexagonal.AttrLayer].AsString(); got != tt.wantLayer {
				t.Errorf("hexagonal.layer = %q; want %q", got, tt.wantLayer)
			}
			if s[0].SpanKind() != tt.wantKind {
				t.Errorf("kind = %v; want %v", s[0].SpanKind(), tt.wantKind)
			}
		})
	}
}

func TestInstrumentAdaptersStartTraces(t *testing.T) {
	p := telemetrytest.New(t)
	save := hexagonal.InstrumentErr(hexagonal.DrivenAdapter, "OrderRepository", "Save",
		func(context.Context, string) error { return nil }, telemetryOpts(p)...)
	if err := save(context.Background(), "o-1"); err != nil {
		t.Fatal(err)
	}
	if err := save(telemetry.Untraced(context.Background()), "o-2"); err != nil {
		t.Fatal(err)
	}
	spans := p.SpansNamed("OrderRepository.Save")
	if len(spans) != 1 || spans[0].Parent().IsValid() || spans[0].SpanKind() != trace.SpanKindClient {
		t.Errorf("spans = %v; want one root client span (none for the untraced call)", spans)
	}
}

func TestInstrumentPanicsOnBadArguments(t *testing.T) {
	for _, tt := range []struct {
		name string
		f    func()
		want string
	}{
		{"nil f", func() { hexagonal.Instrument[int, int](hexagonal.Domain, "P", "O", nil) }, "f is nil"},
		{"nil f, err", func() { hexagonal.InstrumentErr[int](hexagonal.Domain, "P", "O", nil) }, "f is nil"},
		{"bad layer", func() { hexagonal.Instrument(hexagonal.Layer(42), "P", "O", price) }, "unknown layer Layer(42)"},
		{"no port", func() { hexagonal.Instrument(hexagonal.Domain, "", "O", price) }, "port is empty"},
		{"no operation", func() { hexagonal.Instrument(hexagonal.Domain, "P", "", price) }, "operation is empty"},
		{"nil option", func() { hexagonal.Instrument(hexagonal.Domain, "P", "O", price, nil) }, "hexagonal: Instrument(domain, \"P\", \"O\"): [opts[0] is nil]"},
		{"nil option, err", func() {
			hexagonal.InstrumentErr(hexagonal.Domain, "P", "O", func(context.Context, int) error { return nil }, nil)
		}, "opts[0] is nil"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), tt.want) {
					t.Errorf("panic = %v; want one that mentions %q", r, tt.want)
				}
			}()
			tt.f()
		})
	}
}

// TestInstrumentAllocatesNothing protects the promise of the hot path: a
// wrapped domain call with the default (no-op) providers allocates
// nothing, on success and on a domain error alike.
func TestInstrumentAllocatesNothing(t *testing.T) {
	f := hexagonal.Instrument(hexagonal.Domain, "Pricing", "Quote", priceNoAlloc)
	ctx := context.Background()
	for _, qty := range []int{1, 0} {
		if n := testing.AllocsPerRun(1000, func() { _, _ = f(ctx, qty) }); n != 0 {
			t.Errorf("a wrapped call (qty %d) allocates %v times; want 0", qty, n)
		}
	}
}

var errNoStock = &stockError{}

type stockError struct{}

func (*stockError) Error() string      { return "no stock" }
func (*stockError) DomainKind() string { return hexagonal.KindRejected }

func priceNoAlloc(_ context.Context, qty int) (quote, error) {
	if qty <= 0 {
		return quote{}, errNoStock
	}
	return quote{Cents: 250 * qty}, nil
}

// A wrapped call that panics ends its span, with an Error status, and
// counts as an error; the panic goes on to the caller unchanged.
func TestInstrumentPanicEndsTheSpan(t *testing.T) {
	for _, layer := range []hexagonal.Layer{hexagonal.DrivenAdapter, hexagonal.Domain} {
		t.Run(layer.String(), func(t *testing.T) {
			p := telemetrytest.New(t)
			boom := errors.New("boom")
			f := hexagonal.InstrumentErr(layer, "Repo", "Save", func(context.Context, int) error { panic(boom) }, telemetryOpts(p)...)
			ctx, parent := p.TracerProvider.Tracer("test").Start(context.Background(), "request")
			func() {
				defer func() {
					if v := recover(); v != boom {
						t.Errorf("recovered %v; want the call's own panic value", v)
					}
				}()
				_ = f(ctx, 1)
			}()
			parent.End()
			spans := p.SpansNamed("Repo.Save")
			if len(spans) != 1 {
				t.Fatalf("%d ended Repo.Save spans; want 1", len(spans))
			}
			if s := spans[0]; s.Status().Code != codes.Error || telemetrytest.Attrs(s)[semconv.ErrorTypeKey].AsString() != "hexagonal.panic" {
				t.Errorf("status %v, attributes %v; want Error and error.type hexagonal.panic", s.Status(), s.Attributes())
			}
			attrs := []attribute.KeyValue{hexagonal.AttrLayer.String(layer.String()), hexagonal.AttrPort.String("Repo"),
				hexagonal.AttrOperation.String("Save"), hexagonal.AttrOutcome.String("error")}
			if got := p.Int64(t, "hexagonal.calls", attrs...); got != 1 {
				t.Errorf("hexagonal.calls{error} = %d; want 1: %s", got, p.Describe(t, "hexagonal.calls"))
			}
			runtime.KeepAlive(f)
		})
	}
}

// Outside a trace, where a domain call makes no span and, with the
// duration histogram dropped, is not timed, a panic still counts as an
// error.
func TestInstrumentPanicOutsideATraceCounts(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader),
		sdkmetric.WithView(sdkmetric.NewView(sdkmetric.Instrument{Name: "hexagonal.call.duration"},
			sdkmetric.Stream{Aggregation: sdkmetric.AggregationDrop{}})))
	defer func() { _ = mp.Shutdown(context.Background()) }()
	f := hexagonal.Instrument(hexagonal.Domain, "Orders", "Total", func(context.Context, int) (int, error) { panic("bug") },
		hexagonal.WithMeterProvider(mp))
	func() {
		defer func() { _ = recover() }()
		_, _ = f(context.Background(), 1)
	}()
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	want := attribute.NewSet(hexagonal.AttrLayer.String("domain"), hexagonal.AttrPort.String("Orders"),
		hexagonal.AttrOperation.String("Total"), hexagonal.AttrOutcome.String("error"))
	var got int64
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if sum, ok := m.Data.(metricdata.Sum[int64]); ok && m.Name == "hexagonal.calls" {
				for _, dp := range sum.DataPoints {
					if dp.Attributes.Equals(&want) {
						got = dp.Value
					}
				}
			}
		}
	}
	if got != 1 {
		t.Errorf("hexagonal.calls{error} = %d; want 1: %+v", got, rm)
	}
	runtime.KeepAlive(f)
}

// TestPanicWithDomainErrorIsAnError: a call that panics counts as an
// error, and ends its span with status Error, even when the panic's
// value is a domain error (panic(err) with err a DomainError), which
// the PanicError wraps: a panic is a fault of the service, not the
// caller's to correct. Outside a trace it counts as an error too
// (TestInstrumentPanicOutsideATraceCounts).
func TestPanicWithDomainErrorIsAnError(t *testing.T) {
	p := telemetrytest.New(t)
	domainErr := hexagonal.Errorf(hexagonal.KindNotFound, "order 7 not found")
	f := hexagonal.InstrumentErr(hexagonal.DrivenAdapter, "Repo", "Load",
		func(context.Context, int) error { panic(domainErr) }, telemetryOpts(p)...)
	ctx, parent := p.TracerProvider.Tracer("test").Start(context.Background(), "request")
	func() {
		defer func() { _ = recover() }()
		_ = f(ctx, 1)
	}()
	parent.End()
	attrs := []attribute.KeyValue{hexagonal.AttrLayer.String("adapter"), hexagonal.AttrPort.String("Repo"),
		hexagonal.AttrOperation.String("Load"), hexagonal.AttrOutcome.String("error")}
	if got := p.Int64(t, "hexagonal.calls", attrs...); got != 1 {
		t.Errorf("hexagonal.calls{outcome=error} = %d; want 1 (a panic counts as an error): %s", got, p.Describe(t, "hexagonal.calls"))
	}
	spans := p.SpansNamed("Repo.Load")
	if len(spans) != 1 {
		t.Fatalf("%d Repo.Load spans; want 1", len(spans))
	}
	if st := spans[0].Status(); st.Code != codes.Error {
		t.Errorf("span status = %v; want Error for a panic", st)
	}
	runtime.KeepAlive(f)
}
