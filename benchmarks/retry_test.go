package benchmarks

import (
	"context"
	"testing"

	retrygo "github.com/avast/retry-go/v4"
	"github.com/cenkalti/backoff/v4"
	"github.com/failsafe-go/failsafe-go"
	"github.com/failsafe-go/failsafe-go/retrypolicy"

	"github.com/otelpatterns/patterns/retry"
)

// retrySetup is what a scenario asks of an implementation's retry policy.
type retrySetup int

const (
	// defaultRetry is the implementation's default policy, built the way a
	// user who only wants "retry this" builds it.
	defaultRetry retrySetup = iota
	// zeroDelayRetry makes at most 3 attempts with no wait between them, so
	// that a row measures the retry machinery and not a sleep.
	zeroDelayRetry
	// sdkRetry is defaultRetry with OpenTelemetry SDK providers where the
	// implementation has telemetry (only otelpatterns); the others fall
	// back to defaultRetry so the row pairs with theirs.
	sdkRetry
)

// retryScenarios are the columns of the retry comparison: the same
// operation run through every implementation.
var retryScenarios = []struct {
	name     string
	setup    retrySetup
	failures int // how many times the operation fails before it succeeds
	parallel bool
	sampled  bool // calls run in a context holding a sampled span
}{
	// first-success: sequential calls of an operation that returns nil at
	// once. This is what every call that needs no retry pays.
	{"first-success", defaultRetry, 0, false, false},
	// first-success-parallel: the same under b.RunParallel (GOMAXPROCS
	// goroutines sharing one retrier where the implementation allows it),
	// which shows contention and allocation pressure.
	{"first-success-parallel", defaultRetry, 0, true, false},
	// two-failures: an operation that fails twice and then succeeds, with
	// no wait between attempts and at most 3 of them: the cost of the
	// retry path itself.
	{"two-failures", zeroDelayRetry, 2, false, false},
	// first-success-sdk: first-success, with otelpatterns recording its
	// metrics and spans into SDK providers (no export).
	{"first-success-sdk", sdkRetry, 0, false, false},
	// first-success-sdk-sampled: first-success-sdk, every call in a context
	// holding a sampled span, where a synchronous SDK instrument would
	// record an exemplar.
	{"first-success-sdk-sampled", sdkRetry, 0, false, true},
}

// A retrier builds, for one setup, a call that runs fn through its retry
// policy. What a real user can reuse across calls (a policy, an option
// slice, an executor) is built once; what the library's API makes stateful
// per call (a cenkalti/backoff BackOff) is built in the call. Peers take
// context-free functions, so their adaptor to fn is built once, outside the
// measured loop, as in the breaker rows.
var retriers = []struct {
	name string
	new  func(tb testing.TB, s retrySetup, fn func(context.Context) error) func(context.Context) error
}{
	{"bare", newBareRetry},
	{"otelpatterns", newOtelpatternsRetry},
	{"backoff", newBackoff},
	{"retrygo", newRetrygo},
	{"failsafe", newFailsafeRetry},
}

// newBareRetry is the baseline: fn called directly, or, in the zero-delay
// setup, a plain loop of at most 3 tries.
func newBareRetry(_ testing.TB, s retrySetup, fn func(context.Context) error) func(context.Context) error {
	if s != zeroDelayRetry {
		return fn
	}
	return func(ctx context.Context) error {
		var err error
		for range 3 {
			if err = fn(ctx); err == nil {
				return nil
			}
		}
		return err
	}
}

// newOtelpatternsRetry uses retry.New with default options and the global
// (no-op) OTel providers; the zero-delay setup adds WithBackoff(Constant(0))
// and WithMaxAttempts(3), the sdk setup SDK meter and tracer providers.
// The Retrier is safe for concurrent use, so one serves every call.
func newOtelpatternsRetry(tb testing.TB, s retrySetup, fn func(context.Context) error) func(context.Context) error {
	var opts []retry.Option
	switch s {
	case zeroDelayRetry:
		opts = append(opts, retry.WithBackoff(retry.Constant(0)), retry.WithMaxAttempts(3))
	case sdkRetry:
		p := newSDK(tb)
		opts = append(opts, retry.WithMeterProvider(p.mp), retry.WithTracerProvider(p.tp))
	}
	r := retry.New(opts...)
	return func(ctx context.Context) error { return r.Do(ctx, fn) }
}

// newBackoff uses cenkalti/backoff/v4's Retry. Its BackOff policies keep
// state and are not safe for concurrent use, so, as a real user does, each
// call builds its own: NewExponentialBackOff() by default, and
// WithMaxRetries(&ZeroBackOff{}, 2) in the zero-delay setup.
func newBackoff(_ testing.TB, s retrySetup, fn func(context.Context) error) func(context.Context) error {
	ctx := context.Background()
	op := func() error { return fn(ctx) }
	if s == zeroDelayRetry {
		return func(context.Context) error {
			return backoff.Retry(op, backoff.WithMaxRetries(&backoff.ZeroBackOff{}, 2))
		}
	}
	return func(context.Context) error { return backoff.Retry(op, backoff.NewExponentialBackOff()) }
}

// newRetrygo uses avast/retry-go/v4's Do with Attempts(3) (its default is
// 10) and, in the zero-delay setup, Delay(0) with DelayType(FixedDelay).
// The option slice is built once and reused.
func newRetrygo(_ testing.TB, s retrySetup, fn func(context.Context) error) func(context.Context) error {
	opts := []retrygo.Option{retrygo.Attempts(3)}
	if s == zeroDelayRetry {
		opts = append(opts, retrygo.Delay(0), retrygo.DelayType(retrygo.FixedDelay))
	}
	ctx := context.Background()
	op := func() error { return fn(ctx) }
	return func(context.Context) error { return retrygo.Do(op, opts...) }
}

// newFailsafeRetry uses a failsafe-go retry policy with defaults (3 attempts,
// no delay) or, in the zero-delay setup, WithMaxRetries(2) and WithDelay(0),
// run through failsafe.With(policy).Run. The policy and executor are safe
// for concurrent use, so they are built once.
func newFailsafeRetry(_ testing.TB, s retrySetup, fn func(context.Context) error) func(context.Context) error {
	policy := retrypolicy.NewWithDefaults[any]()
	if s == zeroDelayRetry {
		policy = retrypolicy.NewBuilder[any]().WithMaxRetries(2).WithDelay(0).Build()
	}
	exec := failsafe.With[any](policy)
	ctx := context.Background()
	run := func() error { return fn(ctx) }
	return func(context.Context) error { return exec.Run(run) }
}

// flaky is an operation that fails its first failures calls after each
// reset of calls, then succeeds.
type flaky struct {
	failures int
	calls    int
}

func (f *flaky) do(context.Context) error {
	f.calls++
	if f.calls <= f.failures {
		return errFail
	}
	return nil
}

// BenchmarkRetry runs every retry scenario through every implementation, as
// BenchmarkRetry/<scenario>/<impl>, so that compare.sh can pair the rows of
// one scenario.
func BenchmarkRetry(b *testing.B) {
	for _, sc := range retryScenarios {
		b.Run(sc.name, func(b *testing.B) {
			for _, im := range retriers {
				b.Run(im.name, func(b *testing.B) {
					ctx := context.Background()
					if sc.sampled {
						ctx = sampledContext(b)
					}
					switch {
					case sc.parallel:
						call := im.new(b, sc.setup, ok)
						b.ReportAllocs()
						b.RunParallel(func(pb *testing.PB) {
							for pb.Next() {
								_ = call(ctx)
							}
						})
					case sc.failures > 0:
						op := &flaky{failures: sc.failures}
						call := im.new(b, sc.setup, op.do)
						b.ReportAllocs()
						for b.Loop() {
							op.calls = 0
							_ = call(ctx)
						}
					default:
						call := im.new(b, sc.setup, ok)
						b.ReportAllocs()
						for b.Loop() {
							_ = call(ctx)
						}
					}
				})
			}
		})
	}
}

// TestRetriersBehaveAlike checks that each implementation does in each
// scenario what the benchmark claims to measure: it calls the operation
// once when it succeeds at once and three times when it fails twice, and
// returns nil; and that the zero-delay setup gives up after exactly 3
// attempts, so every row has the same limit.
func TestRetriersBehaveAlike(t *testing.T) {
	ctx := context.Background()
	for _, sc := range retryScenarios {
		for _, im := range retriers {
			t.Run(sc.name+"/"+im.name, func(t *testing.T) {
				ctx := ctx
				if sc.sampled {
					ctx = sampledContext(t)
				}
				op := &flaky{failures: sc.failures}
				call := im.new(t, sc.setup, op.do)
				for i := range 100 {
					op.calls = 0
					if err := call(ctx); err != nil {
						t.Fatalf("call %d: error = %v; want nil", i, err)
					}
					if want := sc.failures + 1; op.calls != want {
						t.Fatalf("call %d: operation ran %d times; want %d", i, op.calls, want)
					}
				}
			})
		}
	}
	for _, im := range retriers {
		t.Run("always-fails/"+im.name, func(t *testing.T) {
			ran := 0
			call := im.new(t, zeroDelayRetry, func(context.Context) error { ran++; return errFail })
			if err := call(ctx); err == nil {
				t.Fatal("error = nil; want the operation's failure")
			}
			if ran != 3 {
				t.Errorf("operation ran %d times; want 3", ran)
			}
		})
	}
}
