package orders_test

import (
	"testing"

	"github.com/otelpatterns/patterns/hexagonal/archtest"
)

// layer is the archtest pattern of the order service's layer rel.
func layer(rel string) string { return "./examples/ecommerce/internal/shop/orders/" + rel }

// TestDependencies checks the order service's dependency rule, inner to
// outer: the domain (the standard library only, and no I/O), the ports
// (the domain), the application (which may use the library's patterns:
// cqrs, saga, retry, and hexagonal to trace its layer, but no driver and
// no HTTP), then the adapters.
func TestDependencies(t *testing.T) {
	noIO := []string{"net/http/...", "database/sql/...", "github.com/jackc/...", "github.com/nats-io/...",
		"github.com/redis/...", "github.com/otelpatterns/patterns/eventsource/pgstore/...",
		"github.com/otelpatterns/patterns/cqrs/natsbus/..."}
	archtest.CheckDependencies(t, archtest.Rules{
		Dir:   ".",
		Tests: true,
		Layers: []archtest.Layer{
			{Name: "domain", Packages: []string{layer("domain/...")}, Allow: []string{"std"}, Deny: noIO},
			{Name: "ports", Packages: []string{layer("ports/...")}, Allow: []string{"std"}, Deny: noIO},
			{Name: "application", Packages: []string{layer("app/...")}, Allow: []string{
				"std",
				"github.com/otelpatterns/patterns/hexagonal",
				"github.com/otelpatterns/patterns/cqrs",
				"github.com/otelpatterns/patterns/saga",
				"github.com/otelpatterns/patterns/retry",
				"go.uber.org/goleak", // its tests' leak check
			}, Deny: noIO},
			{Name: "adapters", Packages: []string{layer("adapters/...")}},
		},
	})
}
