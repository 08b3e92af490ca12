package pgstore_test

import (
	"io"
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelpatterns/patterns/internal/testenv"
)

// TestExample runs the package's Example against PostgreSQL and checks
// what it prints. The example has no Output comment, since it prints
// nothing without a database, so go test would only compile it.
func TestExample(t *testing.T) {
	testenv.PostgresURL(t) // skips (or fails) without PATTERNS_POSTGRES_URL
	r, w, err := os.Pipe()
	require.NoError(t, err)
	stdout := os.Stdout
	os.Stdout = w
	defer func() { os.Stdout = stdout }()
	done := make(chan []byte)
	go func() {
		out, _ := io.ReadAll(r)
		done <- out
	}()
	Example()
	os.Stdout = stdout
	require.NoError(t, w.Close())
	assert.Equal(t, `balance 120 at version 2
1 account-7 1 account.deposited.v1 {"Amount":100}
2 account-7 2 account.deposited.v1 {"Amount":20}
`, string(<-done))
}
