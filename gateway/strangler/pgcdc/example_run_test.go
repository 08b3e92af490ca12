package pgcdc_test

import (
	"bytes"
	"io"
	"os"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/otelpatterns/patterns/internal/testenv"
)

// TestExample runs the package's Example, which go test cannot check
// since it needs PostgreSQL, and checks what it prints against the
// output its doc comment shows.
func TestExample(t *testing.T) {
	requireLogical(t, testenv.PostgresURL(t))
	r, w, err := os.Pipe()
	require.NoError(t, err)
	stdout := os.Stdout
	os.Stdout = w
	out := make(chan []byte)
	go func() {
		b, _ := io.ReadAll(r)
		out <- b
	}()
	func() {
		defer func() { os.Stdout = stdout }()
		Example()
	}()
	require.NoError(t, w.Close())
	got := <-out
	want := "insert id=1 status=placed\nupdate id=1 status=paid\ndelete id=1 status=<nil>\n"
	require.Equal(t, want, string(bytes.TrimLeft(got, "\n")))
}
