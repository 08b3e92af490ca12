package main

import (
	"testing"

	"github.com/otelpatterns/patterns/hexagonal/archtest"
)

// TestDependencies checks the onion's dependency rule on the example's
// own packages: each layer imports only its own and inner layers, and
// the domain (model, domainsvc) stays free of storage and transport.
func TestDependencies(t *testing.T) {
	// The paths are relative to the module's root ("./" in a pattern is
	// the module's path), the packages loaded relative to this test's.
	const root = "./examples/bank"
	noIO := []string{
		"database/sql", "database/sql/driver", "net", "net/http/...", "os/exec",
		"github.com/jackc/pgx/...", "github.com/lib/pq/...",
		"github.com/redis/go-redis/...", "github.com/nats-io/...",
		"github.com/otelpatterns/patterns/eventsource/pgstore/...",
	}
	archtest.CheckDependencies(t, archtest.Rules{
		Packages: []string{"./..."},
		Layers: []archtest.Layer{
			{Name: "domain model", Packages: []string{root + "/model/..."},
				// The standard library and the aggregate's kit; no
				// telemetry either, which main adds around the calls.
				Allow: []string{"std", "github.com/otelpatterns/patterns/eventsource"},
				Deny:  noIO},
			{Name: "domain service", Packages: []string{root + "/domainsvc/..."},
				Allow: []string{"std"}, Deny: noIO},
			{Name: "application service", Packages: []string{root + "/appsvc/..."},
				Allow: []string{"std"}, Deny: noIO},
			{Name: "infrastructure", Packages: []string{root + "/infra/..."}},
			{Name: "main", Packages: []string{root}},
		},
	})
}
