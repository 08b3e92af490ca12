package pgcheckpoint_test

import (
	"bytes"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelpatterns/patterns/internal/testenv"
)

// TestExample runs Example against PostgreSQL and checks that it prints
// what its comment says: an example that needs a backend carries no
// Output, so go test would only compile it.
func TestExample(t *testing.T) {
	t.Setenv("PATTERNS_POSTGRES_URL", testenv.PostgresURL(t))
	src, err := os.ReadFile("example_postgres_test.go")
	require.NoError(t, err)
	_, after, ok := strings.Cut(string(src), "\t// With PostgreSQL, it prints:\n\t//\n")
	require.True(t, ok, "Example's comment of what it prints")
	block, _, _ := strings.Cut(after, "\n}")
	var want strings.Builder
	for line := range strings.SplitSeq(block, "\n") {
		want.WriteString(strings.TrimPrefix(strings.TrimSpace(line), "// ") + "\n")
	}

	r, w, err := os.Pipe()
	require.NoError(t, err)
	stdout := os.Stdout
	os.Stdout = w
	var got bytes.Buffer
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		_, _ = io.Copy(&got, r)
	}()
	func() {
		defer func() { os.Stdout = stdout }()
		Example()
	}()
	require.NoError(t, w.Close())
	<-copied
	assert.Equal(t, want.String(), got.String())
}
