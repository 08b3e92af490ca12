package rediscache_test

import (
	"testing"

	"github.com/otelpatterns/patterns/internal/testenv"
)

// TestExample runs Example against the Redis at PATTERNS_REDIS_ADDR and
// checks that it prints what the comment at its end says: an example that
// needs a backend carries no Output, so go test would only compile it.
func TestExample(t *testing.T) {
	testenv.RedisAddr(t) // skips (or fails) without PATTERNS_REDIS_ADDR
	testenv.CheckExample(t, "example_test.go", "Example", Example)
}
