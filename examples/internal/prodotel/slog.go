package prodotel

import (
	"context"
	"log/slog"

	"go.opentelemetry.io/otel/trace"
)

// Keys of the attributes TraceHandler adds, as OpenTelemetry's log data
// model names the fields.
const (
	TraceIDKey = "trace_id"
	SpanIDKey  = "span_id"
)

// TraceHandler is a slog.Handler that adds trace_id and span_id to each
// record whose context holds a valid span context, so that a log line can
// be found from its trace and the other way round.
type TraceHandler struct{ next slog.Handler }

// NewTraceHandler returns a TraceHandler that passes records on to next.
func NewTraceHandler(next slog.Handler) *TraceHandler { return &TraceHandler{next: next} }

// Enabled reports whether the handler it wraps handles level.
func (h *TraceHandler) Enabled(ctx context.Context, level slog.Level) bool {
	return h.next.Enabled(ctx, level)
}

// Handle adds the span context's ids to r, when there is one, and passes
// it on.
func (h *TraceHandler) Handle(ctx context.Context, r slog.Record) error {
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		r = r.Clone() // the record may be shared with other handlers
		r.AddAttrs(slog.String(TraceIDKey, sc.TraceID().String()), slog.String(SpanIDKey, sc.SpanID().String()))
	}
	return h.next.Handle(ctx, r)
}

// WithAttrs returns a TraceHandler over the wrapped handler with attrs.
func (h *TraceHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &TraceHandler{next: h.next.WithAttrs(attrs)}
}

// WithGroup returns a TraceHandler over the wrapped handler in group name.
// The ids then land in the group too, as slog puts every later attribute.
func (h *TraceHandler) WithGroup(name string) slog.Handler {
	return &TraceHandler{next: h.next.WithGroup(name)}
}
