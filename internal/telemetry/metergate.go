package telemetry

import (
	"reflect"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
)

// MeterGate tells a hot path when a count it keeps in memory for an
// observable instrument (see [Counter]) can never be read: when the meter
// provider is a no-op one, or is the global provider as it is before a
// provider is set, whose callbacks no reader calls. The count's atomic add
// is then skipped; on a cache hit it was as much as a tenth of the hit.
//
// Counts start when a provider is set: those the global provider's
// delegate reports once otel.SetMeterProvider installs one are of what
// happened since, which rates and increases do not tell apart from a
// count kept all along.
type MeterGate struct {
	noop bool
	// unsetGlobal is the global provider as it was when the gate was made,
	// if it was the one before any provider is set; see [SpanGate].
	unsetGlobal metric.MeterProvider
}

// NewMeterGate returns the gate of mp (nil: the global provider), the
// provider given to [Meter].
func NewMeterGate(mp metric.MeterProvider) MeterGate {
	var g MeterGate
	if mp != nil {
		_, g.noop = mp.(noop.MeterProvider)
		return g
	}
	// The global provider's own type, before a provider is set, is
	// unexported: told by its name. Another name only costs the counts.
	if p := otel.GetMeterProvider(); reflect.TypeOf(p).String() == "*global.meterProvider" {
		g.unsetGlobal = p
	}
	return g
}

// Skip reports whether a count made now would never be read.
func (g MeterGate) Skip() bool {
	return g.noop || g.unsetGlobal != nil && otel.GetMeterProvider() == g.unsetGlobal
}
