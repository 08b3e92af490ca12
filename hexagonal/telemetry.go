package hexagonal

import (
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
)

// ScopeName is the instrumentation scope name of the package's tracer and
// meter: its import path.
const ScopeName = "github.com/otelpatterns/patterns/hexagonal"

// Attribute keys the package records.
const (
	// AttrLayer is the architectural layer of a call made through
	// [Instrument]: one of the [Layer] names, such as "domain" or
	// "infrastructure".
	AttrLayer = attribute.Key("hexagonal.layer")
	// AttrPort is the port (or use case, or service) a call went through,
	// such as "OrderRepository".
	AttrPort = attribute.Key("hexagonal.port")
	// AttrOperation is the operation of the port, such as "Save".
	AttrOperation = attribute.Key("hexagonal.operation")
	// AttrOutcome is how a call ended: success, domain_error or error.
	AttrOutcome = attribute.Key("hexagonal.outcome")
	// AttrComponent is the name of an [App]'s component.
	AttrComponent = attribute.Key("hexagonal.component")
	// AttrCheck is the name of a health check.
	AttrCheck = attribute.Key("hexagonal.check")
	// AttrCheckKind is what a health check decides: liveness or
	// readiness.
	AttrCheckKind = attribute.Key("hexagonal.check.kind")
	// AttrCheckStatus is a health check's result: pass or fail.
	AttrCheckStatus = attribute.Key("hexagonal.check.status")
)

// The values of hexagonal.outcome.
const (
	outcomeSuccess = iota
	outcomeDomainError
	outcomeError
	numOutcomes
)

var outcomeNames = [numOutcomes]string{"success", "domain_error", "error"}

// Metric names.
const (
	metricCalls            = "hexagonal.calls"
	metricCallDuration     = "hexagonal.call.duration"
	metricCheckStatus      = "hexagonal.check.status"
	metricCheckTransitions = "hexagonal.check.transitions"
)

// durationBuckets are the boundaries, in seconds, of the call duration
// histogram: those of the HTTP semantic conventions, with finer ones
// below 5ms for in-memory domain calls.
var durationBuckets = []float64{0.00001, 0.0001, 0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10}

// telemetryHandle hands an error of the OpenTelemetry API to its handler.
func telemetryHandle(err error) { otel.Handle(err) }
