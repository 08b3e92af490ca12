package circuitbreaker_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/otelpatterns/patterns/circuitbreaker"
)

// A breaker in front of a recommendations service that is down: after
// three failures in a row it opens, and the calls after that get a
// fallback at once, without waiting on the service.
func Example() {
	b := circuitbreaker.New("recommendations",
		circuitbreaker.WithConsecutiveFailures(3),
		circuitbreaker.WithOpenDuration(time.Minute),
		circuitbreaker.WithOnStateChange(func(c circuitbreaker.StateChange) {
			fmt.Printf("  (breaker %s: %v -> %v)\n", c.Breaker, c.From, c.To)
		}),
	)
	recommend := func(ctx context.Context, user string) ([]string, error) {
		return circuitbreaker.Do(ctx, b, func(ctx context.Context) ([]string, error) {
			return nil, errors.New("recommendations: 503 Service Unavailable")
		})
	}

	for i := range 5 {
		items, err := recommend(context.Background(), "ada")
		switch {
		case errors.Is(err, circuitbreaker.ErrOpen):
			fmt.Println(i, "fallback:", []string{"bestsellers"})
		case err != nil:
			fmt.Println(i, "error:", err)
		default:
			fmt.Println(i, items)
		}
	}
	fmt.Println("state:", b.State())
	// Output:
	// 0 error: recommendations: 503 Service Unavailable
	// 1 error: recommendations: 503 Service Unavailable
	//   (breaker recommendations: closed -> open)
	// 2 error: recommendations: 503 Service Unavailable
	// 3 fallback: [bestsellers]
	// 4 fallback: [bestsellers]
	// state: open
}

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

func ExampleGroup_Remove() {
	g := circuitbreaker.NewGroup(circuitbreaker.WithConsecutiveFailures(1))
	_ = g.Get("10.0.0.7:8080").Execute(context.Background(), func(context.Context) error {
		return errors.New("connection refused")
	})
	fmt.Println("before:", g.Get("10.0.0.7:8080").State())
	// The host is taken out of service for good: its breaker, and the
	// series it reports, go with it.
	g.Remove("10.0.0.7:8080")
	fmt.Println("breakers held:", g.Len())
	// Output:
	// before: open
	// breakers held: 0
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

// Options whose values come from a configuration file are checked with
// Validate, which reports every bad one as an error instead of the panic
// of New.
func ExampleValidate() {
	var settings struct {
		FailureRate float64 `json:"failure_rate"`
		OpenFor     string  `json:"open_for"`
	}
	if err := json.Unmarshal([]byte(`{"failure_rate": 150, "open_for": "0s"}`), &settings); err != nil {
		fmt.Println(err)
		return
	}
	openFor, err := time.ParseDuration(settings.OpenFor)
	if err != nil {
		fmt.Println(err)
		return
	}
	opts := []circuitbreaker.Option{
		circuitbreaker.WithFailureRate(settings.FailureRate),
		circuitbreaker.WithOpenDuration(openFor),
	}
	if err := circuitbreaker.Validate(opts...); err != nil {
		fmt.Println(err)
		return
	}
	b := circuitbreaker.New("payments", opts...)
	fmt.Println(b.State())
	// Output:
	// circuitbreaker: WithFailureRate(150): threshold must be in (0, 100]
	// WithOpenDuration(0s): must be positive
}

// A rejection says which breaker rejected the call and how long is left
// to wait, for a log line or a Retry-After header.
func ExampleRejectedError() {
	b := circuitbreaker.New("payments", circuitbreaker.WithConsecutiveFailures(1), circuitbreaker.WithOpenDuration(30*time.Second))
	_ = b.Execute(context.Background(), func(context.Context) error { return errors.New("payments: 503") })

	err := b.Execute(context.Background(), func(context.Context) error { return nil })
	var re *circuitbreaker.RejectedError
	if errors.As(err, &re) {
		fmt.Println(re.Breaker, "is", re.State)
		// Read ten seconds later, the wait is twenty seconds.
		fmt.Println("retry after", re.RetryAfter(time.Now().Add(10*time.Second)).Round(time.Second))
	}
	// Output:
	// payments is open
	// retry after 20s
}

// A classifier decides which errors say the dependency is unhealthy. Here
// "not found" is a normal answer and does not count at all.
func ExampleWithClassifier() {
	errNotFound := errors.New("user not found")
	b := circuitbreaker.New("users",
		circuitbreaker.WithConsecutiveFailures(2),
		circuitbreaker.WithClassifier(func(err error) circuitbreaker.Outcome {
			if errors.Is(err, errNotFound) {
				return circuitbreaker.Ignored
			}
			return circuitbreaker.DefaultClassifier(err)
		}),
	)
	for range 5 {
		_ = b.Execute(context.Background(), func(context.Context) error { return errNotFound })
	}
	fmt.Println(b.State(), b.Snapshot().Calls, "calls counted")
	// Output: closed 0 calls counted
}

// WithTimeWindow judges the calls of the last seconds rather than the last
// n calls, which suits a dependency whose traffic comes in bursts.
func ExampleWithTimeWindow() {
	b := circuitbreaker.New("reports",
		circuitbreaker.WithTimeWindow(10*time.Second, 10),
		circuitbreaker.WithMinimumCalls(5),
		circuitbreaker.WithFailureRate(50),
	)
	outcomes := []error{nil, errors.New("timeout"), nil, errors.New("timeout"), errors.New("timeout")}
	for _, err := range outcomes {
		_ = b.Execute(context.Background(), func(context.Context) error { return err })
	}
	fmt.Println(b.State())
	// Output: open
}

// Snapshot shows the window a breaker decides on, for a status page or a
// log line.
func ExampleBreaker_Snapshot() {
	b := circuitbreaker.New("search", circuitbreaker.WithCountWindow(10))
	for i := range 8 {
		_ = b.Execute(context.Background(), func(context.Context) error {
			if i%4 == 0 {
				return errors.New("search: timeout")
			}
			return nil
		})
	}
	s := b.Snapshot()
	fmt.Printf("%v: %d calls, %d failed (%.0f%%)\n", s.State, s.Calls, s.Failures, s.FailureRate)
	// Output: closed: 8 calls, 2 failed (25%)
}

// WithGroup gives the transport breakers the caller can look at: here,
// to tell a health page which hosts are being avoided.
func ExampleWithGroup() {
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadGateway)
	}))
	defer down.Close()

	hosts := circuitbreaker.NewGroup(circuitbreaker.WithConsecutiveFailures(1))
	client := &http.Client{Transport: circuitbreaker.NewTransport(nil, circuitbreaker.WithGroup(hosts))}
	resp, err := client.Get(down.URL)
	if err != nil {
		fmt.Println(err)
		return
	}
	resp.Body.Close()

	host := strings.TrimPrefix(down.URL, "http://")
	fmt.Println(resp.StatusCode, hosts.Get(host).State())
	// Output: 502 open
}
