package grpchealth_test

import (
	"context"
	"errors"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	"github.com/otelpatterns/patterns/hexagonal"
	"github.com/otelpatterns/patterns/hexagonal/grpchealth"
)

// fixture is a health with two readiness checks whose results the test
// sets, served by a grpchealth.Server on a bufconn gRPC server, and
// grpc's own health client.
type fixture struct {
	db, cache atomic.Bool // true: failing
	srv       *grpchealth.Server
	grpc      *grpc.Server
	client    healthpb.HealthClient
	stopped   chan struct{}
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{stopped: make(chan struct{})}
	fail := func(b *atomic.Bool, name string) func(context.Context) error {
		return func(context.Context) error {
			if b.Load() {
				return errors.New(name + " is down")
			}
			return nil
		}
	}
	h, err := hexagonal.NewHealth(
		hexagonal.WithCheckInterval(0), // no reuse: each evaluation runs the checks
		hexagonal.WithReadinessCheck("postgres", fail(&f.db, "postgres")),
		hexagonal.WithReadinessCheck("redis", fail(&f.cache, "redis")),
	)
	require.NoError(t, err)
	f.srv, err = grpchealth.New(h,
		grpchealth.WithService("inventory.v1.InventoryService", "postgres"),
		grpchealth.WithService("cache", "redis"),
		grpchealth.WithService("typo", "postgress"),
		grpchealth.WithWatchInterval(time.Millisecond),
	)
	require.NoError(t, err)

	lis := bufconn.Listen(1 << 16)
	f.grpc = grpc.NewServer()
	healthpb.RegisterHealthServer(f.grpc, f.srv)
	go func() {
		defer close(f.stopped)
		_ = f.grpc.Serve(lis)
	}()
	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	f.client = healthpb.NewHealthClient(conn)
	t.Cleanup(func() {
		_ = conn.Close()
		f.grpc.Stop()
		<-f.stopped
	})
	return f
}

func (f *fixture) check(t *testing.T, service string) healthpb.HealthCheckResponse_ServingStatus {
	t.Helper()
	resp, err := f.client.Check(t.Context(), &healthpb.HealthCheckRequest{Service: service})
	require.NoError(t, err)
	return resp.GetStatus()
}

func recvStatus(t *testing.T, w healthpb.Health_WatchClient) healthpb.HealthCheckResponse_ServingStatus {
	t.Helper()
	resp, err := w.Recv()
	require.NoError(t, err)
	return resp.GetStatus()
}

func TestCheck(t *testing.T) {
	f := newFixture(t)
	assert.Equal(t, healthpb.HealthCheckResponse_SERVING, f.check(t, ""))
	assert.Equal(t, healthpb.HealthCheckResponse_SERVING, f.check(t, "inventory.v1.InventoryService"))
	assert.Equal(t, healthpb.HealthCheckResponse_SERVING, f.check(t, "cache"))
	// A service mapped to a check the health does not have is never up.
	assert.Equal(t, healthpb.HealthCheckResponse_NOT_SERVING, f.check(t, "typo"))

	_, err := f.client.Check(t.Context(), &healthpb.HealthCheckRequest{Service: "nope"})
	assert.Equal(t, codes.NotFound, status.Code(err), "an unknown service is NOT_FOUND, as the protocol says")
}

// A failing readiness check flips the overall service and the services
// mapped to it, and only those, in Check and in Watch.
func TestFailingCheckFlipsCheckAndWatch(t *testing.T) {
	f := newFixture(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	watchDB, err := f.client.Watch(ctx, &healthpb.HealthCheckRequest{Service: "inventory.v1.InventoryService"})
	require.NoError(t, err)
	watchAll, err := f.client.Watch(ctx, &healthpb.HealthCheckRequest{})
	require.NoError(t, err)
	assert.Equal(t, healthpb.HealthCheckResponse_SERVING, recvStatus(t, watchDB), "the initial status comes first")
	assert.Equal(t, healthpb.HealthCheckResponse_SERVING, recvStatus(t, watchAll))

	f.db.Store(true)
	assert.Equal(t, healthpb.HealthCheckResponse_NOT_SERVING, f.check(t, "inventory.v1.InventoryService"))
	assert.Equal(t, healthpb.HealthCheckResponse_NOT_SERVING, f.check(t, ""))
	assert.Equal(t, healthpb.HealthCheckResponse_SERVING, f.check(t, "cache"), "a service of other checks stays up")
	assert.Equal(t, healthpb.HealthCheckResponse_NOT_SERVING, recvStatus(t, watchDB))
	assert.Equal(t, healthpb.HealthCheckResponse_NOT_SERVING, recvStatus(t, watchAll))

	f.db.Store(false)
	assert.Equal(t, healthpb.HealthCheckResponse_SERVING, recvStatus(t, watchDB))
	assert.Equal(t, healthpb.HealthCheckResponse_SERVING, recvStatus(t, watchAll))
	assert.Equal(t, healthpb.HealthCheckResponse_SERVING, f.check(t, "inventory.v1.InventoryService"))
}

// Watch sends a change once, not once per evaluation.
func TestWatchSendsChangesOnly(t *testing.T) {
	f := newFixture(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	w, err := f.client.Watch(ctx, &healthpb.HealthCheckRequest{Service: "cache"})
	require.NoError(t, err)
	assert.Equal(t, healthpb.HealthCheckResponse_SERVING, recvStatus(t, w))
	// Flip a check of another service back and forth, then this one's:
	// the next message is this one's change.
	f.db.Store(true)
	assert.Equal(t, healthpb.HealthCheckResponse_NOT_SERVING, f.check(t, "inventory.v1.InventoryService"))
	f.db.Store(false)
	f.cache.Store(true)
	assert.Equal(t, healthpb.HealthCheckResponse_NOT_SERVING, recvStatus(t, w))
}

func TestWatchUnknownService(t *testing.T) {
	f := newFixture(t)
	ctx, cancel := context.WithCancel(t.Context())
	w, err := f.client.Watch(ctx, &healthpb.HealthCheckRequest{Service: "nope"})
	require.NoError(t, err)
	assert.Equal(t, healthpb.HealthCheckResponse_SERVICE_UNKNOWN, recvStatus(t, w))
	cancel()
	_, err = w.Recv()
	assert.Equal(t, codes.Canceled, status.Code(err), "the stream stays open until the client goes")
}

func TestList(t *testing.T) {
	f := newFixture(t)
	f.cache.Store(true)
	resp, err := f.client.List(t.Context(), &healthpb.HealthListRequest{})
	require.NoError(t, err)
	got := map[string]healthpb.HealthCheckResponse_ServingStatus{}
	for k, v := range resp.GetStatuses() {
		got[k] = v.GetStatus()
	}
	assert.Equal(t, map[string]healthpb.HealthCheckResponse_ServingStatus{
		"":                              healthpb.HealthCheckResponse_NOT_SERVING,
		"inventory.v1.InventoryService": healthpb.HealthCheckResponse_SERVING,
		"cache":                         healthpb.HealthCheckResponse_NOT_SERVING,
		"typo":                          healthpb.HealthCheckResponse_NOT_SERVING,
	}, got)
}

// Shutdown sends a last NOT_SERVING and ends the Watch streams, so that
// GracefulStop does not wait for them; Check answers NOT_SERVING after.
func TestShutdownEndsWatch(t *testing.T) {
	f := newFixture(t)
	w, err := f.client.Watch(t.Context(), &healthpb.HealthCheckRequest{Service: "cache"})
	require.NoError(t, err)
	assert.Equal(t, healthpb.HealthCheckResponse_SERVING, recvStatus(t, w))

	f.srv.Shutdown()
	f.srv.Shutdown() // idempotent
	assert.Equal(t, healthpb.HealthCheckResponse_NOT_SERVING, recvStatus(t, w))
	_, err = w.Recv()
	assert.ErrorIs(t, err, io.EOF, "the stream ends cleanly")
	assert.Equal(t, healthpb.HealthCheckResponse_NOT_SERVING, f.check(t, "cache"))
	assert.Equal(t, healthpb.HealthCheckResponse_NOT_SERVING, f.check(t, ""))

	// With every stream ended, GracefulStop returns.
	f.grpc.GracefulStop()
	<-f.stopped
}

// Stopping the gRPC server ends a Watch stream: the handler returns and
// the client sees an error.
func TestServerStopEndsWatch(t *testing.T) {
	f := newFixture(t)
	w, err := f.client.Watch(t.Context(), &healthpb.HealthCheckRequest{})
	require.NoError(t, err)
	assert.Equal(t, healthpb.HealthCheckResponse_SERVING, recvStatus(t, w))
	f.grpc.Stop()
	<-f.stopped
	_, err = w.Recv()
	assert.Error(t, err)
}

// The app's phase counts: an app that has not started yet, or is
// shutting down, is not serving any service.
func TestAppPhase(t *testing.T) {
	h, err := hexagonal.NewHealth(hexagonal.WithReadinessCheck("db", func(context.Context) error { return nil }))
	require.NoError(t, err)
	started := make(chan struct{})
	ctx, cancel := context.WithCancel(t.Context())
	app, err := hexagonal.New(hexagonal.WithHealth(h), hexagonal.WithComponent(hexagonal.Component{
		Name: "gate",
		Start: func(context.Context) error {
			<-started
			return nil
		},
	}))
	require.NoError(t, err)
	srv, err := grpchealth.New(h, grpchealth.WithService("svc", "db"))
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- app.Run(ctx) }()
	// Run has not returned from the component's Start: the app starts.
	// (Run sets the phase before starting components; poll the status
	// rather than assume when.)
	for srv.Status(t.Context(), "svc") != healthpb.HealthCheckResponse_NOT_SERVING {
		time.Sleep(time.Millisecond)
	}
	assert.Equal(t, healthpb.HealthCheckResponse_NOT_SERVING, srv.Status(t.Context(), ""))
	close(started)
	for srv.Status(t.Context(), "svc") != healthpb.HealthCheckResponse_SERVING {
		time.Sleep(time.Millisecond)
	}
	cancel()
	require.NoError(t, <-done)
	assert.Equal(t, healthpb.HealthCheckResponse_NOT_SERVING, srv.Status(t.Context(), "svc"))
}
