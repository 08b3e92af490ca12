package main

import (
	"io"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelpatterns/patterns/examples/internal/exampleotel"
	"github.com/otelpatterns/patterns/hexagonal"
)

// shownAttrs are the attributes printed for each span, when it has them.
var shownAttrs = []attribute.Key{
	semconv.HTTPResponseStatusCodeKey, semconv.HTTPRequestResendCountKey, semconv.ErrorTypeKey,
}

// printTree writes the spans of trace id among spans as a tree (see
// exampleotel.Tree): each span's name, kind, hexagonal.layer ("-" for
// none) and chosen attributes, children indented under their parent in
// the order they started. No durations, so that the tree is the same
// from run to run.
func printTree(w io.Writer, spans []sdktrace.ReadOnlySpan, id trace.TraceID) {
	var mine []sdktrace.ReadOnlySpan
	for _, s := range spans {
		if s.SpanContext().TraceID() == id {
			mine = append(mine, s)
		}
	}
	exampleotel.Tree{
		AllKinds:    true,
		Columns:     []attribute.Key{hexagonal.AttrLayer},
		Attrs:       shownAttrs,
		NoDurations: true,
	}.Print(w, "  ", mine)
}
