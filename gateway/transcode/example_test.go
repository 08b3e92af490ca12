package transcode_test

import (
	"fmt"
	"log"
	"net/http"

	"github.com/otelpatterns/patterns/gateway"
	"github.com/otelpatterns/patterns/gateway/auth"
	"github.com/otelpatterns/patterns/gateway/transcode"
	_ "github.com/otelpatterns/patterns/internal/inventorypb" // registers inventory.v1.InventoryService
)

// A gateway that serves the inventory gRPC service to browsers and HTTP
// tools, behind API-key auth, with a breaker per target.
func ExampleNew() {
	authn, err := auth.New(auth.WithAPIKeys(auth.APIKey{Name: "web", Secret: "a-key-of-at-least-16-chars"}))
	if err != nil {
		log.Fatal(err)
	}
	defer authn.Close()
	tr, err := transcode.New("inventory", transcode.WithService("inventory.v1.InventoryService"))
	if err != nil {
		log.Fatal(err)
	}
	g, err := gateway.New(
		gateway.WithUpstreams(gateway.Upstream{
			Name:    "inventory",
			Targets: []gateway.Target{{URL: "http://127.0.0.1:9090"}},
			H2C:     true,
			Breaker: &gateway.Breaker{},
		}),
		gateway.WithRoutes(tr.Routes(gateway.Route{
			Middleware: []gateway.Middleware{authn.Middleware()},
		})...),
	)
	if err != nil {
		log.Fatal(err)
	}
	defer g.Close()
	for _, p := range tr.Patterns() {
		fmt.Println(p)
	}
	_ = http.Handler(g) // serve it: http.ListenAndServe(":8080", g)
	// Output:
	// /inventory.v1.InventoryService/
	// /v1/items/
}

// An upstream whose gRPC server registers gzip (grpc-go: a blank import
// of google.golang.org/grpc/encoding/gzip) can take a client's gzip
// messages as they came, rather than inflated by the gateway.
func ExampleWithUpstreamGzip() {
	tr, err := transcode.New("inventory",
		transcode.WithService("inventory.v1.InventoryService"),
		transcode.WithUpstreamGzip())
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(len(tr.Patterns()))
	// Output: 2
}
