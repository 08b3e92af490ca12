package saga

import (
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
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
)

// durationBuckets are the boundaries, in seconds, of saga.duration: from
// sagas of in-process steps (milliseconds) to ones that wait out
// compensation backoff or a crashed orchestrator's lease (minutes).
var durationBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800}

// instruments are an orchestrator's tracer and metric instruments.
type instruments struct {
	tracer         trace.Tracer
	executions     metric.Int64Counter
	steps          metric.Int64Counter
	duration       metric.Float64Histogram
	active         metric.Int64UpDownCounter
	needsAttention metric.Int64Counter
}

func newInstruments(tp trace.TracerProvider, mp metric.MeterProvider) *instruments {
	m := telemetry.Meter(mp, ScopeName)
	t := &instruments{tracer: telemetry.Tracer(tp, ScopeName)}
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
	return t
}

// kindSet is the attribute set of one step's and phase's outcome.
type kindSet struct {
	step    string
	phase   Phase
	outcome Kind
}

// sets holds the attribute sets of one definition, built once.
type sets struct {
	name       metric.MeasurementOption
	steps      map[kindSet]metric.MeasurementOption
	executions map[Status]metric.MeasurementOption
}

func newSets(s *spec) *sets {
	name := AttrName.String(s.name)
	out := &sets{
		name:       metric.WithAttributeSet(attribute.NewSet(name)),
		steps:      map[kindSet]metric.MeasurementOption{},
		executions: map[Status]metric.MeasurementOption{},
	}
	for _, st := range s.steps {
		for _, ph := range []Phase{Forward, Compensate} {
			for _, k := range []Kind{Succeeded, Failed, TimedOut} {
				out.steps[kindSet{st.name, ph, k}] = metric.WithAttributeSet(attribute.NewSet(name,
					AttrStep.String(st.name), AttrPhase.String(string(ph)), AttrOutcome.String(string(k))))
			}
		}
	}
	for _, st := range []Status{Completed, Compensated, NeedsAttention} {
		out.executions[st] = metric.WithAttributeSet(attribute.NewSet(name, AttrOutcome.String(string(st))))
	}
	return out
}
