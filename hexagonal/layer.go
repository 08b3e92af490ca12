package hexagonal

import (
	"fmt"

	"go.opentelemetry.io/otel/trace"
)

// Layer is the architectural layer of a call wrapped by [Instrument]: it
// gives the call's hexagonal.layer attribute and its span kind.
//
// The hexagonal (ports and adapters) layers are [Domain], [Application],
// [Port], [DrivingAdapter] and [DrivenAdapter]; the onion layers are
// [DomainModel], [DomainService], [ApplicationService] and
// [Infrastructure]. [WithLayerName] and [WithSpanKind] rename a layer or
// change its span kind for one wrapped call.
type Layer int

// The layers.
const (
	// Domain is the domain model and its rules: entities, value objects,
	// aggregates. Its spans are internal.
	Domain Layer = iota + 1
	// Application is the use cases that orchestrate the domain through
	// ports. Its spans are internal.
	Application
	// Port is a call through a port's interface, seen from the
	// application. Its spans are internal.
	Port
	// DrivingAdapter is an adapter that calls into the application: an
	// HTTP handler, a message consumer. Its spans are server spans, and
	// start a trace when the context has none. Its layer name is
	// "adapter".
	DrivingAdapter
	// DrivenAdapter is an adapter the application calls through a port: a
	// repository on a database, a payment client. Its spans are client
	// spans. Its layer name is "adapter".
	DrivenAdapter
	// DomainModel is the onion's core: entities and value objects. Its
	// spans are internal.
	DomainModel
	// DomainService is the onion's domain services: rules over several
	// entities. Its spans are internal.
	DomainService
	// ApplicationService is the onion's use cases. Its spans are
	// internal.
	ApplicationService
	// Infrastructure is the onion's outer ring of driven
	// implementations (persistence, messaging, remote services). Its
	// spans are client spans; give an inbound one (an HTTP API)
	// [WithSpanKind](trace.SpanKindServer).
	Infrastructure
	numLayers
)

var layerNames = [numLayers]string{
	Domain:             "domain",
	Application:        "application",
	Port:               "port",
	DrivingAdapter:     "adapter",
	DrivenAdapter:      "adapter",
	DomainModel:        "domain_model",
	DomainService:      "domain_service",
	ApplicationService: "application_service",
	Infrastructure:     "infrastructure",
}

var layerKinds = [numLayers]trace.SpanKind{
	Domain:             trace.SpanKindInternal,
	Application:        trace.SpanKindInternal,
	Port:               trace.SpanKindInternal,
	DrivingAdapter:     trace.SpanKindServer,
	DrivenAdapter:      trace.SpanKindClient,
	DomainModel:        trace.SpanKindInternal,
	DomainService:      trace.SpanKindInternal,
	ApplicationService: trace.SpanKindInternal,
	Infrastructure:     trace.SpanKindClient,
}

func (l Layer) valid() bool { return l > 0 && l < numLayers }

// String returns the layer's name, the value of hexagonal.layer: domain,
// application, port, adapter, domain_model, domain_service,
// application_service or infrastructure.
func (l Layer) String() string {
	if !l.valid() {
		return fmt.Sprintf("Layer(%d)", int(l))
	}
	return layerNames[l]
}

// SpanKind returns the kind of the layer's spans.
func (l Layer) SpanKind() trace.SpanKind {
	if !l.valid() {
		return trace.SpanKindInternal
	}
	return layerKinds[l]
}
