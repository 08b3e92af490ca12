package saga

import (
	"context"
	"encoding/binary"
	"math/rand/v2"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelpatterns/patterns/internal/telemetry"
)

// ScopeName is the instrumentation scope name of the package's tracer and
// meter: its import path.
const ScopeName = "github.com/otelpatterns/patterns/saga"

// Attribute keys the package records.
const (
	AttrName    = attribute.Key("saga.name")
	AttrID      = attribute.Key("saga.id")
	AttrVersion = attribute.Key("saga.version")
	AttrStep    = attribute.Key("saga.step")
	AttrPhase   = attribute.Key("saga.phase")
	AttrOutcome = attribute.Key("saga.outcome")
	AttrAttempt = attribute.Key("saga.attempt")
	AttrResumed = attribute.Key("saga.resumed")
	// AttrReason is why a run stopped before its saga ended (closed,
	// lease_lost or log_failed), on the saga.interrupted event, and the
	// reason given to Orchestrator.Resolve, on its span.
	AttrReason = attribute.Key("saga.reason")
	// AttrOperation is the lease operation (claim or renew) of
	// saga.lease.operation.duration.
	AttrOperation = attribute.Key("saga.operation")
)

// durationBuckets are the boundaries, in seconds, of saga.duration: from
// sagas of in-process steps (milliseconds) to ones that wait out
// compensation backoff or a crashed orchestrator's lease (minutes).
var durationBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800}

// leaseBuckets are the boundaries, in seconds, of
// saga.lease.operation.duration: those the semantic conventions advise
// for database client operations, which a log's claims and renewals are.
var leaseBuckets = []float64{0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10}

// The lease operations of saga.lease.operation.duration.
const (
	opClaim = iota
	opRenew
	numLeaseOps
)

var leaseOpNames = [numLeaseOps]string{"claim", "renew"}

// instruments are an orchestrator's tracer and metric instruments.
type instruments struct {
	tracer trace.Tracer
	// spans says when a span would be a non-recording one passing its
	// parent's span context on (no SDK, and a parent that does not
	// record): the saga's and its attempts' spans are not started then.
	spans          telemetry.SpanGate
	executions     metric.Int64Counter
	steps          metric.Int64Counter
	duration       metric.Float64Histogram
	active         metric.Int64UpDownCounter
	needsAttention metric.Int64Counter
	leasesClaimed  metric.Int64Counter
	leasesLost     metric.Int64Counter
	leaseOps       metric.Float64Histogram
	leaseOpSets    [numLeaseOps]attrSet
}

func newInstruments(tp trace.TracerProvider, mp metric.MeterProvider) *instruments {
	m := telemetry.Meter(mp, ScopeName)
	t := &instruments{tracer: telemetry.Tracer(tp, ScopeName)}
	t.spans = telemetry.NewSpanGate(tp, t.tracer)
	check := func(err error) {
		if err != nil {
			otel.Handle(err)
		}
	}
	var err error
	t.executions, err = m.Int64Counter("saga.executions", metric.WithUnit("{saga}"),
		metric.WithDescription("Sagas that ended, by outcome (completed, compensated, needs_attention)."))
	check(err)
	t.steps, err = m.Int64Counter("saga.steps", metric.WithUnit("{attempt}"),
		metric.WithDescription("Attempts of saga steps and compensations, by outcome."))
	check(err)
	t.duration, err = m.Float64Histogram("saga.duration", metric.WithUnit("s"),
		metric.WithDescription("Time from a saga's start to its end, by outcome."),
		metric.WithExplicitBucketBoundaries(durationBuckets...))
	check(err)
	t.active, err = m.Int64UpDownCounter("saga.active", metric.WithUnit("{saga}"),
		metric.WithDescription("Sagas this orchestrator is running."))
	check(err)
	t.needsAttention, err = m.Int64Counter("saga.needs_attention", metric.WithUnit("{saga}"),
		metric.WithDescription("Sagas that stopped in status needs_attention."))
	check(err)
	t.leasesClaimed, err = m.Int64Counter("saga.leases.claimed", metric.WithUnit("{lease}"),
		metric.WithDescription("Leases of unfinished sagas that Recover took over."))
	check(err)
	t.leasesLost, err = m.Int64Counter("saga.leases.lost", metric.WithUnit("{lease}"),
		metric.WithDescription("Runs stopped because another orchestrator took their saga over."))
	check(err)
	t.leaseOps, err = m.Float64Histogram("saga.lease.operation.duration", metric.WithUnit("s"),
		metric.WithDescription("Duration of the orchestrator's claims and renewals of leases in its log."),
		metric.WithExplicitBucketBoundaries(leaseBuckets...))
	check(err)
	for op := range numLeaseOps {
		t.leaseOpSets[op] = newAttrSet(AttrOperation.String(leaseOpNames[op]))
	}
	return t
}

// noopSpan stands for a span that the gate of [instruments.spans] did
// not start: it records nothing, and ending it does nothing.
var noopSpan = trace.SpanFromContext(context.Background())

// attrSet is an attribute set built once, with its attributes, for the
// measurements that add error.type to it.
type attrSet struct {
	attrs []attribute.KeyValue
	opt   metric.MeasurementOption
}

func newAttrSet(attrs ...attribute.KeyValue) attrSet {
	return attrSet{attrs: attrs, opt: metric.WithAttributeSet(attribute.NewSet(attrs...))}
}

// with returns the set's option, with error.type for err if err is not
// nil: failures cost a set built on the spot, successes nothing.
func (s attrSet) with(err error) metric.MeasurementOption {
	if err == nil {
		return s.opt
	}
	return metric.WithAttributes(append(s.attrs[:len(s.attrs):len(s.attrs)], telemetry.ErrorType(err))...)
}

// kindSet is the attribute set of one step's and phase's outcome.
type kindSet struct {
	step    string
	phase   Phase
	outcome Kind
}

// sets holds the attribute sets of one definition, built once.
type sets struct {
	name       attrSet
	steps      map[kindSet]attrSet
	executions map[Status]attrSet
}

func newSets(s *spec) *sets {
	name := AttrName.String(s.name)
	out := &sets{
		name:       newAttrSet(name),
		steps:      map[kindSet]attrSet{},
		executions: map[Status]attrSet{},
	}
	for _, st := range s.steps {
		for _, ph := range []Phase{Forward, Compensate} {
			for _, k := range []Kind{Succeeded, Failed, TimedOut} {
				out.steps[kindSet{st.name, ph, k}] = newAttrSet(name,
					AttrStep.String(st.name), AttrPhase.String(string(ph)), AttrOutcome.String(string(k)))
			}
		}
	}
	for _, st := range []Status{Completed, Compensated, NeedsAttention} {
		out.executions[st] = newAttrSet(name, AttrOutcome.String(string(st)))
	}
	return out
}

// propagator returns the propagator of the trace context a saga's record
// keeps: the global one ([otel.GetTextMapPropagator]), or W3C trace
// context while none is set (the global one then injects nothing, and a
// resumed run could not link to the run that started its saga).
func propagator() propagation.TextMapPropagator {
	p := otel.GetTextMapPropagator()
	if len(p.Fields()) == 0 {
		return propagation.TraceContext{}
	}
	return p
}

// untraced marks ctx for the orchestrator's own upkeep (renewing leases,
// looking for sagas to recover), so that an idle orchestrator sends no
// trace every few seconds while the metrics of those calls are kept: the
// module's logs (saga/pglog) start no span under the mark
// ([telemetry.Untraced]), whatever the sampler, and the span context it
// carries, valid and not sampled, keeps a parent-based sampler (the SDK's
// default) from sampling the spans of other Log implementations.
func untraced(ctx context.Context) context.Context {
	ctx = telemetry.Untraced(ctx)
	var tid trace.TraceID
	var sid trace.SpanID
	// The low bits set keep the IDs valid (not zero).
	binary.BigEndian.PutUint64(tid[:8], rand.Uint64())
	binary.BigEndian.PutUint64(tid[8:], rand.Uint64()|1)
	binary.BigEndian.PutUint64(sid[:], rand.Uint64()|1)
	return trace.ContextWithSpanContext(ctx, trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid}))
}
