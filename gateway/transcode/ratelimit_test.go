package transcode_test

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelpatterns/patterns/gateway"
	"github.com/otelpatterns/patterns/gateway/ratelimit"
	"github.com/otelpatterns/patterns/gateway/transcode"
	"github.com/otelpatterns/patterns/internal/inventorypb"
)

// The gateway's rate limit runs before the transcoder: past the limit,
// REST gets 429 and a Connect client RESOURCE_EXHAUSTED or UNAVAILABLE
// (as Connect maps 429), and the call does not reach the gRPC server.
func TestRateLimitBeforeUpstream(t *testing.T) {
	inv := newInventory()
	addr := startGRPC(t, inv, nil)
	limiter, err := ratelimit.New(ratelimit.Limit{
		Name: "per-client", Requests: 2, Per: time.Hour,
		Key: ratelimit.ByClientIP(), Scope: ratelimit.AcrossRoutes,
	})
	require.NoError(t, err)
	tr, err := transcode.New("inventory", transcode.WithService("inventory.v1.InventoryService"))
	require.NoError(t, err)
	g, err := gateway.New(
		gateway.WithUpstreams(gateway.Upstream{Name: "inventory", Targets: []gateway.Target{{URL: "http://" + addr}}, H2C: true}),
		gateway.WithRoutes(tr.Routes(gateway.Route{Middleware: []gateway.Middleware{limiter.Middleware}})...),
	)
	require.NoError(t, err)
	srv := httptest.NewServer(g)
	t.Cleanup(func() {
		srv.Close()
		_ = g.Close()
	})

	var statuses []int
	for range 3 {
		resp, _ := do(t, "GET", srv.URL+"/v1/items/sku-1", "", nil)
		statuses = append(statuses, resp.StatusCode)
	}
	assert.Equal(t, []int{200, 200, http.StatusTooManyRequests}, statuses)

	get := connect.NewClient[inventorypb.GetItemRequest, inventorypb.Item](http.DefaultClient,
		srv.URL+"/inventory.v1.InventoryService/GetItem")
	_, err = get.CallUnary(t.Context(), connect.NewRequest(&inventorypb.GetItemRequest{Sku: "sku-1"}))
	assert.Contains(t, []connect.Code{connect.CodeUnavailable, connect.CodeResourceExhausted}, connect.CodeOf(err), "%v", err)
	assert.Equal(t, int64(2), inv.calls.Load(), "only the calls within the limit reached the server")
}
