package main

import (
	"fmt"
	"io"
	"net"
	"net/url"
	"slices"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelpatterns/patterns/gateway/aggregate"
)

// node is a span in its trace's tree.
type node struct {
	span sdktrace.ReadOnlySpan
	kids []*node
	sig  string // the shape of its subtree, to fold identical siblings
}

// buildTree arranges the spans of one trace under their parents, each
// level in the order the spans started, and returns the roots.
func buildTree(spans []sdktrace.ReadOnlySpan) []*node {
	byID := map[trace.SpanID]*node{}
	nodes := make([]*node, len(spans))
	for i, s := range spans {
		nodes[i] = &node{span: s}
		byID[s.SpanContext().SpanID()] = nodes[i]
	}
	var roots []*node
	for _, n := range nodes {
		if p, ok := byID[n.span.Parent().SpanID()]; ok && n.span.Parent().IsValid() {
			p.kids = append(p.kids, n)
		} else {
			roots = append(roots, n)
		}
	}
	byStart := func(a, b *node) int { return a.span.StartTime().Compare(b.span.StartTime()) }
	for _, n := range nodes {
		slices.SortStableFunc(n.kids, byStart)
	}
	slices.SortStableFunc(roots, byStart)
	for _, r := range roots {
		r.signature()
	}
	return roots
}

func (n *node) signature() string {
	kids := make([]string, len(n.kids))
	for i, k := range n.kids {
		kids[i] = k.signature()
	}
	slices.Sort(kids)
	// The parts of an aggregation have the same name and shape, but are
	// not alike.
	n.sig = n.span.Name() + "[" + attrOf(n.span, aggregate.AttrPart).String() + "](" + strings.Join(kids, ",") + ")"
	return n.sig
}

// printTree writes the tree of spans (those of one request), each span's
// name, kind, duration and a few attributes, children indented under
// their parent. Siblings whose subtrees have the same shape (the
// resolvers of one field over the elements of a list) are printed once,
// with their number and the longest duration among them. names gives the
// services' names by address, to name the target of client spans.
func printTree(w io.Writer, spans []sdktrace.ReadOnlySpan, names map[string]string) {
	for _, r := range buildTree(spans) {
		fmt.Fprintf(w, "  trace %s\n", r.span.SpanContext().TraceID())
		printNodes(w, []*node{r}, 1, names)
	}
}

// printNodes prints siblings, folding those of the same shape.
func printNodes(w io.Writer, sibs []*node, depth int, names map[string]string) {
	var order []string
	groups := map[string][]*node{}
	for _, n := range sibs {
		if _, ok := groups[n.sig]; !ok {
			order = append(order, n.sig)
		}
		groups[n.sig] = append(groups[n.sig], n)
	}
	for _, sig := range order {
		g := groups[sig]
		n := g[0]
		var took time.Duration
		for _, m := range g {
			took = max(took, m.span.EndTime().Sub(m.span.StartTime()))
		}
		name := n.span.Name()
		if len(g) > 1 {
			name += fmt.Sprintf(" ×%d", len(g))
		}
		line := fmt.Sprintf("  %s%-*s %-8s %6.1fms  %s", strings.Repeat("  ", depth), 54-2*depth, name,
			n.span.SpanKind(), float64(took.Microseconds())/1000, describe(n.span, names))
		fmt.Fprintln(w, strings.TrimRight(line, " "))
		printNodes(w, n.kids, depth+1, names)
	}
}

// attrOf returns the value of s's attribute k, empty if s has none.
func attrOf(s sdktrace.ReadOnlySpan, k attribute.Key) attribute.Value {
	for _, kv := range s.Attributes() {
		if kv.Key == k {
			return kv.Value
		}
	}
	return attribute.Value{}
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
