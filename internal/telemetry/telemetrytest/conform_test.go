package telemetrytest_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelpatterns/patterns/internal/telemetry/telemetrytest"
)

// recorder is a testing.TB that keeps the failures it is told of.
type recorder struct {
	testing.TB
	errs []string
}

func (r *recorder) Helper() {}
func (r *recorder) Errorf(format string, args ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

func (r *recorder) has(t *testing.T, want string) {
	t.Helper()
	for _, e := range r.errs {
		if strings.Contains(e, want) {
			return
		}
	}
	t.Errorf("no failure mentions %q; got %q", want, r.errs)
}

const scope = "example.com/pkg"

func TestCheckMetrics(t *testing.T) {
	p := telemetrytest.New(t)
	m := p.MeterProvider.Meter(scope)
	calls, _ := m.Int64Counter("pkg.calls", metric.WithUnit("{call}"))
	calls.Add(context.Background(), 1, metric.WithAttributes(attribute.String("pkg.name", "a"), attribute.String("pkg.extra", "x")))
	dur, _ := m.Float64Histogram("pkg.duration", metric.WithUnit("ms"))
	dur.Record(context.Background(), 1)
	stray, _ := m.Int64UpDownCounter("pkg.stray")
	stray.Add(context.Background(), 1)

	specs := []telemetrytest.Instrument{
		{Name: "pkg.calls", Kind: telemetrytest.Counter, Unit: "{call}", Required: []attribute.Key{"pkg.name", "pkg.outcome"}},
		{Name: "pkg.duration", Kind: telemetrytest.Counter, Unit: "s"},
	}
	r := &recorder{TB: t}
	p.CheckMetrics(r, scope, specs, "pkg.calls", "pkg.missing")
	r.has(t, `"pkg.outcome" missing`)
	r.has(t, "pkg.extra=x is not documented")
	r.has(t, `metric "pkg.duration": unit "ms"; want "s"`)
	r.has(t, `metric "pkg.duration": kind histogram; want counter`)
	r.has(t, `metric "pkg.stray" is not documented`)
	r.has(t, `metric "pkg.missing" was not recorded`)
	if len(r.errs) != 6 {
		t.Errorf("failures = %q; want 6", r.errs)
	}

	ok := &recorder{TB: t}
	p.CheckMetrics(ok, "other/scope", specs)
	if len(ok.errs) != 0 {
		t.Errorf("another scope's metrics were checked: %q", ok.errs)
	}
}

func TestCheckSpans(t *testing.T) {
	p := telemetrytest.New(t)
	tr := p.TracerProvider.Tracer(scope)
	ctx, root := tr.Start(context.Background(), "publish orders.created", trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(attribute.String("messaging.system", "nats")))
	_, child := tr.Start(ctx, "process orders.created", trace.WithSpanKind(trace.SpanKindConsumer))
	child.End()
	root.End()
	_, orphan := tr.Start(context.Background(), "process orders.paid", trace.WithSpanKind(trace.SpanKindConsumer))
	orphan.End()
	_, odd := tr.Start(context.Background(), "publish two words")
	odd.End()

	specs := []telemetrytest.Span{
		{Name: "publish {topic}", Kind: trace.SpanKindProducer, Required: []attribute.Key{"messaging.system"}},
		{Name: "process {topic}", Kind: trace.SpanKindConsumer, Parented: true},
	}
	r := &recorder{TB: t}
	p.CheckSpans(r, scope, specs, "publish {topic}", "settle {topic}")
	r.has(t, `span "process orders.paid" has neither a parent nor a link`)
	r.has(t, `span "publish two words" is not documented`)
	r.has(t, `span "settle {topic}" was not recorded`)
	if len(r.errs) != 3 {
		t.Errorf("failures = %q; want 3", r.errs)
	}
}

func TestNameMatches(t *testing.T) {
	tests := []struct {
		pattern, name string
		want          bool
	}{
		{"publish {topic}", "publish orders.created", true},
		{"publish {topic}", "publish ", false},
		{"publish {topic}", "publish a b", false},
		{"saga {name}", "saga.react x", false},
		{"claim", "claim", true},
		{"insert {db}.{table}", "insert test.events", true},
	}
	for _, tt := range tests {
		if got := telemetrytest.NameMatches(tt.pattern, tt.name); got != tt.want {
			t.Errorf("NameMatches(%q, %q) = %v; want %v", tt.pattern, tt.name, got, tt.want)
		}
	}
}

func TestCheckDoc(t *testing.T) {
	path := filepath.Join(t.TempDir(), "doc.go")
	doc := "// Package pkg does things.\n//\n//   - pkg.calls: calls, by pkg.name.\n//   - publish {topic} spans\n" +
		"//\t" + strings.Repeat("x", 80) + "\npackage pkg\n"
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	r := &recorder{TB: t}
	telemetrytest.CheckDoc(r, path,
		[]telemetrytest.Instrument{{Name: "pkg.calls", Required: []attribute.Key{"pkg.name", "pkg.outcome"}}},
		[]telemetrytest.Span{{Name: "publish {topic}"}, {Name: "settle {topic}"}})
	r.has(t, `attribute "pkg.outcome" is not documented`)
	r.has(t, `span "settle" is not documented`)
	r.has(t, "doc.go:5: line is 86 characters wide")
	if len(r.errs) != 3 {
		t.Errorf("failures = %q; want 3", r.errs)
	}
}
