package main

import (
	"fmt"
	"io"
	"slices"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelpatterns/patterns/hexagonal"
)

// shownAttrs are the attributes printed for each span, when it has them.
var shownAttrs = []attribute.Key{
	semconv.HTTPResponseStatusCodeKey, semconv.HTTPRequestResendCountKey, semconv.ErrorTypeKey,
}

// printTree writes the spans of trace id that rec holds as a tree: each
// span's name, kind, hexagonal.layer and chosen attributes, children
// indented under their parent in the order they started.
func printTree(w io.Writer, spans []sdktrace.ReadOnlySpan, id trace.TraceID) {
	var mine []sdktrace.ReadOnlySpan
	ids := map[trace.SpanID]bool{}
	for _, s := range spans {
		if s.SpanContext().TraceID() == id {
			mine = append(mine, s)
			ids[s.SpanContext().SpanID()] = true
		}
	}
	children := map[trace.SpanID][]sdktrace.ReadOnlySpan{}
	var roots []sdktrace.ReadOnlySpan
	for _, s := range mine {
		if p := s.Parent(); p.IsValid() && ids[p.SpanID()] {
			children[p.SpanID()] = append(children[p.SpanID()], s)
		} else {
			roots = append(roots, s)
		}
	}
	byStart := func(a, b sdktrace.ReadOnlySpan) int { return a.StartTime().Compare(b.StartTime()) }
	var walk func(s sdktrace.ReadOnlySpan, depth int)
	walk = func(s sdktrace.ReadOnlySpan, depth int) {
		layer := "-"
		var attrs []string
		for _, kv := range s.Attributes() {
			if kv.Key == hexagonal.AttrLayer {
				layer = kv.Value.String()
			}
		}
		for _, k := range shownAttrs {
			for _, kv := range s.Attributes() {
				if kv.Key == k {
					attrs = append(attrs, fmt.Sprintf("%s=%s", k, kv.Value.String()))
				}
			}
		}
		line := fmt.Sprintf("  %s%-*s %-8s %-11s %s", strings.Repeat("  ", depth), 34-2*depth, s.Name(),
			s.SpanKind(), layer, strings.Join(attrs, " "))
		fmt.Fprintln(w, strings.TrimRight(line, " "))
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
}
