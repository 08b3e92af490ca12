package main

import (
	"fmt"
	"io"
	"net"
	"net/url"
	"slices"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelpatterns/patterns/examples/internal/exampleotel"
	"github.com/otelpatterns/patterns/gateway/aggregate"
)

// printTree writes the tree of spans (those of one request) with
// exampleotel.Tree: each span's name, kind, duration and a few attributes
// (describe's), children indented under their parent. Siblings whose
// subtrees have the same shape (the resolvers of one field over the
// elements of a list) are printed once, with their number and the longest
// duration among them; the parts of an aggregation differ by their name.
// names gives the services' names by address, to name the target of
// client spans.
func printTree(w io.Writer, spans []sdktrace.ReadOnlySpan, names map[string]string) {
	if len(spans) == 0 {
		return
	}
	fmt.Fprintf(w, "  trace %s\n", spans[0].SpanContext().TraceID())
	exampleotel.Tree{
		AllKinds: true,
		Note:     func(s sdktrace.ReadOnlySpan) string { return describe(s, names) },
	}.Print(w, "    ", spans)
}

// aggregationKeys are the attributes of aggregations and their parts
// that describe shows, shortened, in this order.
var aggregationKeys = []attribute.Key{
	aggregate.AttrClientType, aggregate.AttrCollapsed, aggregate.AttrPart, aggregate.AttrStage, aggregate.AttrOutcome,
}

// describe returns the attributes shown for s: the route and status of
// the server span; the upstream, path and status of a client span; the
// client type of an aggregation; the name, stage and outcome of an
// aggregation's part.
func describe(s sdktrace.ReadOnlySpan, names map[string]string) string {
	var route, status, host, port, target string
	agg := make([]string, len(aggregationKeys))
	for _, kv := range s.Attributes() {
		if i := slices.Index(aggregationKeys, kv.Key); i >= 0 {
			agg[i] = strings.TrimPrefix(string(kv.Key), "gateway.aggregation.") + "=" + kv.Value.String()
			continue
		}
		switch kv.Key {
		case semconv.HTTPRouteKey:
			route = "http.route=" + kv.Value.String()
		case semconv.HTTPResponseStatusCodeKey:
			status = "http.response.status_code=" + kv.Value.String()
		case semconv.ServerAddressKey:
			host = kv.Value.String()
		case semconv.ServerPortKey:
			port = kv.Value.String()
		case semconv.URLFullKey:
			if u, err := url.Parse(kv.Value.AsString()); err == nil {
				target, _ = url.PathUnescape(u.RequestURI())
			}
		}
	}
	var parts []string
	switch s.SpanKind() {
	case trace.SpanKindClient:
		if name, ok := names[net.JoinHostPort(host, port)]; ok {
			parts = append(parts, name)
		}
		parts = append(parts, target)
	case trace.SpanKindServer:
		parts = append(parts, route)
	default: // http.route is the server span's
		parts = append(parts, agg...)
	}
	parts = append(parts, status)
	return strings.Join(slices.DeleteFunc(parts, func(p string) bool { return p == "" }), " ")
}
