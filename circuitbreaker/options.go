package circuitbreaker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.opentelemetry.io/otel/metric"
)

// Defaults of a breaker built with no options.
const (
	DefaultWindowSize       = 100
	DefaultMinimumCalls     = 20
	DefaultFailureRate      = 50.0
	DefaultOpenDuration     = 30 * time.Second
	DefaultHalfOpenProbes   = 1
	DefaultMaxBreakers      = 1024
	maxCountWindow          = 1 << 16
	maxTimeWindowBuckets    = 1 << 12
	defaultTimeWindowBucket = 10
)

// Option configures a [Breaker]. Options passed to [NewGroup] or
// [NewTransport] configure every breaker they create.
type Option interface {
	GroupOption
	apply(*config)
}

// GroupOption configures a [Group]. Every [Option] is also a GroupOption and
// applies to each breaker of the group.
type GroupOption interface {
	TransportOption
	applyGroup(*groupConfig)
}

type optionFunc func(*config)

func (f optionFunc) apply(c *config)                   { f(c) }
func (f optionFunc) applyGroup(g *groupConfig)         { g.breaker = append(g.breaker, f) }
func (f optionFunc) applyTransport(t *transportConfig) { t.group = append(t.group, f) }

type config struct {
	windowSize     int
	windowDuration time.Duration
	windowBuckets  int
	minimumCalls   int
	failureRate    float64
	failureRateSet bool
	slowThreshold  time.Duration
	slowRate       float64
	consecutive    int
	openDuration   time.Duration
	openJitter     float64
	probes         int
	successes      int
	probeTimeout   time.Duration
	classify       func(error) Outcome
	onStateChange  []func(StateChange)
	meterProvider  metric.MeterProvider
	histogram      bool
	errs           []error // bad options, reported by New
}

func defaultConfig() config {
	return config{
		windowSize:   DefaultWindowSize,
		minimumCalls: DefaultMinimumCalls,
		failureRate:  DefaultFailureRate,
		openDuration: DefaultOpenDuration,
		probes:       DefaultHalfOpenProbes,
		classify:     DefaultClassifier,
	}
}

// fault records a bad option. Options check their own arguments as they are
// applied, so that every bad one is named, even one overridden by a later
// option.
func (c *config) fault(format string, args ...any) {
	c.errs = append(c.errs, fmt.Errorf(format, args...))
}

// newConfig applies opts to the defaults and reports every bad option at
// once (nil when all are good).
func newConfig(opts []Option) (config, error) {
	c := defaultConfig()
	for i, o := range opts {
		if o == nil {
			c.fault("opts[%d] is nil", i)
			continue
		}
		o.apply(&c)
	}
	return c, errors.Join(c.errs...)
}

// Validate reports whether opts are valid options for [New], without
// building a breaker and without panicking: nil if they are, otherwise an
// error naming every bad option, with the message New would panic with.
//
// Use it where the options' values come from configuration rather than
// code (a file, flags, the environment), to report a bad setting as an
// error before calling New. [NewGroup] and [NewTransport] accept the same
// options and reject the same values.
func Validate(opts ...Option) error {
	if _, err := newConfig(opts); err != nil {
		return fmt.Errorf("circuitbreaker: %w", err)
	}
	return nil
}

// WithCountWindow makes the breaker decide on the outcomes of the last size
// calls. size must be in 1..65536. This is the default, with size
// [DefaultWindowSize] (100). Of WithCountWindow and [WithTimeWindow], the
// last given wins.
func WithCountWindow(size int) Option {
	return optionFunc(func(c *config) {
		if size <= 0 || size > maxCountWindow {
			c.fault("WithCountWindow(%d): size must be in 1..%d", size, maxCountWindow)
		}
		c.windowSize, c.windowDuration, c.windowBuckets = size, 0, 0
	})
}

// WithTimeWindow makes the breaker decide on the outcomes of the calls that
// finished in the last d, kept in buckets slices of d/buckets each (so the
// window slides by that much at a time). d must be positive and buckets in
// 1..4096, with each bucket at least 1ns long; 10 buckets is a good choice.
// A time window reads the clock once per call. By default the breaker uses
// a count window ([WithCountWindow]); of the two, the last given wins.
func WithTimeWindow(d time.Duration, buckets int) Option {
	return optionFunc(func(c *config) {
		if d <= 0 {
			c.fault("WithTimeWindow(%v, %d): duration must be positive", d, buckets)
		}
		switch {
		case buckets <= 0 || buckets > maxTimeWindowBuckets:
			c.fault("WithTimeWindow(%v, %d): buckets must be in 1..%d", d, buckets, maxTimeWindowBuckets)
		case d > 0 && d/time.Duration(buckets) <= 0:
			c.fault("WithTimeWindow(%v, %d): buckets must be no shorter than 1ns each", d, buckets)
		}
		c.windowDuration, c.windowBuckets = d, buckets
	})
}

// WithMinimumCalls sets how many calls the window must hold before the
// failure-rate and slow-call-rate rules may trip the breaker. n must be
// positive. The default is [DefaultMinimumCalls] (20). With a count window
// smaller than n, the whole window is enough.
func WithMinimumCalls(n int) Option {
	return optionFunc(func(c *config) {
		if n <= 0 {
			c.fault("WithMinimumCalls(%d): must be positive", n)
		}
		c.minimumCalls = n
	})
}

// WithFailureRate sets the percentage of failed calls in the window, in
// (0, 100], at or above which the breaker trips. The default is
// [DefaultFailureRate] (50).
func WithFailureRate(percent float64) Option {
	return optionFunc(func(c *config) {
		if !(percent > 0 && percent <= 100) {
			c.fault("WithFailureRate(%v): threshold must be in (0, 100]", percent)
		}
		c.failureRate, c.failureRateSet = percent, true
	})
}

// WithSlowCalls turns on slow-call detection: a call that takes threshold or
// longer counts as slow, and the breaker trips when the percentage of slow
// calls in the window reaches ratePercent. threshold must be positive and
// ratePercent in (0, 100]. A slow call that failed counts as a failure too.
// Timing a call costs two clock reads. By default slow calls are not
// detected; there is no value that turns detection off again.
func WithSlowCalls(threshold time.Duration, ratePercent float64) Option {
	return optionFunc(func(c *config) {
		if threshold <= 0 {
			c.fault("WithSlowCalls(%v, %v): threshold must be positive", threshold, ratePercent)
		}
		if !(ratePercent > 0 && ratePercent <= 100) {
			c.fault("WithSlowCalls(%v, %v): rate must be in (0, 100]", threshold, ratePercent)
		}
		c.slowThreshold, c.slowRate = threshold, ratePercent
	})
}

// WithConsecutiveFailures switches the breaker to the simple rule that trips
// after n failures in a row, as sony/gobreaker's default does. Unless
// [WithFailureRate] is also given, the failure-rate rule is then off; the
// slow-call rule, if set, still applies. n must not be negative; 0 (the
// default) turns the rule off and the failure-rate rule back on.
func WithConsecutiveFailures(n int) Option {
	return optionFunc(func(c *config) {
		if n < 0 {
			c.fault("WithConsecutiveFailures(%d): must not be negative", n)
		}
		c.consecutive = n
	})
}

// WithOpenDuration sets how long the breaker stays open before it lets a
// probe through. d must be positive. The default is [DefaultOpenDuration]
// (30s).
func WithOpenDuration(d time.Duration) Option {
	return optionFunc(func(c *config) {
		if d <= 0 {
			c.fault("WithOpenDuration(%v): must be positive", d)
		}
		c.openDuration = d
	})
}

// WithOpenJitter lengthens each open period by a random amount of up to
// fraction of the open duration, so that a fleet of instances that opened
// together does not probe the dependency in step. fraction must be from 0
// to 1 inclusive. The default is 0, no jitter.
func WithOpenJitter(fraction float64) Option {
	return optionFunc(func(c *config) {
		if !(fraction >= 0 && fraction <= 1) {
			c.fault("WithOpenJitter(%v): fraction must be in [0, 1]", fraction)
		}
		c.openJitter = fraction
	})
}

// WithHalfOpenProbes sets how many probe calls the half-open breaker lets
// through at once, at most. It never has more probes in flight than the
// successes it still needs to close ([WithHalfOpenSuccesses]), so with
// WithHalfOpenProbes(5) and WithHalfOpenSuccesses(1) one probe runs at a
// time. n must be positive. The default is [DefaultHalfOpenProbes] (1).
func WithHalfOpenProbes(n int) Option {
	return optionFunc(func(c *config) {
		if n <= 0 {
			c.fault("WithHalfOpenProbes(%d): must be positive", n)
		}
		c.probes = n
	})
}

// WithHalfOpenSuccesses sets how many probe calls must succeed for the
// half-open breaker to close. n must not be negative; the default, 0, means
// as many as [WithHalfOpenProbes] admits at once. A probe that fails or is
// slow opens the breaker again.
func WithHalfOpenSuccesses(n int) Option {
	return optionFunc(func(c *config) {
		if n < 0 {
			c.fault("WithHalfOpenSuccesses(%d): must not be negative", n)
		}
		c.successes = n
	})
}

// WithProbeTimeout bounds how long a half-open probe may run. When no probe
// can be admitted and the oldest one in flight has run for d or longer, the
// next call reopens the breaker, counting that probe as failed, so a probe
// that never returns cannot wedge the breaker in half-open. d must not be
// negative; the default, 0, uses the open duration.
func WithProbeTimeout(d time.Duration) Option {
	return optionFunc(func(c *config) {
		if d < 0 {
			c.fault("WithProbeTimeout(%v): must not be negative", d)
		}
		c.probeTimeout = d
	})
}

// WithClassifier sets how a call's error counts. f must not be nil. The
// default is [DefaultClassifier].
func WithClassifier(f func(err error) Outcome) Option {
	return optionFunc(func(c *config) {
		if f == nil {
			c.fault("WithClassifier(nil): classifier must not be nil")
		}
		c.classify = f
	})
}

// DefaultClassifier counts nil as [Success], [context.Canceled] as
// [Ignored] (the caller gave up; that is not the dependency's fault) and
// every other error, [context.DeadlineExceeded] included, as [Failure].
func DefaultClassifier(err error) Outcome {
	switch {
	case err == nil:
		return Success
	case errors.Is(err, context.Canceled):
		return Ignored
	}
	return Failure
}

// StateChange describes a transition of a breaker's state.
type StateChange struct {
	// Breaker is the breaker's name.
	Breaker string
	// From and To are the states before and after the change.
	From, To State
	// Snapshot is the breaker's window as it was when the change happened:
	// for a trip, the calls that tripped it.
	Snapshot Snapshot
}

// WithOnStateChange registers f to be called on every state change. The
// breaker calls f after the change, holding no lock, so f may call the
// breaker's methods. Calls to f for one breaker never overlap and come in the
// order of the changes. f runs on the goroutine whose call caused the change
// (or the one delivering earlier changes), so it should be quick. If f
// panics, the panic goes on, on that goroutine, and the changes not yet
// delivered (this one to the listeners after f, and the changes after
// it) wait for the breaker's next change, which delivers them first. f
// must not be nil. Each WithOnStateChange adds a listener; by default
// there is none.
func WithOnStateChange(f func(StateChange)) Option {
	return optionFunc(func(c *config) {
		if f == nil {
			c.fault("WithOnStateChange(nil): listener must not be nil")
			return
		}
		c.onStateChange = append(c.onStateChange, f)
	})
}

// WithMeterProvider sets where the breaker's metrics go. The default, also
// used when mp is nil, is the global provider at the time of New.
func WithMeterProvider(mp metric.MeterProvider) Option {
	return optionFunc(func(c *config) { c.meterProvider = mp })
}

// WithDurationHistogram records every call's duration in the
// circuitbreaker.call.duration histogram even when slow-call detection is
// off. Timing a call costs two clock reads, so it is off by default.
func WithDurationHistogram() Option {
	return optionFunc(func(c *config) { c.histogram = true })
}
