package grpchealth_test

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	_ "google.golang.org/grpc/health" // client-side health checking
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

// grpc-go's client-side health checking watches the service through
// Watch: when the check behind it fails, the client stops sending calls
// to the server (they fail with Unavailable without reaching it); when it
// passes again, calls go through again.
func TestClientSideHealthChecking(t *testing.T) {
	f := newFixture(t)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := grpc.NewServer()
	healthpb.RegisterHealthServer(srv, f.srv)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(lis)
	}()
	t.Cleanup(func() {
		srv.Stop()
		<-done
	})
	conn, err := grpc.NewClient("passthrough:///"+lis.Addr().String(),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultServiceConfig(`{
			"loadBalancingConfig": [{"round_robin": {}}],
			"healthCheckConfig": {"serviceName": "inventory.v1.InventoryService"}
		}`))
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	client := healthpb.NewHealthClient(conn)

	call := func() codes.Code {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		_, err := client.Check(ctx, &healthpb.HealthCheckRequest{Service: "cache"})
		return status.Code(err)
	}
	// The client's view follows the Watch stream asynchronously: wait
	// for each state rather than assume when it arrives.
	waitFor := func(want codes.Code) {
		t.Helper()
		for call() != want {
			select {
			case <-t.Context().Done():
				t.Fatalf("calls never ended with %v", want)
			case <-time.After(time.Millisecond):
			}
		}
	}
	waitFor(codes.OK)
	f.db.Store(true) // inventory.v1.InventoryService's check fails
	waitFor(codes.Unavailable)
	f.db.Store(false)
	waitFor(codes.OK)
}
