package telemetry

import "context"

// untracedKey is the context key of the mark that Untraced sets.
type untracedKey struct{}

// Untraced returns ctx marked as untraced: the module's instrumented
// calls made under it start no span of their own (and add none to a
// span in ctx), but still record their metrics. It is for work that runs
// on no one's behalf on a timer, such as an orchestrator's lease renewals
// and recovery ticks, which would otherwise send a root span (or, under a
// sampler that ignores the parent, an orphan) every few seconds.
//
// The mark is explicit rather than a non-sampled span context put in ctx:
// that works only with a parent-based sampler, and under another the
// calls' spans are recorded as children of a span that never exists.
// Instrumentation outside the module (a database driver's, say) does not
// know the mark.
func Untraced(ctx context.Context) context.Context {
	if IsUntraced(ctx) {
		return ctx
	}
	return context.WithValue(ctx, untracedKey{}, true)
}

// IsUntraced reports whether ctx was marked by [Untraced].
func IsUntraced(ctx context.Context) bool {
	v, _ := ctx.Value(untracedKey{}).(bool)
	return v
}
