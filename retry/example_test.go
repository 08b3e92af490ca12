package retry_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"time"

	"github.com/otelpatterns/patterns/circuitbreaker"
	"github.com/otelpatterns/patterns/retry"
)

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
	// One budget for every caller of the payments service: during an outage,
	// retries add at most 20% to the load (plus 10 per second).
	budget := retry.NewBudget(retry.WithRatio(0.2), retry.WithMinRetriesPerSecond(10))
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
