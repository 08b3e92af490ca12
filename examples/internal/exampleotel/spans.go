package exampleotel

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// maxSpans is how many ended spans a [Spans] keeps; later ones are
// counted, not kept. An example's interesting requests come well before.
const maxSpans = 50_000

// Spans is a span processor that keeps the spans that ended, in the order
// they ended, for the trees an example prints. It is safe for concurrent
// use.
type Spans struct {
	mu      sync.Mutex
	ended   []sdktrace.ReadOnlySpan
	dropped int
}

// NewSpans returns an empty Spans; register it with
// sdktrace.WithSpanProcessor or RegisterSpanProcessor.
func NewSpans() *Spans { return &Spans{} }

// OnStart implements sdktrace.SpanProcessor; it does nothing.
func (*Spans) OnStart(context.Context, sdktrace.ReadWriteSpan) {}

// OnEnd implements sdktrace.SpanProcessor: it keeps s.
func (c *Spans) OnEnd(s sdktrace.ReadOnlySpan) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.ended) >= maxSpans {
		c.dropped++
		return
	}
	c.ended = append(c.ended, s)
}

// Shutdown implements sdktrace.SpanProcessor; it does nothing.
func (*Spans) Shutdown(context.Context) error { return nil }

// ForceFlush implements sdktrace.SpanProcessor; it does nothing.
func (*Spans) ForceFlush(context.Context) error { return nil }

// Ended returns the spans that ended so far, in the order they ended.
func (c *Spans) Ended() []sdktrace.ReadOnlySpan {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]sdktrace.ReadOnlySpan(nil), c.ended...)
}

// Trace returns the ended spans of the trace id.
func (c *Spans) Trace(id trace.TraceID) []sdktrace.ReadOnlySpan {
	var spans []sdktrace.ReadOnlySpan
	for _, s := range c.Ended() {
		if s.SpanContext().TraceID() == id {
			spans = append(spans, s)
		}
	}
	return spans
}

// OnePerShape returns the spans of one trace per shape, the first that
// ended of each, among the traces whose root (a span without a parent)
// passes root (any root, if nil). A trace's shape is its spans' names,
// error.type attributes and events' names, each with its depth: the
// retried request, the rejected one and the one that tripped the breaker
// have different shapes, the 30 requests that went well have one. The
// traces come in the order their roots ended.
func OnePerShape(spans []sdktrace.ReadOnlySpan, root func(sdktrace.ReadOnlySpan) bool) []sdktrace.ReadOnlySpan {
	byTrace := map[trace.TraceID][]sdktrace.ReadOnlySpan{}
	var roots []sdktrace.ReadOnlySpan
	for _, s := range spans {
		id := s.SpanContext().TraceID()
		byTrace[id] = append(byTrace[id], s)
		if !s.Parent().IsValid() && (root == nil || root(s)) {
			roots = append(roots, s)
		}
	}
	seen := map[string]bool{}
	var out []sdktrace.ReadOnlySpan
	for _, r := range roots {
		trace := byTrace[r.SpanContext().TraceID()]
		shape := shapeOf(trace)
		if !seen[shape] {
			seen[shape] = true
			out = append(out, trace...)
		}
	}
	return out
}

// shapeOf returns the shape of a trace's spans (see OnePerShape).
func shapeOf(spans []sdktrace.ReadOnlySpan) string {
	depth := map[trace.SpanID]int{}
	parent := map[trace.SpanID]trace.SpanID{}
	for _, s := range spans {
		parent[s.SpanContext().SpanID()] = s.Parent().SpanID()
	}
	var d func(id trace.SpanID) int
	d = func(id trace.SpanID) int {
		if v, ok := depth[id]; ok {
			return v
		}
		p, ok := parent[id]
		if !ok {
			return -1
		}
		depth[id] = d(p) + 1
		return depth[id]
	}
	parts := make([]string, 0, len(spans))
	for _, s := range spans {
		part := fmt.Sprintf("%d:%s", d(s.SpanContext().SpanID()), s.Name())
		for _, kv := range s.Attributes() {
			if kv.Key == "error.type" {
				part += "!" + kv.Value.String()
			}
		}
		for _, e := range s.Events() {
			part += "·" + e.Name
		}
		parts = append(parts, part)
	}
	slices.Sort(parts)
	return strings.Join(parts, ";")
}
