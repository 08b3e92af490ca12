package exampleotel

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// Tree prints spans as trees that fit on one screen: a line per span with
// its name, kind (unless internal), duration and chosen attributes, and
// its error; each span's children indented under it in the order they
// started. Siblings that look alike (same name, same shown attributes,
// same subtree) are printed once, as "name ×N" with the longest duration
// among them, unless NoFold is set. Past MaxDepth, MaxChildren or MaxLines the rest is counted
// in a "…" line instead of printed. The zero Tree prints with the default
// limits, no attributes but error.type, and durations.
type Tree struct {
	// Columns are attributes printed as a column of their values ("-"
	// for a span without the attribute), after the kind.
	Columns []attribute.Key

	// Missing is the value printed in Columns for a span without the
	// attribute; the default is "-".
	Missing string

	// AllKinds prints the kind of internal spans too, and KindLast prints
	// the kind after the Columns rather than before.
	AllKinds, KindLast bool

	// Header, if set, is printed first, its cells aligned with the
	// columns of the lines below: the name, the kind and Columns in their
	// order, the duration.
	Header []string

	// NoFold prints alike siblings one by one.
	NoFold bool

	// Attrs are the attributes printed, as key=value, in this order, for
	// the spans that have them. error.type is always printed, and so is
	// the status description of a failed span that has no error.type.
	Attrs []attribute.Key

	// Keep, if set, says which spans to print; the others are left out
	// and their children attached to the nearest kept ancestor.
	Keep func(sdktrace.ReadOnlySpan) bool

	// Note, if set, returns text to append to a span's line.
	Note func(sdktrace.ReadOnlySpan) string

	// Events prints each span's events under it, as "· name key=value",
	// with the attributes of the event that are in Attrs or EventAttrs.
	Events     bool
	EventAttrs []attribute.Key

	// NoDurations leaves the durations out, for output that must be the
	// same from run to run.
	NoDurations bool

	// MaxDepth, MaxChildren and MaxLines limit the depth of a tree, the
	// distinct children printed under one span, and the lines printed by
	// one call of Print. Defaults: 8, 12 and 40.
	MaxDepth, MaxChildren, MaxLines int
}

// node is a span in its tree.
type node struct {
	span sdktrace.ReadOnlySpan
	kids []*node
	sig  string // the span and its subtree as printed, to fold alike siblings
	size int    // the spans in the subtree
}

// Print writes the trees of spans to w, roots (spans whose parent is not
// among the kept spans) in the order they started. Each line starts with
// indent.
func (t Tree) Print(w io.Writer, indent string, spans []sdktrace.ReadOnlySpan) {
	maxDepth, maxKids, maxLines := or(t.MaxDepth, 8), or(t.MaxChildren, 12), or(t.MaxLines, 40)

	byID := map[trace.SpanID]sdktrace.ReadOnlySpan{}
	for _, s := range spans {
		byID[s.SpanContext().SpanID()] = s
	}
	kept := func(s sdktrace.ReadOnlySpan) bool { return t.Keep == nil || t.Keep(s) }
	nodes := map[trace.SpanID]*node{}
	var order []*node
	for _, s := range spans {
		if kept(s) {
			n := &node{span: s}
			nodes[s.SpanContext().SpanID()] = n
			order = append(order, n)
		}
	}
	var roots []*node
	for _, n := range order {
		// The nearest kept ancestor among spans.
		var parent *node
		for p := n.span.Parent(); p.IsValid(); {
			if pn, ok := nodes[p.SpanID()]; ok {
				parent = pn
				break
			}
			ps, ok := byID[p.SpanID()]
			if !ok {
				break
			}
			p = ps.Parent()
		}
		if parent != nil {
			parent.kids = append(parent.kids, n)
		} else {
			roots = append(roots, n)
		}
	}
	byStart := func(a, b *node) int { return a.span.StartTime().Compare(b.span.StartTime()) }
	for _, n := range order {
		slices.SortStableFunc(n.kids, byStart)
	}
	slices.SortStableFunc(roots, byStart)
	for _, r := range roots {
		t.sign(r)
	}

	var buf strings.Builder
	tw := tabwriter.NewWriter(&buf, 0, 0, 2, ' ', 0)
	lines, total := 0, len(order)
	printed := 0
	var walk func(group []*node, depth int) bool
	walk = func(group []*node, depth int) bool {
		if lines >= maxLines {
			return false
		}
		n := group[0]
		var took time.Duration
		for _, m := range group {
			took = max(took, m.span.EndTime().Sub(m.span.StartTime()))
			printed++
		}
		name := n.span.Name()
		if len(group) > 1 {
			name += fmt.Sprintf(" ×%d", len(group))
		}
		kind := ""
		if k := n.span.SpanKind(); t.AllKinds || k != trace.SpanKindInternal && k != trace.SpanKindUnspecified {
			kind = k.String()
		}
		var cols []string
		for _, c := range t.Columns {
			v := cmp.Or(t.Missing, "-")
			for _, kv := range n.span.Attributes() {
				if kv.Key == c {
					v = kv.Value.String()
				}
			}
			cols = append(cols, v)
		}
		if t.KindLast {
			kind = strings.Join(append(cols, kind), "\t")
		} else {
			kind = strings.Join(append([]string{kind}, cols...), "\t")
		}
		dur := "" // the duration's cell, with its separator
		if !t.NoDurations {
			dur = "\t" + fmtDuration(took)
		}
		fmt.Fprintf(tw, "%s%s%s\t%s%s\t%s\n", indent, strings.Repeat("  ", depth), name, kind, dur, t.describe(n.span))
		// The empty cells of the columns and the duration, for the lines
		// below.
		blank := strings.Repeat("\t", len(t.Columns))
		if !t.NoDurations {
			blank += "\t"
		}
		lines++
		// The events and the children, in the order they happened.
		type item struct {
			at    time.Time
			event *sdktrace.Event
			group []*node
		}
		var items []item
		if t.Events {
			for i, e := range n.span.Events() {
				items = append(items, item{at: e.Time, event: &n.span.Events()[i]})
			}
		}
		for _, g := range t.alike(n.kids) {
			items = append(items, item{at: g[0].span.StartTime(), group: g})
		}
		slices.SortStableFunc(items, func(a, b item) int { return a.at.Compare(b.at) })
		pad := indent + strings.Repeat("  ", depth+1)
		shownKids := 0
		for i, it := range items {
			if lines >= maxLines {
				return false
			}
			if it.event != nil {
				fmt.Fprintf(tw, "%s· %s\t%s\t%s\n", pad, it.event.Name, blank, t.eventAttrs(it.event.Attributes))
				lines++
				continue
			}
			// Past the depth or the width, count what is left out; for
			// a folded group, the subtrees of the others are left out
			// too.
			if depth+1 >= maxDepth || shownKids == maxKids {
				left := 0
				for _, rest := range items[i:] {
					for _, k := range rest.group {
						left += k.size
					}
				}
				// No cell: the line would widen the names' column.
				fmt.Fprintf(tw, "%s… %d more spans\n", pad, left)
				lines++
				return true
			}
			shownKids++
			if !walk(it.group, depth+1) {
				return false
			}
		}
		return true
	}
	if len(t.Header) > 0 {
		fmt.Fprintf(tw, "%s%s\n", indent, strings.Join(t.Header, "\t"))
		lines++
	}
	for _, g := range t.alike(roots) {
		if !walk(g, 0) {
			break
		}
	}
	_ = tw.Flush()
	for line := range strings.Lines(buf.String()) {
		fmt.Fprintln(w, strings.TrimRight(line, " \n"))
	}
	if lines >= maxLines && printed < total {
		fmt.Fprintf(w, "%s… (%d lines shown; the rest of the %d spans left out)\n", indent, lines, total)
	}
}

// alike groups alike siblings (same signature), in the order the first of
// each started.
func (t Tree) alike(sibs []*node) [][]*node {
	var groups [][]*node
	if t.NoFold {
		for _, n := range sibs {
			groups = append(groups, []*node{n})
		}
		return groups
	}
	index := map[string]int{}
	for _, n := range sibs {
		i, ok := index[n.sig]
		if !ok {
			i = len(groups)
			index[n.sig] = i
			groups = append(groups, nil)
		}
		groups[i] = append(groups[i], n)
	}
	return groups
}

// sign sets the signature and size of n's subtree.
func (t Tree) sign(n *node) {
	kids := make([]string, len(n.kids))
	n.size = 1
	for i, k := range n.kids {
		t.sign(k)
		kids[i] = k.sig
		n.size += k.size
	}
	slices.Sort(kids)
	n.sig = n.span.Name() + "|" + n.span.SpanKind().String() + "|" + t.describe(n.span) + "(" + strings.Join(kids, ",") + ")"
}

// describe returns the attributes and error printed for s.
func (t Tree) describe(s sdktrace.ReadOnlySpan) string {
	attrs := s.Attributes()
	var parts []string
	hasErrType := false
	for _, k := range t.Attrs {
		if k == "error.type" {
			continue
		}
		for _, kv := range attrs {
			if kv.Key == k {
				parts = append(parts, fmt.Sprintf("%s=%s", k, kv.Value.String()))
			}
		}
	}
	for _, kv := range attrs {
		if kv.Key == "error.type" {
			parts = append(parts, "error.type="+kv.Value.String())
			hasErrType = true
		}
	}
	if st := s.Status(); st.Code == codes.Error && !hasErrType {
		parts = append(parts, "error: "+shorten(st.Description, 60))
	}
	if t.Note != nil {
		if n := t.Note(s); n != "" {
			parts = append(parts, n)
		}
	}
	return strings.Join(parts, " ")
}

// eventAttrs returns the attributes printed for an event.
func (t Tree) eventAttrs(attrs []attribute.KeyValue) string {
	var parts []string
	for _, kv := range attrs {
		if slices.Contains(t.Attrs, kv.Key) || slices.Contains(t.EventAttrs, kv.Key) {
			parts = append(parts, fmt.Sprintf("%s=%s", kv.Key, kv.Value.String()))
		}
	}
	return strings.Join(parts, " ")
}

// fmtDuration writes d with three significant digits or so: 850µs, 12.3ms,
// 1.25s.
func fmtDuration(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return fmt.Sprintf("%dµs", d.Microseconds())
	case d < 100*time.Millisecond:
		return fmt.Sprintf("%.1fms", float64(d.Microseconds())/1000)
	case d < time.Second:
		return fmt.Sprintf("%dms", d.Milliseconds())
	}
	return fmt.Sprintf("%.2fs", d.Seconds())
}

// shorten cuts s to at most n runes, marking the cut with "…".
func shorten(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

func or(v, def int) int {
	if v > 0 {
		return v
	}
	return def
}
