package strangler_test

import (
	"io"
	"net/http"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelpatterns/patterns/gateway"
	"github.com/otelpatterns/patterns/gateway/strangler"
	"github.com/otelpatterns/patterns/internal/telemetry/telemetrytest"
)

// documented is the package's telemetry as doc.go describes it.
var (
	documented = []telemetrytest.Instrument{
		{Name: "gateway.strangler.routed", Kind: telemetrytest.Counter, Unit: "{request}",
			Required: []attribute.Key{strangler.AttrTarget, strangler.AttrRule}, Optional: []attribute.Key{semconv.HTTPRouteKey}},
		{Name: "gateway.strangler.shadow", Kind: telemetrytest.Counter, Unit: "{request}",
			Required: []attribute.Key{strangler.AttrShadowResult, strangler.AttrTarget},
			Optional: []attribute.Key{semconv.HTTPRouteKey, strangler.AttrShadowReason}},
	}
	documentedSpans = []telemetrytest.Span{
		{Name: strangler.SpanShadow, Kind: trace.SpanKindInternal, Parented: true,
			Required: []attribute.Key{semconv.HTTPRequestMethodKey, strangler.AttrTarget, strangler.AttrPrimary, strangler.AttrShadowResult},
			Optional: []attribute.Key{semconv.HTTPRouteKey, semconv.HTTPResponseStatusCodeKey, semconv.ErrorTypeKey}},
	}
)

// TestTelemetryConforms routes requests by several rules, with shadows
// that match, differ and fail, and checks every data point and span
// against the documented ones, and doc.go against them.
func TestTelemetryConforms(t *testing.T) {
	tel := telemetrytest.New(t)
	e := newEnv(t, []strangler.Option{
		strangler.WithHeader(strangler.TargetNew, "X-Beta", ""),
		strangler.WithFlag(func(r *http.Request) (strangler.Target, bool) {
			if r.URL.Query().Get("panic") != "" {
				panic("flag down")
			}
			return 0, false
		}),
		strangler.WithStickyKey(strangler.ByHeader("X-User")),
		strangler.WithPercent(50),
		strangler.WithShadow(strangler.Shadow{MaxBodyBytes: 4, Methods: []string{http.MethodGet, http.MethodPut}}),
		strangler.WithTracerProvider(tel.TracerProvider),
		strangler.WithMeterProvider(tel.MeterProvider),
	}, []gateway.Option{gateway.WithTracerProvider(tel.TracerProvider)})
	same := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"Backend":"legacy"}`)
	}
	e.legacy.handle(same)
	e.modern.handle(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/orders/boom": // an answer cut off
			w.Write([]byte("{"))
			http.NewResponseController(w).Flush()
			panic(http.ErrAbortHandler)
		case "/orders/3":
			w.WriteHeader(http.StatusTeapot)
		}
		same(w, r)
	})
	e.side(t, "/orders/1", "X-Beta", "1")
	e.side(t, "/orders/2", "X-User", "alice")
	e.side(t, "/orders/3", "X-User", "bob")
	e.side(t, "/orders/4?panic=1")
	e.send(t, http.MethodPut, "/orders/5", "too long")
	e.send(t, http.MethodGet, "/orders/boom", "")
	e.drain(t)

	tel.CheckMetrics(t, strangler.ScopeName, documented, "gateway.strangler.routed", "gateway.strangler.shadow")
	tel.CheckSpans(t, strangler.ScopeName, documentedSpans, strangler.SpanShadow)
	telemetrytest.CheckDoc(t, "doc.go", documented, documentedSpans)
	for _, name := range []string{strangler.EventFlagPanic, string(semconv.ExceptionMessageKey)} {
		telemetrytest.CheckDoc(t, "doc.go", []telemetrytest.Instrument{{Name: name}}, nil)
	}

	values := tel.AttributeValues(t, strangler.AttrRule)
	for _, rule := range []string{"header", "percent", "default"} {
		if !values[rule] {
			t.Errorf("no gateway.strangler.routed point with rule %q (have %v)", rule, values)
		}
	}
	results := tel.AttributeValues(t, strangler.AttrShadowResult)
	for _, r := range []string{"match", "mismatch", "error", "dropped"} {
		if !results[r] {
			t.Errorf("no gateway.strangler.shadow point with result %q (have %v)", r, results)
		}
	}
	route := semconv.HTTPRoute(routePattern)
	rule := strangler.AttrRule.String
	if got := tel.Int64(t, "gateway.strangler.routed", toNew, rule("header"), route); got != 1 {
		t.Errorf("routed new by header = %d; want 1", got)
	}
	var panicked bool
	for _, s := range tel.SpansNamed("GET " + routePattern) {
		for _, ev := range s.Events() {
			panicked = panicked || ev.Name == strangler.EventFlagPanic
		}
	}
	if !panicked {
		t.Errorf("no %s event on a server span", strangler.EventFlagPanic)
	}
}
