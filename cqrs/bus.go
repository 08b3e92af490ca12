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
type Bus struct {
	mu         sync.RWMutex
	handlers   map[reflect.Type]*route
	middleware []Middleware
	tracer     trace.Tracer
	handled    metric.Int64Counter
	duration   metric.Float64Histogram
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

// BusOption configures a [Bus], a [MemoryBus] or a [Runner]. The
// options that configure a [Relay] too are RelayOptions as well.
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

// WithTracerProvider sets where the bus's spans go. The default, also used
// when tp is nil, is the global provider at the time of NewBus.
func WithTracerProvider(tp trace.TracerProvider) BusOption {
	return busOptionFunc(func(c *busConfig) { c.tp = tp })
}

// WithMeterProvider sets where the bus's metrics go. The default, also
// used when mp is nil, is the global provider at the time of NewBus.
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

// NewBus returns a bus with no handlers.
func NewBus(opts ...BusOption) *Bus {
	var c busConfig
	for _, o := range opts {
		o.applyBus(&c)
	}
	m := telemetry.Meter(c.mp, ScopeName)
	b := &Bus{handlers: map[reflect.Type]*route{}, tracer: telemetry.Tracer(c.tp, ScopeName)}
	var err error
	if b.handled, err = m.Int64Counter("cqrs.handled", metric.WithUnit("{message}"),
		metric.WithDescription("Commands and queries handled, by type and outcome.")); err != nil {
		otel.Handle(err)
	}
	if b.duration, err = m.Float64Histogram("cqrs.handle.duration", metric.WithUnit("s"),
		metric.WithDescription("Duration of command and query handling.")); err != nil {
		otel.Handle(err)
	}
	return b
}

// Use appends middleware to the bus. Call it before registering handlers:
// a handler gets the middleware in place when it is registered.
func (b *Bus) Use(mw ...Middleware) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.middleware = append(b.middleware, mw...)
}

func (b *Bus) register(t reflect.Type, query bool, call HandlerFunc) error {
	b.mu.Lock()
	defer b.mu.Unlock()
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
		h = b.middleware[i](h)
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
	ctx, span := b.tracer.Start(ctx, r.name, r.spanOpts...)
	defer span.End()
	// Middleware that acts on commands only ([Deduplication]) tells a
	// query by its context: the middleware chain is the same for both.
	if r.query {
		ctx = context.WithValue(ctx, queryKey{}, true)
	} else if isQuery(ctx) { // a command from a query's handler
		ctx = context.WithValue(ctx, queryKey{}, false)
	}
	start := time.Now()
	res, err := r.wrapped(ctx, msg)
	d := time.Since(start).Seconds()
	if err != nil {
		telemetry.RecordError(span, err)
		// The failure's data points carry the span's error.type; the set
		// is built per failure, and only for an instrument that records.
		handled, duration := b.handled.Enabled(ctx), b.duration.Enabled(ctx)
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
	b.duration.Record(ctx, d, r.okDur...)
	return res, nil
}

// HandleCommand registers h as the handler of commands of type C. It
// returns an error matching [ErrDuplicateHandler] if C has one already.
func HandleCommand[C any](b *Bus, h func(ctx context.Context, cmd C) error) error {
	if h == nil {
		return errors.New("cqrs: HandleCommand: nil handler")
	}
	return b.register(reflect.TypeFor[C](), false, func(ctx context.Context, msg any) (any, error) {
		return nil, h(ctx, msg.(C))
	})
}

// Dispatch hands cmd to the handler of its type, through the bus's
// middleware, and returns the handler's error, or an error matching
// [ErrNoHandler] if its type has none.
func (b *Bus) Dispatch(ctx context.Context, cmd any) error {
	r, err := b.route(reflect.TypeOf(cmd), false)
	if err != nil {
		return err
	}
	_, err = b.handle(ctx, r, cmd)
	return err
}

// HandleQuery registers h as the handler of queries of type Q, answering
// with an R. It returns an error matching [ErrDuplicateHandler] if Q has
// one already.
func HandleQuery[Q, R any](b *Bus, h func(ctx context.Context, q Q) (R, error)) error {
	if h == nil {
		return errors.New("cqrs: HandleQuery: nil handler")
	}
	return b.register(reflect.TypeFor[Q](), true, func(ctx context.Context, msg any) (any, error) {
		return h(ctx, msg.(Q))
	})
}

// Ask hands q to the handler of its type and returns its answer. It
// returns an error matching [ErrNoHandler] if Q has no handler, and one
// saying so if the handler answers with another type than R.
func Ask[Q, R any](ctx context.Context, b *Bus, q Q) (R, error) {
	var zero R
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
// type, duration and error, at Info on success and Error on failure.
func Logging(logger *slog.Logger) Middleware {
	return func(next HandlerFunc) HandlerFunc {
		return func(ctx context.Context, msg any) (any, error) {
			start := time.Now()
			res, err := next(ctx, msg)
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
// eventsource.ErrConcurrencyConflict decides again on fresh state.
func Retrying(r *retry.Retrier) Middleware {
	return func(next HandlerFunc) HandlerFunc {
		return func(ctx context.Context, msg any) (any, error) {
			return retry.Do(ctx, r, func(ctx context.Context) (any, error) { return next(ctx, msg) })
		}
	}
}
