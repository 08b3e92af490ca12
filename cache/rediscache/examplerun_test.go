package rediscache_test

import (
	"context"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelpatterns/patterns/internal/testenv"
)

// TestExample runs the package example against the Redis at
// PATTERNS_REDIS_ADDR and checks that it prints what its comment says.
// (An example with an Output line would fail without Redis, so the
// example has none, and this test runs it instead.)
func TestExample(t *testing.T) {
	testenv.RedisAddr(t) // skips the test without Redis
	want := `A: Ada (database loads: 1)
B: Ada (database loads: 1)
B: Ada Lovelace, after A's Set
`
	assert.Equal(t, want, stdout(t, Example))
	src, err := os.ReadFile("example_test.go")
	require.NoError(t, err)
	doc := strings.ReplaceAll(want, "\n", "\n//\t")
	assert.Contains(t, string(src), "//\t"+strings.TrimSuffix(doc, "//\t"), "the output shown in Example's doc comment")
}

// stdout returns what f prints on os.Stdout.
func stdout(t *testing.T, f func()) string {
	r, w, err := os.Pipe()
	require.NoError(t, err)
	saved := os.Stdout
	os.Stdout = w
	done := make(chan string)
	go func() {
		b, _ := io.ReadAll(r)
		done <- string(b)
	}()
	defer func() { os.Stdout = saved }()
	f()
	os.Stdout = saved
	require.NoError(t, w.Close())
	return <-done
}

// TestExampleIgnoresAnotherRun runs Example while another run of it
// (another go test of this package against the same Redis, as on a CI
// machine or a developer's shared server) writes its users: Example must
// print what it documents all the same, so it must keep its keys and
// channel apart from any other run's. The other run is played by a
// goroutine writing user 42 under the prefix the Example used to share
// with every run.
func TestExampleIgnoresAnotherRun(t *testing.T) {
	addr := testenv.RedisAddr(t)
	client := newClient(t, addr)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			_ = client.Set(ctx, "example-users:42", `{"ID":"42","Name":"Grace"}`, time.Minute).Err()
		}
	}()
	out := stdout(t, Example)
	cancel()
	<-done
	_ = client.Del(context.Background(), "example-users:42").Err()
	assert.Equal(t, "A: Ada (database loads: 1)\nB: Ada (database loads: 1)\nB: Ada Lovelace, after A's Set\n", out)
}
