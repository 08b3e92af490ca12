package grpchealth_test

import (
	"context"
	"io"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/test/bufconn"

	"github.com/otelpatterns/patterns/hexagonal"
	"github.com/otelpatterns/patterns/hexagonal/grpchealth"
)

// A Watch stream waiting for a check that hangs (with a long timeout of
// its own) still ends at Shutdown, so that GracefulStop does not wait
// for the check's timeout.
func TestShutdownEndsWatchStuckInCheck(t *testing.T) {
	entered := make(chan struct{}, 1)
	release := make(chan struct{})
	h, err := hexagonal.NewHealth(hexagonal.WithCheck(hexagonal.Check{
		Name:    "slow",
		Kind:    hexagonal.Readiness,
		Timeout: time.Hour,
		Func: func(context.Context) error {
			select {
			case entered <- struct{}{}:
			default:
			}
			<-release // ignores its context, as a stuck driver call does
			return nil
		},
	}))
	require.NoError(t, err)
	srv, err := grpchealth.New(h)
	require.NoError(t, err)

	lis := bufconn.Listen(1 << 16)
	g := grpc.NewServer()
	healthpb.RegisterHealthServer(g, srv)
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		_ = g.Serve(lis)
	}()
	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() {
		close(release)
		_ = conn.Close()
		g.Stop()
		<-stopped
	})

	// A guard against a hang of the test itself, far above anything the
	// test needs: without the fix, Recv waits for the check's hour.
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	w, err := healthpb.NewHealthClient(conn).Watch(ctx, &healthpb.HealthCheckRequest{})
	require.NoError(t, err)
	<-entered // the Watch handler waits for the check

	srv.Shutdown()
	resp, err := w.Recv()
	require.NoError(t, err)
	assert.Equal(t, healthpb.HealthCheckResponse_NOT_SERVING, resp.GetStatus())
	_, err = w.Recv()
	assert.ErrorIs(t, err, io.EOF, "the stream ends cleanly")
	g.GracefulStop()
	<-stopped
}
