package hexagonal

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

// Defaults of an [App] built with no options.
const (
	// DefaultStartTimeout bounds each component's start.
	DefaultStartTimeout = 15 * time.Second
	// DefaultStopTimeout bounds each component's stop.
	DefaultStopTimeout = 10 * time.Second
)

// Option configures an [App].
type Option interface{ apply(*config) }

// HealthOption configures a [Health].
type HealthOption interface{ applyHealth(*healthConfig) }

// InstrumentOption configures a call wrapped by [Instrument].
type InstrumentOption interface{ applyInstrument(*instrumentConfig) }

// TelemetryOption configures where an [App], a [Health] and the calls
// wrapped by [Instrument] send their telemetry.
type TelemetryOption interface {
	Option
	HealthOption
	InstrumentOption
}

// LogOption configures where an [App] and a [Health] log.
type LogOption interface {
	Option
	HealthOption
}

type config struct {
	nilOpts      []int // the indexes of nil options, faults of New
	components   []Component
	health       *Health
	drainDelay   time.Duration
	startTimeout time.Duration
	stopTimeout  time.Duration
	signals      <-chan os.Signal
	exit         func(code int)
	logger       *slog.Logger
	tp           trace.TracerProvider
	mp           metric.MeterProvider
}

func defaultConfig() config {
	return config{
		startTimeout: DefaultStartTimeout,
		stopTimeout:  DefaultStopTimeout,
		exit:         os.Exit,
	}
}

// validate reports every bad option at once.
func (c *config) validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	for _, i := range c.nilOpts {
		bad("opts[%d] is nil", i)
	}
	if c.drainDelay < 0 {
		bad("WithDrainDelay(%v): must not be negative", c.drainDelay)
	}
	if c.startTimeout <= 0 {
		bad("WithStartTimeout(%v): must be positive", c.startTimeout)
	}
	if c.stopTimeout <= 0 {
		bad("WithStopTimeout(%v): must be positive", c.stopTimeout)
	}
	if c.exit == nil {
		bad("WithExit(nil): exit must not be nil")
	}
	seen := map[string]bool{}
	for i, comp := range c.components {
		if comp.err != nil {
			errs = append(errs, comp.err)
			continue
		}
		switch {
		case comp.Name == "":
			bad("WithComponent: component %d has no name", i)
		case seen[comp.Name]:
			bad("WithComponent(%q): the name is taken by an earlier component", comp.Name)
		}
		seen[comp.Name] = true
		if comp.Start == nil && comp.Run == nil && comp.Stop == nil {
			bad("WithComponent(%q): Start, Run and Stop are all nil", comp.Name)
		}
		if comp.StopTimeout < 0 {
			bad("WithComponent(%q): StopTimeout %v must not be negative", comp.Name, comp.StopTimeout)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("hexagonal: %w", errors.Join(errs...))
	}
	return nil
}

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

// WithComponent adds components to the app, after those added before:
// [App.Run] starts them in that order and stops them in the reverse order.
// Register what others depend on first (a database pool before the
// consumer that writes to it) and driving adapters (HTTP servers, message
// consumers) last, so that they stop taking work first. Each component's
// name must be unique.
func WithComponent(components ...Component) Option {
	return optionFunc(func(c *config) { c.components = append(c.components, components...) })
}

// WithHealth makes h the app's health: the app turns its readiness off
// while it starts and once it begins to shut down. By default the app has
// a health of its own, with no checks, that [App.Health] returns.
// A nil h is ignored.
func WithHealth(h *Health) Option {
	return optionFunc(func(c *config) {
		if h != nil {
			c.health = h
		}
	})
}

// WithDrainDelay sets how long the app waits, once it has turned its
// readiness off and before it stops any component, for load balancers and
// Kubernetes (whose endpoints follow a failed readiness probe, or the pod's
// deletion, with a lag of a few seconds) to stop sending it new requests.
// The default is 0, no delay; behind Kubernetes a few seconds (longer than
// the readiness probe's period) avoids the refused connections of a pod
// that stopped listening while still in the endpoints.
func WithDrainDelay(d time.Duration) Option {
	return optionFunc(func(c *config) { c.drainDelay = d })
}

// WithStartTimeout bounds how long each component's Start may take. The
// default is [DefaultStartTimeout] (15s).
func WithStartTimeout(d time.Duration) Option {
	return optionFunc(func(c *config) { c.startTimeout = d })
}

// WithStopTimeout bounds how long each component may take to stop, unless
// it sets its own [Component.StopTimeout]. The default is
// [DefaultStopTimeout] (10s). Make the drain delay plus the stop timeouts
// of all components fit in the time the platform grants for shutdown
// (Kubernetes' terminationGracePeriodSeconds, 30s by default).
func WithStopTimeout(d time.Duration) Option {
	return optionFunc(func(c *config) { c.stopTimeout = d })
}

// WithSignals makes [App.Run] read shutdown signals from ch instead of
// subscribing to SIGINT and SIGTERM with [signal.Notify]. It is for tests,
// and for programs that handle signals themselves; closing ch counts as
// one signal. A nil ch restores the default.
func WithSignals(ch <-chan os.Signal) Option {
	return optionFunc(func(c *config) { c.signals = ch })
}

// WithExit sets what a second signal calls to force the program's exit
// (the first asks for the graceful shutdown, as does the end of Run's
// context). The default is [os.Exit];
// the code given is 1. If exit returns (as a test's does), [App.Run]
// returns at once, with an error wrapping [ErrForcedExit].
func WithExit(exit func(code int)) Option {
	return optionFunc(func(c *config) { c.exit = exit })
}

type sharedOption struct {
	logger *slog.Logger
	tp     trace.TracerProvider
	mp     metric.MeterProvider
}

func (o sharedOption) apply(c *config) {
	if o.logger != nil {
		c.logger = o.logger
	}
	if o.tp != nil {
		c.tp = o.tp
	}
	if o.mp != nil {
		c.mp = o.mp
	}
}

func (o sharedOption) applyHealth(c *healthConfig) {
	if o.logger != nil {
		c.logger = o.logger
	}
	if o.mp != nil {
		c.mp = o.mp
	}
}

func (o sharedOption) applyInstrument(c *instrumentConfig) {
	if o.tp != nil {
		c.tp = o.tp
	}
	if o.mp != nil {
		c.mp = o.mp
	}
}

// WithLogger sets where the app logs its phases and the health logs
// failing checks. The default, also used when l is nil, is
// [slog.Default] at the time of New.
func WithLogger(l *slog.Logger) LogOption { return sharedOption{logger: l} }

// WithTracerProvider sets where the spans of an [App] and of the calls
// wrapped by [Instrument] go; a [Health] makes none (probes every few
// seconds would flood the traces), so it ignores the option. The
// default, also used when tp is nil, is the global provider at the time
// of New (or of [Instrument]).
func WithTracerProvider(tp trace.TracerProvider) TelemetryOption { return sharedOption{tp: tp} }

// WithMeterProvider sets where the metrics of a [Health] and of the
// calls wrapped by [Instrument] go; an [App] passes it to the health it
// makes when given none. The default, also used when mp is nil, is the
// global provider at the time of New (or of [Instrument]).
func WithMeterProvider(mp metric.MeterProvider) TelemetryOption { return sharedOption{mp: mp} }
