// Package hexagonal is what a service built in the hexagonal (ports and
// adapters) or onion style needs from a library, without a
// dependency-injection framework: a lifecycle that starts and stops its
// adapters in order and shuts down gracefully on signals, health
// endpoints for Kubernetes and load balancers, a span and metrics per
// layer, domain errors answered as problem details at the edge, and (in
// the sub-package [github.com/otelpatterns/patterns/hexagonal/archtest])
// the dependency rule checked by a test.
//
// Wiring stays plain Go: main builds the adapters, hands them to the use
// cases, and registers with an [App] what has a lifecycle.
//
// # Lifecycle
//
// An [App] runs components ([Component]): a driven adapter such as a
// database pool, a driving one such as an HTTP server ([HTTPServer]) or
// a message consumer (a Component whose Run consumes until its context
// ends).
//
//	health, _ := hexagonal.NewHealth(
//		hexagonal.WithReadinessCheck("postgres", hexagonal.PingCheck(pool)))
//	admin := &http.Server{Addr: ":8081", Handler: health.Handler()}
//	api := &http.Server{Addr: ":8080", Handler: mux}
//	app, err := hexagonal.New(
//		hexagonal.WithHealth(health),
//		hexagonal.WithDrainDelay(5*time.Second),
//		hexagonal.WithComponent(
//			hexagonal.Component{Name: "postgres", Stop: closePool},
//			hexagonal.HTTPServer("admin", admin),
//			hexagonal.HTTPServer("api", api),
//		))
//	if err != nil {
//		log.Fatal(err)
//	}
//	if err := app.Run(context.Background()); err != nil {
//		log.Fatal(err)
//	}
//
// [App.Run] starts the components in registration order and waits for
// its context to end, SIGINT or SIGTERM, or a component's Run to return.
// Then it shuts down: readiness turns false at once and HTTP servers
// close each connection after its response, the drain delay
// ([WithDrainDelay]) gives load balancers time to notice, and the
// components stop in reverse order, each within its own timeout
// ([WithStopTimeout], [Component.StopTimeout]); an HTTP server stops
// accepting and finishes the requests in flight. A component that fails
// to start stops the start, and those started before it are stopped. A
// second signal forces the exit. Run returns the first error, with the
// later ones joined to it. Each phase is logged with [log/slog]
// ([WithLogger]) and traced.
//
// Unlike uber-go/fx, nothing is resolved by reflection: the order of
// registration is the order of start. Unlike oklog/run, start and stop
// are ordered and bounded in time.
//
// # Health
//
// A [Health] aggregates named checks, each a function of a context
// returning an error: [Liveness] checks decide whether the process should
// be restarted, [Readiness] checks whether it should be sent requests.
// [PingCheck] (a *pgxpool.Pool), [RedisCheck] (a go-redis client) and
// [NATSCheck] (a *nats.Conn) take small interfaces, so this package
// imports no driver. [Health.Handler] serves /livez and /readyz in the
// manner of Kubernetes' API server (text, ?verbose, ?exclude, one check
// by path), and /health as JSON with each check's status and latency.
//
// Checks run concurrently, each within its timeout ([WithCheckTimeout]),
// and their results are reused for an interval ([WithCheckInterval]): a
// slow dependency cannot stall a probe, and probes cannot hammer it, since
// a check has at most one run in flight whoever asks. A check that panics
// fails; it does not crash the service. Readiness is false while the
// [App] starts and once it shuts down.
//
// # Layers
//
// [Instrument] wraps a use case, a port's method or a domain service (a
// function of a context and an input returning an output and an error)
// in a span and metrics, named for its [Layer]:
//
//	placeOrder := hexagonal.Instrument(hexagonal.Application,
//		"Orders", "Place", orders.Place)
//	save := hexagonal.InstrumentErr(hexagonal.DrivenAdapter,
//		"OrderRepository", "Save", repo.Save)
//
// One request then shows a span per layer: the driving adapter's server
// span, the use case's and the domain's internal spans, the driven
// adapters' client spans. The onion names ([DomainModel],
// [DomainService], [ApplicationService], [Infrastructure]) are layers
// too. Inner layers start a span only inside a recording trace, so that
// a wrapped domain call costs a few nanoseconds and no allocation when
// telemetry is off.
//
// # Cost
//
// With no SDK (or no-op providers) a wrapped domain call adds about 15ns
// to the call and allocates nothing: one atomic add to count it, a look
// at the context's span and at whether the histogram records. With an
// SDK meter, timing and recording the duration histogram adds a few
// hundred nanoseconds; a view that drops hexagonal.call.duration
// (sdkmetric.AggregationDrop) turns that off for hot calls, and the
// SDK's span, inside a sampled trace, costs a few microseconds.
//
// # Domain errors at the edge
//
// A [DomainError] (an error with a DomainKind method, which the domain
// defines without importing this package) is the caller's to correct: it
// counts as a domain_error, not an error, and leaves the span's status
// unset. [WriteProblem] answers it at the edge as an
// application/problem+json document (RFC 9457) with the status of its
// kind (404 for [KindNotFound], 409 for [KindConflict], 422 for
// [KindRejected], ...), and any other error as a bare 500 that tells
// nothing of the service's insides.
//
// # Telemetry
//
// Spans come from the tracer named [ScopeName] of the
// [WithTracerProvider] provider, metrics from its meter of the
// [WithMeterProvider] provider (the global ones by default).
//
// Spans:
//
//   - hexagonal.startup and hexagonal.shutdown (internal): the app's
//     phases, each the root of a trace unless Run's context has a span,
//     the shutdown linked to the start-up and with a hexagonal.drain
//     event; children "start {component}" and "stop {component}"
//     (internal, hexagonal.component). Failures set error.type.
//   - "{port}.{operation}", such as "OrderRepository.Save": a call
//     wrapped by [Instrument], with hexagonal.layer, hexagonal.port and
//     hexagonal.operation, and error.type on failure; internal in the
//     inner layers, server for driving adapters, client for driven ones.
//
// Metrics:
//
//   - hexagonal.calls (counter, {call}): calls wrapped by [Instrument],
//     by hexagonal.layer, hexagonal.port, hexagonal.operation and
//     hexagonal.outcome (success, domain_error or error).
//   - hexagonal.call.duration (histogram, s): their duration, with the
//     same attributes and error.type on failure.
//   - hexagonal.check.status (gauge, {status}): 1 when a health check's
//     latest run passed, 0 when it failed, by hexagonal.check and
//     hexagonal.check.kind (liveness or readiness).
//   - hexagonal.check.transitions (counter, {transition}): changes of a
//     check's status, by hexagonal.check, hexagonal.check.kind and
//     hexagonal.check.status (pass or fail, the status changed to).
//
// Calls and transitions are counted in memory and reported by
// asynchronous instruments when the SDK collects, so counting costs an
// atomic add; the duration histogram is recorded only when the meter
// records it (its Enabled method).
package hexagonal
