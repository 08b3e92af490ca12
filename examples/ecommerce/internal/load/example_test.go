package load_test

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/otelpatterns/patterns/examples/ecommerce/internal/load"
)

// A run of one second at 20 requests a second against a server that
// answers every fifth request 503. The counts are the schedule's, so they
// do not depend on the machine; the latencies do, and Print shows them.
func ExampleRun() {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("i") == "4" {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()

	rep, err := load.Run(context.Background(), load.Config{
		Rate:     20,
		Duration: time.Second,
		Next: func(ctx context.Context, i int) (*http.Request, error) {
			return http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s/?i=%d", srv.URL, i%5), nil)
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("sent", rep.Sent, "dropped", rep.Dropped, "errors", rep.Errors)
	fmt.Println("200:", rep.Status[200], "503:", rep.Status[503])
	// Output:
	// sent 20 dropped 0 errors 0
	// 200: 16 503: 4
}
