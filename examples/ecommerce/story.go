package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelpatterns/patterns/cache"
	"github.com/otelpatterns/patterns/circuitbreaker"
	"github.com/otelpatterns/patterns/cqrs"
	"github.com/otelpatterns/patterns/examples/internal/exampleotel"
	"github.com/otelpatterns/patterns/gateway"
	"github.com/otelpatterns/patterns/gateway/aggregate"
	"github.com/otelpatterns/patterns/gateway/ratelimit"
	"github.com/otelpatterns/patterns/retry"
	"github.com/otelpatterns/patterns/saga"
)

// shownAttrs are the attributes printed on a span's line, when it has
// them: what tells the reader what happened.
var shownAttrs = []attribute.Key{
	semconv.HTTPResponseStatusCodeKey,
	gateway.AttrUpstream, gateway.AttrFallbackReason,
	ratelimit.AttrDecision,
	circuitbreaker.AttrState,
	retry.AttrAttempts, retry.AttrOutcome,
	cqrs.AttrCommandDuplicate,
	saga.AttrOutcome,
}

// tree prints the spans of trace id, indented under the chapter; with
// events, their events too (a retry's failed attempts, a breaker's
// rejection, a rate limit's), which are noise in the other chapters.
func (st *story) tree(id trace.TraceID, events ...bool) {
	spans := st.s.spans.Trace(id)
	if len(spans) == 0 {
		fmt.Fprintln(st.out, "    (no spans recorded)")
		return
	}
	exampleotel.Tree{
		Attrs:      shownAttrs,
		Events:     len(events) > 0 && events[0],
		EventAttrs: []attribute.Key{retry.AttrAttempt, circuitbreaker.AttrState},
		MaxLines:   60,
		MaxDepth:   14,
	}.Print(st.out, "    ", spans)
}

// logLines prints the services' log records of trace id (at most three):
// they carry its id.
func (st *story) logLines(id trace.TraceID) {
	lines := st.logs.grep(id.String(), 3)
	if len(lines) == 0 {
		return
	}
	fmt.Fprintf(st.out, "  log records with trace_id %s:\n", id)
	for _, l := range lines {
		fmt.Fprintf(st.out, "    %s\n", short(l, 200))
	}
}

// metricLine says how to summarise one metric: its total, split by the
// values of by.
type metricLine struct {
	name  string
	by    []attribute.Key
	label string
}

// summary are the metrics the story ends with: what each pattern did.
var summary = []metricLine{
	{"gateway.ratelimit.decisions", []attribute.Key{ratelimit.AttrDecision}, "rate limit decisions"},
	{"gateway.auth.failures", nil, "requests refused by auth"},
	{"circuitbreaker.state.transitions", []attribute.Key{circuitbreaker.AttrName, circuitbreaker.AttrState}, "breaker transitions"},
	{"circuitbreaker.calls", []attribute.Key{circuitbreaker.AttrOutcome}, "calls through breakers"},
	{"retry.attempts", []attribute.Key{retry.AttrName}, "attempts through retriers"},
	{"saga.executions", []attribute.Key{saga.AttrOutcome}, "sagas ended"},
	{"saga.steps", []attribute.Key{saga.AttrPhase, saga.AttrOutcome}, "saga step attempts"},
	{"cqrs.handled", []attribute.Key{cqrs.AttrCommandType, cqrs.AttrQueryType}, "commands and queries"},
	{"cache.requests", []attribute.Key{cache.AttrLevel, cache.AttrResult}, "cache requests"},
	{"gateway.aggregation.parts", []attribute.Key{aggregate.AttrOutcome}, "BFF parts"},
}

// printMetrics prints the summary's metrics.
func (st *story) printMetrics(ctx context.Context) error {
	var rm metricdata.ResourceMetrics
	if err := st.s.metrics.Collect(ctx, &rm); err != nil {
		return fmt.Errorf("reading the metrics: %w", err)
	}
	for _, m := range summary {
		total, split, ok := sumOf(&rm, m.name, m.by)
		if !ok {
			fmt.Fprintf(st.out, "  %-28s %s: none recorded\n", m.label, m.name)
			continue
		}
		fmt.Fprintf(st.out, "  %-28s %s = %v%s\n", m.label, m.name, total, split)
	}
	return nil
}

// breakerOpens counts the transitions of any breaker to open.
func (st *story) breakerOpens(ctx context.Context) float64 {
	var rm metricdata.ResourceMetrics
	if err := st.s.metrics.Collect(ctx, &rm); err != nil {
		return 0
	}
	return sumWhere(&rm, "circuitbreaker.state.transitions", circuitbreaker.AttrState, "open")
}

// sumOf returns the total of the counter name and its split by the values
// of the keys by, as " (a: 1, b: 2)".
func sumOf(rm *metricdata.ResourceMetrics, name string, by []attribute.Key) (float64, string, bool) {
	parts := map[string]float64{}
	var total float64
	found := false
	each(rm, name, func(attrs attribute.Set, v float64) {
		found = true
		total += v
		if len(by) == 0 {
			return
		}
		var label []string
		for _, k := range by {
			if val, ok := attrs.Value(k); ok {
				label = append(label, val.String())
			}
		}
		parts[strings.Join(label, "/")] += v
	})
	if len(parts) == 0 {
		return total, "", found
	}
	keys := make([]string, 0, len(parts))
	for k := range parts {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	b.WriteString(" (")
	for i, k := range keys {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s: %v", k, parts[k])
	}
	b.WriteString(")")
	return total, b.String(), found
}

// sumWhere returns the total of the counter name over its series whose
// key is value.
func sumWhere(rm *metricdata.ResourceMetrics, name string, key attribute.Key, value string) float64 {
	var total float64
	each(rm, name, func(attrs attribute.Set, v float64) {
		if val, ok := attrs.Value(key); ok && val.String() == value {
			total += v
		}
	})
	return total
}

// each calls f with every data point of the sum name.
func each(rm *metricdata.ResourceMetrics, name string, f func(attribute.Set, float64)) {
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != name {
				continue
			}
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, dp := range d.DataPoints {
					f(dp.Attributes, float64(dp.Value))
				}
			case metricdata.Sum[float64]:
				for _, dp := range d.DataPoints {
					f(dp.Attributes, dp.Value)
				}
			}
		}
	}
}

// hasAttr reports whether span s has attribute key.
func hasAttr(s sdktrace.ReadOnlySpan, key attribute.Key) bool {
	_, ok := attr(s, key)
	return ok
}

// attr returns span s's attribute key.
func attr(s sdktrace.ReadOnlySpan, key attribute.Key) (attribute.Value, bool) {
	for _, kv := range s.Attributes() {
		if kv.Key == key {
			return kv.Value, true
		}
	}
	return attribute.Value{}, false
}

// logBuffer keeps the services' log output, for the records of a trace.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// grep returns at most n lines that contain s.
func (l *logBuffer) grep(s string, n int) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, line := range strings.Split(l.buf.String(), "\n") {
		if strings.Contains(line, s) {
			out = append(out, line)
			if len(out) == n {
				break
			}
		}
	}
	return out
}

// lockedWriter serializes the writes of the goroutines that print.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
