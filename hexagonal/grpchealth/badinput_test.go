package grpchealth_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/otelpatterns/patterns/hexagonal"
	"github.com/otelpatterns/patterns/hexagonal/grpchealth"
)

func TestNewBadInput(t *testing.T) {
	h, err := hexagonal.NewHealth()
	require.NoError(t, err)
	_, err = grpchealth.New(nil)
	assert.EqualError(t, err, "grpchealth: health is nil")

	_, err = grpchealth.New(h,
		nil,
		grpchealth.WithService(""),
		grpchealth.WithService("a"),
		grpchealth.WithService("b", "x", ""),
		grpchealth.WithService("c", "x"),
		grpchealth.WithService("c", "y"),
		grpchealth.WithWatchInterval(0),
	)
	require.Error(t, err)
	for _, want := range []string{
		"opts[0] is nil",
		`WithService(""): the overall service "" follows every check and cannot be mapped`,
		`WithService("a"): no check names`,
		`WithService("b"): check 1 has an empty name`,
		`WithService("c"): the service is already mapped`,
		"WithWatchInterval(0s): must be positive",
	} {
		assert.Contains(t, err.Error(), want)
	}
}

// A Server not made by New answers errors instead of dereferencing nil.
func TestServerNotMadeByNew(t *testing.T) {
	for name, s := range map[string]*grpchealth.Server{"zero": {}, "nil": nil} {
		t.Run(name, func(t *testing.T) {
			_, err := s.Check(context.Background(), &healthpb.HealthCheckRequest{})
			assert.Equal(t, codes.Internal, status.Code(err))
			_, err = s.List(context.Background(), &healthpb.HealthListRequest{})
			assert.Equal(t, codes.Internal, status.Code(err))
			assert.Equal(t, codes.Internal, status.Code(s.Watch(&healthpb.HealthCheckRequest{}, nil)))
			assert.Equal(t, healthpb.HealthCheckResponse_SERVICE_UNKNOWN, s.Status(context.Background(), ""))
			s.Shutdown()
		})
	}
}
