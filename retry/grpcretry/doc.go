// Package grpcretry retries gRPC client calls with a [retry.Retrier]: unary
// calls and streams of methods declared safe to repeat, on status codes
// that say the server did not do the work (Unavailable by default),
// honouring the server's pushback and the call's deadline.
//
// It is a separate package so that importing [retry] does not pull gRPC
// into a build.
//
//	r := retry.New(retry.WithMaxAttempts(4), retry.WithBudget(retry.NewBudget()))
//	conn, err := grpc.NewClient(target,
//		grpc.WithStatsHandler(otelgrpc.NewClientHandler()),
//		grpc.WithChainUnaryInterceptor(
//			grpcretry.UnaryClientInterceptor(r, grpcretry.WithMethods(
//				"/inventory.v1.Inventory/GetItem",
//				"/inventory.v1.Inventory/ListItems")),
//			grpcbreaker.UnaryClientInterceptor(), // inside: judges every attempt
//		),
//		grpc.WithChainStreamInterceptor(
//			grpcretry.StreamClientInterceptor(r, grpcretry.WithMethods("/inventory.v1.Inventory/Watch")),
//			grpcbreaker.StreamClientInterceptor(),
//		),
//	)
//
// # What is retried
//
// Only safe methods: those listed by [WithMethods], accepted by
// [WithSafe], or whose proto definition carries option idempotency_level =
// IDEMPOTENT or NO_SIDE_EFFECTS. Other calls pass through untouched.
//
// Only failures that are worth another attempt: the codes of
// [WithRetryCodes] (Unavailable by default: the server is down,
// restarting or shedding load, or the connection broke), ResourceExhausted
// when the server sent a pushback, and a per-attempt timeout
// ([WithPerAttemptTimeout]) while the call's own deadline has not passed.
// A rejection by a circuit breaker further in (grpcbreaker's interceptors
// wrap circuitbreaker.ErrOpen) ends the retries at once.
//
// Waits come from the retrier's backoff and jitter, within its budget,
// attempt and elapsed-time limits, except that the server's pushback, the
// grpc-retry-pushback-ms trailer ([PushbackKey]), replaces the backoff's
// wait; a negative or malformed pushback means "do not retry" (gRFC A6),
// and so does one longer than [WithMaxPushback]. No wait goes past the
// call's deadline: the retries end at once with the last status.
//
// Streams are retried only until they are committed, when the server's
// response headers or first message arrive (gRFC A6), or when the client
// has sent more messages than [WithMaxBuffered] keeps: the messages the
// client sent until then are kept and sent again on the new stream, as
// gRPC's own retries do. A server-streaming call, whose single request is
// so replayed, is thus retried as long as it has produced nothing.
//
// # Errors
//
// A call that was retried and failed returns an [*Error]: its gRPC status
// is the last attempt's ([status.Code] works, through wrapping too), and it
// unwraps to the [*retry.Error] with every attempt's error and why the
// retries ended ([retry.ErrExhausted], [retry.ErrBudgetExhausted], the
// context's error). A call that failed at once, with an error not worth
// retrying or because its context ended during the attempt, returns that
// error untouched.
//
// # gRPC's built-in retries
//
// gRPC has retries of its own, configured in the service config
// (a "retryPolicy" per method: maxAttempts, initialBackoff, maxBackoff,
// backoffMultiplier, retryableStatusCodes; with "retryThrottling" as a
// token-bucket budget per channel), enabled by default in grpc-go, and
// it always makes transparent retries: a request that never left the
// client, or that the server never handed to the application, is sent
// again whatever the policy.
//
// Transparent retries stay on with these interceptors and are harmless:
// they happen inside each attempt. For the policy retries, choose one per
// method:
//
//   - The service config suits a fleet: the service owner publishes the
//     policy (through the name resolver, or xDS), every client in every
//     language follows it, and gRPC buffers and replays streams itself
//     with per-channel memory limits and hedging.
//   - These interceptors suit a Go client that wants its retries under
//     its own control and visible: the same [retry.Retrier] (backoff,
//     jitter, a [retry.Budget] shared with HTTP calls to the same
//     dependency, elapsed-time limits, hooks) as the rest of the service,
//     a retry span and retry metrics, a breaker judging every attempt,
//     and safety declared in code or by idempotency_level.
//
// Do not turn both on for the same method: the attempts multiply (3 by
// the service config times 3 here is 9 calls for one), and so does the
// load on a dependency that is already failing. Disable the service
// config's policy for the methods this package retries
// (grpc.WithDisableRetry on the connection disables it, transparent
// retries aside), or leave those methods out of the interceptor.
//
// # OpenTelemetry
//
// Put otelgrpc's stats handler on the connection
// (grpc.WithStatsHandler(otelgrpc.NewClientHandler())): each attempt is a
// call down the chain, so it gets a client span of its own, and its trace
// context is injected into that attempt's metadata. The first attempt's
// span is a child of the caller's span; from the first retry on, the
// retrier starts a retry span and the retries' client spans are its
// children. The caller's outgoing metadata is sent with every attempt,
// and retries carry grpc-previous-rpc-attempts ([PreviousAttemptsKey]).
//
// # Telemetry
//
// The package records no metric of its own: the [retry.Retrier] given to
// it records its retry.calls, retry.attempts and retry.delay metrics and
// its retry span, named and configured by the retrier's options, and
// otelgrpc records the calls. On the retry span the interceptors set
// rpc.system.name (grpc) and rpc.method (package.Service/Method), and
// rpc.response.status_code (such as UNAVAILABLE), the status of the last
// failed retry, from the semantic conventions. They start no span and
// allocate nothing for telemetry on a call that succeeds at once.
//
// # Bad input
//
// The interceptors panic at construction on a nil retrier or an invalid
// option, naming every one; nothing panics at call time.
package grpcretry
