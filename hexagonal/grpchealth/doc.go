// Package grpchealth serves the gRPC health checking protocol
// (grpc.health.v1.Health) from a [hexagonal.Health], so that the checks a
// service already has for Kubernetes' HTTP probes also answer gRPC load
// balancers, Kubernetes' gRPC probes and grpc-go's client-side health
// checking.
//
//	health, _ := hexagonal.NewHealth(
//		hexagonal.WithReadinessCheck("postgres", hexagonal.PingCheck(pool)))
//	hs, err := grpchealth.New(health,
//		grpchealth.WithService("inventory.v1.InventoryService", "postgres"))
//	if err != nil {
//		log.Fatal(err)
//	}
//	srv := grpc.NewServer()
//	grpc_health_v1.RegisterHealthServer(srv, hs)
//	...
//	hs.Shutdown() // ends the Watch streams, or GracefulStop waits for them
//	srv.GracefulStop()
//
// # Services and statuses
//
// The overall service, "", follows [hexagonal.Health.Ready]: SERVING
// while the app is running and every check passes. A named service
// ([WithService]) follows the checks it is mapped to, and the app's
// phase. [Server.Check] answers SERVING or NOT_SERVING, and the error
// NOT_FOUND for a service it does not know; [Server.Watch] sends the
// status at once and then each change, SERVICE_UNKNOWN for a service it
// does not know; [Server.List] answers every service at once. The
// checks themselves run as the health runs them: concurrently, each
// within its timeout, and at most once per check interval however many
// clients ask.
//
// # Compared with grpc-go's health server
//
// google.golang.org/grpc/health's server is told each status by the
// program (SetServingStatus). This one asks the health's checks, so
// there is nothing to keep in step: a failing database check turns the
// services that need it NOT_SERVING and back. Watch streams are
// re-evaluated every [WithWatchInterval] instead of pushed to, in the
// goroutine gRPC serves the stream in: no goroutine of its own.
//
// # Telemetry
//
// None of its own. The checks' status and transitions are the health's
// metrics (package hexagonal); the RPCs are traced and measured by
// otelgrpc's stats handler when the gRPC server has one.
package grpchealth
