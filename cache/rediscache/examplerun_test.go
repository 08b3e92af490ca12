package rediscache_test

import (
	"context"
	"testing"
	"time"

	"github.com/otelpatterns/patterns/internal/testenv"
)

// TestExample runs Example against the Redis at PATTERNS_REDIS_ADDR and
// checks that it prints what the comment at its end says: an example that
// needs a backend carries no Output, so go test would only compile it.
func TestExample(t *testing.T) {
	testenv.RedisAddr(t) // skips (or fails) without PATTERNS_REDIS_ADDR
	testenv.CheckExample(t, "example_test.go", "Example", Example)
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
	defer func() {
		cancel()
		<-done
		_ = client.Del(context.Background(), "example-users:42").Err()
	}()
	testenv.CheckExample(t, "example_test.go", "Example", Example)
}
