package patterns_test

// This file keeps TELEMETRY.md, the library's one telemetry reference,
// true: the reference is generated from the "# Telemetry" section of each
// package's doc.go, and the test fails when the file differs from what
// the docs generate now (go test -run TestTelemetryReference -update
// rewrites it). It also holds the docs to the code: the metrics each
// package registers, as its source says, must be in its doc with the
// same instrument kind and unit, and its exported attribute keys and
// span, event and metric names must appear in its doc.

import (
	"bytes"
	"flag"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/semconv/v1.40.0/dbconv"
	"go.opentelemetry.io/otel/semconv/v1.40.0/httpconv"
	"go.opentelemetry.io/otel/semconv/v1.40.0/messagingconv"
)

var update = flag.Bool("update", false, "rewrite TELEMETRY.md from the packages' doc.go")

// modulePath prefixes the package directories in the reference.
const modulePath = "github.com/otelpatterns/patterns"

// referencePackages are the packages whose telemetry the reference lists,
// in the order it lists them: the resilience patterns, then the event
// store, the buses and the saga, then the gateway's, then hexagonal.
var referencePackages = []string{
	"circuitbreaker",
	"retry",
	"cache",
	"cache/rediscache",
	"eventsource",
	"eventsource/pgstore",
	"cqrs",
	"cqrs/natsbus",
	"cqrs/kafkabus",
	"cqrs/pgcheckpoint",
	"saga",
	"saga/pglog",
	"gateway",
	"gateway/auth",
	"gateway/ratelimit",
	"gateway/aggregate",
	"gateway/strangler",
	"gateway/strangler/pgcdc",
	"hexagonal",
}

// semconvPrefixes are the namespaces of the semantic conventions'
// attributes that the docs name; with the attribute keys the library's
// source declares, they tell an attribute from the other dotted words of
// a doc (metric names, error types such as circuitbreaker.open).
var semconvPrefixes = []string{
	"error.", "exception.", "http.", "url.", "server.", "client.",
	"network.", "user_agent.", "db.", "messaging.",
}

// semconvMetrics are the instruments that the library records through
// the semantic conventions' generated types (or, for HTTP, through
// otelhttp), whose names and units its source does not spell: a doc may
// list them without the scan of the source finding them.
var semconvMetrics = map[string]instrument{
	dbconv.ClientOperationDuration{}.Name():        {"histogram", dbconv.ClientOperationDuration{}.Unit()},
	messagingconv.ClientOperationDuration{}.Name(): {"histogram", messagingconv.ClientOperationDuration{}.Unit()},
	messagingconv.ClientSentMessages{}.Name():      {"counter", messagingconv.ClientSentMessages{}.Unit()},
	messagingconv.ClientConsumedMessages{}.Name():  {"counter", messagingconv.ClientConsumedMessages{}.Unit()},
	messagingconv.ProcessDuration{}.Name():         {"histogram", messagingconv.ProcessDuration{}.Unit()},
	httpconv.ServerRequestDuration{}.Name():        {"histogram", httpconv.ServerRequestDuration{}.Unit()},
	httpconv.ServerRequestBodySize{}.Name():        {"histogram", httpconv.ServerRequestBodySize{}.Unit()},
	httpconv.ServerResponseBodySize{}.Name():       {"histogram", httpconv.ServerResponseBodySize{}.Unit()},
	httpconv.ClientRequestDuration{}.Name():        {"histogram", httpconv.ClientRequestDuration{}.Unit()},
	httpconv.ClientRequestBodySize{}.Name():        {"histogram", httpconv.ClientRequestBodySize{}.Unit()},
}

// instrument is a metric's kind and unit.
type instrument struct {
	kind, unit string
}

// docMetric is a metric as a doc lists it.
type docMetric struct {
	name string
	instrument
	attrs []string
}

// docSpan is a span or span event as a doc lists it.
type docSpan struct {
	name, kind string
	attrs      []string
}

// docSection is the telemetry of one package, read from its doc.go.
type docSection struct {
	pkg     string
	scope   string   // the ScopeName constant's value; empty without one
	text    []string // the section's lines, the "# Telemetry" heading left out
	metrics []docMetric
	spans   []docSpan
	events  []docSpan
	attrs   []string // every attribute key the section names
}

var (
	metricBullet = regexp.MustCompile(`^([a-z0-9_.]+) \((counter|gauge|histogram|updowncounter|up-down counter), ([^)]+)\)`)
	spanBullet   = regexp.MustCompile(`^(.+?) \((internal|server|client|producer|consumer)\)`)
	quotedBullet = regexp.MustCompile(`^"([^"]+)"`)
	dbSpanName   = regexp.MustCompile(`^(?:[a-z_]+|BATCH) \{[a-z]+\}(?:\.[a-z_]+|\|\{[a-z]+\})$`)
	dottedWord   = regexp.MustCompile(`[a-z][a-z0-9_]*(?:\.[a-z0-9_]+)+`)
	eventHead    = regexp.MustCompile(`^(?:event )?([a-z][a-z0-9_]*(?:\.[a-z0-9_]+)+)[:,]`)
	childSpans   = regexp.MustCompile(`children "([^"]+)"(?: and "([^"]+)")? \((internal|server|client|producer|consumer)([^)]*)\)`)
	proseSpan    = regexp.MustCompile(`span (?:of kind (internal|server|client|producer|consumer), )?"([^"]+)"`)
	noneFor      = regexp.MustCompile(`none\s+for\s+([^.;]+)`)
	docLink      = regexp.MustCompile(`\[([A-Za-z0-9_.*/]+)\]`)
)

// TestTelemetryReference regenerates TELEMETRY.md from the doc.go files
// and fails if the file on disk differs.
func TestTelemetryReference(t *testing.T) {
	vocab := attributeVocabulary(t)
	var sections []docSection
	for _, pkg := range referencePackages {
		sections = append(sections, readSection(t, pkg, vocab))
	}
	got := renderReference(sections)
	if *update {
		if err := os.WriteFile("TELEMETRY.md", got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile("TELEMETRY.md")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		g, w := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
		i := 0
		for i < len(g) && i < len(w) && g[i] == w[i] {
			i++
		}
		line := func(s []string) string {
			if i < len(s) {
				return s[i]
			}
			return "(end of file)"
		}
		t.Errorf("TELEMETRY.md is not what the packages' doc.go generate; run go test -run TestTelemetryReference -update . and commit it\nline %d: generated %q\n         on disk   %q", i+1, line(g), line(w))
	}
}

// TestTelemetryDocsMatchCode holds each package's telemetry section to
// its source: every metric the package (or an internal package it
// imports) registers under a name its source spells is in the section,
// with the same kind and unit; every metric the section lists is one
// that the library registers or a semantic-convention instrument; every
// exported attribute key and span, event and metric name constant
// appears in the section.
func TestTelemetryDocsMatchCode(t *testing.T) {
	vocab := attributeVocabulary(t)
	all := map[string]instrument{} // every metric the library's source registers
	for _, dir := range libraryDirs(t) {
		for name, in := range scanPackage(t, dir).metrics {
			all[name] = in
		}
	}
	for _, pkg := range referencePackages {
		t.Run(pkg, func(t *testing.T) {
			sec := readSection(t, pkg, vocab)
			documented := map[string]instrument{}
			for _, m := range sec.metrics {
				documented[m.name] = m.instrument
			}
			src := scanPackage(t, pkg)
			registered := maps.Clone(src.metrics)
			for _, imp := range src.internalImports {
				for name, in := range scanPackage(t, imp).metrics {
					registered[name] = in
				}
			}
			t.Logf("%s: %d metrics documented, %d registered under names its source spells", pkg, len(documented), len(registered))
			for name, in := range registered {
				doc, ok := documented[name]
				switch {
				case !ok:
					t.Errorf("%s registers metric %s (%s, %s), which its doc.go does not list", pkg, name, in.kind, in.unit)
				case doc != in:
					t.Errorf("metric %s: doc.go says (%s, %s), the source registers (%s, %s)", name, doc.kind, doc.unit, in.kind, in.unit)
				}
			}
			for name, doc := range documented {
				in, ok := all[name]
				if !ok {
					in, ok = semconvMetrics[name]
				}
				switch {
				case !ok:
					t.Errorf("%s's doc.go lists metric %s, which nothing in the library registers", pkg, name)
				case doc != in:
					t.Errorf("metric %s: %s's doc.go says (%s, %s), the instrument is (%s, %s)", name, pkg, doc.kind, doc.unit, in.kind, in.unit)
				}
			}
			text := strings.Join(sec.text, " ")
			for name, value := range src.exported {
				if !strings.Contains(text, value) {
					t.Errorf("%s.%s = %q is not in the package's telemetry documentation", pkg, name, value)
				}
			}
		})
	}
}

// TestTelemetryParserFindsEnough fails if the parsing of the docs has
// quietly stopped finding what they list, as a change of their layout
// would make it: the reference would then be emptier, yet in sync.
func TestTelemetryParserFindsEnough(t *testing.T) {
	vocab := attributeVocabulary(t)
	sec := readSection(t, "circuitbreaker", vocab)
	names := []string{}
	for _, m := range sec.metrics {
		names = append(names, m.name)
		if m.name == "circuitbreaker.calls" && !slices.Contains(m.attrs, "circuitbreaker.outcome") {
			t.Errorf("circuitbreaker.calls: attributes %v, want circuitbreaker.outcome among them", m.attrs)
		}
		if !slices.Contains(m.attrs, "circuitbreaker.name") {
			t.Errorf("%s: attributes %v, want circuitbreaker.name, which every data point carries", m.name, m.attrs)
		}
	}
	if len(names) != 4 {
		t.Errorf("circuitbreaker metrics parsed: %v, want 4", names)
	}
	if len(sec.events) != 2 {
		t.Errorf("circuitbreaker events parsed: %v, want 2", sec.events)
	}
	sec = readSection(t, "eventsource/pgstore", vocab)
	found := 0
	for _, s := range sec.spans {
		switch s.name {
		case "BATCH {schema}.events":
			found++
			if s.kind != "client" || !slices.Contains(s.attrs, "db.system.name") || !slices.Contains(s.attrs, "db.collection.name") {
				t.Errorf("pgstore's BATCH span parsed as %+v, want a client span with db.system.name and db.collection.name", s)
			}
		case "notify {database}|{schema}":
			found++
			if slices.Contains(s.attrs, "db.collection.name") {
				t.Errorf("pgstore's notify span parsed as %+v; its doc says it has no db.collection.name", s)
			}
		}
	}
	if found != 2 {
		t.Errorf("pgstore's BATCH and notify spans not parsed; spans: %v", sec.spans)
	}
}

// readSection reads the "# Telemetry" section of pkg's doc.go.
func readSection(t *testing.T, pkg string, vocab map[string]bool) docSection {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(pkg, "doc.go"))
	if err != nil {
		t.Fatal(err)
	}
	sec := docSection{pkg: pkg, scope: scanPackage(t, pkg).scope}
	in := false
	for line := range strings.SplitSeq(string(b), "\n") {
		if !strings.HasPrefix(line, "//") {
			if in {
				break // the package clause ends the doc comment
			}
			continue
		}
		line = strings.TrimPrefix(strings.TrimPrefix(line, "//"), " ")
		if strings.HasPrefix(line, "# ") {
			if in {
				break
			}
			in = line == "# Telemetry"
			continue
		}
		if in {
			sec.text = append(sec.text, line)
		}
	}
	for len(sec.text) > 0 && strings.TrimSpace(sec.text[0]) == "" {
		sec.text = sec.text[1:]
	}
	if len(sec.text) == 0 {
		t.Fatalf("%s/doc.go has no # Telemetry section", pkg)
	}
	parseSection(&sec, vocab)
	return sec
}

// parseSection fills the metrics, spans, events and attributes of sec
// from its text: the bullets of its lists, read in the context of the
// paragraph before each list.
func parseSection(sec *docSection, vocab map[string]bool) {
	var (
		lead       string                  // the paragraph before the current list
		para       []string                // the paragraph being read
		paras      []string                // the paragraphs read
		carriedAll []string                // "Every data point carries ..."
		spanAttrs  []string                // attributes of a list of "name: value" bullets
		notFor     = map[string][]string{} // by operation, the spanAttrs its spans lack
		bullets    []struct{ lead, text string }
	)
	flush := func() {
		if len(para) > 0 {
			lead = strings.Join(para, " ")
			paras = append(paras, lead)
			para = nil
			if _, after, ok := strings.Cut(lead, "Every data point carries "); ok {
				sentence, _, _ := strings.Cut(after, ". ")
				carriedAll = append(carriedAll, attributesIn(sentence, vocab, nil)...)
			}
		}
	}
	for _, line := range sec.text {
		switch {
		case strings.HasPrefix(line, "  - "):
			flush()
			bullets = append(bullets, struct{ lead, text string }{lead, strings.TrimPrefix(line, "  - ")})
		case strings.HasPrefix(line, "    ") && len(bullets) > 0 && len(para) == 0:
			bullets[len(bullets)-1].text += " " + strings.TrimSpace(line)
		case strings.TrimSpace(line) == "":
			flush()
		default:
			para = append(para, line)
		}
	}
	flush()
	isMetric := map[string]bool{}
	for _, b := range bullets {
		if m := metricBullet.FindStringSubmatch(b.text); m != nil {
			isMetric[m[1]] = true
		}
	}
	for name := range semconvMetrics {
		isMetric[name] = true
	}
	for _, b := range bullets {
		head, _, _ := strings.Cut(b.text, ":")
		names := splitNames(head)
		if len(names) > 0 && !slices.ContainsFunc(names, func(n string) bool { return len(attributesIn(n, vocab, isMetric)) != 1 || strings.Contains(n, " ") }) {
			spanAttrs = append(spanAttrs, attributesIn(b.text, vocab, isMetric)...)
			// "db.collection.name: ...; none for notify, listen and migrate."
			if m := noneFor.FindStringSubmatch(b.text); m != nil {
				for _, op := range splitNames(m[1]) {
					notFor[op] = append(notFor[op], names...)
				}
			}
		}
	}
	spanAttrs = sortedUnique(spanAttrs)
	byName := map[string]*docMetric{}
	var refs [][2]string // a metric and the metric whose attributes it has
	for _, b := range bullets {
		text := b.text
		if m := metricBullet.FindStringSubmatch(text); m != nil {
			kind := m[2]
			if kind == "up-down counter" {
				kind = "updowncounter"
			}
			dm := docMetric{name: m[1], instrument: instrument{kind, m[3]}}
			rest := text[len(m[0]):]
			if strings.Contains(rest, "span's attributes") {
				// "with the span's attributes but a, b: c and d": the
				// section's span attributes less those after "but".
				dm.attrs = append(dm.attrs, spanAttrs...)
				after := rest[strings.Index(rest, "span's attributes")+len("span's attributes"):]
				if but, ok := strings.CutPrefix(strings.TrimSpace(after), "but "); ok {
					excluded, added, _ := strings.Cut(but, ":")
					for _, a := range attributesIn(excluded, vocab, isMetric) {
						dm.attrs = slices.DeleteFunc(dm.attrs, func(s string) bool { return s == a })
					}
					dm.attrs = append(dm.attrs, attributesIn(added, vocab, isMetric)...)
				} else {
					dm.attrs = append(dm.attrs, attributesIn(after, vocab, isMetric)...)
				}
			} else {
				dm.attrs = append(dm.attrs, attributesIn(rest, vocab, isMetric)...)
			}
			if strings.Contains(rest, "the same attributes") && len(sec.metrics) > 0 {
				dm.attrs = append(dm.attrs, sec.metrics[len(sec.metrics)-1].attrs...)
			}
			if len(dm.attrs) == 0 && strings.Contains(b.lead, "Their attributes are") {
				dm.attrs = []string{asTheTextSays}
			}
			if _, after, ok := strings.Cut(rest, "attributes of "); ok {
				if ref := dottedWord.FindString(after); isMetric[ref] {
					refs = append(refs, [2]string{dm.name, ref})
				}
			}
			dm.attrs = append(dm.attrs, carriedAll...)
			sec.metrics = append(sec.metrics, dm)
			continue
		}
		if strings.HasPrefix(b.lead, "Span events") {
			if m := eventHead.FindStringSubmatch(text); m != nil {
				sec.events = append(sec.events, docSpan{name: m[1], attrs: sortedUnique(attributesIn(text[len(m[0]):], vocab, isMetric))})
			}
			continue
		}
		if m := eventHead.FindStringSubmatch(text); m != nil && strings.HasPrefix(text, "event ") {
			sec.events = append(sec.events, docSpan{name: m[1], attrs: sortedUnique(attributesIn(text[len(m[0]):], vocab, isMetric))})
			continue
		}
		if m := spanBullet.FindStringSubmatch(text); m != nil && !strings.Contains(m[1], ":") {
			rest := text[len(m[0]):]
			child := childSpans.FindStringSubmatchIndex(rest)
			own := rest
			if child != nil {
				own = rest[:child[0]]
			}
			attrs := sortedUnique(attributesIn(own, vocab, isMetric))
			for _, name := range splitNames(m[1]) {
				sec.spans = append(sec.spans, docSpan{name: strings.Trim(name, `"`), kind: m[2], attrs: attrs})
			}
			if child != nil {
				c := childSpans.FindStringSubmatch(rest)
				attrs := sortedUnique(attributesIn(c[4], vocab, isMetric))
				for _, name := range []string{c[1], c[2]} {
					if name != "" {
						sec.spans = append(sec.spans, docSpan{name: name, kind: c[3], attrs: attrs})
					}
				}
			}
			continue
		}
		if m := quotedBullet.FindStringSubmatch(text); m != nil {
			sec.spans = append(sec.spans, docSpan{name: m[1], kind: "see below", attrs: sortedUnique(attributesIn(text[len(m[0]):], vocab, isMetric))})
			continue
		}
		head := text
		if i := strings.IndexAny(head, ":"); i >= 0 {
			head = head[:i]
		}
		head, _, _ = strings.Cut(head, ", with ")
		names := splitNames(head)
		if len(names) > 0 && !slices.ContainsFunc(names, func(n string) bool { return !dbSpanName.MatchString(n) }) {
			attrs := sortedUnique(append(attributesIn(text[len(head):], vocab, isMetric), spanAttrs...))
			for _, name := range names {
				op, _, _ := strings.Cut(name, " ")
				own := slices.DeleteFunc(slices.Clone(attrs), func(a string) bool { return slices.Contains(notFor[op], a) })
				sec.spans = append(sec.spans, docSpan{name: name, kind: "client", attrs: own})
			}
		}
	}
	for _, p := range paras {
		m := proseSpan.FindStringSubmatch(p)
		if m == nil {
			continue
		}
		kind := m[1]
		if kind == "" {
			kind = "internal"
		}
		attrs := attributesIn(p, vocab, isMetric)
		for _, b := range bullets {
			if b.lead == p {
				attrs = append(attrs, attributesIn(b.text, vocab, isMetric)...)
			}
		}
		sec.spans = append(sec.spans, docSpan{name: m[2], kind: kind, attrs: sortedUnique(attrs)})
	}
	for i := range sec.metrics {
		byName[sec.metrics[i].name] = &sec.metrics[i]
	}
	for _, r := range refs {
		if ref, ok := byName[r[1]]; ok {
			byName[r[0]].attrs = append(byName[r[0]].attrs, ref.attrs...)
		}
	}
	for i := range sec.metrics {
		sec.metrics[i].attrs = sortedUnique(sec.metrics[i].attrs)
	}
	sec.attrs = sortedUnique(attributesIn(strings.Join(sec.text, " "), vocab, isMetric))
}

// splitNames splits "a, b and c" into its names.
func splitNames(s string) []string {
	var out []string
	for part := range strings.SplitSeq(s, ", ") {
		for name := range strings.SplitSeq(part, " and ") {
			if name = strings.TrimSpace(name); name != "" {
				out = append(out, name)
			}
		}
	}
	return out
}

// attributesIn returns the attribute keys that text names, in order.
func attributesIn(text string, vocab, metrics map[string]bool) []string {
	var out []string
	prevEnd := -10
	for _, loc := range dottedWord.FindAllStringIndex(text, -1) {
		w := text[loc[0]:loc[1]]
		afterKey := loc[0] == prevEnd+1 && text[prevEnd] == ' '
		prevEnd = loc[1]
		if afterKey {
			continue // a value, as in "retry.name saga.step"
		}
		if vocab[w] {
			out = append(out, w) // a declared key, even if a metric has its name
			continue
		}
		if metrics[w] {
			continue
		}
		if slices.ContainsFunc(semconvPrefixes, func(p string) bool { return strings.HasPrefix(w, p) }) {
			out = append(out, w)
		}
	}
	return out
}

func sortedUnique(s []string) []string {
	s = slices.Clone(s)
	sort.Strings(s)
	return slices.Compact(s)
}

// renderReference writes the reference in Markdown.
func renderReference(sections []docSection) []byte {
	var b bytes.Buffer
	b.WriteString(`# Telemetry reference

<!-- Generated from the "# Telemetry" section of each package's doc.go by
telemetry_ref_test.go; do not edit. After changing a doc.go, run
go test -run TestTelemetryReference -update . -->

Every span, span event, metric and attribute that the library's packages
record, by package. For each package: the instrumentation scope, tables
of what its documentation lists (metric names, instrument kinds and
units, and the attributes each mentions; spans with their kind; span
events), every attribute key the section names, and then the section
itself, which says when each is recorded and what its values are. The
tables are read from the documentation's lists; a span or attribute that
the documentation names only in its prose is in the prose below the
tables, not in them.

Every package takes its providers from its WithTracerProvider and
WithMeterProvider options, the global ones by default, and records a
failure as status Error with error.type. Kinds are OpenTelemetry's:
counter and updowncounter (synchronous or observable), histogram, gauge.
Through the Prometheus exporter (go.opentelemetry.io/otel/exporters/prometheus,
default options) dots become underscores, counters end in _total and the
unit adds a suffix: circuitbreaker.calls is circuitbreaker_calls_total,
cache.load.duration is cache_load_duration_seconds.

`)
	for _, s := range sections {
		fmt.Fprintf(&b, "- [`%s`](#%s)\n", s.pkg, anchor(s.pkg))
	}
	for _, s := range sections {
		fmt.Fprintf(&b, "\n## %s\n\n", s.pkg)
		if s.scope != "" {
			fmt.Fprintf(&b, "Scope: `%s`. Documentation: [`%s/doc.go`](%s/doc.go).\n\n", s.scope, s.pkg, s.pkg)
		} else {
			fmt.Fprintf(&b, "Documentation: [`%s/doc.go`](%s/doc.go).\n\n", s.pkg, s.pkg)
		}
		if len(s.metrics) > 0 {
			b.WriteString("| metric | instrument | unit | attributes |\n| --- | --- | --- | --- |\n")
			for _, m := range s.metrics {
				fmt.Fprintf(&b, "| `%s` | %s | `%s` | %s |\n", m.name, m.kind, m.unit, codeList(m.attrs))
			}
			b.WriteString("\n")
		}
		if len(s.spans) > 0 {
			b.WriteString("| span | kind | attributes |\n| --- | --- | --- |\n")
			for _, sp := range s.spans {
				fmt.Fprintf(&b, "| `%s` | %s | %s |\n", cell(sp.name), sp.kind, codeList(sp.attrs))
			}
			b.WriteString("\n")
		}
		if len(s.events) > 0 {
			b.WriteString("| span event | attributes |\n| --- | --- |\n")
			for _, e := range s.events {
				fmt.Fprintf(&b, "| `%s` | %s |\n", e.name, codeList(e.attrs))
			}
			b.WriteString("\n")
		}
		if len(s.attrs) > 0 {
			fmt.Fprintf(&b, "Attributes named: %s.\n\n", codeList(s.attrs))
		}
		b.WriteString("<details><summary>The package's documentation</summary>\n\n")
		for _, line := range s.text {
			line = strings.NewReplacer("*", `\*`, "<", "&lt;", ">", "&gt;").Replace(line)
			fmt.Fprintf(&b, "%s\n", strings.TrimRight(docLink.ReplaceAllString(line, "`$1`"), " "))
		}
		b.WriteString("\n</details>\n")
	}
	return bytes.ReplaceAll(b.Bytes(), []byte("\n\n\n"), []byte("\n\n"))
}

// cell escapes the pipes of a table cell, which split cells even in code.
func cell(s string) string { return strings.ReplaceAll(s, "|", `\|`) }

// asTheTextSays stands for the attributes of metrics that a doc lists
// before the list, for several metrics at once.
const asTheTextSays = "(as the text says)"

func codeList(s []string) string {
	if len(s) == 0 {
		return "—"
	}
	if len(s) == 1 && s[0] == asTheTextSays {
		return "as the documentation below says"
	}
	out := make([]string, len(s))
	for i, v := range s {
		out[i] = "`" + v + "`"
	}
	return strings.Join(out, ", ")
}

// anchor is GitHub's heading anchor for a package path.
func anchor(pkg string) string {
	return strings.NewReplacer("/", "").Replace(pkg)
}

// sourceScan is what a package's non-test source declares.
type sourceScan struct {
	scope           string
	metrics         map[string]instrument // registered under names the source spells
	exported        map[string]string     // exported Attr*, Span*, Event*, Metric* constants
	attrKeys        []string              // every attribute.Key("...") literal
	internalImports []string              // the internal packages whose New it calls
	consts          map[string]string     // every string constant, for other packages' lookups
}

var scanCache = map[string]sourceScan{}

// scanPackage reads the non-test Go files of the package in dir.
func scanPackage(t *testing.T, dir string) sourceScan {
	t.Helper()
	if s, ok := scanCache[dir]; ok {
		return s
	}
	fset := token.NewFileSet()
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	var parsed []*ast.File
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		af, err := parser.ParseFile(fset, f, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		parsed = append(parsed, af)
	}
	s := sourceScan{metrics: map[string]instrument{}, exported: map[string]string{}}
	consts := map[string]string{} // the package's string constants
	imports := map[string]string{}
	for _, f := range parsed {
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			if rel, ok := strings.CutPrefix(path, modulePath+"/"); ok && strings.HasPrefix(rel, "internal/") {
				name := filepath.Base(rel)
				if imp.Name != nil {
					name = imp.Name.Name
				}
				imports[name] = rel
			}
		}
		for _, d := range f.Decls {
			gd, ok := d.(*ast.GenDecl)
			if !ok || gd.Tok != token.CONST {
				continue
			}
			for _, spec := range gd.Specs {
				vs := spec.(*ast.ValueSpec)
				for i, n := range vs.Names {
					if i < len(vs.Values) {
						if v, ok := stringValue(vs.Values[i], consts, imports, t); ok {
							consts[n.Name] = v
							if n.IsExported() && (strings.HasPrefix(n.Name, "Attr") || strings.HasPrefix(n.Name, "Span") ||
								strings.HasPrefix(n.Name, "Event") || strings.HasPrefix(n.Name, "Metric")) {
								s.exported[n.Name] = v
							}
						}
					}
				}
			}
		}
	}
	s.scope = consts["ScopeName"]
	s.consts = consts
	instrumentCall := regexp.MustCompile(`^(Int64|Float64)(Observable)?(Counter|UpDownCounter|Histogram|Gauge)$`)
	for _, f := range parsed {
		ast.Inspect(f, func(n ast.Node) bool {
			// An internal package registers its instruments in its New:
			// they are the package's when it calls that.
			if sel, ok := n.(*ast.SelectorExpr); ok && sel.Sel.Name == "New" {
				if x, ok := sel.X.(*ast.Ident); ok {
					if rel, ok := imports[x.Name]; ok && !slices.Contains(s.internalImports, rel) {
						s.internalImports = append(s.internalImports, rel)
					}
				}
			}
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			if x, ok := sel.X.(*ast.Ident); ok && x.Name == "attribute" && sel.Sel.Name == "Key" && len(call.Args) == 1 {
				if v, ok := stringValue(call.Args[0], consts, imports, t); ok {
					s.attrKeys = append(s.attrKeys, v)
				}
			}
			m := instrumentCall.FindStringSubmatch(sel.Sel.Name)
			if m == nil {
				return true
			}
			args := call.Args
			if x, ok := sel.X.(*ast.Ident); ok && x.Name == "telemetry" {
				args = args[1:] // telemetry.Int64ObservableCounter(meter, name, ...)
			}
			if len(args) == 0 {
				return true
			}
			name, ok := stringValue(args[0], consts, imports, t)
			if !ok {
				return true // a name from the semantic conventions' types
			}
			kind := map[string]string{"Counter": "counter", "UpDownCounter": "updowncounter", "Histogram": "histogram", "Gauge": "gauge"}[m[3]]
			unit := ""
			for _, a := range args[1:] {
				if c, ok := a.(*ast.CallExpr); ok {
					if fs, ok := c.Fun.(*ast.SelectorExpr); ok && fs.Sel.Name == "WithUnit" && len(c.Args) == 1 {
						unit, _ = stringValue(c.Args[0], consts, imports, t)
					}
				}
			}
			s.metrics[name] = instrument{kind, unit}
			return true
		})
	}
	scanCache[dir] = s
	return s
}

// stringValue is the value of a string literal, of a constant of the
// package, or of a constant of an internal package it imports.
func stringValue(e ast.Expr, consts, imports map[string]string, t *testing.T) (string, bool) {
	switch e := e.(type) {
	case *ast.BasicLit:
		if e.Kind == token.STRING {
			v, err := strconv.Unquote(e.Value)
			return v, err == nil
		}
	case *ast.Ident:
		v, ok := consts[e.Name]
		return v, ok
	case *ast.CallExpr: // attribute.Key("...")
		if sel, ok := e.Fun.(*ast.SelectorExpr); ok && sel.Sel.Name == "Key" && len(e.Args) == 1 {
			return stringValue(e.Args[0], consts, imports, t)
		}
	case *ast.SelectorExpr:
		if x, ok := e.X.(*ast.Ident); ok {
			if dir, ok := imports[x.Name]; ok {
				v, ok := scanPackage(t, dir).consts[e.Sel.Name]
				return v, ok
			}
		}
	}
	return "", false
}

// libraryDirs are the directories of the library's non-example, non-test
// Go packages.
func libraryDirs(t *testing.T) []string {
	t.Helper()
	var dirs []string
	err := filepath.WalkDir(".", func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path != "." && (strings.HasPrefix(d.Name(), ".") || d.Name() == "examples" || d.Name() == "benchmarks" || d.Name() == "testdata") {
				return filepath.SkipDir
			}
			if _, err := os.Stat(filepath.Join(path, "go.mod")); err == nil && path != "." {
				return filepath.SkipDir // a module of its own (deploy's tools), not the library
			}
			if m, _ := filepath.Glob(filepath.Join(path, "*.go")); len(m) > 0 {
				dirs = append(dirs, path)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return dirs
}

// attributeVocabulary is every attribute key the library's source
// declares with attribute.Key.
func attributeVocabulary(t *testing.T) map[string]bool {
	t.Helper()
	vocab := map[string]bool{}
	for _, dir := range libraryDirs(t) {
		for _, k := range scanPackage(t, dir).attrKeys {
			vocab[k] = true
		}
	}
	return vocab
}
