package hexagonal

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/otelpatterns/patterns/internal/telemetry"
)

// Defaults of a [Health] built with no options.
const (
	// DefaultCheckTimeout bounds each run of a check.
	DefaultCheckTimeout = time.Second
	// DefaultCheckInterval is how long a check's result is reused.
	DefaultCheckInterval = time.Second
)

// CheckKind is what a check decides: whether the process should be
// restarted (liveness) or should be sent requests (readiness).
type CheckKind int

const (
	// Readiness checks decide whether the service should be sent
	// requests: its dependencies answer. A failing one takes the
	// instance out of its load balancer until it passes again. It is the
	// zero CheckKind.
	Readiness CheckKind = iota
	// Liveness checks decide whether the process is beyond repair (a
	// deadlock, a corrupted state) and should be restarted. Keep them to
	// the process itself: a liveness check on a shared dependency
	// restarts every instance when the dependency fails.
	Liveness
)

// String returns "readiness" or "liveness".
func (k CheckKind) String() string {
	if k == Liveness {
		return "liveness"
	}
	return "readiness"
}

// Check is a named health check.
type Check struct {
	// Name names the check in the health's output, logs and metrics, and
	// in the /livez/{name} and /readyz/{name} paths. Names are unique.
	Name string
	// Kind is [Readiness] (the zero value) or [Liveness].
	Kind CheckKind
	// Func checks, returning nil when healthy. It should honour its
	// context, whose deadline is the timeout. A panic is a failure.
	Func func(ctx context.Context) error
	// Timeout bounds a run of Func; 0 means the health's
	// [WithCheckTimeout].
	Timeout time.Duration
	// Interval is how long a result is reused before Func runs again;
	// 0 means the health's [WithCheckInterval].
	Interval time.Duration
}

type healthConfig struct {
	checks   []Check
	timeout  time.Duration
	interval time.Duration
	logger   *slog.Logger
	mp       metric.MeterProvider
}

type healthOptionFunc func(*healthConfig)

func (f healthOptionFunc) applyHealth(c *healthConfig) { f(c) }

// WithCheck adds a check to the health.
func WithCheck(c Check) HealthOption {
	return healthOptionFunc(func(h *healthConfig) { h.checks = append(h.checks, c) })
}

// WithReadinessCheck adds a [Readiness] check called name.
func WithReadinessCheck(name string, f func(ctx context.Context) error) HealthOption {
	return WithCheck(Check{Name: name, Kind: Readiness, Func: f})
}

// WithLivenessCheck adds a [Liveness] check called name.
func WithLivenessCheck(name string, f func(ctx context.Context) error) HealthOption {
	return WithCheck(Check{Name: name, Kind: Liveness, Func: f})
}

// WithCheckTimeout bounds each run of the checks that set no
// [Check.Timeout]. The default is [DefaultCheckTimeout] (1s), Kubernetes'
// default probe timeout: a probe that waits for a check that times out
// then times out too, so give the probes a timeoutSeconds above it.
func WithCheckTimeout(d time.Duration) HealthOption {
	return healthOptionFunc(func(h *healthConfig) { h.timeout = d })
}

// WithCheckInterval sets how long the results of the checks that set no
// [Check.Interval] are reused: however many probes come, from however many
// load balancers, a check runs at most once per interval. The default is
// [DefaultCheckInterval] (1s).
func WithCheckInterval(d time.Duration) HealthOption {
	return healthOptionFunc(func(h *healthConfig) { h.interval = d })
}

// Health aggregates named checks into liveness and readiness, serves
// them over HTTP ([Health.Handler]) and reports them as metrics. An [App]
// turns its readiness off while it starts and once it shuts down. A
// Health is safe for concurrent use.
type Health struct {
	checks []*checkState
	byName map[string]*checkState
	phase  atomic.Int32
	log    *slog.Logger
	reg    *telemetry.Registration
}

// The phases of the app a health belongs to. A health of no app is
// always running.
const (
	phaseRunning int32 = iota
	phaseStarting
	phaseStopping
)

func (h *Health) setPhase(p int32) { h.phase.Store(p) }

// NewHealth returns a health of the checks given by [WithCheck],
// [WithReadinessCheck] and [WithLivenessCheck], or an error naming every
// bad option (a nil one as "opts[i] is nil").
func NewHealth(opts ...HealthOption) (*Health, error) {
	cfg := healthConfig{timeout: DefaultCheckTimeout, interval: DefaultCheckInterval}
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	for i, o := range opts {
		if o == nil {
			bad("opts[%d] is nil", i)
			continue
		}
		o.applyHealth(&cfg)
	}
	if cfg.timeout <= 0 {
		bad("WithCheckTimeout(%v): must be positive", cfg.timeout)
	}
	if cfg.interval < 0 {
		bad("WithCheckInterval(%v): must not be negative", cfg.interval)
	}
	h := &Health{byName: map[string]*checkState{}, log: cfg.logger}
	if h.log == nil {
		h.log = slog.Default()
	}
	for i, c := range cfg.checks {
		switch {
		case c.Name == "":
			bad("WithCheck: check %d has no name", i)
		case !validCheckName(c.Name):
			bad("WithCheck(%q): a name is letters, digits and . _ - only", c.Name)
		case h.byName[c.Name] != nil:
			bad("WithCheck(%q): the name is taken by an earlier check", c.Name)
		}
		if c.Func == nil {
			bad("WithCheck(%q): Func is nil", c.Name)
		}
		if c.Kind != Readiness && c.Kind != Liveness {
			bad("WithCheck(%q): unknown Kind %d", c.Name, c.Kind)
		}
		if c.Timeout < 0 {
			bad("WithCheck(%q): Timeout %v must not be negative", c.Name, c.Timeout)
		}
		if c.Interval < 0 {
			bad("WithCheck(%q): Interval %v must not be negative", c.Name, c.Interval)
		}
		if c.Timeout == 0 {
			c.Timeout = cfg.timeout
		}
		if c.Interval == 0 {
			c.Interval = cfg.interval
		}
		s := &checkState{c: c, attrs: attribute.NewSet(AttrCheck.String(c.Name), AttrCheckKind.String(c.Kind.String()))}
		h.checks = append(h.checks, s)
		if c.Name != "" {
			h.byName[c.Name] = s
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("hexagonal: %w", errors.Join(errs...))
	}
	h.observe(cfg.mp)
	return h, nil
}

func validCheckName(s string) bool {
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}

// checkState is a check with its cached result and its run in flight.
type checkState struct {
	c     Check
	attrs attribute.Set

	mu       sync.Mutex
	last     CheckResult
	has      bool
	inflight *flight

	status      atomic.Int32 // statusUnknown until the first result
	transitions [2]telemetry.Counter
}

const (
	statusUnknown int32 = iota
	statusPass
	statusFail
)

// flight is a run of a check in progress.
type flight struct {
	done     chan struct{}
	deadline time.Time
	res      CheckResult
}

// CheckResult is the outcome of a check's latest run.
type CheckResult struct {
	// Name and Kind are the check's.
	Name string
	Kind CheckKind
	// Err is nil when the check passed.
	Err error
	// Latency is how long the run took.
	Latency time.Duration
	// At is when the run ended.
	At time.Time
}

// result returns the check's result: the cached one while it is fresh,
// or else that of a run, started now unless one is in flight, waited for
// until the run's deadline or the end of ctx.
func (s *checkState) result(ctx context.Context, h *Health) CheckResult {
	now := time.Now()
	s.mu.Lock()
	if s.has && now.Sub(s.last.At) < s.c.Interval {
		res := s.last
		s.mu.Unlock()
		return res
	}
	f := s.inflight
	if f == nil {
		f = &flight{done: make(chan struct{}), deadline: now.Add(s.c.Timeout)}
		s.inflight = f
		// The run outlives a caller that goes away: the others wait
		// for it.
		go s.run(context.WithoutCancel(ctx), f, h)
	}
	s.mu.Unlock()
	// The run's context ends at the deadline; a check that honours it
	// returns just after, and its own error says more than ours.
	t := time.NewTimer(addSat(time.Until(f.deadline), graceAfter(s.c.Timeout)))
	defer t.Stop()
	select {
	case <-f.done:
		return f.res
	case <-t.C:
		select {
		case <-f.done:
			return f.res
		default:
		}
		// The check ignores its context: it fails, and is not run again
		// until it returns.
		res := s.fail(fmt.Errorf("hexagonal: check %q did not return within %v", s.c.Name, s.c.Timeout), s.c.Timeout)
		// Cached and recorded only while the run has not returned
		// meanwhile, under the lock the run records under: the status
		// follows the cached result.
		s.mu.Lock()
		if s.inflight == f {
			s.last, s.has = res, true
			h.record(s, res)
		}
		s.mu.Unlock()
		return res
	case <-ctx.Done():
		return s.fail(fmt.Errorf("hexagonal: check %q: %w", s.c.Name, context.Cause(ctx)), time.Since(now))
	}
}

// graceAfter is how long past a run's deadline its waiters wait for it:
// a tenth of the timeout, at most 100ms.
func graceAfter(timeout time.Duration) time.Duration {
	return min(timeout/10, 100*time.Millisecond)
}

// addSat returns d+grace, or the largest Duration when the sum overflows:
// a timeout as large as a Duration goes (no bound, in effect) would
// otherwise wrap round to a negative wait, and the check would time out
// at once.
func addSat(d, grace time.Duration) time.Duration {
	if d > math.MaxInt64-grace {
		return math.MaxInt64
	}
	return d + grace
}

func (s *checkState) fail(err error, latency time.Duration) CheckResult {
	return CheckResult{Name: s.c.Name, Kind: s.c.Kind, Err: err, Latency: latency, At: time.Now()}
}

func (s *checkState) run(ctx context.Context, f *flight, h *Health) {
	ctx, cancel := context.WithDeadline(ctx, f.deadline)
	defer cancel()
	begin := time.Now()
	err := protect(s.c.Name, "check", func() error { return s.c.Func(ctx) })
	res := CheckResult{Name: s.c.Name, Kind: s.c.Kind, Err: err, Latency: time.Since(begin), At: time.Now()}
	if err != nil && ctx.Err() != nil && errors.Is(err, context.DeadlineExceeded) {
		res.Err = fmt.Errorf("hexagonal: check %q timed out after %v: %w", s.c.Name, s.c.Timeout, err)
	}
	s.mu.Lock()
	s.last, s.has, s.inflight = res, true, nil
	h.record(s, res)
	s.mu.Unlock()
	f.res = res
	close(f.done)
}

// record updates the check's status and logs a change; s.mu is held.
func (h *Health) record(s *checkState, res CheckResult) {
	next := statusPass
	if res.Err != nil {
		next = statusFail
	}
	prev := s.status.Swap(next)
	if prev == next {
		return
	}
	s.transitions[next-statusPass].Inc()
	attrs := []slog.Attr{slog.String("check", s.c.Name), slog.String("kind", s.c.Kind.String())}
	if res.Err == nil {
		if prev != statusUnknown {
			h.log.LogAttrs(context.Background(), slog.LevelInfo, "hexagonal: health check passes again", attrs...)
		}
		return
	}
	attrs = append(attrs, slog.Any("error", res.Err))
	var p *PanicError
	if errors.As(res.Err, &p) {
		attrs = append(attrs, slog.String("stack", string(p.Stack)))
	}
	h.log.LogAttrs(context.Background(), slog.LevelWarn, "hexagonal: health check fails", attrs...)
}

// Report is the aggregated result of a health's checks.
type Report struct {
	// OK is true when every check included passed (and, for readiness,
	// the app is running).
	OK bool
	// Phase is the app's phase: starting, running or stopping.
	Phase string
	// Checks are the results of the checks included, in the order they
	// were added.
	Checks []CheckResult
}

// Live runs the liveness checks (or reuses their fresh results) and
// reports whether they all pass.
func (h *Health) Live(ctx context.Context) Report { return h.report(ctx, false, nil) }

// Ready runs every check, liveness and readiness, (or reuses their fresh
// results) and reports whether they all pass and the app is running.
func (h *Health) Ready(ctx context.Context) Report { return h.report(ctx, true, nil) }

// report runs the checks concurrently: those of liveness, or all of them
// for readiness, but for the excluded ones.
func (h *Health) report(ctx context.Context, ready bool, exclude map[string]bool) Report {
	var states []*checkState
	for _, s := range h.checks {
		if (ready || s.c.Kind == Liveness) && !exclude[s.c.Name] {
			states = append(states, s)
		}
	}
	rep := Report{Checks: make([]CheckResult, len(states))}
	h.collect(ctx, states, rep.Checks)
	// The phase is read once the checks are in: a shutdown that began
	// while they ran has turned readiness off, and the report must not
	// say otherwise.
	phase := h.phase.Load()
	rep.OK, rep.Phase = !ready || phase == phaseRunning, phaseName(phase)
	for _, r := range rep.Checks {
		if r.Err != nil {
			rep.OK = false
		}
	}
	return rep
}

// collect fills out with the results of states: the fresh cached ones at
// once, the others run (or waited for) concurrently.
func (h *Health) collect(ctx context.Context, states []*checkState, out []CheckResult) {
	now := time.Now()
	var stale []int
	for i, s := range states {
		if res, ok := s.cached(now); ok {
			out[i] = res
		} else {
			stale = append(stale, i)
		}
	}
	if len(stale) == 1 {
		out[stale[0]] = states[stale[0]].result(ctx, h)
		return
	}
	var wg sync.WaitGroup
	for _, i := range stale {
		wg.Go(func() { out[i] = states[i].result(ctx, h) })
	}
	wg.Wait()
}

// cached returns the check's result if it is fresh at now.
func (s *checkState) cached(now time.Time) (CheckResult, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.has && now.Sub(s.last.At) < s.c.Interval {
		return s.last, true
	}
	return CheckResult{}, false
}

func phaseName(p int32) string {
	switch p {
	case phaseStarting:
		return "starting"
	case phaseStopping:
		return "stopping"
	}
	return "running"
}

// observe registers the callback that reports the checks' status and
// transitions.
func (h *Health) observe(mp metric.MeterProvider) {
	if len(h.checks) == 0 {
		return
	}
	m := telemetry.Meter(mp, ScopeName)
	status, err := m.Int64ObservableGauge(metricCheckStatus,
		metric.WithUnit("{status}"),
		metric.WithDescription("Status of a health check: 1 when its latest run passed, 0 when it failed."))
	if err != nil {
		telemetryHandle(err)
		return
	}
	transitions := telemetry.Int64ObservableCounter(m, metricCheckTransitions,
		metric.WithUnit("{transition}"),
		metric.WithDescription("Changes of a health check's status, by the status changed to."))
	type opts struct{ status, pass, fail []metric.ObserveOption }
	all := make([]opts, len(h.checks))
	for i, s := range h.checks {
		kvs := s.attrs.ToSlice()
		all[i] = opts{
			status: []metric.ObserveOption{metric.WithAttributeSet(s.attrs)},
			pass:   []metric.ObserveOption{metric.WithAttributeSet(attribute.NewSet(append(kvs[:len(kvs):len(kvs)], AttrCheckStatus.String("pass"))...))},
			fail:   []metric.ObserveOption{metric.WithAttributeSet(attribute.NewSet(append(kvs[:len(kvs):len(kvs)], AttrCheckStatus.String("fail"))...))},
		}
	}
	h.reg = telemetry.Observe(m, h, func(h *Health, o metric.Observer) {
		for i, s := range h.checks {
			switch s.status.Load() {
			case statusPass:
				o.ObserveInt64(status, 1, all[i].status...)
			case statusFail:
				o.ObserveInt64(status, 0, all[i].status...)
			}
			if n := s.transitions[0].Load(); n > 0 {
				o.ObserveInt64(transitions, n, all[i].pass...)
			}
			if n := s.transitions[1].Load(); n > 0 {
				o.ObserveInt64(transitions, n, all[i].fail...)
			}
		}
	}, status, transitions)
}
