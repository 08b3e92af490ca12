package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelpatterns/patterns/saga"
	"github.com/otelpatterns/patterns/saga/pglog"
)

// traces prints the spans that the run's tracer provider ended, as trees,
// one per trace, numbered in the order they are printed.
type traces struct {
	rec     *tracetest.SpanRecorder
	shown   int                   // how many of rec.Ended() were printed
	labels  map[trace.TraceID]int // the number of each printed trace
	logSpan int                   // spans of the log (pglog) left out
}

func newTraces(tp *sdktrace.TracerProvider) *traces {
	rec := tracetest.NewSpanRecorder()
	tp.RegisterSpanProcessor(rec)
	return &traces{rec: rec, labels: map[trace.TraceID]int{}}
}

// node is a span in its tree.
type node struct {
	span     sdktrace.ReadOnlySpan
	children []*node
}

// print writes the trees of the spans that ended since the last call. The
// log's own spans (one per database call, on PostgreSQL) are left out, to
// keep the trees to the saga's steps; they are counted in t.logSpan.
func (t *traces) print(w io.Writer) {
	ended := t.rec.Ended()
	fresh := ended[t.shown:]
	t.shown = len(ended)

	byID := map[trace.SpanID]*node{}
	var kept []*node
	for _, s := range fresh {
		if s.InstrumentationScope().Name == pglog.ScopeName {
			t.logSpan++
			continue
		}
		n := &node{span: s}
		byID[s.SpanContext().SpanID()] = n
		kept = append(kept, n)
	}
	var roots []*node
	for _, n := range kept {
		if p, ok := byID[n.span.Parent().SpanID()]; ok && n.span.Parent().IsValid() {
			p.children = append(p.children, n)
		} else {
			roots = append(roots, n)
		}
	}
	byStart := func(a, b *node) int { return a.span.StartTime().Compare(b.span.StartTime()) }
	slices.SortStableFunc(roots, byStart)
	for _, n := range kept {
		slices.SortStableFunc(n.children, byStart)
	}

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for i, r := range roots {
		if i > 0 {
			fmt.Fprintln(tw)
		}
		label := len(t.labels) + 1
		t.labels[r.span.SpanContext().TraceID()] = label
		fmt.Fprintf(tw, "  trace %d\tsaga.step\tsaga.phase\tattempt\tsaga.outcome\ttook\t\n", label)
		t.write(tw, r, 1)
	}
	_ = tw.Flush()
}

// write writes n and its children, indented by depth.
func (t *traces) write(tw io.Writer, n *node, depth int) {
	s := n.span
	attrs := map[attribute.Key]attribute.Value{}
	for _, kv := range s.Attributes() {
		attrs[kv.Key] = kv.Value
	}
	get := func(k attribute.Key) string {
		if v, ok := attrs[k]; ok {
			return v.String()
		}
		return ""
	}
	outcome := get(saga.AttrOutcome)
	if strings.HasPrefix(s.Name(), "saga ") && outcome == "" {
		outcome = "(none: interrupted)"
	}
	var notes []string
	if v := get("error.type"); v != "" {
		notes = append(notes, "error.type="+v)
	}
	if v := get("retry.outcome"); v != "" {
		notes = append(notes, "retry.outcome="+v)
	}
	if get(saga.AttrResumed) == "true" {
		notes = append(notes, "saga.resumed=true")
	}
	for _, l := range s.Links() {
		if label, ok := t.labels[l.SpanContext.TraceID()]; ok {
			notes = append(notes, fmt.Sprintf("linked to trace %d", label))
		} else {
			notes = append(notes, "linked to trace "+l.SpanContext.TraceID().String())
		}
	}
	fmt.Fprintf(tw, "  %s%s\t%s\t%s\t%s\t%s\t%s\t%s\n", strings.Repeat("  ", depth), s.Name(),
		get(saga.AttrStep), get(saga.AttrPhase), get(saga.AttrAttempt), outcome,
		ms(s.EndTime().Sub(s.StartTime())), strings.Join(notes, ", "))
	for _, c := range n.children {
		t.write(tw, c, depth+1)
	}
}

// ms gives d rounded to the millisecond.
func ms(d time.Duration) string {
	return fmt.Sprintf("%dms", d.Round(time.Millisecond).Milliseconds())
}
