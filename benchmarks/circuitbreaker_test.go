package benchmarks

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/failsafe-go/failsafe-go"
	failsafecb "github.com/failsafe-go/failsafe-go/circuitbreaker"
	"github.com/sony/gobreaker/v2"

	"github.com/otelpatterns/patterns/circuitbreaker"
)

// setup is what a scenario asks of an implementation's breaker.
type setup int

const (
	// closedSetup is a closed breaker with the implementation's defaults.
	closedSetup setup = iota
	// openSetup is a breaker opened by recording one failure, configured to
	// trip on it and to stay open for an hour.
	openSetup
	// sdkSetup is closedSetup with an OpenTelemetry SDK meter provider where
	// the implementation has telemetry (only otelpatterns); the others fall
	// back to closedSetup so the row pairs with theirs.
	sdkSetup
)

// A scenario is one column of the comparison: the same work run through
// every implementation.
var scenarios = []struct {
	name     string
	setup    setup
	parallel bool
	sampled  bool // calls run in a context holding a sampled span
}{
	// closed: sequential calls admitted by a closed breaker whose function
	// returns nil. This is the admission-plus-record cost every caller pays.
	{"closed", closedSetup, false, false},
	// closed-parallel: the same under b.RunParallel (GOMAXPROCS goroutines
	// sharing one breaker), which shows contention on the breaker's state.
	{"closed-parallel", closedSetup, true, false},
	// open: sequential calls rejected by an open breaker. The function is
	// never called; this is the cost of saying no.
	{"open", openSetup, false, false},
	// closed-sdk: closed, with otelpatterns recording its metrics into an
	// SDK meter provider with a manual reader (no export).
	{"closed-sdk", sdkSetup, false, false},
	// closed-sdk-sampled: closed-sdk, every call in a context holding a
	// sampled span, where a synchronous SDK instrument would record an
	// exemplar.
	{"closed-sdk-sampled", sdkSetup, false, true},
}

// An impl builds, for one scenario, a call that runs fn through its breaker.
// Peers take context-free functions, so their adaptor to fn is built once,
// outside the measured loop: they pay one more indirect call per operation
// than otelpatterns, far less than the closure a real caller builds per call.
var impls = []struct {
	name    string
	openErr error // what a rejection while open matches with errors.Is; nil: never rejects
	new     func(tb testing.TB, s setup, fn func(context.Context) error) func(context.Context) error
}{
	{"bare", nil, newBare},
	{"otelpatterns", circuitbreaker.ErrOpen, newOtelpatterns},
	{"gobreaker", gobreaker.ErrOpenState, newGobreaker},
	{"failsafe", failsafecb.ErrOpen, newFailsafe},
}

var errFail = errors.New("dependency failed")

func ok(context.Context) error   { return nil }
func fail(context.Context) error { return errFail }

// newBare is the baseline: fn called directly, with no breaker.
func newBare(_ testing.TB, _ setup, fn func(context.Context) error) func(context.Context) error {
	return fn
}

// newOtelpatterns uses default options and the global (no-op) OTel
// providers, except that the open setup trips on one failure and stays open
// for an hour, and the sdk setup records into an SDK meter provider.
func newOtelpatterns(tb testing.TB, s setup, fn func(context.Context) error) func(context.Context) error {
	var opts []circuitbreaker.Option
	switch s {
	case openSetup:
		opts = append(opts, circuitbreaker.WithConsecutiveFailures(1), circuitbreaker.WithOpenDuration(time.Hour))
	case sdkSetup:
		opts = append(opts, circuitbreaker.WithMeterProvider(newSDK(tb).mp))
	}
	br := circuitbreaker.New("bench", opts...)
	if s == openSetup {
		_ = br.Execute(context.Background(), fail)
	}
	return func(ctx context.Context) error { return br.Execute(ctx, fn) }
}

// newGobreaker uses sony/gobreaker/v2 with default Settings, except that the
// open setup trips on the first failure and stays open for an hour.
func newGobreaker(_ testing.TB, s setup, fn func(context.Context) error) func(context.Context) error {
	var st gobreaker.Settings
	if s == openSetup {
		st.ReadyToTrip = func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= 1 }
		st.Timeout = time.Hour
	}
	cb := gobreaker.NewCircuitBreaker[struct{}](st)
	if s == openSetup {
		_, _ = cb.Execute(func() (struct{}, error) { return struct{}{}, errFail })
	}
	ctx := context.Background()
	req := func() (struct{}, error) { return struct{}{}, fn(ctx) }
	return func(context.Context) error {
		_, err := cb.Execute(req)
		return err
	}
}

// newFailsafe uses a failsafe-go circuit breaker with defaults (it trips on
// the first failure), run through failsafe.With(cb).Run; the open setup
// stays open for an hour instead of the default minute.
func newFailsafe(_ testing.TB, s setup, fn func(context.Context) error) func(context.Context) error {
	b := failsafecb.NewBuilder[any]()
	if s == openSetup {
		b = b.WithDelay(time.Hour)
	}
	exec := failsafe.With[any](b.Build())
	if s == openSetup {
		_ = exec.Run(func() error { return errFail })
	}
	ctx := context.Background()
	run := func() error { return fn(ctx) }
	return func(context.Context) error { return exec.Run(run) }
}

// BenchmarkBreaker runs every scenario through every implementation, as
// BenchmarkBreaker/<scenario>/<impl>, so that compare.sh can pair the rows
// of one scenario.
func BenchmarkBreaker(b *testing.B) {
	for _, sc := range scenarios {
		b.Run(sc.name, func(b *testing.B) {
			for _, im := range impls {
				b.Run(im.name, func(b *testing.B) {
					ctx := context.Background()
					if sc.sampled {
						ctx = sampledContext(b)
					}
					call := im.new(b, sc.setup, ok)
					b.ReportAllocs()
					if sc.parallel {
						b.RunParallel(func(pb *testing.PB) {
							for pb.Next() {
								_ = call(ctx)
							}
						})
						return
					}
					for b.Loop() {
						_ = call(ctx)
					}
				})
			}
		})
	}
}

// TestBreakersBehaveAlike checks that each implementation does in each
// scenario what the benchmark claims to measure: a closed breaker calls the
// function and returns its nil error, an open one rejects without calling it.
func TestBreakersBehaveAlike(t *testing.T) {
	for _, sc := range scenarios {
		for _, im := range impls {
			t.Run(sc.name+"/"+im.name, func(t *testing.T) {
				ctx := context.Background()
				if sc.sampled {
					ctx = sampledContext(t)
				}
				if sc.setup == openSetup && im.openErr == nil {
					t.Skip("no breaker: nothing to reject")
				}
				ran := 0
				call := im.new(t, sc.setup, func(context.Context) error { ran++; return nil })
				const n = 100
				for i := range n {
					err := call(ctx)
					if sc.setup == openSetup {
						if !errors.Is(err, im.openErr) {
							t.Fatalf("call %d: error = %v; want %v", i, err, im.openErr)
						}
					} else if err != nil {
						t.Fatalf("call %d: error = %v; want nil", i, err)
					}
				}
				want := n
				if sc.setup == openSetup {
					want = 0
				}
				if ran != want {
					t.Errorf("function ran %d times in %d calls; want %d", ran, n, want)
				}
			})
		}
	}
}
