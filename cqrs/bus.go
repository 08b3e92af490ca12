package cqrs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"sync"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelpatterns/patterns/internal/telemetry"
	"github.com/otelpatterns/patterns/retry"
)

// ScopeName is the instrumentation scope name of the package's tracer and
// meter: its import path.
const ScopeName = "github.com/otelpatterns/patterns/cqrs"

// Attribute keys the package records.
const (
	AttrCommandType = attribute.Key("cqrs.command.type")
	AttrQueryType   = attribute.Key("cqrs.query.type")
	AttrOutcome     = attribute.Key("cqrs.outcome")
	// AttrProjection names the projection of a "project <name>" span and
	// of the cqrs.projection.lag gauge.
	AttrProjection = attribute.Key("cqrs.projection")
	// AttrPosition is the global position of the event a "project
	// <name>" span handles.
	AttrPosition = attribute.Key("eventsource.position")
)

// ErrNoHandler is matched by the error of dispatching a command or asking a
// query whose type has no handler.
var ErrNoHandler error = &sentinel{"cqrs: no handler", "cqrs.no_handler"}

// ErrDuplicateHandler is matched by the error of registering a second
// handler for a command or query type.
var ErrDuplicateHandler error = &sentinel{"cqrs: duplicate handler", "cqrs.duplicate_handler"}

type sentinel struct{ msg, typ string }

func (e *sentinel) Error() string { return e.msg }

// ErrorType returns the value of the error.type attribute for this error.
func (e *sentinel) ErrorType() string { return e.typ }

// HandlerFunc handles a command or a query, passed as any; for a command the
// result is nil. Middleware wraps HandlerFuncs.
type HandlerFunc func(ctx context.Context, msg any) (any, error)

// Middleware wraps the handling of every command or query of a bus: to
// log, validate, retry, authorise. The first middleware given to [Bus.Use]
// is the outermost.
type Middleware func(next HandlerFunc) HandlerFunc

// Bus dispatches commands and queries to the one handler registered for
// their type. Register handlers with [HandleCommand] and [HandleQuery] at
// start-up, then [Bus.Dispatch] commands and [Ask] queries. A Bus is safe
// for concurrent use.
//
// One bus may carry both commands and queries; they are told apart by how
// their handlers were registered.
//
// The zero Bus is ready to use, with the global providers, as NewBus()
// returns it. Invalid arguments (a nil middleware, a nil bus or handler)
// are errors, never panics.
type Bus struct {
	mu         sync.RWMutex
	handlers   map[reflect.Type]*route
	middleware []Middleware
	tracer     trace.Tracer
	handled    metric.Int64Counter
	duration   metric.Float64Histogram
	// spans says when a span would be a non-recording one passing the
	// caller's span context on; the bus then runs the handler without.
	spans telemetry.SpanGate
}

// route is a registered handler with its telemetry attributes built once.
type route struct {
	query    bool
	name     string // span name: "cqrs.command" or "cqrs.query"
	call     HandlerFunc
	wrapped  HandlerFunc // call inside the middleware, built at registration
	spanOpts []trace.SpanStartOption
	okOpts   []metric.AddOption
	okDur    []metric.RecordOption
	// failure is the attributes of a failure's data points but error.type,
	// which is added per failure.
	failure []attribute.KeyValue
}

// BusOption configures where the telemetry of the package's constructors
// goes. Every BusOption is also a [RelayOption]. Which constructor uses
// which option:
//
//	option                 NewBus   NewMemoryBus   NewRunner   NewRelay
//	WithTracerProvider     spans    spans          spans       ignored
//	WithMeterProvider      metrics  metrics        metrics     metrics
//	WithOptInAttributes    ignored  spans          ignored     ignored
//
// What each option sets:
//
//   - [WithTracerProvider]: the cqrs.command and cqrs.query spans of a
//     [Bus], the publish and process spans of a [MemoryBus], the project
//     spans of a [Runner]. A [Relay] has no spans of its own (the bus it
//     publishes to has).
//   - [WithMeterProvider]: cqrs.handled and cqrs.handle.duration of a
//     Bus, the messaging metrics, cqrs.redeliveries and cqrs.dead_letters
//     of a MemoryBus, cqrs.projection.lag of a Runner and
//     cqrs.relay.dead_letters of a Relay.
//   - [WithOptInAttributes]: messaging.message.body.size on the spans of a
//     MemoryBus.
//
// The providers default to the global ones at the time of the call; a nil
// provider means the default. A nil option is an error of the
// constructors that return one ([NewRunner], [NewRelay]: "opts[i] is
// nil"); [NewBus] and [NewMemoryBus], which return no error, ignore it.
// The package documentation lists the spans and metrics.
type BusOption interface {
	applyBus(*busConfig)
	RelayOption
}

type busConfig struct {
	tp    trace.TracerProvider
	mp    metric.MeterProvider
	optIn bool
}

type busOptionFunc func(*busConfig)

func (f busOptionFunc) applyBus(c *busConfig) { f(c) }

func (f busOptionFunc) applyRelay(c *relayConfig) { f(&c.bus) }

// WithTracerProvider sets where the spans of a [Bus], [MemoryBus] or
// [Runner] go (see [BusOption]). The default, also used when tp is nil, is
// the global provider at the time of the constructor's call.
func WithTracerProvider(tp trace.TracerProvider) BusOption {
	return busOptionFunc(func(c *busConfig) { c.tp = tp })
}

// WithMeterProvider sets where the metrics of a [Bus], [MemoryBus],
// [Runner] or [Relay] go (see [BusOption]). The default, also used when mp
// is nil, is the global provider at the time of the constructor's call.
func WithMeterProvider(mp metric.MeterProvider) BusOption {
	return busOptionFunc(func(c *busConfig) { c.mp = mp })
}

// WithOptInAttributes records the semantic conventions' Opt-In attributes
// as well: messaging.message.body.size on the publish and process spans of
// a [MemoryBus]; off by default. [NewBus] and [NewRunner] have none and
// ignore it.
func WithOptInAttributes() BusOption {
	return busOptionFunc(func(c *busConfig) { c.optIn = true })
}

// newBusConfig applies opts and returns a fault for each nil one, which
// it skips. NewBus and NewMemoryBus, returning no error, drop the faults.
func newBusConfig(opts []BusOption) (busConfig, []error) {
	var c busConfig
	var errs []error
	for i, o := range opts {
		if o == nil {
			errs = append(errs, fmt.Errorf("opts[%d] is nil", i))
			continue
		}
		o.applyBus(&c)
	}
	return c, errs
}

// NewBus returns a bus with no handlers and no middleware. It takes
// [WithTracerProvider] (its cqrs.command and cqrs.query spans) and
// [WithMeterProvider] (its cqrs.handled and cqrs.handle.duration metrics);
// it ignores [WithOptInAttributes]. Returning no error, it ignores nil
// options too. A zero Bus is the bus that NewBus() returns.
func NewBus(opts ...BusOption) *Bus {
	b := &Bus{}
	c, _ := newBusConfig(opts) // nil options: NewBus has no error to report them
	b.init(c)
	return b
}

// init readies b with the providers of c. b.mu is held, or b is new.
func (b *Bus) init(c busConfig) {
	m := telemetry.Meter(c.mp, ScopeName)
	b.handlers, b.tracer = map[reflect.Type]*route{}, telemetry.Tracer(c.tp, ScopeName)
	b.spans = telemetry.NewSpanGate(c.tp, b.tracer)
	var err error
	if b.handled, err = m.Int64Counter("cqrs.handled", metric.WithUnit("{message}"),
		metric.WithDescription("Commands and queries handled, by type and outcome.")); err != nil {
		otel.Handle(err)
	}
	if b.duration, err = m.Float64Histogram("cqrs.handle.duration", metric.WithUnit("s"),
		metric.WithDescription("Duration of command and query handling.")); err != nil {
		otel.Handle(err)
	}
}

// errNilBus is the error of a function given a nil *Bus.
func errNilBus(fn string) error { return fmt.Errorf("cqrs: %s: nil bus", fn) }

// Use appends middleware to the bus; the first is the outermost. Call it
// before registering handlers: a handler gets the middleware in place when
// it is registered, and later middleware does not wrap it.
//
// Use returns an error naming every nil middleware, and then adds none.
func (b *Bus) Use(mw ...Middleware) error {
	if b == nil {
		return errNilBus("Bus.Use")
	}
	var errs []error
	for i, m := range mw {
		if m == nil {
			errs = append(errs, fmt.Errorf("middleware %d (of %d) is nil", i, len(mw)))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("cqrs: Bus.Use: %w", err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.middleware = append(b.middleware, mw...)
	return nil
}

func (b *Bus) register(t reflect.Type, query bool, call HandlerFunc) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.handlers == nil { // a zero Bus
		b.init(busConfig{})
	}
	if _, ok := b.handlers[t]; ok {
		return fmt.Errorf("%w for %v", ErrDuplicateHandler, t)
	}
	kind, key := "command", AttrCommandType
	if query {
		kind, key = "query", AttrQueryType
	}
	typeAttr := key.String(t.String())
	r := &route{query: query, name: "cqrs." + kind, call: call,
		spanOpts: []trace.SpanStartOption{trace.WithAttributes(typeAttr)}}
	ok := attribute.NewSet(typeAttr, AttrOutcome.String("success"))
	r.okOpts = []metric.AddOption{metric.WithAttributeSet(ok)}
	r.okDur = []metric.RecordOption{metric.WithAttributeSet(ok)}
	r.failure = []attribute.KeyValue{typeAttr, AttrOutcome.String("failure")}
	h := call
	for i := len(b.middleware) - 1; i >= 0; i-- {
		if h = b.middleware[i](h); h == nil {
			return fmt.Errorf("cqrs: registering the handler of %v: middleware %d returned a nil HandlerFunc", t, i)
		}
	}
	r.wrapped = h
	b.handlers[t] = r
	return nil
}

func (b *Bus) route(t reflect.Type, query bool) (*route, error) {
	b.mu.RLock()
	r := b.handlers[t]
	b.mu.RUnlock()
	if r == nil || r.query != query {
		kind := "command"
		if query {
			kind = "query"
		}
		return nil, fmt.Errorf("%w for %s %v", ErrNoHandler, kind, t)
	}
	return r, nil
}

// handle runs a route under its span and records its outcome.
func (b *Bus) handle(ctx context.Context, r *route, msg any) (any, error) {
	// Not over a recording span of the caller's: what middleware or the
	// handler records on the span of its ctx (Deduplication marks
	// duplicates) must land on the bus's non-recording span, not on it.
	if b.spans.Skip(ctx) {
		return b.run(ctx, r, msg, nil)
	}
	ctx, span := b.tracer.Start(ctx, r.name, r.spanOpts...)
	defer span.End()
	return b.run(ctx, r, msg, span)
}

// run calls the route's handler and records its outcome, on span if it
// is not nil. The clock is read only for a duration histogram that
// records.
func (b *Bus) run(ctx context.Context, r *route, msg any, span trace.Span) (any, error) {
	// Middleware that acts on commands only ([Deduplication]) tells a
	// query by its context: the middleware chain is the same for both.
	if r.query {
		ctx = context.WithValue(ctx, queryKey{}, true)
	} else if isQuery(ctx) { // a command from a query's handler
		ctx = context.WithValue(ctx, queryKey{}, false)
	}
	duration := b.duration.Enabled(ctx)
	var start time.Time
	if duration {
		start = time.Now()
	}
	res, err := r.wrapped(ctx, msg)
	var d float64
	if duration {
		d = time.Since(start).Seconds()
	}
	if err != nil {
		if span != nil {
			telemetry.RecordError(span, err)
		}
		// The failure's data points carry the span's error.type; the set
		// is built per failure, and only for an instrument that records.
		handled := b.handled.Enabled(ctx)
		if handled || duration {
			set := metric.WithAttributeSet(attribute.NewSet(append(r.failure[:len(r.failure):len(r.failure)], telemetry.ErrorType(err))...))
			if handled {
				b.handled.Add(ctx, 1, set)
			}
			if duration {
				b.duration.Record(ctx, d, set)
			}
		}
		return res, err
	}
	b.handled.Add(ctx, 1, r.okOpts...)
	if duration {
		b.duration.Record(ctx, d, r.okDur...)
	}
	return res, nil
}

// HandleCommand registers h as the handler of commands of type C, which
// [Bus.Dispatch] calls for every command of that type, through the bus's
// middleware. It returns an error matching [ErrDuplicateHandler] if C has
// one already, and an error naming the argument if b or h is nil or C is
// an interface type (Dispatch routes on a command's dynamic type, which is
// never an interface).
func HandleCommand[C any](b *Bus, h func(ctx context.Context, cmd C) error) error {
	t := reflect.TypeFor[C]()
	var errs []error
	if b == nil {
		errs = append(errs, errors.New("nil bus"))
	}
	if h == nil {
		errs = append(errs, errors.New("nil handler"))
	}
	if t.Kind() == reflect.Interface {
		errs = append(errs, fmt.Errorf("command type %v is an interface: register a concrete type", t))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("cqrs: HandleCommand: %w", err)
	}
	return b.register(reflect.TypeFor[C](), false, func(ctx context.Context, msg any) (any, error) {
		return nil, h(ctx, msg.(C))
	})
}

// Dispatch hands cmd to the handler of its type, through the bus's
// middleware, and returns the handler's error, or an error matching
// [ErrNoHandler] if its type has none.
// A nil command has none; a nil bus is an error too.
func (b *Bus) Dispatch(ctx context.Context, cmd any) error {
	if b == nil {
		return errNilBus("Dispatch")
	}
	if cmd == nil {
		return fmt.Errorf("%w for a nil command", ErrNoHandler)
	}
	r, err := b.route(reflect.TypeOf(cmd), false)
	if err != nil {
		return err
	}
	_, err = b.handle(ctx, r, cmd)
	return err
}

// HandleQuery registers h as the handler of queries of type Q, answering
// with an R, which [Ask] calls through the bus's middleware. It returns an
// error matching [ErrDuplicateHandler] if Q has one already, and an error
// naming the argument if b or h is nil.
func HandleQuery[Q, R any](b *Bus, h func(ctx context.Context, q Q) (R, error)) error {
	var errs []error
	if b == nil {
		errs = append(errs, errors.New("nil bus"))
	}
	if h == nil {
		errs = append(errs, errors.New("nil handler"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("cqrs: HandleQuery: %w", err)
	}
	return b.register(reflect.TypeFor[Q](), true, func(ctx context.Context, msg any) (any, error) {
		return h(ctx, msg.(Q))
	})
}

// Ask hands q to the handler of its type and returns its answer. It
// returns an error matching [ErrNoHandler] if Q has no handler, and one
// saying so if the handler answers with another type than R, or if b is
// nil.
func Ask[Q, R any](ctx context.Context, b *Bus, q Q) (R, error) {
	var zero R
	if b == nil {
		return zero, errNilBus("Ask")
	}
	r, err := b.route(reflect.TypeFor[Q](), true)
	if err != nil {
		return zero, err
	}
	res, err := b.handle(ctx, r, q)
	if err != nil {
		return zero, err
	}
	out, ok := res.(R)
	if !ok && res != nil {
		return zero, fmt.Errorf("cqrs: the handler of %T answers %T, not %T", q, res, zero)
	}
	return out, nil
}

// Logging is middleware that logs every command and query with logger: its
// type, duration and error, at Info on success and Error on failure. A nil
// logger means [slog.Default], at the time of each log.
func Logging(logger *slog.Logger) Middleware {
	return func(next HandlerFunc) HandlerFunc {
		return func(ctx context.Context, msg any) (any, error) {
			start := time.Now()
			res, err := next(ctx, msg)
			logger := logger
			if logger == nil {
				logger = slog.Default()
			}
			if err != nil {
				logger.ErrorContext(ctx, "cqrs: handling failed", "type", fmt.Sprintf("%T", msg), "duration", time.Since(start), "error", err)
			} else {
				logger.InfoContext(ctx, "cqrs: handled", "type", fmt.Sprintf("%T", msg), "duration", time.Since(start))
			}
			return res, err
		}
	}
}

// Validator is implemented by commands and queries that can check
// themselves.
type Validator interface{ Validate() error }

// Validation is middleware that rejects a command or query whose Validate
// method (see [Validator]) returns an error, without calling its handler.
func Validation() Middleware {
	return func(next HandlerFunc) HandlerFunc {
		return func(ctx context.Context, msg any) (any, error) {
			if v, ok := msg.(Validator); ok {
				if err := v.Validate(); err != nil {
					return nil, fmt.Errorf("cqrs: invalid %T: %w", msg, err)
				}
			}
			return next(ctx, msg)
		}
	}
}

// Retrying is middleware that retries failed handling with r: for a command
// whose handler loads an aggregate and saves it, a retry after an
// eventsource.ErrConcurrencyConflict decides again on fresh state. A nil r
// means a retrier with the defaults of [retry.New] (and the global
// providers), made once by this call.
func Retrying(r *retry.Retrier) Middleware {
	if r == nil {
		r = retry.New()
	}
	return func(next HandlerFunc) HandlerFunc {
		return func(ctx context.Context, msg any) (any, error) {
			return retry.Do(ctx, r, func(ctx context.Context) (any, error) { return next(ctx, msg) })
		}
	}
}
