package transcode_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/otelpatterns/patterns/gateway"
)

// A gRPC call is retried when it carries an Idempotency-Key (doc.go),
// and a trailers-only UNAVAILABLE is gRPC's 503: it goes to another
// target. Retry.Status saw HTTP 200 and never retried it. Without the
// key, the call is sent once.
func TestIdempotentCallRetriesGRPCUnavailable(t *testing.T) {
	bad := startGRPC(t, newInventory(), nil, grpc.UnaryInterceptor(
		func(context.Context, any, *grpc.UnaryServerInfo, grpc.UnaryHandler) (any, error) {
			return nil, status.Error(codes.Unavailable, "draining")
		}))
	good := startGRPC(t, newInventory(), nil)
	gw := transcodingGateway(t, bad, gateway.Route{}, func(u *gateway.Upstream) {
		u.Targets = []gateway.Target{{URL: "http://" + bad}, {URL: "http://" + good}}
		u.Retry = &gateway.Retry{Attempts: 2}
	})
	var statuses []int
	for i := range 6 {
		resp, _ := rawDo(t, "GET", gw.URL+"/v1/items/sku-1", nil, http.Header{"Idempotency-Key": {"key-" + string(rune('a'+i))}})
		statuses = append(statuses, resp.StatusCode)
	}
	assert.Equal(t, []int{200, 200, 200, 200, 200, 200}, statuses, "with an Idempotency-Key")

	statuses = statuses[:0]
	for range 4 {
		resp, _ := rawDo(t, "GET", gw.URL+"/v1/items/sku-1", nil, nil)
		statuses = append(statuses, resp.StatusCode)
	}
	assert.ElementsMatch(t, []int{200, 200, 503, 503}, statuses, "without one, round robin over both")
}
