package circuitbreaker_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/otelpatterns/patterns/circuitbreaker"
)

func ExampleNew() {
	b := circuitbreaker.New("payments",
		circuitbreaker.WithCountWindow(50),
		circuitbreaker.WithMinimumCalls(10),
		circuitbreaker.WithFailureRate(25),
		circuitbreaker.WithOpenDuration(10*time.Second),
		circuitbreaker.WithOnStateChange(func(c circuitbreaker.StateChange) {
			fmt.Printf("%s: %v -> %v at %.0f%% failures\n", c.Breaker, c.From, c.To, c.Snapshot.FailureRate)
		}),
	)
	charge := func(ctx context.Context) error { return errors.New("payments: 503") }
	for range 10 {
		_ = b.Execute(context.Background(), charge)
	}
	fmt.Println(b.State())
	// Output:
	// payments: closed -> open at 100% failures
	// open
}

func ExampleBreaker_Execute() {
	b := circuitbreaker.New("inventory", circuitbreaker.WithConsecutiveFailures(3))
	reserve := func(ctx context.Context) error { return errors.New("inventory: connection refused") }

	for i := range 4 {
		err := b.Execute(context.Background(), reserve)
		switch {
		case errors.Is(err, circuitbreaker.ErrOpen):
			fmt.Println(i, "rejected without calling:", err.(*circuitbreaker.RejectedError).Breaker, "is open")
		case err != nil:
			fmt.Println(i, "failed:", err)
		}
	}
	// Output:
	// 0 failed: inventory: connection refused
	// 1 failed: inventory: connection refused
	// 2 failed: inventory: connection refused
	// 3 rejected without calling: inventory is open
}

func ExampleDo() {
	b := circuitbreaker.New("prices")
	price, err := circuitbreaker.Do(context.Background(), b, func(ctx context.Context) (float64, error) {
		return 9.99, nil // call the price service here
	})
	fmt.Println(price, err)
	// Output: 9.99 <nil>
}

func ExampleBreaker_Allow() {
	b := circuitbreaker.New("events")
	// A stream whose outcome is only known when it ends.
	done, err := b.Allow(context.Background())
	if err != nil {
		fmt.Println("not now:", err)
		return
	}
	stream := strings.NewReader("event 1\nevent 2\n")
	_, err = io.Copy(io.Discard, stream)
	done(err)
	fmt.Println(b.Snapshot().Calls, "call recorded")
	// Output: 1 call recorded
}

func ExampleBreaker_Trip() {
	b := circuitbreaker.New("search")
	b.Trip() // take search out of service until Reset
	fmt.Println(b.Execute(context.Background(), func(context.Context) error { return nil }))
	b.Reset()
	fmt.Println(b.State())
	// Output:
	// circuitbreaker: breaker "search" is open until reset
	// closed
}

func ExampleGroup() {
	g := circuitbreaker.NewGroup(
		circuitbreaker.WithMaxBreakers(100),
		circuitbreaker.WithConsecutiveFailures(2),
	)
	call := func(tenant string, err error) {
		_ = g.Get(tenant).Execute(context.Background(), func(context.Context) error { return err })
	}
	call("acme", errors.New("timeout"))
	call("acme", errors.New("timeout"))
	call("globex", nil)
	fmt.Println("acme:", g.Get("acme").State())
	fmt.Println("globex:", g.Get("globex").State())
	// Output:
	// acme: open
	// globex: closed
}

func ExampleNewTransport() {
	// A dependency that is down.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer srv.Close()

	client := &http.Client{Transport: circuitbreaker.NewTransport(http.DefaultTransport,
		circuitbreaker.WithConsecutiveFailures(2))}
	for range 3 {
		resp, err := client.Get(srv.URL)
		if errors.Is(err, circuitbreaker.ErrOpen) {
			fmt.Println("rejected before reaching the network")
			continue
		}
		if err != nil {
			fmt.Println(err)
			continue
		}
		resp.Body.Close()
		fmt.Println(resp.Status)
	}
	// Output:
	// 503 Service Unavailable
	// 503 Service Unavailable
	// rejected before reaching the network
}

func ExampleMiddleware() {
	b := circuitbreaker.New("orders-api", circuitbreaker.WithConsecutiveFailures(1), circuitbreaker.WithOpenDuration(30*time.Second))
	h := circuitbreaker.Middleware(b)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "database unavailable", http.StatusInternalServerError)
	}))
	for range 2 {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/orders", nil))
		fmt.Printf("%d Retry-After: %q\n", rec.Code, rec.Header().Get("Retry-After"))
	}
	// Output:
	// 500 Retry-After: ""
	// 503 Retry-After: "30"
}
