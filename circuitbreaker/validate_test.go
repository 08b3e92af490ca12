package circuitbreaker_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelpatterns/patterns/circuitbreaker"
)

// invalidOptions are bad breaker options, each with every fault its message
// must name.
var invalidOptions = []struct {
	name string
	opts []circuitbreaker.Option
	want []string
}{
	{"nil option", []circuitbreaker.Option{nil}, []string{"opts[0] is nil"}},
	{"nil option after a good one", []circuitbreaker.Option{circuitbreaker.WithCountWindow(10), nil}, []string{"opts[1] is nil"}},
	{"count window negative", []circuitbreaker.Option{circuitbreaker.WithCountWindow(-1)}, []string{"WithCountWindow(-1): size must be in 1..65536"}},
	{"count window zero", []circuitbreaker.Option{circuitbreaker.WithCountWindow(0)}, []string{"WithCountWindow(0): size must be in 1..65536"}},
	{"count window huge", []circuitbreaker.Option{circuitbreaker.WithCountWindow(1 << 20)}, []string{"WithCountWindow(1048576)"}},
	{"time window zero", []circuitbreaker.Option{circuitbreaker.WithTimeWindow(0, 0)},
		[]string{"WithTimeWindow(0s, 0): duration must be positive", "WithTimeWindow(0s, 0): buckets must be in 1..4096"}},
	{"time window zero duration", []circuitbreaker.Option{circuitbreaker.WithTimeWindow(0, 10)}, []string{"WithTimeWindow(0s, 10): duration must be positive"}},
	{"time window negative", []circuitbreaker.Option{circuitbreaker.WithTimeWindow(-time.Second, 10)}, []string{"WithTimeWindow(-1s, 10): duration must be positive"}},
	{"time window no buckets", []circuitbreaker.Option{circuitbreaker.WithTimeWindow(time.Second, 0)}, []string{"WithTimeWindow(1s, 0): buckets must be in 1..4096"}},
	{"time window many buckets", []circuitbreaker.Option{circuitbreaker.WithTimeWindow(time.Second, 5000)}, []string{"WithTimeWindow(1s, 5000): buckets must be in 1..4096"}},
	{"time window buckets under 1ns", []circuitbreaker.Option{circuitbreaker.WithTimeWindow(10, 100)}, []string{"WithTimeWindow(10ns, 100): buckets must be no shorter than 1ns each"}},
	{"minimum calls zero", []circuitbreaker.Option{circuitbreaker.WithMinimumCalls(0)}, []string{"WithMinimumCalls(0): must be positive"}},
	{"failure rate zero", []circuitbreaker.Option{circuitbreaker.WithFailureRate(0)}, []string{"WithFailureRate(0): threshold must be in (0, 100]"}},
	{"failure rate above 100", []circuitbreaker.Option{circuitbreaker.WithFailureRate(101)}, []string{"WithFailureRate(101)"}},
	{"failure rate NaN", []circuitbreaker.Option{circuitbreaker.WithFailureRate(math.NaN())}, []string{"WithFailureRate(NaN)"}},
	{"slow calls zero threshold", []circuitbreaker.Option{circuitbreaker.WithSlowCalls(0, 50)}, []string{"WithSlowCalls(0s, 50): threshold must be positive"}},
	{"slow calls negative threshold", []circuitbreaker.Option{circuitbreaker.WithSlowCalls(-time.Second, 50)}, []string{"WithSlowCalls(-1s, 50): threshold must be positive"}},
	{"slow calls zero rate", []circuitbreaker.Option{circuitbreaker.WithSlowCalls(time.Second, 0)}, []string{"WithSlowCalls(1s, 0): rate must be in (0, 100]"}},
	{"slow calls rate above 100", []circuitbreaker.Option{circuitbreaker.WithSlowCalls(time.Second, 150)}, []string{"WithSlowCalls(1s, 150): rate must be in (0, 100]"}},
	{"slow calls both", []circuitbreaker.Option{circuitbreaker.WithSlowCalls(0, 0)},
		[]string{"WithSlowCalls(0s, 0): threshold must be positive", "WithSlowCalls(0s, 0): rate must be in (0, 100]"}},
	{"consecutive negative", []circuitbreaker.Option{circuitbreaker.WithConsecutiveFailures(-2)}, []string{"WithConsecutiveFailures(-2): must not be negative"}},
	{"open duration zero", []circuitbreaker.Option{circuitbreaker.WithOpenDuration(0)}, []string{"WithOpenDuration(0s): must be positive"}},
	{"open duration negative", []circuitbreaker.Option{circuitbreaker.WithOpenDuration(-time.Second)}, []string{"WithOpenDuration(-1s)"}},
	{"jitter above 1", []circuitbreaker.Option{circuitbreaker.WithOpenJitter(1.5)}, []string{"WithOpenJitter(1.5): fraction must be in [0, 1]"}},
	{"jitter negative", []circuitbreaker.Option{circuitbreaker.WithOpenJitter(-0.1)}, []string{"WithOpenJitter(-0.1)"}},
	{"jitter NaN", []circuitbreaker.Option{circuitbreaker.WithOpenJitter(math.NaN())}, []string{"WithOpenJitter(NaN)"}},
	{"probes zero", []circuitbreaker.Option{circuitbreaker.WithHalfOpenProbes(0)}, []string{"WithHalfOpenProbes(0): must be positive"}},
	{"successes negative", []circuitbreaker.Option{circuitbreaker.WithHalfOpenSuccesses(-1)}, []string{"WithHalfOpenSuccesses(-1): must not be negative"}},
	{"probe timeout negative", []circuitbreaker.Option{circuitbreaker.WithProbeTimeout(-1)}, []string{"WithProbeTimeout(-1ns): must not be negative"}},
	{"nil classifier", []circuitbreaker.Option{circuitbreaker.WithClassifier(nil)}, []string{"WithClassifier(nil): classifier must not be nil"}},
	{"nil listener", []circuitbreaker.Option{circuitbreaker.WithOnStateChange(nil)}, []string{"WithOnStateChange(nil): listener must not be nil"}},
	// A bad value is named even when a later option overrides it: it is
	// still a mistake in the code or the configuration.
	{"overridden bad value", []circuitbreaker.Option{circuitbreaker.WithCountWindow(0), circuitbreaker.WithTimeWindow(time.Second, 10)}, []string{"WithCountWindow(0)"}},
	{"all at once", []circuitbreaker.Option{
		circuitbreaker.WithFailureRate(-5), nil, circuitbreaker.WithOpenDuration(0), circuitbreaker.WithHalfOpenProbes(-1), circuitbreaker.WithTimeWindow(0, 0),
	}, []string{"WithFailureRate(-5)", "opts[1] is nil", "WithOpenDuration(0s)", "WithHalfOpenProbes(-1)", "WithTimeWindow(0s, 0): duration", "WithTimeWindow(0s, 0): buckets"}},
}

// TestInvalidOptions walks the bad options through every constructor that
// takes them and through Validate: each names every fault.
func TestInvalidOptions(t *testing.T) {
	for _, tt := range invalidOptions {
		t.Run(tt.name, func(t *testing.T) {
			err := circuitbreaker.Validate(tt.opts...)
			require.Error(t, err, "Validate() = nil; want an error")
			assert.True(t, strings.HasPrefix(err.Error(), "circuitbreaker: "), "Validate() = %q", err)

			msg := panicMessage(func() { circuitbreaker.New("x", tt.opts...) })
			require.NotEmpty(t, msg, "New() did not panic")
			assert.True(t, strings.HasPrefix(msg, `circuitbreaker: New("x"): `), "panic = %q", msg)

			group := panicMessage(func() { circuitbreaker.NewGroup(optsToGroup(tt.opts)...) })
			assert.True(t, strings.HasPrefix(group, "circuitbreaker: NewGroup: "), "NewGroup() must check breaker options at once; panic = %q", group)

			transport := panicMessage(func() { circuitbreaker.NewTransport(nil, optsToTransport(tt.opts)...) })
			assert.True(t, strings.HasPrefix(transport, "circuitbreaker: NewTransport: "), "panic = %q", transport)

			for _, w := range tt.want {
				assert.Contains(t, err.Error(), w, "Validate()")
				assert.Contains(t, msg, w, "New()")
				assert.Contains(t, group, w, "NewGroup()")
				assert.Contains(t, transport, w, "NewTransport()")
			}
			// Validate's error is New's panic without the constructor's name.
			assert.Equal(t, strings.TrimPrefix(msg, `circuitbreaker: New("x"): `), strings.TrimPrefix(err.Error(), "circuitbreaker: "))
		})
	}
}

// TestValidOptions checks the edges the docs allow, so that validation
// cannot pass by rejecting everything.
func TestValidOptions(t *testing.T) {
	tests := []struct {
		name string
		opts []circuitbreaker.Option
	}{
		{"none", nil},
		{"largest count window", []circuitbreaker.Option{circuitbreaker.WithCountWindow(1 << 16)}},
		{"smallest count window", []circuitbreaker.Option{circuitbreaker.WithCountWindow(1)}},
		{"time window of 1ns buckets", []circuitbreaker.Option{circuitbreaker.WithTimeWindow(4096, 4096)}},
		{"time window one bucket", []circuitbreaker.Option{circuitbreaker.WithTimeWindow(time.Second, 1)}},
		{"failure rate 100", []circuitbreaker.Option{circuitbreaker.WithFailureRate(100)}},
		{"slow calls", []circuitbreaker.Option{circuitbreaker.WithSlowCalls(time.Nanosecond, 100)}},
		{"consecutive off", []circuitbreaker.Option{circuitbreaker.WithConsecutiveFailures(0)}},
		{"jitter bounds", []circuitbreaker.Option{circuitbreaker.WithOpenJitter(0), circuitbreaker.WithOpenJitter(1)}},
		{"default successes", []circuitbreaker.Option{circuitbreaker.WithHalfOpenSuccesses(0)}},
		{"default probe timeout", []circuitbreaker.Option{circuitbreaker.WithProbeTimeout(0)}},
		{"nil meter provider means the global one", []circuitbreaker.Option{circuitbreaker.WithMeterProvider(nil)}},
		{"classifier", []circuitbreaker.Option{circuitbreaker.WithClassifier(circuitbreaker.DefaultClassifier)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.NoError(t, circuitbreaker.Validate(tt.opts...))
			assert.NotPanics(t, func() { circuitbreaker.New("x", tt.opts...) })
			assert.NotPanics(t, func() { circuitbreaker.NewGroup(optsToGroup(tt.opts)...) })
		})
	}
}

func TestInvalidGroupAndTransportOptions(t *testing.T) {
	g := circuitbreaker.NewGroup()
	tests := []struct {
		name string
		f    func()
		want []string
	}{
		{"group nil option", func() { circuitbreaker.NewGroup(nil) }, []string{"circuitbreaker: NewGroup: ", "opts[0] is nil"}},
		{"group max zero", func() { circuitbreaker.NewGroup(circuitbreaker.WithMaxBreakers(0)) }, []string{"WithMaxBreakers(0): must be positive"}},
		{"group faults listed with breaker faults", func() {
			circuitbreaker.NewGroup(circuitbreaker.WithMaxBreakers(-1), circuitbreaker.WithFailureRate(0))
		}, []string{"WithMaxBreakers(-1)", "WithFailureRate(0)"}},
		{"transport nil option", func() { circuitbreaker.NewTransport(nil, nil) }, []string{"circuitbreaker: NewTransport: ", "opts[0] is nil"}},
		{"transport nil group", func() { circuitbreaker.NewTransport(nil, circuitbreaker.WithGroup(nil)) }, []string{"WithGroup(nil): group must not be nil"}},
		{"transport nil key", func() { circuitbreaker.NewTransport(nil, circuitbreaker.WithKey(nil)) }, []string{"WithKey(nil): key function must not be nil"}},
		{"transport nil failure status", func() { circuitbreaker.NewTransport(nil, circuitbreaker.WithFailureStatus(nil)) }, []string{"WithFailureStatus(nil): function must not be nil"}},
		{"transport group with breaker options", func() {
			circuitbreaker.NewTransport(nil, circuitbreaker.WithGroup(g), circuitbreaker.WithOpenDuration(time.Second))
		}, []string{"WithGroup cannot be combined with group or breaker options"}},
		{"transport nil group with options", func() {
			circuitbreaker.NewTransport(nil, circuitbreaker.WithGroup(nil), circuitbreaker.WithMaxBreakers(3))
		}, []string{"WithGroup(nil)", "WithGroup cannot be combined"}},
		{"transport group options", func() { circuitbreaker.NewTransport(nil, circuitbreaker.WithMaxBreakers(0)) }, []string{"WithMaxBreakers(0)"}},
		{"transport group with bad breaker options", func() {
			circuitbreaker.NewTransport(nil, circuitbreaker.WithGroup(g), circuitbreaker.WithFailureRate(200), circuitbreaker.WithMaxBreakers(0))
		}, []string{"WithGroup cannot be combined", "WithFailureRate(200)", "WithMaxBreakers(0)"}},
		{"transport all at once", func() {
			circuitbreaker.NewTransport(nil, circuitbreaker.WithKey(nil), nil, circuitbreaker.WithFailureStatus(nil), circuitbreaker.WithFailureRate(200), circuitbreaker.WithMaxBreakers(0))
		}, []string{"WithKey(nil)", "opts[1] is nil", "WithFailureStatus(nil)", "WithFailureRate(200)", "WithMaxBreakers(0)"}},
		{"middleware nil breaker", func() { circuitbreaker.Middleware(nil) }, []string{"circuitbreaker: Middleware: ", "b is nil"}},
		{"middleware nil option", func() { circuitbreaker.Middleware(circuitbreaker.New("x"), nil) }, []string{"opts[0] is nil"}},
		{"middleware nil failure status", func() {
			circuitbreaker.Middleware(circuitbreaker.New("x"), circuitbreaker.WithFailureStatus(nil))
		}, []string{"WithFailureStatus(nil): function must not be nil"}},
		{"middleware all at once", func() { circuitbreaker.Middleware(nil, circuitbreaker.WithFailureStatus(nil)) }, []string{"b is nil", "WithFailureStatus(nil)"}},
		{"middleware nil handler", func() { circuitbreaker.Middleware(circuitbreaker.New("api"))(nil) }, []string{`circuitbreaker: Middleware("api"): nil handler`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msg := panicMessage(tt.f)
			require.NotEmpty(t, msg, "no panic")
			for _, w := range tt.want {
				assert.Contains(t, msg, w)
			}
		})
	}
}

// TestNilFunctionIsAnError protects against the nil-pointer panic a nil
// function used to cause: the call is refused with ErrNilFunc and takes
// nothing from the breaker, not even a half-open probe slot.
func TestNilFunctionIsAnError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		b := circuitbreaker.New("x", circuitbreaker.WithConsecutiveFailures(1), circuitbreaker.WithOpenDuration(time.Second))

		err := b.Execute(ctx, nil)
		require.ErrorIs(t, err, circuitbreaker.ErrNilFunc)
		assert.Equal(t, "circuitbreaker.nil_function", err.(interface{ ErrorType() string }).ErrorType())
		v, err := circuitbreaker.Do[int](ctx, b, nil)
		require.ErrorIs(t, err, circuitbreaker.ErrNilFunc)
		assert.Zero(t, v)
		assert.Zero(t, b.Snapshot().Calls, "a nil function must not count as a call")
		assert.Equal(t, circuitbreaker.StateClosed, b.State())

		// Half-open: a nil function must not take the only probe slot.
		run(t, b, "f")
		time.Sleep(time.Second)
		synctest.Wait()
		require.ErrorIs(t, b.Execute(ctx, nil), circuitbreaker.ErrNilFunc)
		_, err = circuitbreaker.Do[string](ctx, b, nil)
		require.ErrorIs(t, err, circuitbreaker.ErrNilFunc)
		require.NoError(t, b.Execute(ctx, succeed), "the probe slot must still be free")
		assert.Equal(t, circuitbreaker.StateClosed, b.State())
	})
}

func TestZeroGroup(t *testing.T) {
	var g circuitbreaker.Group
	b := g.Get("a")
	require.NotNil(t, b)
	assert.Equal(t, "a", b.Name())
	assert.Same(t, b, g.Get("a"))
	assert.Equal(t, 1, g.Len())
	require.NoError(t, b.Execute(context.Background(), succeed))
}

// TestRejectedErrorSaysWhatIsTrueWhenRead protects against the stale
// message of a rejection read later ("retry in 500ms" 400ms on): the time
// left is computed when the message is read.
func TestRejectedErrorSaysWhatIsTrueWhenRead(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// The bubble's clock starts at 2000-01-01T00:00:00Z.
		b := circuitbreaker.New("payments", circuitbreaker.WithConsecutiveFailures(1), circuitbreaker.WithOpenDuration(500*time.Millisecond))
		run(t, b, "f")
		err := b.Execute(context.Background(), succeed)
		require.ErrorIs(t, err, circuitbreaker.ErrOpen)

		steps := []struct {
			after time.Duration // since the previous step
			want  string
		}{
			{0, `circuitbreaker: breaker "payments" is open (retry in 500ms, at 2000-01-01T00:00:00.500Z)`},
			{400 * time.Millisecond, `circuitbreaker: breaker "payments" is open (retry in 100ms, at 2000-01-01T00:00:00.500Z)`},
			{99*time.Millisecond + 500*time.Microsecond, `circuitbreaker: breaker "payments" is open (retry in 1ms, at 2000-01-01T00:00:00.500Z)`},
			{500 * time.Microsecond, `circuitbreaker: breaker "payments" was open until 2000-01-01T00:00:00.500Z (retry now)`},
			{time.Hour, `circuitbreaker: breaker "payments" was open until 2000-01-01T00:00:00.500Z (retry now)`},
		}
		for _, s := range steps {
			time.Sleep(s.after)
			assert.Equal(t, s.want, err.Error(), "Error() at %v", time.Now().UTC().Format(time.RFC3339Nano))
		}
		// Another rejection of the same period returns the same value:
		// nothing is built per rejection.
		b2 := circuitbreaker.New("search", circuitbreaker.WithConsecutiveFailures(1), circuitbreaker.WithOpenDuration(time.Minute))
		run(t, b2, "f")
		e1, e2 := b2.Execute(context.Background(), succeed), b2.Execute(context.Background(), succeed)
		assert.Same(t, e1, e2)
		time.Sleep(15 * time.Second)
		assert.Equal(t, `circuitbreaker: breaker "search" is open (retry in 45s, at 2000-01-01T01:01:00.500Z)`, e2.Error())
	})
}

func TestRejectedErrorMessages(t *testing.T) {
	until := time.Date(2026, 12, 6, 12, 0, 4, 0, time.UTC)
	tests := []struct {
		name string
		err  *circuitbreaker.RejectedError
		want string
	}{
		{"open until reset", &circuitbreaker.RejectedError{Breaker: "a", State: circuitbreaker.StateOpen}, `circuitbreaker: breaker "a" is open until reset`},
		{"half-open", &circuitbreaker.RejectedError{Breaker: "b", State: circuitbreaker.StateHalfOpen}, `circuitbreaker: breaker "b" is half-open and has no probe slot free`},
		{"quoted name", &circuitbreaker.RejectedError{Breaker: "a \"b\"", State: circuitbreaker.StateOpen}, `circuitbreaker: breaker "a \"b\"" is open until reset`},
		{"open, past", &circuitbreaker.RejectedError{Breaker: "c", State: circuitbreaker.StateOpen, Until: until},
			`circuitbreaker: breaker "c" was open until 2026-12-06T12:00:04.000Z (retry now)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, tt.err.Error())
		})
	}
	long := &circuitbreaker.RejectedError{Breaker: strings.Repeat("x", 300), State: circuitbreaker.StateOpen, Until: time.Now().Add(time.Hour)}
	assert.Contains(t, long.Error(), strings.Repeat("x", 300)+`" is open (retry in `)
}

// TestRejectionDoesNotAllocate guards the rejection path in every rejecting
// state: the error is built once per period.
func TestRejectionDoesNotAllocate(t *testing.T) {
	ctx := context.Background()
	open := circuitbreaker.New("open", circuitbreaker.WithConsecutiveFailures(1), circuitbreaker.WithOpenDuration(time.Hour))
	run(t, open, "f")
	tripped := circuitbreaker.New("tripped")
	tripped.Trip()
	for _, b := range []*circuitbreaker.Breaker{open, tripped} {
		require.Error(t, b.Execute(ctx, succeed))
		if n := testing.AllocsPerRun(1000, func() { _ = b.Execute(ctx, succeed) }); n != 0 {
			t.Errorf("%s: rejection allocates %v times; want 0", b.Name(), n)
		}
	}
	// Half-open with its one probe slot taken.
	synctest.Test(t, func(t *testing.T) {
		b := circuitbreaker.New("half-open", circuitbreaker.WithConsecutiveFailures(1), circuitbreaker.WithOpenDuration(time.Second))
		run(t, b, "f")
		time.Sleep(time.Second)
		synctest.Wait()
		done, err := b.Allow(ctx)
		require.NoError(t, err, "the probe")
		defer done(nil)
		require.ErrorIs(t, b.Execute(ctx, succeed), circuitbreaker.ErrTooManyRequests)
		if n := testing.AllocsPerRun(1000, func() { _ = b.Execute(ctx, succeed) }); n != 0 {
			t.Errorf("half-open: rejection allocates %v times; want 0", n)
		}
	})
}

func TestMiddlewareRejectsWithCurrentRetryAfter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := circuitbreaker.New("api", circuitbreaker.WithConsecutiveFailures(1), circuitbreaker.WithOpenDuration(10*time.Second))
		h := circuitbreaker.Middleware(b)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusBadGateway) }))
		for i, want := range []string{"", "10", "3"} {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
			assert.Equal(t, want, rec.Header().Get("Retry-After"), "request %d", i)
			if i == 1 {
				time.Sleep(7 * time.Second)
			}
		}
	})
}

func optsToGroup(opts []circuitbreaker.Option) []circuitbreaker.GroupOption {
	g := make([]circuitbreaker.GroupOption, len(opts))
	for i, o := range opts {
		g[i] = o
	}
	return g
}

func optsToTransport(opts []circuitbreaker.Option) []circuitbreaker.TransportOption {
	g := make([]circuitbreaker.TransportOption, len(opts))
	for i, o := range opts {
		g[i] = o
	}
	return g
}

func panicMessage(f func()) (msg string) {
	defer func() {
		if v := recover(); v != nil {
			msg = fmt.Sprint(v)
		}
	}()
	f()
	return ""
}

// TestAllowMisuse covers the ways Allow's done can be misused: called
// twice, or called after a rejection (where it used to be nil).
func TestAllowMisuse(t *testing.T) {
	ctx := context.Background()
	b := circuitbreaker.New("x", circuitbreaker.WithConsecutiveFailures(2), circuitbreaker.WithOpenDuration(time.Hour))

	done, err := b.Allow(ctx)
	require.NoError(t, err)
	done(errBoom)
	done(errBoom) // counts once
	assert.Equal(t, 1, b.Snapshot().Calls)
	assert.Equal(t, circuitbreaker.StateClosed, b.State(), "a second done must not count a second failure")

	run(t, b, "f")
	require.Equal(t, circuitbreaker.StateOpen, b.State())
	done, err = b.Allow(ctx)
	require.ErrorIs(t, err, circuitbreaker.ErrOpen)
	require.NotNil(t, done, "a rejected Allow must return a done that can be called")
	assert.NotPanics(t, func() { done(nil) })
	assert.Equal(t, circuitbreaker.StateOpen, b.State())
	assert.Equal(t, int64(1), b.Snapshot().Rejections)
}

// TestLongestOpenDuration protects against an overflow of the open
// period's end: WithOpenDuration accepts any positive duration, and one
// near the largest (time.Duration(math.MaxInt64) for "until reset", or a
// long one lengthened by jitter) used to wrap the end into the past, so
// that State reported half-open at once and the rejection said "was open
// until 1734 (retry now)".
func TestLongestOpenDuration(t *testing.T) {
	const longest = time.Duration(math.MaxInt64)
	tests := []struct {
		name string
		opts []circuitbreaker.Option
	}{
		{"longest duration", []circuitbreaker.Option{circuitbreaker.WithOpenDuration(longest)}},
		{"long duration with jitter", []circuitbreaker.Option{circuitbreaker.WithOpenDuration(200 * 365 * 24 * time.Hour), circuitbreaker.WithOpenJitter(1)}},
		{"longest duration with jitter", []circuitbreaker.Option{circuitbreaker.WithOpenDuration(longest), circuitbreaker.WithOpenJitter(1)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := circuitbreaker.New("x", append(tt.opts, circuitbreaker.WithConsecutiveFailures(1))...)
			run(t, b, "f")
			err := b.Execute(context.Background(), succeed)
			require.ErrorIs(t, err, circuitbreaker.ErrOpen)
			assert.Equal(t, circuitbreaker.StateOpen, b.State(), "the open period must not end at once")
			assert.Contains(t, err.Error(), `circuitbreaker: breaker "x" is open (retry in `)
			var re *circuitbreaker.RejectedError
			require.ErrorAs(t, err, &re)
			assert.Greater(t, re.RetryAfter(time.Now()), 100*365*24*time.Hour)
		})
	}
	// Farther than the longest duration: the time left saturates, and
	// rounding it up to the millisecond must not wrap it negative.
	far := &circuitbreaker.RejectedError{Breaker: "x", State: circuitbreaker.StateOpen, Until: time.Date(2400, 1, 1, 0, 0, 0, 0, time.UTC)}
	assert.Equal(t, `circuitbreaker: breaker "x" is open (retry in 2562047h47m16.854775807s, at 2400-01-01T00:00:00.000Z)`, far.Error())
}

// TestNilBreakerIsAnError: a call through a nil *Breaker or a zero
// Breaker (not made by New) is refused with ErrNilBreaker, not a
// nil-pointer panic.
func TestNilBreakerIsAnError(t *testing.T) {
	called := false
	fn := func(context.Context) error { called = true; return nil }
	for name, b := range map[string]*circuitbreaker.Breaker{"nil": nil, "zero": {}} {
		t.Run(name, func(t *testing.T) {
			if err := b.Execute(context.Background(), fn); !errors.Is(err, circuitbreaker.ErrNilBreaker) {
				t.Errorf("Execute = %v; want ErrNilBreaker", err)
			}
			if _, err := circuitbreaker.Do(context.Background(), b, func(context.Context) (int, error) { called = true; return 1, nil }); !errors.Is(err, circuitbreaker.ErrNilBreaker) {
				t.Errorf("Do = %v; want ErrNilBreaker", err)
			}
			done, err := b.Allow(context.Background())
			if !errors.Is(err, circuitbreaker.ErrNilBreaker) {
				t.Errorf("Allow = %v; want ErrNilBreaker", err)
			}
			done(nil) // a no-op, as for any refused call
			if called {
				t.Error("the function was called")
			}
		})
	}
}
