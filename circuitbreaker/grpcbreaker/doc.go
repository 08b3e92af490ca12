// Package grpcbreaker puts circuit breakers in front of gRPC calls: client
// interceptors that stop calling a failing server, and server
// interceptors that shed load before handlers run.
//
// It is a separate package so that importing [circuitbreaker] does not
// pull gRPC into a build.
//
// # Client
//
// [UnaryClientInterceptor] and [StreamClientInterceptor] send each call
// through a breaker from a [circuitbreaker.Group]: one per method by
// default, or one per connection target with [WithKey]([PerTarget]).
//
//	breakers := circuitbreaker.NewGroup(circuitbreaker.WithOpenDuration(5 * time.Second))
//	conn, err := grpc.NewClient(target,
//		grpc.WithChainUnaryInterceptor(grpcbreaker.UnaryClientInterceptor(grpcbreaker.WithGroup(breakers))),
//		grpc.WithChainStreamInterceptor(grpcbreaker.StreamClientInterceptor(grpcbreaker.WithGroup(breakers))),
//	)
//
// Calls count by status code: Unavailable, DeadlineExceeded,
// ResourceExhausted and Internal are failures of the dependency
// ([WithFailureCodes]); Canceled counts for nothing; every other code
// (InvalidArgument, NotFound, PermissionDenied...) is the caller's
// business and counts as a success, since the server answered. A call
// rejected by an open breaker fails without reaching the network, with a
// [*RejectedError]: status Unavailable for gRPC ([status.Code]), and
// [circuitbreaker.ErrOpen] (or [circuitbreaker.ErrTooManyRequests] while
// half-open) for [errors.Is].
//
// A stream counts by its final status, when it ends; a caller that
// abandons a stream must cancel its context (as gRPC requires anyway),
// which frees a half-open probe slot at once.
//
// With retries, put the breaker inside the retry interceptor
// (grpcretry), so that each attempt is judged and an open breaker ends
// the retries:
//
//	grpc.WithChainUnaryInterceptor(
//		grpcretry.UnaryClientInterceptor(r, grpcretry.WithMethods(...)),
//		grpcbreaker.UnaryClientInterceptor(),
//	)
//
// # Server
//
// [UnaryServerInterceptor] and [StreamServerInterceptor] shed load before
// handlers run: while a breaker ([WithBreaker]) rejects, or above a number
// of calls in flight ([WithMaxConcurrent]), they answer Unavailable with a
// grpc-retry-pushback-ms trailer ([PushbackKey], [WithPushback]) that
// tells gRPC clients (gRPC's own retries, and grpcretry) when to come
// back, or with a negative value not to retry.
//
//	b := circuitbreaker.New("inventory-db")
//	srv := grpc.NewServer(
//		grpc.StatsHandler(otelgrpc.NewServerHandler()),
//		grpc.ChainUnaryInterceptor(grpcbreaker.UnaryServerInterceptor(grpcbreaker.WithBreaker(b), grpcbreaker.WithMaxConcurrent(200))),
//	)
//
// # Telemetry
//
// The package records no metric or span of its own: the breakers record
// theirs (circuitbreaker.calls, circuitbreaker.state,
// circuitbreaker.state.transitions; a circuitbreaker.rejected event on
// the caller's span), configured through the group's or breaker's
// options, and otelgrpc's stats handler records the calls that reach
// gRPC, with their status. A call that a client interceptor rejects
// never does (it fails before gRPC starts the call and its stats
// handlers), so otelgrpc records nothing of it: it shows only as
// circuitbreaker.calls with circuitbreaker.outcome rejected, and as the
// circuitbreaker.rejected event. A call that a server interceptor sheds
// has reached the server: otelgrpc records it on both sides, with status
// Unavailable. A call through a closed breaker allocates nothing for
// telemetry.
//
// # Bad input
//
// The constructors panic on an invalid option (a nil one among them),
// naming every one, and the server interceptors when given nothing to
// shed with; nothing panics at call time.
package grpcbreaker
