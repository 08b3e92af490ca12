package main

import (
	"io"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelpatterns/patterns/examples/internal/exampleotel"
	"github.com/otelpatterns/patterns/hexagonal"
)

// traces holds the spans that the run's tracer provider ended, to print
// a request's trace as a tree.
type traces struct {
	spans *exampleotel.Spans
}

// print writes the spans of trace id as a tree (see exampleotel.Tree):
// each span's name, layer (hexagonal.layer) and kind, and error.type when
// it failed; children under their parent in the order they started. Only
// the program's spans and the layers' (package hexagonal's) are shown:
// the store's own spans, on PostgreSQL, are left out, so that the tree is
// the same on both stores. No durations either, for the same reason.
func (t *traces) print(w io.Writer, id trace.TraceID) {
	var spans []sdktrace.ReadOnlySpan
	for _, s := range t.spans.Ended() {
		if s.SpanContext().TraceID() == id {
			spans = append(spans, s)
		}
	}
	exampleotel.Tree{
		Header:      []string{"span", string(hexagonal.AttrLayer), "kind"},
		Columns:     []attribute.Key{hexagonal.AttrLayer},
		Missing:     "(main)",
		AllKinds:    true,
		KindLast:    true,
		NoDurations: true,
		NoFold:      true,
		Keep: func(s sdktrace.ReadOnlySpan) bool {
			scope := s.InstrumentationScope().Name
			return scope == scopeName || scope == hexagonal.ScopeName
		},
	}.Print(w, "    ", spans)
}
