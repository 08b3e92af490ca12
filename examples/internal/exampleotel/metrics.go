package exampleotel

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"slices"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

// libraryScope is the prefix of the library's instrumentation scopes.
const libraryScope = "github.com/otelpatterns/patterns"

// maxMetricLines is how many metrics PrintMetrics summarises when it is
// not given their names.
const maxMetricLines = 6

// PrintMetrics writes a line per metric of the library recorded so far:
// for a counter its total, split by the attribute values that differ
// between its series (the four largest); for a histogram how many values,
// their mean and the largest; for a gauge its values other than zero. With
// names, only those metrics, in that order; without, the first few that
// the library's packages recorded. Each line starts with indent.
func (p *Providers) PrintMetrics(ctx context.Context, w io.Writer, indent string, names ...string) error {
	var rm metricdata.ResourceMetrics
	if err := p.reader.Collect(ctx, &rm); err != nil {
		return fmt.Errorf("reading the metrics: %w", err)
	}
	var ms []metricdata.Metrics
	for _, sm := range rm.ScopeMetrics {
		if strings.HasPrefix(sm.Scope.Name, libraryScope) {
			ms = append(ms, sm.Metrics...)
		}
	}
	if len(names) > 0 {
		var picked []metricdata.Metrics
		for _, name := range names {
			for _, m := range ms {
				if m.Name == name {
					picked = append(picked, m)
				}
			}
		}
		ms = picked
	}
	left := 0
	if len(names) == 0 && len(ms) > maxMetricLines {
		left = len(ms) - maxMetricLines
		ms = ms[:maxMetricLines]
	}
	for _, m := range ms {
		fmt.Fprintf(w, "%s%s: %s\n", indent, m.Name, summarise(m))
	}
	if left > 0 {
		fmt.Fprintf(w, "%s(and %d more metrics: -telemetry=json prints them all)\n", indent, left)
	}
	return nil
}

// summarise returns the summary of one metric.
func summarise(m metricdata.Metrics) string {
	unit := m.Unit
	if unit == "1" || strings.HasPrefix(unit, "{") {
		unit = ""
	}
	switch d := m.Data.(type) {
	case metricdata.Sum[int64]:
		return sumOf(m.Name, d.DataPoints, unit)
	case metricdata.Sum[float64]:
		return sumOf(m.Name, d.DataPoints, unit)
	case metricdata.Gauge[int64]:
		return gaugeOf(m.Name, d.DataPoints, unit)
	case metricdata.Gauge[float64]:
		return gaugeOf(m.Name, d.DataPoints, unit)
	case metricdata.Histogram[int64]:
		return histogramOf(d.DataPoints, unit)
	case metricdata.Histogram[float64]:
		return histogramOf(d.DataPoints, unit)
	}
	return fmt.Sprintf("(%T)", m.Data)
}

// series is one data point's value and the attributes that tell it from
// the metric's other data points.
type series[N int64 | float64] struct {
	label string
	value N
}

// distinct returns, for each set, the attributes whose values are not the
// same in all sets, as key=value, the keys without the metric's namespace
// (the part of name before its first dot).
func distinct(name string, sets []attribute.Set) []string {
	ns, _, _ := strings.Cut(name, ".")
	values := map[attribute.Key]map[string]bool{} // by key
	in := map[attribute.Key]int{}                 // the sets with the key
	for _, s := range sets {
		for _, kv := range s.ToSlice() {
			if values[kv.Key] == nil {
				values[kv.Key] = map[string]bool{}
			}
			values[kv.Key][kv.Value.String()] = true
			in[kv.Key]++
		}
	}
	labels := make([]string, len(sets))
	for i, s := range sets {
		var parts []string
		for _, kv := range s.ToSlice() {
			if len(values[kv.Key]) > 1 || in[kv.Key] < len(sets) {
				parts = append(parts, fmt.Sprintf("%s=%s", strings.TrimPrefix(string(kv.Key), ns+"."), kv.Value.String()))
			}
		}
		labels[i] = strings.Join(parts, ",")
	}
	return labels
}

func sumOf[N int64 | float64](name string, dps []metricdata.DataPoint[N], unit string) string {
	var total N
	sets := make([]attribute.Set, len(dps))
	for i, dp := range dps {
		total += dp.Value
		sets[i] = dp.Attributes
	}
	s := fmt.Sprintf("%v%s", total, unit)
	if len(dps) < 2 {
		return s
	}
	ss := make([]series[N], len(dps))
	for i, l := range distinct(name, sets) {
		ss[i] = series[N]{label: l, value: dps[i].Value}
	}
	slices.SortStableFunc(ss, func(a, b series[N]) int { return cmp.Compare(b.value, a.value) })
	var parts []string
	for i, x := range ss {
		if i == 4 {
			parts = append(parts, fmt.Sprintf("%d more", len(ss)-i))
			break
		}
		parts = append(parts, fmt.Sprintf("%s: %v", x.label, x.value))
	}
	return s + " (" + strings.Join(parts, "; ") + ")"
}

func gaugeOf[N int64 | float64](name string, dps []metricdata.DataPoint[N], unit string) string {
	sets := make([]attribute.Set, len(dps))
	for i, dp := range dps {
		sets[i] = dp.Attributes
	}
	labels := distinct(name, sets)
	var parts []string
	for i, dp := range dps {
		if dp.Value == 0 && len(dps) > 1 {
			continue // a state the gauge is not in, say
		}
		if len(parts) == 4 {
			parts = append(parts, "…")
			break
		}
		if labels[i] != "" {
			parts = append(parts, fmt.Sprintf("%s: %v%s", labels[i], dp.Value, unit))
		} else {
			parts = append(parts, fmt.Sprintf("%v%s", dp.Value, unit))
		}
	}
	return "now " + strings.Join(parts, "; ")
}

func histogramOf[N int64 | float64](dps []metricdata.HistogramDataPoint[N], unit string) string {
	var count uint64
	var sum N
	var maxV N
	hasMax := false
	for _, dp := range dps {
		count += dp.Count
		sum += dp.Sum
		if v, ok := dp.Max.Value(); ok && (!hasMax || v > maxV) {
			maxV, hasMax = v, true
		}
	}
	if count == 0 {
		return "no values"
	}
	s := fmt.Sprintf("%d values, mean %.3g%s", count, float64(sum)/float64(count), unit)
	if hasMax {
		s += fmt.Sprintf(", max %.3g%s", float64(maxV), unit)
	}
	return s
}
