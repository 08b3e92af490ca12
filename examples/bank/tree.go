package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelpatterns/patterns/hexagonal"
)

// traces keeps the spans that the run's tracer provider ended, to print
// a request's trace as a tree.
type traces struct {
	rec *tracetest.SpanRecorder
}

func newTraces(tp *sdktrace.TracerProvider) *traces {
	rec := tracetest.NewSpanRecorder()
	tp.RegisterSpanProcessor(rec)
	return &traces{rec: rec}
}

// print writes the spans of trace id as a tree: each span's name, layer
// (hexagonal.layer) and kind, and error.type when it failed; children
// under their parent in the order they started. Only the program's spans
// and the layers' (package hexagonal's) are shown: the store's own spans,
// on PostgreSQL, are left out, so that the tree is the same on both
// stores. No durations either, for the same reason.
func (t *traces) print(w io.Writer, id trace.TraceID) {
	var spans []sdktrace.ReadOnlySpan
	for _, s := range t.rec.Ended() {
		scope := s.InstrumentationScope().Name
		if s.SpanContext().TraceID() == id && (scope == scopeName || scope == hexagonal.ScopeName) {
			spans = append(spans, s)
		}
	}
	children := map[trace.SpanID][]sdktrace.ReadOnlySpan{}
	ids := map[trace.SpanID]bool{}
	for _, s := range spans {
		ids[s.SpanContext().SpanID()] = true
	}
	var roots []sdktrace.ReadOnlySpan
	for _, s := range spans {
		if p := s.Parent(); p.IsValid() && ids[p.SpanID()] {
			children[p.SpanID()] = append(children[p.SpanID()], s)
		} else {
			roots = append(roots, s)
		}
	}
	// Stable, so that spans started at the same instant keep the order
	// they ended in, which for sequential calls is the order of the calls.
	byStart := func(a, b sdktrace.ReadOnlySpan) int { return a.StartTime().Compare(b.StartTime()) }
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "    span\thexagonal.layer\tkind\n")
	var walk func(s sdktrace.ReadOnlySpan, depth int)
	walk = func(s sdktrace.ReadOnlySpan, depth int) {
		layer, errType := "(main)", ""
		for _, kv := range s.Attributes() {
			switch kv.Key {
			case hexagonal.AttrLayer:
				layer = kv.Value.AsString()
			case "error.type":
				errType = "  error.type=" + kv.Value.AsString()
			}
		}
		fmt.Fprintf(tw, "    %s%s\t%s\t%s%s\n", strings.Repeat("  ", depth), s.Name(), layer, s.SpanKind(), errType)
		kids := children[s.SpanContext().SpanID()]
		slices.SortStableFunc(kids, byStart)
		for _, c := range kids {
			walk(c, depth+1)
		}
	}
	slices.SortStableFunc(roots, byStart)
	for _, s := range roots {
		walk(s, 0)
	}
	_ = tw.Flush()
}
