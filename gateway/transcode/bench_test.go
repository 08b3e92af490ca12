package transcode_test

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	metricnoop "go.opentelemetry.io/otel/metric/noop"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/otelpatterns/patterns/gateway"
	"github.com/otelpatterns/patterns/gateway/transcode"
	"github.com/otelpatterns/patterns/internal/inventorypb"
	"github.com/otelpatterns/patterns/internal/testenv"
)

// BenchmarkTranscode measures one GetItem call of the inventory service
// (the gRPC server of the tests, on loopback TCP) made four ways, one
// call at a time, each row's client keeping its connection alive:
//
//   - grpc-direct: a grpc-go client calling the server itself; the
//     floor, with no gateway.
//   - grpc-gateway: the same gRPC call sent to the gateway (HTTP/2
//     without TLS), whose transcoder passes it on unchanged to the server
//     (h2c): what the gateway and the extra hop add to a gRPC call.
//   - rest: GET /v1/items/sku-1 over HTTP/1.1 with net/http, transcoded
//     from the method's google.api.http rule, answered in JSON.
//   - connect: a Connect unary POST of JSON to
//     /inventory.v1.InventoryService/GetItem over HTTP/1.1 with net/http.
//
// The gateway has the transcoder's routes only (no middleware) and
// no-op telemetry, so the figures are the proxying and the transcoding.
// Client, gateway and server run in the benchmark's process: ns/op is
// the round trip's latency, and allocs/op, B/op and cpu-ns/op (the CPU
// time of the whole process per call, which a loaded machine hides less
// than ns/op) count the client's, the gateway's and the server's work
// together. Run it with
//
//	go test -run '^$' -bench Transcode -benchtime 2s -count 5 ./gateway/transcode
func BenchmarkTranscode(b *testing.B) {
	addr := serveInventory(b)
	gw := serveGateway(b, addr)

	grpcClient := func(b *testing.B, target string) inventorypb.InventoryServiceClient {
		cc, err := grpc.NewClient(target, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = cc.Close() })
		return inventorypb.NewInventoryServiceClient(cc)
	}
	direct := grpcClient(b, addr)
	viaGateway := grpcClient(b, gw.Listener.Addr().String())
	// One HTTP/1.1 client for the REST and Connect rows: calls one at a
	// time keep one connection.
	transport := &http.Transport{}
	b.Cleanup(transport.CloseIdleConnections)
	httpClient := &http.Client{Transport: transport}

	callGRPC := func(c inventorypb.InventoryServiceClient) func(b *testing.B) {
		return func(b *testing.B) {
			item, err := c.GetItem(b.Context(), &inventorypb.GetItemRequest{Sku: "sku-1"})
			if err != nil || item.GetName() != "Item sku-1" {
				b.Fatalf("GetItem: %v, %v", item, err)
			}
		}
	}
	callHTTP := func(method, path, body string) func(b *testing.B) {
		return func(b *testing.B) {
			req, err := http.NewRequestWithContext(b.Context(), method, gw.URL+path, strings.NewReader(body))
			if err != nil {
				b.Fatal(err)
			}
			if method == http.MethodPost {
				req.Header.Set("Content-Type", "application/json")
				// Connect's unary protocol, rather than REST.
				req.Header.Set("Connect-Protocol-Version", "1")
			}
			resp, err := httpClient.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			// Read to the end, so that the connection is kept.
			got, err := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			if err != nil || resp.StatusCode != http.StatusOK || !strings.Contains(string(got), `"name":"Item sku-1"`) {
				b.Fatalf("%s %s: %d %q, %v", method, path, resp.StatusCode, got, err)
			}
		}
	}
	for _, row := range []struct {
		name string
		call func(b *testing.B)
	}{
		{"grpc-direct", callGRPC(direct)},
		{"grpc-gateway", callGRPC(viaGateway)},
		{"rest", callHTTP(http.MethodGet, "/v1/items/sku-1", "")},
		{"connect", callHTTP(http.MethodPost, "/inventory.v1.InventoryService/GetItem", `{"sku":"sku-1"}`)},
	} {
		b.Run(row.name, func(b *testing.B) {
			b.ReportAllocs()
			row.call(b) // connects, before b.Loop starts the timer
			start, ok := testenv.ProcessCPU()
			for b.Loop() {
				row.call(b)
			}
			if end, _ := testenv.ProcessCPU(); ok {
				b.ReportMetric(float64(end-start)/float64(b.N), "cpu-ns/op")
			}
		})
	}
}

// serveInventory serves the inventory service of the tests on a loopback
// port until the benchmark ends, and returns its address. Unlike
// startGRPC, it has no stats handler: the benchmark measures the
// transcoding, not otelgrpc.
func serveInventory(b *testing.B) string {
	b.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := grpc.NewServer()
	inventorypb.RegisterInventoryServiceServer(srv, newInventory())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(lis)
	}()
	b.Cleanup(func() {
		srv.Stop()
		<-done
	})
	return lis.Addr().String()
}

// serveGateway serves, on a loopback port, over HTTP/1.1 and HTTP/2
// without TLS (for gRPC clients), a gateway whose only routes transcode
// the inventory service of the upstream at addr (h2c), with no-op
// telemetry, until the benchmark ends.
func serveGateway(b *testing.B, addr string) *httptest.Server {
	b.Helper()
	tr, err := transcode.New("inventory", transcode.WithService("inventory.v1.InventoryService"))
	if err != nil {
		b.Fatal(err)
	}
	g, err := gateway.New(
		gateway.WithUpstreams(gateway.Upstream{
			Name: "inventory", Targets: []gateway.Target{{URL: "http://" + addr}}, H2C: true,
		}),
		gateway.WithRoutes(tr.Routes(gateway.Route{})...),
		gateway.WithTracerProvider(tracenoop.NewTracerProvider()),
		gateway.WithMeterProvider(metricnoop.NewMeterProvider()),
	)
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(g)
	srv.Config.Protocols = new(http.Protocols)
	srv.Config.Protocols.SetHTTP1(true)
	srv.Config.Protocols.SetUnencryptedHTTP2(true)
	srv.Start()
	b.Cleanup(func() {
		srv.Close()
		_ = g.Close()
	})
	return srv
}
