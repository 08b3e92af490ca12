package hexagonal_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/redis/go-redis/v9"

	"github.com/otelpatterns/patterns/hexagonal"
)

// An app of three components: they start in order and stop in reverse.
// Here the consumer's Run returns, which shuts the app down; a service
// runs until SIGINT or SIGTERM.
func ExampleApp_Run() {
	step := func(name string) hexagonal.Component {
		return hexagonal.Component{
			Name:  name,
			Start: func(context.Context) error { fmt.Println("start", name); return nil },
			Stop:  func(context.Context) error { fmt.Println("stop", name); return nil },
		}
	}
	consumer := step("consumer")
	consumer.Run = func(ctx context.Context) error {
		fmt.Println("consume until done")
		return nil
	}
	app, err := hexagonal.New(
		hexagonal.WithLogger(slog.New(slog.DiscardHandler)),
		hexagonal.WithComponent(step("postgres"), step("outbox"), consumer),
	)
	if err != nil {
		log.Fatal(err)
	}
	if err := app.Run(context.Background()); err != nil {
		log.Fatal(err)
	}
	// Output:
	// start postgres
	// start outbox
	// start consumer
	// consume until done
	// stop consumer
	// stop outbox
	// stop postgres
}

// An HTTP server as a driving adapter, with the health endpoints on the
// same mux. Run's context stands for the signal that ends a service.
func ExampleHTTPServer() {
	health, err := hexagonal.NewHealth(
		hexagonal.WithReadinessCheck("postgres", func(context.Context) error { return nil }))
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/livez", health.Handler())
	mux.Handle("/readyz", health.Handler())
	mux.HandleFunc("/hello", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "hello") })

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	app, err := hexagonal.New(
		hexagonal.WithHealth(health),
		hexagonal.WithLogger(slog.New(slog.DiscardHandler)),
		hexagonal.WithComponent(
			// hexagonal.HTTPServer("api", &http.Server{Addr: ":8080", Handler: mux})
			// in a service; a listener of the example's own here.
			hexagonal.HTTPServerListener("api", &http.Server{Handler: mux}, ln),
			hexagonal.Component{Name: "client", Run: func(ctx context.Context) error {
				defer stop()
				// A Run starts as soon as its component has: the app
				// reports ready once every component has started.
				for ctx.Err() == nil && !health.Ready(ctx).OK {
					time.Sleep(time.Millisecond)
				}
				for _, path := range []string{"/hello", "/readyz"} {
					resp, err := http.Get("http://" + ln.Addr().String() + path)
					if err != nil {
						return err
					}
					body, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					fmt.Printf("%s: %d %s\n", path, resp.StatusCode, body)
				}
				return nil
			}},
		),
	)
	if err != nil {
		log.Fatal(err)
	}
	if err := app.Run(ctx); err != nil {
		log.Fatal(err)
	}
	http.DefaultClient.CloseIdleConnections()
	// Output:
	// /hello: 200 hello
	//
	// /readyz: 200 ok
}

// The health endpoints, in the manner of Kubernetes: text with ?verbose,
// and JSON at /health.
func ExampleHealth_Handler() {
	health, err := hexagonal.NewHealth(
		hexagonal.WithLivenessCheck("eventloop", func(context.Context) error { return nil }),
		hexagonal.WithReadinessCheck("payments", func(context.Context) error {
			return fmt.Errorf("dial tcp 10.0.0.7:443: connection refused")
		}),
	)
	if err != nil {
		log.Fatal(err)
	}
	for _, target := range []string{"/livez", "/livez?verbose", "/readyz"} {
		w := httptest.NewRecorder()
		health.Handler().ServeHTTP(w, httptest.NewRequest(http.MethodGet, target, nil))
		fmt.Printf("GET %s: %d\n%s\n", target, w.Code, w.Body)
	}
	// Output:
	// GET /livez: 200
	// ok
	// GET /livez?verbose: 200
	// [+]eventloop ok
	// livez check passed
	//
	// GET /readyz: 503
	// [+]lifecycle ok
	// [+]eventloop ok
	// [-]payments failed: reason withheld
	// readyz check failed
}

// Ready-made checks for PostgreSQL (pgx), Redis (go-redis) and NATS, by
// small interfaces: hexagonal imports none of the drivers.
func ExamplePingCheck() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv("PATTERNS_POSTGRES_URL"))
	if err != nil {
		log.Fatal(err)
	}
	rdb := redis.NewClient(&redis.Options{Addr: os.Getenv("PATTERNS_REDIS_ADDR")})
	nc, err := nats.Connect(os.Getenv("PATTERNS_NATS_URL"))
	if err != nil {
		log.Fatal(err)
	}
	health, err := hexagonal.NewHealth(
		hexagonal.WithReadinessCheck("postgres", hexagonal.PingCheck(pool)),
		hexagonal.WithReadinessCheck("redis", hexagonal.RedisCheck(rdb)),
		hexagonal.WithReadinessCheck("nats", hexagonal.NATSCheck(nc)),
		hexagonal.WithCheckTimeout(500*time.Millisecond),
	)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(health.Ready(ctx).OK)
}

// A use case and the domain call it makes, each in a span of its layer
// when the request is traced, and counted by outcome either way.
func ExampleInstrument() {
	// The domain: a pure function with a domain error.
	total := func(_ context.Context, cents []int) (int, error) {
		if len(cents) == 0 {
			return 0, hexagonal.Errorf(hexagonal.KindRejected, "an order needs at least one line")
		}
		sum := 0
		for _, c := range cents {
			sum += c
		}
		return sum, nil
	}
	// Wired once, at start-up.
	orderTotal := hexagonal.Instrument(hexagonal.Domain, "Order", "Total", total)
	place := hexagonal.Instrument(hexagonal.Application, "Orders", "Place",
		func(ctx context.Context, cents []int) (string, error) {
			sum, err := orderTotal(ctx, cents)
			if err != nil {
				return "", fmt.Errorf("place order: %w", err)
			}
			return fmt.Sprintf("order placed: %d cents", sum), nil
		})

	fmt.Println(place(context.Background(), []int{250, 1200}))
	_, err := place(context.Background(), nil)
	fmt.Println(err, hexagonal.StatusOf(err))
	// Output:
	// order placed: 1450 cents <nil>
	// place order: an order needs at least one line 422
}

// At the edge, errors become problem details: a domain error with the
// status of its kind, anything else a 500 that tells nothing.
func ExampleWriteProblem() {
	handler := func(w http.ResponseWriter, r *http.Request) {
		err := hexagonal.Errorf(hexagonal.KindNotFound, "order %s not found", r.PathValue("id"))
		hexagonal.WriteProblem(w, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /orders/{id}", handler)
	w := httptest.NewRecorder()
	mux.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/orders/o-42", nil))
	fmt.Println(w.Code, w.Header().Get("Content-Type"))
	fmt.Print(w.Body)
	// Output:
	// 404 application/problem+json
	// {"detail":"order o-42 not found","kind":"not_found","status":404,"title":"Not Found"}
}

// A service in one piece: a domain rule, a use case and a driven
// adapter, each wrapped by Instrument in its layer; a driving HTTP
// adapter that answers domain errors as problem details; and an app
// that starts the server and shuts it all down. The
// "client" component stands for the traffic a real service gets until
// SIGTERM: when its Run returns, the app shuts down.
func Example() {
	// Driven adapter: an in-memory repository.
	orders := map[string]string{"o-1": "2 books"}
	find := hexagonal.Instrument(hexagonal.DrivenAdapter, "OrderRepository", "Find",
		func(_ context.Context, id string) (string, error) {
			o, ok := orders[id]
			if !ok {
				return "", hexagonal.Errorf(hexagonal.KindNotFound, "order %s not found", id)
			}
			return o, nil
		})
	// Use case.
	show := hexagonal.Instrument(hexagonal.Application, "Orders", "Show", find)

	// Driving adapter.
	health, err := hexagonal.NewHealth()
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/", health.Handler()) // /livez, /readyz, /health
	mux.HandleFunc("GET /orders/{id}", func(w http.ResponseWriter, r *http.Request) {
		o, err := show(r.Context(), r.PathValue("id"))
		if err != nil {
			hexagonal.WriteProblem(w, err)
			return
		}
		fmt.Fprintln(w, o)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	base := "http://" + ln.Addr().String()

	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	client := hexagonal.Component{Name: "client", Run: func(ctx context.Context) error {
		for _, path := range []string{"/livez", "/orders/o-1", "/orders/o-2"} {
			resp, err := c.Get(base + path)
			if err != nil {
				return err
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			fmt.Printf("GET %s: %d %s\n", path, resp.StatusCode, strings.TrimSpace(string(body)))
		}
		return nil
	}}
	app, err := hexagonal.New(
		hexagonal.WithLogger(slog.New(slog.DiscardHandler)),
		hexagonal.WithHealth(health),
		hexagonal.WithComponent(hexagonal.HTTPServerListener("api", &http.Server{Handler: mux}, ln), client),
	)
	if err != nil {
		log.Fatal(err)
	}
	if err := app.Run(context.Background()); err != nil {
		log.Fatal(err)
	}
	// Output:
	// GET /livez: 200 ok
	// GET /orders/o-1: 200 2 books
	// GET /orders/o-2: 404 {"detail":"order o-2 not found","kind":"not_found","status":404,"title":"Not Found"}
}

// Configuration errors come all at once, each naming its option.
func ExampleNew_errors() {
	_, err := hexagonal.New(
		hexagonal.WithStopTimeout(-time.Second),
		hexagonal.WithComponent(hexagonal.Component{Name: "postgres"}, hexagonal.HTTPServer("api", nil)),
	)
	fmt.Println(err)
	// Output:
	// hexagonal: WithStopTimeout(-1s): must be positive
	// WithComponent("postgres"): Start, Run and Stop are all nil
	// HTTPServer("api"): the server is nil
}

// A domain error carries its kind to the edge, through any wrapping.
func ExampleErrorf() {
	err := fmt.Errorf("place order: %w",
		hexagonal.Errorf(hexagonal.KindConflict, "order %s is already paid", "o-42"))
	kind, ok := hexagonal.DomainKind(err)
	fmt.Println(kind, ok, hexagonal.StatusOf(err))
	fmt.Println(hexagonal.StatusOf(errors.New("connection reset")))
	// Output:
	// conflict true 409
	// 500
}
