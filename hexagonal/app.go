package hexagonal

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"slices"
	"sync/atomic"
	"syscall"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/otelpatterns/patterns/internal/telemetry"
)

// ErrForcedExit is wrapped by the error [App.Run] returns when a second
// signal forced the exit and the exit function returned.
var ErrForcedExit = errors.New("hexagonal: forced exit on a second signal")

// ErrAlreadyRun is returned by [App.Run] on an app that has already run:
// components are started once.
var ErrAlreadyRun = errors.New("hexagonal: the app has already run")

// App runs a service's components: it starts them in order, waits for the
// end of its context or for SIGINT or SIGTERM, and stops them in reverse
// order, with its [Health] telling load balancers when not to send it
// requests. It is safe for concurrent use; it runs once. An App is made
// by [New]: Run on one that was not (the zero App) returns an error.
type App struct {
	cfg    config
	health *Health
	tracer trace.Tracer
	log    *slog.Logger
	ran    atomic.Bool
}

// New returns an app of the components given by [WithComponent], or an
// error naming every bad option (a nil one as "opts[i] is nil").
func New(opts ...Option) (*App, error) {
	cfg := defaultConfig()
	for i, o := range opts {
		if o == nil {
			cfg.nilOpts = append(cfg.nilOpts, i)
			continue
		}
		o.apply(&cfg)
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if cfg.logger == nil {
		cfg.logger = slog.Default()
	}
	h := cfg.health
	if h == nil {
		var err error
		if h, err = NewHealth(WithLogger(cfg.logger), WithMeterProvider(cfg.mp)); err != nil {
			return nil, err
		}
	}
	h.setPhase(phaseStarting)
	return &App{
		cfg:    cfg,
		health: h,
		tracer: telemetry.Tracer(cfg.tp, ScopeName),
		log:    cfg.logger,
	}, nil
}

// Health returns the app's health: the one given by [WithHealth], or one
// of its own. Serve its [Health.Handler] to expose /livez, /readyz and
// /health.
func (a *App) Health() *Health { return a.health }

// running is a started component.
type running struct {
	c      *Component
	cancel context.CancelFunc // cancels Run's context
	done   chan struct{}      // closed when Run has returned; nil without Run
}

// exited is a component's Run that returned.
type exited struct {
	name string
	err  error
}

// Run starts the components in registration order, then waits until ctx
// ends, a SIGINT or SIGTERM arrives (or a signal on [WithSignals]'s
// channel), or a component's Run returns. Then it shuts down: the health
// turns not ready at once, the app waits for the drain delay
// ([WithDrainDelay]), and stops the started components in reverse order,
// each within its stop timeout. A component that fails to start stops the
// start: the components started before it are stopped the same way. A
// shutdown that comes during a component's Start first waits for that
// Start to return, up to the start timeout ([WithStartTimeout]), so that
// a component that started is stopped too.
//
// Run returns nil after a shutdown asked for by ctx or a signal in which
// every component stopped cleanly; otherwise the first error (a start
// failure, a component's Run failing, a stop failing or timing out), with
// every later one joined to it. A second signal forces the exit
// ([WithExit]). A component that ignores its
// context past its timeout is left running: Run goes on without it.
//
// Run may be called once; later calls return [ErrAlreadyRun].
func (a *App) Run(ctx context.Context) error {
	if a == nil || a.log == nil {
		return errors.New("hexagonal: App.Run: the App was not made by New")
	}
	if !a.ran.CompareAndSwap(false, true) {
		return ErrAlreadyRun
	}
	sigs := a.cfg.signals
	if sigs == nil {
		ch := make(chan os.Signal, 2)
		signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
		defer signal.Stop(ch)
		sigs = ch
	}
	runCtx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	forced := make(chan struct{})
	quit := make(chan struct{})
	watcher := make(chan struct{})
	go a.watch(runCtx, stop, sigs, forced, quit, watcher)
	defer func() { close(quit); <-watcher }()

	exits := make(chan exited, len(a.cfg.components))
	started, errs, ok, startup := a.start(runCtx, exits, forced)
	if ok {
		a.health.setPhase(phaseRunning)
		a.log.LogAttrs(ctx, slog.LevelInfo, "hexagonal: started; ready", slog.Int("components", len(started)))
		select {
		case <-runCtx.Done():
		case e := <-exits:
			errs = a.exited(ctx, e, errs)
		}
	}
	errs = a.shutdown(ctx, context.Cause(runCtx), startup, started, exits, forced, errs)
	select {
	case <-forced:
		// Forced while a Start was awaited, or with nothing left to stop.
		if !slices.ContainsFunc(errs, func(err error) bool { return errors.Is(err, ErrForcedExit) }) {
			errs = append(errs, ErrForcedExit)
		}
	default:
	}
	switch len(errs) {
	case 0:
		return nil
	case 1:
		return errs[0]
	}
	return errors.Join(errs...)
}

// watch turns the first signal into a shutdown and the second into a
// forced exit. It counts signals rather than looking at whether the
// shutdown began: a program that also turns SIGINT into the end of Run's
// context (with signal.NotifyContext) gets each signal on both paths, in
// either order, and one Ctrl-C must not force the exit.
func (a *App) watch(ctx context.Context, stop context.CancelCauseFunc, sigs <-chan os.Signal, forced, quit, done chan struct{}) {
	defer close(done)
	for n := 0; ; {
		select {
		case <-quit:
			return
		case s, ok := <-sigs:
			if !ok {
				// A closed channel asks for the shutdown once; reading
				// it again would count as more signals.
				sigs = nil
				if n++; n == 1 {
					a.log.LogAttrs(ctx, slog.LevelInfo, "hexagonal: signal channel closed; shutting down")
					stop(errSignalsClosed)
				}
				continue
			}
			if n++; n == 1 {
				a.log.LogAttrs(ctx, slog.LevelInfo, "hexagonal: signal received; shutting down", slog.String("signal", sigName(s)))
				stop(&signalError{s})
				continue
			}
			a.log.LogAttrs(ctx, slog.LevelError, "hexagonal: second signal received; forcing exit", slog.String("signal", sigName(s)))
			close(forced)
			a.cfg.exit(1)
			return
		}
	}
}

// errSignalsClosed is the cause of a shutdown asked for by closing the
// channel of [WithSignals].
var errSignalsClosed = errors.New("hexagonal: the signal channel was closed")

// signalError is the cause of a shutdown asked for by a signal.
type signalError struct{ sig os.Signal }

func (e *signalError) Error() string { return "hexagonal: signal " + sigName(e.sig) }

// sigName names s; a nil one, sent on the channel of [WithSignals], too.
func sigName(s os.Signal) string {
	if s == nil {
		return "<nil>"
	}
	return s.String()
}

// start starts the components in order. It returns those started, the
// error that stopped the start, if any, whether every component started,
// and the start-up span's context.
func (a *App) start(base context.Context, exits chan exited, forced <-chan struct{}) (started []running, errs []error, ok bool, startup trace.SpanContext) {
	ctx, span := a.tracer.Start(base, "hexagonal.startup")
	defer span.End()
	startup = span.SpanContext()
	a.log.LogAttrs(ctx, slog.LevelInfo, "hexagonal: starting", slog.Int("components", len(a.cfg.components)))
	// Before each Start, and once more after the last, the start looks
	// for a shutdown asked for and for a Run that returned: either,
	// while the last component starts, must keep the app from turning
	// ready.
	for i := 0; ; i++ {
		if ctx.Err() != nil {
			return started, nil, false, startup // asked to stop
		}
		select {
		case e := <-exits:
			return started, a.exited(ctx, e, nil), false, startup
		default:
		}
		if i == len(a.cfg.components) {
			return started, nil, true, startup
		}
		c := &a.cfg.components[i]
		if err := a.startOne(ctx, c, forced); err != nil {
			if cerr := ctx.Err(); cerr != nil && errors.Is(err, cerr) {
				// Interrupted by a shutdown: a signal, or the end of
				// Run's context, its deadline included.
				return started, nil, false, startup
			}
			telemetry.RecordError(span, err)
			return started, []error{err}, false, startup
		}
		r := running{c: c}
		if c.Run != nil {
			// Run's work is not part of the start-up: its context has
			// base's values but not the start-up span, nor base's
			// cancellation, which begins the shutdown rather than ending
			// Run at once.
			var rctx context.Context
			rctx, r.cancel = context.WithCancel(context.WithoutCancel(base))
			r.done = make(chan struct{})
			go func() {
				defer close(r.done)
				err := protect(c.Name, "run", func() error { return c.Run(rctx) })
				exits <- exited{name: c.Name, err: err}
			}()
		}
		started = append(started, r)
	}
}

func (a *App) startOne(ctx context.Context, c *Component, forced <-chan struct{}) error {
	ctx, span := a.tracer.Start(ctx, "start "+c.Name, trace.WithAttributes(AttrComponent.String(c.Name)))
	defer span.End()
	if c.Start == nil {
		return nil
	}
	a.log.LogAttrs(ctx, slog.LevelInfo, "hexagonal: starting component", slog.String("component", c.Name))
	begin := time.Now()
	ctx, cancel := context.WithTimeoutCause(ctx, a.cfg.startTimeout, errStartTimeout)
	defer cancel()
	err := within(ctx, begin.Add(a.cfg.startTimeout), forced, func() error { return protect(c.Name, "start", func() error { return c.Start(ctx) }) })
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil {
			err = fmt.Errorf("hexagonal: component %q did not start within %v: %w", c.Name, a.cfg.startTimeout, err)
		} else {
			err = fmt.Errorf("hexagonal: start %q: %w", c.Name, err)
		}
		telemetry.RecordError(span, err)
		a.log.LogAttrs(ctx, slog.LevelError, "hexagonal: component failed to start", slog.String("component", c.Name), slog.Any("error", err))
		return err
	}
	a.log.LogAttrs(ctx, slog.LevelInfo, "hexagonal: component started", slog.String("component", c.Name), slog.Duration("took", time.Since(begin)))
	return nil
}

// exited handles a component's Run that returned while the app ran.
func (a *App) exited(ctx context.Context, e exited, errs []error) []error {
	if e.err == nil {
		a.log.LogAttrs(ctx, slog.LevelInfo, "hexagonal: component finished; shutting down", slog.String("component", e.name))
		return errs
	}
	err := fmt.Errorf("hexagonal: component %q failed: %w", e.name, e.err)
	a.log.LogAttrs(ctx, slog.LevelError, "hexagonal: component failed; shutting down", slog.String("component", e.name), slog.Any("error", e.err))
	return append(errs, err)
}

// shutdown turns readiness off, drains, and stops the started components
// in reverse order.
func (a *App) shutdown(ctx context.Context, cause error, startup trace.SpanContext, started []running, exits <-chan exited, forced <-chan struct{}, errs []error) []error {
	a.health.setPhase(phaseStopping)
	ctx = context.WithoutCancel(ctx)
	// The shutdown is a trace of its own (or a child of the caller's
	// span), linked to the start-up's.
	ctx, span := a.tracer.Start(ctx, "hexagonal.shutdown", trace.WithLinks(trace.Link{SpanContext: startup}))
	defer span.End()
	reason := "a component ended"
	if cause != nil {
		reason = cause.Error()
	} else if len(errs) > 0 {
		reason = errs[0].Error()
	}
	a.log.LogAttrs(ctx, slog.LevelInfo, "hexagonal: shutting down", slog.String("reason", reason), slog.Int("components", len(started)))
	for _, r := range started {
		if r.c.drain != nil {
			r.c.drain()
		}
	}
	if d := a.cfg.drainDelay; d > 0 && len(started) > 0 {
		a.log.LogAttrs(ctx, slog.LevelInfo, "hexagonal: draining", slog.Duration("delay", d))
		span.AddEvent("hexagonal.drain")
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-forced:
			t.Stop()
			return append(errs, ErrForcedExit)
		}
	}
	for i := len(started) - 1; i >= 0; i-- {
		err, ok := a.stopOne(ctx, started[i], forced)
		if !ok {
			return append(errs, ErrForcedExit)
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	// Runs that failed while the app ran and were not reported yet, or
	// during the shutdown for another reason than their cancellation.
	for {
		select {
		case e := <-exits:
			if e.err != nil && !errors.Is(e.err, context.Canceled) {
				errs = append(errs, fmt.Errorf("hexagonal: component %q failed: %w", e.name, e.err))
			}
			continue
		default:
		}
		break
	}
	if len(errs) > 0 {
		telemetry.RecordError(span, errs[0])
		a.log.LogAttrs(ctx, slog.LevelError, "hexagonal: stopped with errors", slog.Any("error", errors.Join(errs...)))
	} else {
		a.log.LogAttrs(ctx, slog.LevelInfo, "hexagonal: stopped")
	}
	return errs
}

// stopOne stops r within its timeout; ok is false when the exit was
// forced meanwhile.
func (a *App) stopOne(ctx context.Context, r running, forced <-chan struct{}) (err error, ok bool) {
	c := r.c
	timeout := c.StopTimeout
	if timeout == 0 {
		timeout = a.cfg.stopTimeout
	}
	ctx, span := a.tracer.Start(ctx, "stop "+c.Name, trace.WithAttributes(AttrComponent.String(c.Name)))
	defer span.End()
	a.log.LogAttrs(ctx, slog.LevelInfo, "hexagonal: stopping component", slog.String("component", c.Name))
	begin := time.Now()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	result := make(chan error, 1)
	go func() {
		if r.cancel != nil {
			r.cancel()
		}
		var err error
		if c.Stop != nil {
			err = protect(c.Name, "stop", func() error { return c.Stop(ctx) })
		}
		if r.done != nil {
			select {
			case <-r.done:
			case <-ctx.Done():
				if err == nil {
					err = ctx.Err()
				}
			}
		}
		result <- err
	}()
	select {
	case err = <-result:
	case <-ctx.Done():
		err = ctx.Err()
	case <-forced:
		return nil, false
	}
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil {
			err = fmt.Errorf("hexagonal: component %q did not stop within %v: %w", c.Name, timeout, err)
		} else {
			err = fmt.Errorf("hexagonal: stop %q: %w", c.Name, err)
		}
		telemetry.RecordError(span, err)
		a.log.LogAttrs(ctx, slog.LevelError, "hexagonal: component failed to stop", slog.String("component", c.Name), slog.Any("error", err))
		return err, true
	}
	a.log.LogAttrs(ctx, slog.LevelInfo, "hexagonal: component stopped", slog.String("component", c.Name), slog.Duration("took", time.Since(begin)))
	return nil, true
}

// within runs f, a component's Start, and returns its error, or ctx's
// once ctx is done and f has not returned: a Start that ignores its
// context is left behind. When the app is asked to stop (ctx ended by a
// signal or by Run's context, not by the start timeout), within still
// waits for f until deadline, the end of the start timeout: a Start that
// returns nil then has started its component, which must be stopped like
// the others, not taken for one that never started (its pool or listener
// left open). A forced exit (forced closed) ends the wait.
func within(ctx context.Context, deadline time.Time, forced <-chan struct{}, f func() error) error {
	result := make(chan error, 1)
	go func() { result <- f() }()
	select {
	case err := <-result:
		return err
	case <-ctx.Done():
	}
	if context.Cause(ctx) == errStartTimeout {
		return ctx.Err()
	}
	wait := time.NewTimer(time.Until(deadline))
	defer wait.Stop()
	select {
	case err := <-result:
		if err != nil {
			return ctx.Err() // interrupted, in whatever words
		}
		return nil
	case <-wait.C:
	case <-forced:
	}
	return ctx.Err()
}

// errStartTimeout is the cause of a Start's context ended by the start
// timeout, which within tells from a shutdown.
var errStartTimeout = errors.New("hexagonal: start timeout")

// protect runs f, turning a panic into an error carrying the stack.
func protect(name, phase string, f func() error) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = &PanicError{Component: name, Phase: phase, Value: v, Stack: debug.Stack()}
		}
	}()
	return f()
}

// PanicError is the error of a component's function, of a health check
// or of a call wrapped by [Instrument] that panicked.
type PanicError struct {
	// Component is the name of the component or check, or the span name
	// ("{port}.{operation}") of a call wrapped by [Instrument].
	Component string
	// Phase is start, run or stop for a component, check for a check,
	// call for a wrapped call.
	Phase string
	// Value is what was passed to panic.
	Value any
	// Stack is the panicking goroutine's stack.
	Stack []byte
}

// Error says which function panicked, and with what.
func (e *PanicError) Error() string {
	return fmt.Sprintf("hexagonal: %s %q panicked: %v", e.Phase, e.Component, e.Value)
}

// ErrorType returns "hexagonal.panic", the error.type of a panic.
func (e *PanicError) ErrorType() string { return "hexagonal.panic" }

// Unwrap returns the value passed to panic when it is an error.
func (e *PanicError) Unwrap() error {
	err, _ := e.Value.(error)
	return err
}
