package main

import (
	"fmt"
	"io"
	"net"
	"slices"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// shownAttrs are the attributes printed for each span, when it has them.
var shownAttrs = []attribute.Key{
	"http.route", "client.address", "server.address", "server.port",
	"http.response.status_code", "http.request.resend_count", "error.type",
	"retry.outcome",
}

// printTree writes spans (those of one request) as a tree: each span's
// name, kind, duration and chosen attributes, children indented under
// their parent in the order they started. names gives the services'
// names by address, to name the target of client spans.
func printTree(w io.Writer, spans []sdktrace.ReadOnlySpan, names map[string]string) {
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
	byStart := func(a, b sdktrace.ReadOnlySpan) int { return a.StartTime().Compare(b.StartTime()) }
	var walk func(s sdktrace.ReadOnlySpan, depth int)
	walk = func(s sdktrace.ReadOnlySpan, depth int) {
		var attrs []string
		var host, port string
		for _, k := range shownAttrs {
			for _, kv := range s.Attributes() {
				if kv.Key == k {
					attrs = append(attrs, fmt.Sprintf("%s=%s", k, kv.Value.String()))
				}
				switch {
				case kv.Key == k && k == "server.address":
					host = kv.Value.String()
				case kv.Key == k && k == "server.port":
					port = kv.Value.String()
				}
			}
		}
		if name, ok := names[net.JoinHostPort(host, port)]; ok && s.SpanKind() == trace.SpanKindClient {
			attrs = append(attrs, "("+name+")")
		}
		took := s.EndTime().Sub(s.StartTime())
		fmt.Fprintf(w, "  %s%-*s %-8s %6.1fms  %s\n", strings.Repeat("  ", depth), 22-2*depth, s.Name(),
			s.SpanKind(), float64(took.Microseconds())/1000, strings.Join(attrs, " "))
		kids := children[s.SpanContext().SpanID()]
		slices.SortFunc(kids, byStart)
		for _, c := range kids {
			walk(c, depth+1)
		}
	}
	slices.SortFunc(roots, byStart)
	for _, s := range roots {
		fmt.Fprintf(w, "  trace %s\n", s.SpanContext().TraceID())
		walk(s, 1)
	}
}
