package hexagonal

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelpatterns/patterns/internal/telemetry"
)

type instrumentConfig struct {
	tp        trace.TracerProvider
	mp        metric.MeterProvider
	layerName string
	kind      trace.SpanKind
	kindSet   bool
}

type instrumentOptionFunc func(*instrumentConfig)

func (f instrumentOptionFunc) applyInstrument(c *instrumentConfig) { f(c) }

// WithLayerName sets the value of the hexagonal.layer attribute in place
// of the layer's own name ([Layer.String]), for a code base that names
// its layers otherwise. An empty name keeps the layer's.
func WithLayerName(name string) InstrumentOption {
	return instrumentOptionFunc(func(c *instrumentConfig) { c.layerName = name })
}

// WithSpanKind sets the kind of the call's spans in place of the layer's
// ([Layer.SpanKind]).
func WithSpanKind(kind trace.SpanKind) InstrumentOption {
	return instrumentOptionFunc(func(c *instrumentConfig) { c.kind, c.kindSet = kind, true })
}

// Instrument wraps f, a call of operation through port in layer (a
// use case, a repository method, a domain service), in a span and in
// metrics. The span is named "{port}.{operation}", such as
// "OrderRepository.Save", of the layer's kind, with the hexagonal.layer,
// hexagonal.port and hexagonal.operation attributes; an error sets its
// error.type, and its status to Error unless it is a [DomainError].
//
// A call in an internal layer (the domain, the application, a port)
// starts a span only when its context holds a recording span, so that a
// domain call made outside any sampled trace costs no more than a few
// nanoseconds and no allocation; adapters' calls, which do I/O, always
// start one.
//
// Every call is counted by outcome (hexagonal.calls), and timed
// (hexagonal.call.duration) when the meter records that histogram. A
// call that panics counts as an error, and ends its span with the
// error.type hexagonal.panic ([PanicError]); the panic goes on.
//
// Instrument panics if f is nil, layer is not one of the [Layer]
// constants, port or operation is empty, or an option is nil ("opts[i]
// is nil"). Wrap once, when wiring the
// service, and call the result: each Instrument call builds the
// attribute sets and registers the metrics anew. The returned function
// is safe for concurrent use if f is.
func Instrument[In, Out any](layer Layer, port, operation string, f func(context.Context, In) (Out, error), opts ...InstrumentOption) func(context.Context, In) (Out, error) {
	if f == nil {
		panic(fmt.Sprintf("hexagonal: Instrument(%v, %q, %q): f is nil", layer, port, operation))
	}
	o := newCall(layer, port, operation, opts)
	return func(ctx context.Context, in In) (Out, error) {
		returned := false
		if o.quiet(ctx) {
			defer func() {
				if !returned {
					o.count(errUnwound)
				}
			}()
			out, err := f(ctx, in)
			returned = true
			o.count(err)
			return out, err
		}
		ctx, span, begin := o.begin(ctx)
		defer func() {
			if !returned {
				o.unwound(ctx, span, begin, recover())
			}
		}()
		out, err := f(ctx, in)
		returned = true
		o.end(ctx, span, begin, err)
		return out, err
	}
}

// InstrumentErr is [Instrument] for a call that returns only an error.
func InstrumentErr[In any](layer Layer, port, operation string, f func(context.Context, In) error, opts ...InstrumentOption) func(context.Context, In) error {
	if f == nil {
		panic(fmt.Sprintf("hexagonal: InstrumentErr(%v, %q, %q): f is nil", layer, port, operation))
	}
	o := newCall(layer, port, operation, opts)
	return func(ctx context.Context, in In) error {
		returned := false
		if o.quiet(ctx) {
			defer func() {
				if !returned {
					o.count(errUnwound)
				}
			}()
			err := f(ctx, in)
			returned = true
			o.count(err)
			return err
		}
		ctx, span, begin := o.begin(ctx)
		defer func() {
			if !returned {
				o.unwound(ctx, span, begin, recover())
			}
		}()
		err := f(ctx, in)
		returned = true
		o.end(ctx, span, begin, err)
		return err
	}
}

// call is what an instrumented function keeps: its tracer, the span's
// name and options, and its counts and the attribute sets of its metrics,
// built once.
type call struct {
	tracer   trace.Tracer
	name     string
	spanOpts []trace.SpanStartOption
	internal bool
	attrs    []attribute.KeyValue // layer, port, operation
	duration metric.Float64Histogram
	recOpts  [numOutcomes][]metric.RecordOption
	st       *callCounts
}

// callCounts are the counts of an instrumented function, reported by a
// callback at collection.
type callCounts struct {
	calls [numOutcomes]telemetry.Counter
	opts  [numOutcomes][]metric.ObserveOption
}

func newCall(layer Layer, port, operation string, opts []InstrumentOption) *call {
	var bad []string
	if !layer.valid() {
		bad = append(bad, fmt.Sprintf("unknown layer %v", layer))
	}
	if port == "" {
		bad = append(bad, "port is empty")
	}
	if operation == "" {
		bad = append(bad, "operation is empty")
	}
	cfg := instrumentConfig{kind: layer.SpanKind(), layerName: layer.String()}
	for i, o := range opts {
		if o == nil {
			bad = append(bad, fmt.Sprintf("opts[%d] is nil", i))
			continue
		}
		o.applyInstrument(&cfg)
	}
	if len(bad) > 0 {
		panic(fmt.Sprintf("hexagonal: Instrument(%v, %q, %q): %v", layer, port, operation, bad))
	}
	if cfg.layerName == "" {
		cfg.layerName = layer.String()
	}
	attrs := []attribute.KeyValue{AttrLayer.String(cfg.layerName), AttrPort.String(port), AttrOperation.String(operation)}
	c := &call{
		tracer:   telemetry.Tracer(cfg.tp, ScopeName),
		name:     port + "." + operation,
		spanOpts: []trace.SpanStartOption{trace.WithSpanKind(cfg.kind), trace.WithAttributes(attrs...)},
		internal: cfg.kind == trace.SpanKindInternal,
		attrs:    attrs,
		st:       &callCounts{},
	}
	m := telemetry.Meter(cfg.mp, ScopeName)
	var err error
	if c.duration, err = m.Float64Histogram(metricCallDuration,
		metric.WithUnit("s"),
		metric.WithDescription("Duration of calls through a layer's port."),
		metric.WithExplicitBucketBoundaries(durationBuckets...)); err != nil {
		telemetryHandle(err)
	}
	for o := range numOutcomes {
		set := attribute.NewSet(append(attrs[:len(attrs):len(attrs)], AttrOutcome.String(outcomeNames[o]))...)
		c.recOpts[o] = []metric.RecordOption{metric.WithAttributeSet(set)}
		c.st.opts[o] = []metric.ObserveOption{metric.WithAttributeSet(set)}
	}
	calls := telemetry.Int64ObservableCounter(m, metricCalls,
		metric.WithUnit("{call}"),
		metric.WithDescription("Calls through a layer's port, by outcome."))
	telemetry.ObserveState(m, c, c.st, func(st *callCounts, o metric.Observer) {
		for i := range numOutcomes {
			if n := st.calls[i].Load(); n > 0 {
				o.ObserveInt64(calls, n, st.opts[i]...)
			}
		}
	}, calls)
	return c
}

// quiet reports whether the call needs no span and no timing: an internal
// layer's call outside a recording span, with the histogram off.
func (c *call) quiet(ctx context.Context) bool {
	return c.internal && !c.timed(ctx) && !trace.SpanFromContext(ctx).IsRecording()
}

func (c *call) timed(ctx context.Context) bool {
	return c.duration != nil && c.duration.Enabled(ctx)
}

// outcomeOf returns the outcome of a call that returned err. A panic is
// an error whatever its value, so a [PanicError] is one before any domain
// kind is looked for: it wraps a panic's value that is an error, and a
// domain error found through it would count the call as a domain_error,
// its span's status unset.
func outcomeOf(err error) int {
	if err == nil {
		return outcomeSuccess
	}
	if _, ok := err.(*PanicError); ok {
		return outcomeError
	}
	if _, ok := DomainKind(err); ok {
		return outcomeDomainError
	}
	return outcomeError
}

func (c *call) count(err error) { c.st.calls[outcomeOf(err)].Inc() }

// errUnwound counts a call that panicked (or called [runtime.Goexit])
// outside a trace.
var errUnwound = errors.New("hexagonal: the call did not return")

// unwound ends the span of a call that panicked with v, counting and
// recording it as an error, and panics with v again; v is nil when the
// call called [runtime.Goexit], which goes on by itself.
func (c *call) unwound(ctx context.Context, span trace.Span, begin time.Time, v any) {
	c.end(ctx, span, begin, &PanicError{Component: c.name, Phase: "call", Value: v})
	if v != nil {
		panic(v)
	}
}

// begin starts the call's span, when it has one, and its clock, when it
// is timed.
func (c *call) begin(ctx context.Context) (context.Context, trace.Span, time.Time) {
	var span trace.Span
	if (!c.internal || trace.SpanFromContext(ctx).IsRecording()) && !telemetry.IsUntraced(ctx) {
		ctx, span = c.tracer.Start(ctx, c.name, c.spanOpts...)
	}
	var begin time.Time
	if c.timed(ctx) {
		begin = time.Now()
	}
	return ctx, span, begin
}

func (c *call) end(ctx context.Context, span trace.Span, begin time.Time, err error) {
	o := outcomeOf(err)
	c.st.calls[o].Inc()
	if span != nil {
		if err != nil && span.IsRecording() {
			if o == outcomeError {
				span.SetStatus(codes.Error, err.Error())
			}
			span.SetAttributes(telemetry.ErrorType(err))
		}
		span.End()
	}
	if begin.IsZero() {
		return
	}
	d := time.Since(begin).Seconds()
	if err == nil {
		c.duration.Record(ctx, d, c.recOpts[o]...)
		return
	}
	set := attribute.NewSet(append(c.attrs[:len(c.attrs):len(c.attrs)], AttrOutcome.String(outcomeNames[o]), telemetry.ErrorType(err))...)
	c.duration.Record(ctx, d, metric.WithAttributeSet(set))
}
