package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// jaegerClient reads Jaeger's query HTTP API (/api/...), which Jaeger v2
// serves as v1 did.
type jaegerClient struct {
	base string
	http *http.Client
}

type jTrace struct {
	TraceID   string              `json:"traceID"`
	Spans     []jSpan             `json:"spans"`
	Processes map[string]jProcess `json:"processes"`
}

type jSpan struct {
	TraceID       string `json:"traceID"`
	SpanID        string `json:"spanID"`
	OperationName string `json:"operationName"`
	References    []struct {
		RefType string `json:"refType"`
		TraceID string `json:"traceID"`
		SpanID  string `json:"spanID"`
	} `json:"references"`
	StartTime int64  `json:"startTime"` // µs
	Duration  int64  `json:"duration"`  // µs
	ProcessID string `json:"processID"`
	Tags      []struct {
		Key   string `json:"key"`
		Value any    `json:"value"`
	} `json:"tags"`

	service string
}

type jProcess struct {
	ServiceName string `json:"serviceName"`
}

func (c jaegerClient) get(ctx context.Context, path string, q url.Values, into any) error {
	u := strings.TrimSuffix(c.base, "/") + path
	if q != nil {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("%s: %s: %s", u, resp.Status, b)
	}
	var env struct {
		Data json.RawMessage `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&env); err != nil {
		return fmt.Errorf("%s: %w", u, err)
	}
	return json.Unmarshal(env.Data, into)
}

// traces returns the traces of service that hold a span of operation op
// started in the last half hour.
func (c jaegerClient) traces(ctx context.Context, service, op string, limit int) ([]jTrace, error) {
	now := time.Now()
	q := url.Values{
		"service":   {service},
		"operation": {op},
		"limit":     {strconv.Itoa(limit)},
		"start":     {strconv.FormatInt(now.Add(-30*time.Minute).UnixMicro(), 10)},
		"end":       {strconv.FormatInt(now.Add(time.Minute).UnixMicro(), 10)},
	}
	var ts []jTrace
	if err := c.get(ctx, "/api/traces", q, &ts); err != nil {
		return nil, err
	}
	for i := range ts {
		for j := range ts[i].Spans {
			s := &ts[i].Spans[j]
			s.service = ts[i].Processes[s.ProcessID].ServiceName
		}
	}
	return ts, nil
}

// hop is one stage the request's trace must reach.
type hop struct {
	name   string
	re     *regexp.Regexp
	linked bool // may be a span of another trace that links to this one
}

// label is what a hop's expression is matched against: the operation
// name, the service and the tags, "op [service] k=v k=v".
func (s jSpan) label() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s [%s]", s.OperationName, s.service)
	for _, t := range s.Tags {
		fmt.Fprintf(&b, " %s=%v", t.Key, t.Value)
	}
	return b.String()
}

type hopFlags []hop

func (h *hopFlags) String() string { return fmt.Sprint(len(*h)) }

func (h *hopFlags) Set(v string) error {
	name, expr, ok := strings.Cut(v, "=")
	if !ok || name == "" || expr == "" {
		return errors.New("want NAME=REGEXP")
	}
	re, err := regexp.Compile(expr)
	if err != nil {
		return err
	}
	*h = append(*h, hop{name: name, re: re})
	return nil
}

// found is where a trace met a hop: a span of the trace under the first
// hop's span, or a span of another trace that links to it.
type found struct {
	span   jSpan
	linked bool
}

// candidate is one trace of the first hop and the hops it meets.
type candidate struct {
	trace jTrace
	root  jSpan
	hops  map[string]found
	links []jSpan // spans of other traces that link to this one
}

func runTrace(args []string, w io.Writer) error {
	fs := flag.NewFlagSet("trace", flag.ExitOnError)
	base := fs.String("jaeger", "http://127.0.0.1:16686", "Jaeger query's base URL")
	var hops hopFlags
	fs.Var(&hops, "hop", "NAME=REGEXP: a stage of the path, matched against \"operation [service] key=value ...\" of a span; the first is where the trace starts; repeat in path order")
	linked := fs.String("linked", "", "comma-separated hop names that a span of another trace may meet by linking to the trace (a projection fed from the store)")
	wait := fs.Duration("wait", 30*time.Second, "how long to wait for the spans to arrive")
	_ = fs.Parse(args)
	if len(hops) < 2 {
		return errors.New("give at least two -hop flags")
	}
	for _, n := range strings.Split(*linked, ",") {
		if n == "" {
			continue
		}
		ok := false
		for i := range hops {
			if hops[i].name == n {
				hops[i].linked, ok = true, true
			}
		}
		if !ok {
			return fmt.Errorf("-linked %s: no such hop", n)
		}
	}
	c := jaegerClient{base: *base, http: &http.Client{Timeout: 20 * time.Second}}
	ctx, cancel := context.WithTimeout(context.Background(), *wait+time.Minute)
	defer cancel()

	deadline := time.Now().Add(*wait)
	for {
		best, err := findTrace(ctx, c, hops)
		if err == nil && len(best.hops) == len(hops) {
			printTrace(w, best, hops)
			fmt.Fprintf(w, "trace %s meets every hop: %s\n", best.trace.TraceID, hopNames(hops))
			return nil
		}
		if time.Now().After(deadline) {
			if err != nil {
				return err
			}
			printTrace(w, best, hops)
			var missing []string
			for _, h := range hops {
				if _, ok := best.hops[h.name]; !ok {
					missing = append(missing, h.name)
				}
			}
			return fmt.Errorf("no trace meets every hop; the best, %s, misses %s", best.trace.TraceID, strings.Join(missing, ", "))
		}
		time.Sleep(2 * time.Second)
	}
}

// edges returns the spans of t by the span they refer to in t: their
// parent (CHILD_OF), or a span they link to (FOLLOWS_FROM, as Jaeger shows
// a link). A message's publication and processing are linked to the
// context that created the message rather than children of it when the
// bus starts them as roots of their own (a publication of several
// messages), yet they are the same business operation, in the same trace.
func edges(t jTrace) map[string][]jSpan {
	out := map[string][]jSpan{}
	for _, s := range t.Spans {
		seen := map[string]bool{}
		for _, r := range s.References {
			if r.TraceID == s.TraceID && r.SpanID != s.SpanID && !seen[r.SpanID] {
				seen[r.SpanID] = true
				out[r.SpanID] = append(out[r.SpanID], s)
			}
		}
	}
	return out
}

// descendants returns the ids of root and of the spans of t that descend
// from it through edges.
func descendants(t jTrace, root jSpan) map[string]bool {
	children := edges(t)
	out := map[string]bool{root.SpanID: true}
	queue := []string{root.SpanID}
	for len(queue) > 0 {
		id := queue[0]
		queue = queue[1:]
		for _, c := range children[id] {
			if !out[c.SpanID] {
				out[c.SpanID] = true
				queue = append(queue, c.SpanID)
			}
		}
	}
	return out
}

// parentOf returns the span id of s's parent in its trace, or "none".
func parentOf(s jSpan) string {
	for _, r := range s.References {
		if r.RefType == "CHILD_OF" && r.TraceID == s.TraceID {
			return r.SpanID
		}
	}
	return "none"
}

func hopNames(hops []hop) string {
	var n []string
	for _, h := range hops {
		n = append(n, h.name)
	}
	return strings.Join(n, " -> ")
}

// findTrace fetches the traces that start at the first hop and returns the
// one that meets the most hops.
func findTrace(ctx context.Context, c jaegerClient, hops []hop) (candidate, error) {
	var services []string
	if err := c.get(ctx, "/api/services", nil, &services); err != nil {
		return candidate{}, err
	}
	// Every operation of every service, to find the first hop's and the
	// linked hops' spans by name.
	type svcOp struct{ service, op string }
	var ops []svcOp
	for _, s := range services {
		var names []string
		if err := c.get(ctx, "/api/services/"+url.PathEscape(s)+"/operations", nil, &names); err != nil {
			return candidate{}, err
		}
		for _, n := range names {
			ops = append(ops, svcOp{s, n})
		}
	}
	matchOp := func(h hop, o svcOp) bool {
		return h.re.MatchString(o.op + " [" + o.service + "]")
	}

	var starts []jTrace
	for _, o := range ops {
		if matchOp(hops[0], o) {
			ts, err := c.traces(ctx, o.service, o.op, 20)
			if err != nil {
				return candidate{}, err
			}
			starts = append(starts, ts...)
		}
	}
	if len(starts) == 0 {
		return candidate{}, fmt.Errorf("no trace has a span of the first hop (%s = %s); services: %v", hops[0].name, hops[0].re, services)
	}
	// Spans of other traces that may link into the candidates.
	linkers := map[string][]jSpan{} // trace id linked to -> spans
	for _, h := range hops {
		if !h.linked {
			continue
		}
		for _, o := range ops {
			if !matchOp(h, o) {
				continue
			}
			ts, err := c.traces(ctx, o.service, o.op, 200)
			if err != nil {
				return candidate{}, err
			}
			for _, t := range ts {
				for _, s := range t.Spans {
					for _, r := range s.References {
						if r.TraceID != s.TraceID {
							linkers[r.TraceID] = append(linkers[r.TraceID], s)
						}
					}
				}
			}
		}
	}

	var best candidate
	for _, t := range starts {
		for _, root := range t.Spans {
			if !hops[0].re.MatchString(root.label()) {
				continue
			}
			cand := evaluate(t, root, hops, linkers[t.TraceID])
			if best.hops == nil || len(cand.hops) > len(best.hops) {
				best = cand
			}
		}
	}
	return best, nil
}

// evaluate finds each hop in the spans under root, or, for a linked hop,
// among the spans of other traces that link to root's trace.
func evaluate(t jTrace, root jSpan, hops []hop, links []jSpan) candidate {
	reached := descendants(t, root)
	under := func(id string) bool { return reached[id] }
	cand := candidate{trace: t, root: root, hops: map[string]found{}, links: links}
	spans := append([]jSpan(nil), t.Spans...)
	sort.Slice(spans, func(i, j int) bool { return spans[i].StartTime < spans[j].StartTime })
	for _, h := range hops {
		for _, s := range spans {
			if under(s.SpanID) && h.re.MatchString(s.label()) {
				cand.hops[h.name] = found{span: s}
				break
			}
		}
		if _, ok := cand.hops[h.name]; ok || !h.linked {
			continue
		}
		for _, s := range links {
			if h.re.MatchString(s.label()) {
				cand.hops[h.name] = found{span: s, linked: true}
				break
			}
		}
	}
	return cand
}

// printTrace prints the candidate's tree under its root, marking the spans
// that met a hop, then the linked spans that did.
func printTrace(w io.Writer, c candidate, hops []hop) {
	if c.hops == nil {
		return
	}
	mark := map[string]string{}
	for _, h := range hops {
		if f, ok := c.hops[h.name]; ok && !f.linked {
			mark[f.span.SpanID] += ", " + h.name
		}
	}
	children := edges(c.trace)
	lines := 0
	printed := map[string]bool{}
	var walk func(s jSpan, depth int)
	walk = func(s jSpan, depth int) {
		if lines >= 80 || printed[s.SpanID] {
			return
		}
		printed[s.SpanID] = true
		lines++
		m := ""
		if n, ok := mark[s.SpanID]; ok {
			m = "   <- " + strings.TrimPrefix(n, ", ")
		}
		follows := ""
		if parentOf(s) == "none" {
			follows = "(follows from) "
		}
		fmt.Fprintf(w, "%s%s%s [%s] %s%s\n", strings.Repeat("  ", depth), follows, s.OperationName, s.service,
			time.Duration(s.Duration)*time.Microsecond, m)
		kids := children[s.SpanID]
		sort.Slice(kids, func(i, j int) bool { return kids[i].StartTime < kids[j].StartTime })
		for _, k := range kids {
			walk(k, depth+1)
		}
	}
	fmt.Fprintf(w, "trace %s (%d spans):\n", c.trace.TraceID, len(c.trace.Spans))
	walk(c.root, 1)
	if lines >= 80 {
		fmt.Fprintln(w, "  ...")
	}
	// The trace's spans outside the root's subtree (other roots, or spans
	// whose parent never arrived): where a broken propagation shows.
	shown := lines
	under := descendants(c.trace, c.root)
	for _, s := range c.trace.Spans {
		if under[s.SpanID] || shown-lines > 40 {
			continue
		}
		if shown == lines {
			fmt.Fprintln(w, "  outside the root's subtree:")
		}
		shown++
		fmt.Fprintf(w, "    %s [%s] %s (parent %s)\n", s.OperationName, s.service,
			time.Duration(s.Duration)*time.Microsecond, parentOf(s))
	}
	for _, h := range hops {
		if f, ok := c.hops[h.name]; ok && f.linked {
			fmt.Fprintf(w, "  linked from trace %s: %s [%s] %s   <- %s\n", f.span.TraceID, f.span.OperationName,
				f.span.service, time.Duration(f.span.Duration)*time.Microsecond, h.name)
		}
	}
}
