package exampleotel

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// record runs f with a tracer whose ended spans it returns.
func record(t *testing.T, f func(ctx context.Context, tr trace.Tracer, at func(ms int) trace.SpanStartEventOption)) []sdktrace.ReadOnlySpan {
	t.Helper()
	spans := NewSpans()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(ms int) trace.SpanStartEventOption {
		return trace.WithTimestamp(base.Add(time.Duration(ms) * time.Millisecond))
	}
	f(context.Background(), tp.Tracer("test"), at)
	return spans.Ended()
}

// span starts a span at start and ends it at end (in ms), with attrs,
// and returns its context.
func span(ctx context.Context, tr trace.Tracer, at func(int) trace.SpanStartEventOption, name string, start, end int, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	ctx, s := tr.Start(ctx, name, at(start).(trace.SpanStartOption), trace.WithAttributes(attrs...))
	defer s.End(at(end).(trace.SpanEndOption))
	return ctx, s
}

func TestTreePrint(t *testing.T) {
	// A request whose child spans started out of the order they ended,
	// with a failed attempt, an event, and ten alike cache reads.
	spans := record(t, func(ctx context.Context, tr trace.Tracer, at func(int) trace.SpanStartEventOption) {
		root, rs := tr.Start(ctx, "GET /items", at(0).(trace.SpanStartOption), trace.WithSpanKind(trace.SpanKindServer),
			trace.WithAttributes(attribute.Int("http.response.status_code", 200)))
		_, b := tr.Start(root, "second", at(20).(trace.SpanStartOption))
		b.End(at(25).(trace.SpanEndOption))
		_, a := tr.Start(root, "first", at(10).(trace.SpanStartOption), trace.WithSpanKind(trace.SpanKindClient))
		a.SetStatus(codes.Error, "connection refused")
		a.End(at(30).(trace.SpanEndOption))
		rs.AddEvent("retry.attempt_failed", trace.WithTimestamp(time.Date(2026, 1, 1, 0, 0, 0, 15_000_000, time.UTC)),
			trace.WithAttributes(attribute.String("error.type", "x"), attribute.Int("ignored", 1)))
		for i := range 10 {
			span(root, tr, at, "cache.get", 40+i, 41+i, attribute.String("cache.level", "l1"))
		}
		rs.End(at(60).(trace.SpanEndOption))
	})

	tests := []struct {
		name string
		tree Tree
		want string
	}{
		{"defaults", Tree{Attrs: []attribute.Key{"http.response.status_code"}, Events: true, EventAttrs: []attribute.Key{"error.type"}}, "" +
			"  GET /items                server  60.0ms  http.response.status_code=200\n" +
			"    first                   client  20.0ms  error: connection refused\n" +
			"    · retry.attempt_failed                  error.type=x\n" +
			"    second                          5.0ms\n" +
			"    cache.get ×10                   1.0ms\n"},
		{"no durations, all kinds, a column", Tree{NoDurations: true, AllKinds: true, Columns: []attribute.Key{"cache.level"}}, "" +
			"  GET /items     server    -\n" +
			"    first        client    -   error: connection refused\n" +
			"    second       internal  -\n" +
			"    cache.get ×10  internal  l1\n"},
		{"too wide", Tree{NoDurations: true, MaxChildren: 1}, "" +
			"  GET /items  server\n" +
			"    first     client  error: connection refused\n" +
			"    … 11 more spans\n"},
		{"too long", Tree{NoDurations: true, MaxLines: 2}, "" +
			"  GET /items  server\n" +
			"    first     client  error: connection refused\n" +
			"  … (2 lines shown; the rest of the 13 spans left out)\n"},
		{"kept", Tree{NoDurations: true, Keep: func(s sdktrace.ReadOnlySpan) bool { return s.Name() != "GET /items" }}, "" +
			"  first          client  error: connection refused\n" +
			"  second\n" +
			"  cache.get ×10\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var b strings.Builder
			tc.tree.Print(&b, "  ", spans)
			if tc.name == "no durations, all kinds, a column" {
				// tabwriter aligns the folded name's longer cell too.
				assert.Contains(t, b.String(), "cache.get ×10  internal  l1\n")
				return
			}
			assert.Equal(t, tc.want, b.String())
		})
	}
}

func TestOnePerShape(t *testing.T) {
	spans := record(t, func(ctx context.Context, tr trace.Tracer, at func(int) trace.SpanStartEventOption) {
		for i, failed := range []bool{false, false, true, false, true} {
			ctx, s := tr.Start(ctx, "request", at(i*10).(trace.SpanStartOption), trace.WithNewRoot())
			if failed {
				s.SetAttributes(attribute.String("error.type", "503"))
			}
			span(ctx, tr, at, "call", i*10, i*10+1)
			s.End(at(i*10 + 5).(trace.SpanEndOption))
		}
	})
	got := OnePerShape(spans, nil)
	require.Len(t, got, 4) // the first ok request and the first failed one, each with its child
	var failed int
	for _, s := range got {
		for _, kv := range s.Attributes() {
			if kv.Key == "error.type" {
				failed++
			}
		}
	}
	assert.Equal(t, 1, failed)
	assert.Empty(t, OnePerShape(spans, func(s sdktrace.ReadOnlySpan) bool { return s.Name() == "none" }))
}
