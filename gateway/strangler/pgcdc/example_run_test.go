package pgcdc_test

import (
	"testing"

	"github.com/otelpatterns/patterns/internal/testenv"
)

// TestExample runs Example against PostgreSQL and checks that it prints
// what the comment at its end says: an example that needs a backend
// carries no Output, so go test would only compile it.
func TestExample(t *testing.T) {
	// Skips (or fails) without PATTERNS_POSTGRES_URL or wal_level=logical.
	requireLogical(t, testenv.PostgresURL(t))
	testenv.CheckExample(t, "example_test.go", "Example", Example)
}
