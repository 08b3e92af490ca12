package prodotel

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http/httptest"
	"strings"
	"testing"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.uber.org/goleak"

	"github.com/otelpatterns/patterns/circuitbreaker"
)

// otelVars are the variables New reads; each test starts with none set,
// whatever the environment of go test holds.
var otelVars = []string{
	"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
	"OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_TRACES_EXPORTER", "OTEL_METRICS_EXPORTER",
	"OTEL_TRACES_SAMPLER", "OTEL_TRACES_SAMPLER_ARG", "OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES",
}

// newTelemetry builds a Telemetry with env set (and every other OTEL_*
// variable empty), shut down at the end of the test.
func newTelemetry(t *testing.T, cfg Config, env map[string]string) *Telemetry {
	t.Helper()
	for _, k := range otelVars {
		t.Setenv(k, env[k])
	}
	tel, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = tel.Shutdown(context.Background()) })
	return tel
}

func TestSamplerFromEnv(t *testing.T) {
	for _, tc := range []struct {
		env       map[string]string
		recording bool
	}{
		{nil, true}, // the SDK's default, parentbased_always_on
		{map[string]string{"OTEL_TRACES_SAMPLER": "always_off"}, false},
		{map[string]string{"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0"}, false},
		{map[string]string{"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "1"}, true},
		{map[string]string{"OTEL_TRACES_SAMPLER": "parentbased_always_off"}, false},
	} {
		tel := newTelemetry(t, Config{ServiceName: "svc"}, tc.env)
		_, span := tel.TracerProvider.Tracer("test").Start(context.Background(), "op")
		if got := span.IsRecording(); got != tc.recording {
			t.Errorf("%v: IsRecording = %v, want %v", tc.env, got, tc.recording)
		}
		span.End()
	}
}

func TestResourceFromEnv(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	check := func(env map[string]string, want map[attribute.Key]string) {
		t.Helper()
		tel := newTelemetry(t, Config{ServiceName: "from-config", SpanProcessors: []sdktrace.SpanProcessor{rec}}, env)
		_, span := tel.TracerProvider.Tracer("test").Start(context.Background(), "op")
		span.End()
		ended := rec.Ended()
		got := ended[len(ended)-1].Resource().Set()
		for k, v := range want {
			if val, ok := got.Value(k); !ok || val.AsString() != v {
				t.Errorf("%v: resource %s = %q, want %q", env, k, val.AsString(), v)
			}
		}
	}
	check(nil, map[attribute.Key]string{semconv.ServiceNameKey: "from-config"})
	check(map[string]string{
		"OTEL_SERVICE_NAME":        "from-env",
		"OTEL_RESOURCE_ATTRIBUTES": string(semconv.DeploymentEnvironmentNameKey) + "=staging," + string(semconv.ServiceVersionKey) + "=1.2.3",
	}, map[attribute.Key]string{
		semconv.ServiceNameKey:               "from-env",
		semconv.DeploymentEnvironmentNameKey: "staging",
		semconv.ServiceVersionKey:            "1.2.3",
	})
}

// scrape returns what the /metrics handler serves.
func scrape(t *testing.T, tel *Telemetry) string {
	t.Helper()
	w := httptest.NewRecorder()
	tel.Metrics.ServeHTTP(w, httptest.NewRequest("GET", "/metrics", nil))
	if w.Code != 200 {
		t.Fatalf("/metrics: status %d", w.Code)
	}
	if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("/metrics: Content-Type %q, want the text exposition format", ct)
	}
	return w.Body.String()
}

func TestMetricsHandlerServesPrometheusText(t *testing.T) {
	tel := newTelemetry(t, Config{ServiceName: "svc"}, nil)
	ctx := context.Background()
	c, err := tel.MeterProvider.Meter("test").Int64Counter("shop.orders.placed", metric.WithUnit("{order}"))
	if err != nil {
		t.Fatal(err)
	}
	c.Add(ctx, 3, metric.WithAttributes(attribute.String("shop.channel", "web")))
	h, err := tel.MeterProvider.Meter("test").Float64Histogram("shop.step.duration", metric.WithUnit("s"))
	if err != nil {
		t.Fatal(err)
	}
	h.Record(ctx, 0.25)

	body := scrape(t, tel)
	// The exporter's translation: '.' to '_', the unit's Prometheus word
	// (none for an annotation such as {order}, _seconds for s), _total
	// for a counter; attribute keys '.' to '_'.
	for _, want := range []string{
		"# TYPE shop_orders_placed_total counter",
		`shop_orders_placed_total{otel_scope_name="test",otel_scope_schema_url="",otel_scope_version="",shop_channel="web"} 3`,
		"# TYPE shop_step_duration_seconds histogram",
		`shop_step_duration_seconds_count{otel_scope_name="test",otel_scope_schema_url="",otel_scope_version=""} 1`,
		`target_info{`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q; got:\n%s", want, body)
		}
	}
}

func TestLibraryMetricNamesInPrometheus(t *testing.T) {
	tel := newTelemetry(t, Config{ServiceName: "svc"}, nil)
	b := circuitbreaker.New("payment", circuitbreaker.WithMeterProvider(tel.MeterProvider))
	_ = b.Execute(context.Background(), func(context.Context) error { return nil })
	_ = b.Execute(context.Background(), func(context.Context) error { return errors.New("boom") })

	body := scrape(t, tel)
	for _, want := range []string{
		"# TYPE circuitbreaker_calls_total counter",
		"# TYPE circuitbreaker_state gauge",
		`circuitbreaker_calls_total{circuitbreaker_name="payment",circuitbreaker_outcome="success",otel_scope_name="` + circuitbreaker.ScopeName + `"`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q; got:\n%s", want, body)
		}
	}
}

// TestSagaMetricNamesInPrometheus records instruments of the kinds, names
// and units saga/telemetry.go declares, to show the names dashboards query.
func TestSagaMetricNamesInPrometheus(t *testing.T) {
	tel := newTelemetry(t, Config{ServiceName: "svc"}, nil)
	ctx := context.Background()
	m := tel.MeterProvider.Meter("saga-like")
	exec, _ := m.Int64Counter("saga.executions", metric.WithUnit("{saga}"))
	exec.Add(ctx, 1, metric.WithAttributes(attribute.String("saga.outcome", "completed")))
	active, _ := m.Int64UpDownCounter("saga.active", metric.WithUnit("{saga}"))
	active.Add(ctx, 2)
	attn, _ := m.Int64Counter("saga.needs_attention", metric.WithUnit("{saga}"))
	attn.Add(ctx, 1)
	dur, _ := m.Float64Histogram("saga.duration", metric.WithUnit("s"))
	dur.Record(ctx, 1.5)

	body := scrape(t, tel)
	for _, want := range []string{
		"# TYPE saga_executions_total counter",
		`saga_executions_total{otel_scope_name="saga-like",otel_scope_schema_url="",otel_scope_version="",saga_outcome="completed"} 1`,
		"# TYPE saga_active gauge",
		"# TYPE saga_needs_attention_total counter",
		"# TYPE saga_duration_seconds histogram",
		"saga_duration_seconds_sum{",
		`saga_duration_seconds_bucket{otel_scope_name="saga-like",otel_scope_schema_url="",otel_scope_version="",le="+Inf"} 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q; got:\n%s", want, body)
		}
	}
}

func TestLoggerCarriesTraceAndSpanIDs(t *testing.T) {
	var logs bytes.Buffer
	tel := newTelemetry(t, Config{ServiceName: "svc", LogOutput: &logs}, nil)
	ctx, span := tel.TracerProvider.Tracer("test").Start(context.Background(), "op")
	tel.Logger.InfoContext(ctx, "inside")
	span.End()
	tel.Logger.InfoContext(context.Background(), "outside")

	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("got %d log lines, want 2:\n%s", len(lines), logs.String())
	}
	sc := span.SpanContext()
	for _, want := range []string{TraceIDKey + "=" + sc.TraceID().String(), SpanIDKey + "=" + sc.SpanID().String()} {
		if !strings.Contains(lines[0], want) {
			t.Errorf("record in a span lacks %q: %s", want, lines[0])
		}
	}
	if strings.Contains(lines[1], TraceIDKey) || strings.Contains(lines[1], SpanIDKey) {
		t.Errorf("record outside a span has ids: %s", lines[1])
	}
}

func TestConsoleExporterWritesSpans(t *testing.T) {
	var out bytes.Buffer
	tel := newTelemetry(t, Config{ServiceName: "svc", ConsoleOutput: &out}, map[string]string{"OTEL_TRACES_EXPORTER": "console"})
	_, span := tel.TracerProvider.Tracer("test").Start(context.Background(), "console-op")
	span.End()
	if err := tel.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	var got struct{ Name string }
	if err := json.NewDecoder(&out).Decode(&got); err != nil && !errors.Is(err, io.EOF) {
		t.Fatalf("decoding the console output: %v\n%s", err, out.String())
	}
	if got.Name != "console-op" {
		t.Errorf("console exporter wrote span %q, want console-op; output:\n%s", got.Name, out.String())
	}
}

func TestNoExportWithoutEnv(t *testing.T) {
	var out bytes.Buffer
	tel := newTelemetry(t, Config{ServiceName: "svc", ConsoleOutput: &out}, nil)
	_, span := tel.TracerProvider.Tracer("test").Start(context.Background(), "op")
	span.End()
	if err := tel.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if out.Len() != 0 {
		t.Errorf("exported without any OTEL_* variable:\n%s", out.String())
	}
}

func TestBadExporterName(t *testing.T) {
	for _, k := range otelVars {
		t.Setenv(k, "")
	}
	t.Setenv("OTEL_TRACES_EXPORTER", "zipkin")
	if tel, err := New(context.Background(), Config{}); err == nil {
		_ = tel.Shutdown(context.Background())
		t.Fatal("New accepted OTEL_TRACES_EXPORTER=zipkin")
	}
}

func TestPropagatorIsW3C(t *testing.T) {
	newTelemetry(t, Config{ServiceName: "svc"}, nil)
	fields := otel.GetTextMapPropagator().Fields()
	want := append(propagation.TraceContext{}.Fields(), propagation.Baggage{}.Fields()...)
	for _, f := range want {
		found := false
		for _, g := range fields {
			found = found || g == f
		}
		if !found {
			t.Errorf("global propagator fields %v lack %q", fields, f)
		}
	}
}

func TestShutdownLeavesNoGoroutine(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	var out bytes.Buffer
	for _, k := range otelVars {
		t.Setenv(k, "")
	}
	t.Setenv("OTEL_TRACES_EXPORTER", "console")
	t.Setenv("OTEL_METRICS_EXPORTER", "console")
	tel, err := New(context.Background(), Config{ServiceName: "svc", ConsoleOutput: &out, LogOutput: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	_, span := tel.TracerProvider.Tracer("test").Start(context.Background(), "op")
	span.End()
	if err := tel.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
}
