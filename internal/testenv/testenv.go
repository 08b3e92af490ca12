// Package testenv gives the module's integration tests the addresses of the
// real backends they run against: PostgreSQL, Redis and NATS JetStream.
//
// Each address comes from an environment variable. When the variable is not
// set the test is skipped with a message naming the variable, so that
// `go test ./...` passes on a machine without the backends; when
// PATTERNS_REQUIRE_INTEGRATION=1 (as in CI) a missing backend fails the test
// instead, so that integration tests cannot be skipped by accident.
//
// For PostgreSQL it also gives a pool ([PostgresPool]) and schemas private
// to a test and dropped when it ends ([Schema]), so that tests and packages
// running in parallel never see each other's tables. For NATS, a test that
// must kill and restart its server starts one of its own
// ([StartNATSServer]) rather than use the shared one.
package testenv

import (
	"os"
	"testing"
)

// The environment variables read by this package.
const (
	// RedisAddrVar holds the host:port of a Redis server, such as
	// 127.0.0.1:6379.
	RedisAddrVar = "PATTERNS_REDIS_ADDR"
	// PostgresURLVar holds a PostgreSQL connection URL, such as
	// postgres://postgres@127.0.0.1:5432/test?sslmode=disable.
	PostgresURLVar = "PATTERNS_POSTGRES_URL"
	// NATSURLVar holds the URL of a NATS server with JetStream enabled, such
	// as nats://127.0.0.1:4222.
	NATSURLVar = "PATTERNS_NATS_URL"
	// RequireVar, set to 1, turns a missing backend into a test failure.
	RequireVar = "PATTERNS_REQUIRE_INTEGRATION"
)

// RedisAddr returns the address of the Redis server to test against, from
// PATTERNS_REDIS_ADDR, or skips (or fails, see [Required]) the test when it
// is not set.
func RedisAddr(t testing.TB) string {
	t.Helper()
	return lookup(t, RedisAddrVar, "Redis", "127.0.0.1:6379")
}

// PostgresURL returns the URL of the PostgreSQL database to test against,
// from PATTERNS_POSTGRES_URL, or skips (or fails, see [Required]) the test
// when it is not set.
func PostgresURL(t testing.TB) string {
	t.Helper()
	return lookup(t, PostgresURLVar, "PostgreSQL", "postgres://postgres@127.0.0.1:5432/test?sslmode=disable")
}

// NATSURL returns the URL of the NATS JetStream server to test against,
// from PATTERNS_NATS_URL, or skips (or fails, see [Required]) the test when
// it is not set.
func NATSURL(t testing.TB) string {
	t.Helper()
	return lookup(t, NATSURLVar, "NATS JetStream", "nats://127.0.0.1:4222")
}

// Required reports whether PATTERNS_REQUIRE_INTEGRATION is 1, that is
// whether a missing backend fails a test rather than skipping it.
func Required() bool {
	return os.Getenv(RequireVar) == "1"
}

func lookup(t testing.TB, name, backend, example string) string {
	t.Helper()
	if v := os.Getenv(name); v != "" {
		return v
	}
	msg := missing(name, backend, example)
	if Required() {
		t.Fatal(msg + " (" + RequireVar + "=1 makes this a failure)")
		return ""
	}
	t.Skip(msg)
	return ""
}

func missing(name, backend, example string) string {
	return "this test needs " + backend + ": set " + name + " (for example " + name + "=" + example + ")"
}
