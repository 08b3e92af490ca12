package retry_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"

	"github.com/otelpatterns/patterns/circuitbreaker"
	"github.com/otelpatterns/patterns/retry"
)

// A retrier around a flaky call: it fails twice with an error that may go
// away, then succeeds. A validation error, marked Permanent, is not
// retried.
func Example() {
	r := retry.New(
		retry.WithMaxAttempts(4),
		retry.WithBackoff(retry.Exponential(time.Millisecond, 2, 10*time.Millisecond)),
	)
	ctx := context.Background()

	attempts := 0
	err := r.Do(ctx, func(ctx context.Context) error {
		attempts++
		if attempts < 3 {
			return errors.New("connection refused")
		}
		return nil // reserved
	})
	fmt.Printf("reserve: %v after %d attempts\n", err, attempts)

	attempts = 0
	err = r.Do(ctx, func(ctx context.Context) error {
		attempts++
		return retry.Permanent(errors.New("quantity must be positive"))
	})
	fmt.Printf("reserve -1: %v\n", err)
	// Output:
	// reserve: <nil> after 3 attempts
	// reserve -1: retry: not retryable after 1 attempt: quantity must be positive
}

func ExampleNew() {
	r := retry.New(
		retry.WithMaxAttempts(5),
		retry.WithBackoff(retry.Exponential(10*time.Millisecond, 2, time.Second)),
		retry.WithJitter(retry.FullJitter),
		retry.WithOnRetry(func(ctx context.Context, attempt int, err error, delay time.Duration) {
			fmt.Printf("attempt %d failed: %v\n", attempt, err)
		}),
	)
	calls := 0
	err := r.Do(context.Background(), func(ctx context.Context) error {
		calls++
		if calls < 3 {
			return errors.New("connection reset")
		}
		return nil
	})
	fmt.Println(err, "after", calls, "attempts")
	// Output:
	// attempt 1 failed: connection reset
	// attempt 2 failed: connection reset
	// <nil> after 3 attempts
}

func ExampleRetrier_Do() {
	errNotFound := errors.New("order not found")
	r := retry.New(retry.WithBackoff(retry.Constant(time.Millisecond)))
	err := r.Do(context.Background(), func(ctx context.Context) error {
		return retry.Permanent(errNotFound) // retrying cannot help
	})
	var e *retry.Error
	if errors.As(err, &e) {
		fmt.Println(e.Attempts, "attempt:", errors.Is(err, errNotFound))
	}
	// Output: 1 attempt: true
}

func ExampleDo() {
	r := retry.New(retry.WithBackoff(retry.Constant(time.Millisecond)))
	calls := 0
	price, err := retry.Do(context.Background(), r, func(ctx context.Context) (float64, error) {
		calls++
		if calls == 1 {
			return 0, errors.New("timeout")
		}
		return 9.99, nil
	})
	fmt.Println(price, err)
	// Output: 9.99 <nil>
}

func ExampleAfter() {
	r := retry.New()
	calls := 0
	start := time.Now()
	_ = r.Do(context.Background(), func(ctx context.Context) error {
		calls++
		if calls == 1 {
			// The server said: come back in 20ms.
			return retry.After(20*time.Millisecond, errors.New("429 Too Many Requests"))
		}
		return nil
	})
	fmt.Println(time.Since(start) >= 20*time.Millisecond)
	// Output: true
}

func ExampleNewBudget() {
	// One budget for every caller of the payments service: during an outage
	// in which they make N calls in T seconds, they retry at most
	// 0.2·N + 10·T + 20 times (20% of the calls, 10 a second from the floor,
	// and 10 saved up plus the floor's 10 at once when the outage starts).
	budget := retry.NewBudget(retry.WithRatio(0.2), retry.WithMinRetriesPerSecond(10), retry.WithBurst(10))
	checkout := retry.New(retry.WithBudget(budget), retry.WithName("checkout"))
	refunds := retry.New(retry.WithBudget(budget), retry.WithName("refunds"))
	_, _ = checkout, refunds
	fmt.Println(budget.Available(), "retries saved up")
	// Output: 10 retries saved up
}

func ExampleNewTransport() {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hits.Add(1) < 3 {
			w.Header().Set("Retry-After", "0")
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		fmt.Fprint(w, "ok")
	}))
	defer srv.Close()

	client := &http.Client{Transport: retry.NewTransport(http.DefaultTransport)}
	resp, err := client.Get(srv.URL)
	if err != nil {
		fmt.Println(err)
		return
	}
	resp.Body.Close()
	fmt.Println(resp.Status, "after", hits.Load(), "attempts")
	// Output: 200 OK after 3 attempts
}

// Retries outside, circuit breaker inside: each attempt is judged by the
// breaker, and once it opens the retries stop at once.
func ExampleNewTransport_withCircuitBreaker() {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer srv.Close()

	client := &http.Client{Transport: retry.NewTransport(
		circuitbreaker.NewTransport(http.DefaultTransport, circuitbreaker.WithConsecutiveFailures(2)),
		retry.WithMaxAttempts(5), retry.WithBackoff(retry.Constant(time.Millisecond)),
	)}
	_, err := client.Get(srv.URL)
	fmt.Println(errors.Is(err, circuitbreaker.ErrOpen), "after", hits.Load(), "requests reached the server")
	// Output: true after 2 requests reached the server
}

func ExamplePermanent() {
	errNotFound := errors.New("order not found")
	r := retry.New(retry.WithBackoff(retry.Constant(time.Millisecond)))
	calls := 0
	err := r.Do(context.Background(), func(ctx context.Context) error {
		calls++
		// A 404 will still be a 404 on the next attempt.
		return retry.Permanent(fmt.Errorf("GET /orders/42: %w", errNotFound))
	})
	fmt.Println(calls, "call")
	fmt.Println(err)
	fmt.Println(errors.Is(err, errNotFound)) // the cause is kept, unwrapped from Permanent
	// Output:
	// 1 call
	// retry: not retryable after 1 attempt: GET /orders/42: order not found
	// true
}

// Settings read from a configuration file are checked with Validate, which
// returns what New would panic with.
func ExampleValidate() {
	conf := struct {
		Attempts int
		Initial  time.Duration
		Max      time.Duration
	}{Attempts: 0, Initial: time.Second, Max: 100 * time.Millisecond} // as read from a file

	opts := []retry.Option{
		retry.WithMaxAttempts(conf.Attempts),
		retry.WithBackoff(retry.Exponential(conf.Initial, 2, conf.Max)),
	}
	if err := retry.Validate(opts...); err != nil {
		fmt.Println(err)
		return
	}
	_ = retry.New(opts...)
	// Output:
	// retry: WithMaxAttempts(0): must be at least 1
	// WithBackoff(Exponential(1s, 2, 100ms)): the maximum must be at least the initial wait
}

func ExampleValidateBudget() {
	ratio := 20.0 // a percentage where a fraction is expected
	if err := retry.ValidateBudget(retry.WithRatio(ratio)); err != nil {
		fmt.Println(err)
	}
	fmt.Println(retry.ValidateBudget(retry.WithRatio(ratio / 100)))
	// Output:
	// retry: WithRatio(20): must be between 0 and 1
	// <nil>
}

// The waits of an exponential backoff, without jitter: they double up to
// the maximum.
func ExampleExponential() {
	r := retry.New(
		retry.WithMaxAttempts(5),
		retry.WithBackoff(retry.Exponential(time.Millisecond, 2, 4*time.Millisecond)),
		retry.WithJitter(retry.NoJitter),
		retry.WithOnRetry(func(ctx context.Context, attempt int, err error, delay time.Duration) {
			fmt.Printf("attempt %d failed, waiting %v\n", attempt, delay)
		}),
	)
	err := r.Do(context.Background(), func(ctx context.Context) error { return errors.New("unavailable") })
	fmt.Println(err)
	// Output:
	// attempt 1 failed, waiting 1ms
	// attempt 2 failed, waiting 2ms
	// attempt 3 failed, waiting 4ms
	// attempt 4 failed, waiting 4ms
	// retry: gave up after 5 attempts: unavailable
}

// Only errors that may go away are worth retrying.
func ExampleWithRetryIf() {
	errInvalid := errors.New("invalid card number")
	r := retry.New(
		retry.WithBackoff(retry.Constant(time.Millisecond)),
		retry.WithRetryIf(func(err error) bool { return !errors.Is(err, errInvalid) }),
	)
	calls := 0
	err := r.Do(context.Background(), func(ctx context.Context) error {
		calls++
		return fmt.Errorf("charge: %w", errInvalid)
	})
	fmt.Println(calls, err)
	// Output: 1 retry: not retryable after 1 attempt: charge: invalid card number
}

// An operation can tell a retry from a first attempt, for a log line or a
// header such as an idempotency key's attempt count.
func ExampleResendCount() {
	r := retry.New(retry.WithBackoff(retry.Constant(time.Millisecond)))
	_ = r.Do(context.Background(), func(ctx context.Context) error {
		n := retry.ResendCount(ctx)
		fmt.Println("resend count", n)
		if n < 2 {
			return errors.New("timeout")
		}
		return nil
	})
	// Output:
	// resend count 0
	// resend count 1
	// resend count 2
}

// A Budget's Available says how many retries it could pay for now, from
// what it has saved up; retries during an outage spend it.
func ExampleBudget_Available() {
	budget := retry.NewBudget(retry.WithBurst(5), retry.WithRatio(0.5), retry.WithMinRetriesPerSecond(0))
	r := retry.New(retry.WithBudget(budget), retry.WithBackoff(retry.Constant(0)), retry.WithMaxAttempts(3))
	fail := func(ctx context.Context) error { return errors.New("unavailable") }
	for range 4 {
		err := r.Do(context.Background(), fail)
		fmt.Printf("%.1f left: %v\n", budget.Available(), errors.Is(err, retry.ErrBudgetExhausted))
	}
	// Output:
	// 3.0 left: false
	// 1.5 left: false
	// 0.0 left: false
	// 0.5 left: true
}

// With ClientTrace, otelhttp's span of each retried HTTP attempt carries
// http.request.resend_count.
func ExampleClientTrace() {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hits.Add(1) == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		fmt.Fprint(w, "ok")
	}))
	defer srv.Close()

	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	attempt := otelhttp.NewTransport(http.DefaultTransport,
		otelhttp.WithTracerProvider(tp),
		otelhttp.WithClientTrace(retry.ClientTrace))
	client := &http.Client{Transport: retry.NewTransport(attempt,
		retry.WithTracerProvider(tp), retry.WithBackoff(retry.Constant(time.Millisecond)))}

	resp, err := client.Get(srv.URL)
	if err != nil {
		fmt.Println(err)
		return
	}
	resp.Body.Close()
	// In the order they ended: the failed attempt's, the retries', then the
	// retried attempt's, which ends when its body is closed.
	for _, s := range spans.Ended() {
		resend := "-"
		for _, kv := range s.Attributes() {
			if kv.Key == semconv.HTTPRequestResendCountKey {
				resend = kv.Value.String()
			}
		}
		fmt.Printf("%s span, resend count %s\n", s.Name(), resend)
	}
	// Output:
	// HTTP GET span, resend count -
	// retry span, resend count -
	// HTTP GET span, resend count 1
}
