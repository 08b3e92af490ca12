package telemetrytest

import (
	"bufio"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/trace"
)

// Kind is the kind of a metric instrument as the SDK exports it.
type Kind int

// The kinds of instruments.
const (
	Counter       Kind = iota + 1 // a monotonic sum, synchronous or observable
	UpDownCounter                 // a non-monotonic sum
	Histogram                     // an explicit-bucket histogram
	Gauge                         // a gauge
)

var kindNames = map[Kind]string{Counter: "counter", UpDownCounter: "updowncounter", Histogram: "histogram", Gauge: "gauge"}

func (k Kind) String() string { return kindNames[k] }

// Instrument is what a package documents of one of its metrics: its name,
// kind and unit, the attributes its data points must carry, and those they
// may carry besides. Write names, units and keys from the semconv package
// (dbconv.ClientOperationDuration{}.Name(), semconv.ErrorTypeKey) wherever
// the semantic conventions define them, so that a semconv upgrade is one
// import to change.
type Instrument struct {
	Name     string
	Kind     Kind
	Unit     string
	Required []attribute.Key
	Optional []attribute.Key
}

// Span is what a package documents of one of its spans. Name is matched
// whole; a part in braces, such as "publish {topic}", matches any text
// without a space.
type Span struct {
	Name     string
	Kind     trace.SpanKind
	Required []attribute.Key
	Optional []attribute.Key
	// Parented: the span must have a parent or a link (for a span that is
	// documented to continue a trace: a step under its saga, a process
	// span linked to its message's creation).
	Parented bool
}

// CheckMetrics fails the test for every data point, of the metrics of the
// instrumentation scope called scope, that does not conform to specs: a
// metric not in specs, of another kind or unit, or with an attribute it
// must have missing or one it may not have present. Metrics in specs that
// were not recorded are not an error (a test records what its scenario
// makes); list in want the names that the scenario must have produced.
func (p *Providers) CheckMetrics(t testing.TB, scope string, specs []Instrument, want ...string) {
	t.Helper()
	byName := map[string]Instrument{}
	for _, s := range specs {
		byName[s.Name] = s
	}
	seen := map[string]bool{}
	for _, sm := range p.Collect(t).ScopeMetrics {
		if sm.Scope.Name != scope {
			continue
		}
		for _, m := range sm.Metrics {
			seen[m.Name] = true
			spec, ok := byName[m.Name]
			if !ok {
				t.Errorf("metric %q is not documented", m.Name)
				continue
			}
			if m.Unit != spec.Unit {
				t.Errorf("metric %q: unit %q; want %q", m.Name, m.Unit, spec.Unit)
			}
			kind, sets := describe(m.Data)
			if kind != spec.Kind {
				t.Errorf("metric %q: kind %v; want %v", m.Name, kind, spec.Kind)
			}
			for _, set := range sets {
				checkAttrs(t, "metric "+m.Name, set, spec.Required, spec.Optional)
			}
		}
	}
	for _, name := range want {
		if !seen[name] {
			t.Errorf("metric %q was not recorded", name)
		}
	}
}

// CheckSpans fails the test for every ended span of the instrumentation
// scope called scope that does not conform to specs: a name that matches
// none, another kind, an attribute missing or not allowed, or no parent
// and no link where one is documented. want lists span names (patterns of
// specs) that must have been recorded.
func (p *Providers) CheckSpans(t testing.TB, scope string, specs []Span, want ...string) {
	t.Helper()
	seen := map[string]bool{}
	for _, s := range p.Spans.Ended() {
		if s.InstrumentationScope().Name != scope {
			continue
		}
		i := slices.IndexFunc(specs, func(sp Span) bool { return NameMatches(sp.Name, s.Name()) })
		if i < 0 {
			t.Errorf("span %q is not documented", s.Name())
			continue
		}
		spec := specs[i]
		seen[spec.Name] = true
		if s.SpanKind() != spec.Kind {
			t.Errorf("span %q: kind %v; want %v", s.Name(), s.SpanKind(), spec.Kind)
		}
		checkAttrs(t, "span "+s.Name(), attribute.NewSet(s.Attributes()...), spec.Required, spec.Optional)
		if spec.Parented && !s.Parent().IsValid() && len(s.Links()) == 0 {
			t.Errorf("span %q has neither a parent nor a link", s.Name())
		}
	}
	for _, name := range want {
		if !seen[name] {
			t.Errorf("span %q was not recorded", name)
		}
	}
}

// CheckEvents fails the test for every span event named in specs whose
// attributes do not conform (an attribute missing or not allowed); events
// of other names are not checked. want lists event names that must have
// been recorded.
func (p *Providers) CheckEvents(t testing.TB, specs []Instrument, want ...string) {
	t.Helper()
	seen := map[string]bool{}
	for _, s := range p.Spans.Ended() {
		for _, e := range s.Events() {
			i := slices.IndexFunc(specs, func(sp Instrument) bool { return sp.Name == e.Name })
			if i < 0 {
				continue
			}
			seen[e.Name] = true
			checkAttrs(t, "event "+e.Name, attribute.NewSet(e.Attributes...), specs[i].Required, specs[i].Optional)
		}
	}
	for _, name := range want {
		if !seen[name] {
			t.Errorf("event %q was not recorded", name)
		}
	}
}

// AttributeValues returns the string values that key takes in the data
// points of one collection, of every metric: the series a package still
// reports, by name.
func (p *Providers) AttributeValues(t testing.TB, key attribute.Key) map[string]bool {
	t.Helper()
	values := map[string]bool{}
	for _, sm := range p.Collect(t).ScopeMetrics {
		for _, m := range sm.Metrics {
			for _, set := range AttributeSets(m) {
				if v, ok := set.Value(key); ok {
					values[v.AsString()] = true
				}
			}
		}
	}
	return values
}

// NameMatches reports whether name matches pattern, in which a part in
// braces stands for any text without a space.
func NameMatches(pattern, name string) bool {
	return namePattern(pattern).MatchString(name)
}

var (
	braces       = regexp.MustCompile(`\{[^}]*\}`)
	quotedBraces = regexp.MustCompile(`\\\{[^}]*\\\}`)
)

func namePattern(pattern string) *regexp.Regexp {
	return regexp.MustCompile("^" + quotedBraces.ReplaceAllString(regexp.QuoteMeta(pattern), `[^ ]+`) + "$")
}

func checkAttrs(t testing.TB, what string, set attribute.Set, required, optional []attribute.Key) {
	t.Helper()
	for _, k := range required {
		if !set.HasValue(k) {
			t.Errorf("%s: attribute %q missing (has %v)", what, k, keys(set))
		}
	}
	for _, kv := range set.ToSlice() {
		if !slices.Contains(required, kv.Key) && !slices.Contains(optional, kv.Key) {
			t.Errorf("%s: attribute %s=%s is not documented", what, kv.Key, kv.Value.String())
		}
	}
}

func keys(set attribute.Set) []attribute.Key {
	var out []attribute.Key
	for _, kv := range set.ToSlice() {
		out = append(out, kv.Key)
	}
	return out
}

func describe(data metricdata.Aggregation) (Kind, []attribute.Set) {
	var sets []attribute.Set
	switch d := data.(type) {
	case metricdata.Sum[int64]:
		for _, dp := range d.DataPoints {
			sets = append(sets, dp.Attributes)
		}
		if !d.IsMonotonic {
			return UpDownCounter, sets
		}
		return Counter, sets
	case metricdata.Sum[float64]:
		for _, dp := range d.DataPoints {
			sets = append(sets, dp.Attributes)
		}
		if !d.IsMonotonic {
			return UpDownCounter, sets
		}
		return Counter, sets
	case metricdata.Histogram[float64]:
		for _, dp := range d.DataPoints {
			sets = append(sets, dp.Attributes)
		}
		return Histogram, sets
	case metricdata.Histogram[int64]:
		for _, dp := range d.DataPoints {
			sets = append(sets, dp.Attributes)
		}
		return Histogram, sets
	case metricdata.Gauge[int64]:
		for _, dp := range d.DataPoints {
			sets = append(sets, dp.Attributes)
		}
		return Gauge, sets
	case metricdata.Gauge[float64]:
		for _, dp := range d.DataPoints {
			sets = append(sets, dp.Attributes)
		}
		return Gauge, sets
	}
	return 0, nil
}

// MaxDocWidth is the widest line, in characters with a tab as four, that a
// doc comment may have: pkg.go.dev shows code blocks without wrapping
// them, in a column about this wide, and cuts off the rest.
const MaxDocWidth = 80

// CheckDoc fails the test when the package documentation in the file at
// path (its doc.go) leaves out the name of a metric or span of specs or
// one of their attribute keys, or has a line wider than [MaxDocWidth].
// A span name's braced parts are left out of the search ("publish
// {topic}" needs "publish" in the doc).
func CheckDoc(t testing.TB, path string, metrics []Instrument, spans []Span) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	doc := string(b)
	sc := bufio.NewScanner(strings.NewReader(doc))
	for n := 1; sc.Scan(); n++ {
		line := strings.ReplaceAll(sc.Text(), "\t", "    ")
		if w := len([]rune(line)); w > MaxDocWidth {
			t.Errorf("%s:%d: line is %d characters wide; pkg.go.dev shows %d: %s", path, n, w, MaxDocWidth, sc.Text())
		}
	}
	mention := func(what, s string) {
		if !strings.Contains(doc, s) {
			t.Errorf("%s: %s %q is not documented", path, what, s)
		}
	}
	for _, m := range metrics {
		mention("metric", m.Name)
		for _, k := range append(slices.Clone(m.Required), m.Optional...) {
			mention("attribute", string(k))
		}
	}
	for _, s := range spans {
		for _, part := range braces.Split(s.Name, -1) {
			if part = strings.TrimSpace(part); part != "" {
				mention("span", part)
			}
		}
		for _, k := range append(slices.Clone(s.Required), s.Optional...) {
			mention("attribute", string(k))
		}
	}
}

// AttributeSets returns the attribute sets of m's data points.
func AttributeSets(m metricdata.Metrics) []attribute.Set {
	_, sets := describe(m.Data)
	return sets
}
