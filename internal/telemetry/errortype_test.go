package telemetry_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"reflect"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/redis/go-redis/v9"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"

	"github.com/otelpatterns/patterns/circuitbreaker"
	"github.com/otelpatterns/patterns/internal/telemetry"
	"github.com/otelpatterns/patterns/retry"
)

// ExportedErr is an exported error type of a package under internal/,
// which users cannot import: it has no canonical name for them.
type ExportedErr struct{ err error }

func (e *ExportedErr) Error() string { return "exported" }
func (e *ExportedErr) Unwrap() error { return e.err }

// unexportedWrapper stands for the unexported wrappers of this module (such
// as retry's permanent marker) and of others: it is looked through.
type unexportedWrapper struct{ err error }

func (e unexportedWrapper) Error() string { return "wrapped: " + e.err.Error() }
func (e unexportedWrapper) Unwrap() error { return e.err }

type emptyTyped struct{}

func (emptyTyped) Error() string     { return "empty" }
func (emptyTyped) ErrorType() string { return "" }

func TestErrorType(t *testing.T) {
	pgErr := &pgconn.PgError{Code: "42P01", Message: `relation "x" does not exist`}
	wrongType := redisReply(t, "WRONGTYPE Operation against a key holding the wrong kind of value")
	other := semconv.ErrorTypeOther.Value.AsString()
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"ErrorType method", typedErr{}, "pkg.typed"},
		{"ErrorType method, wrapped", fmt.Errorf("op: %w", typedErr{}), "pkg.typed"},
		{"ErrorType method wins over a cause", fmt.Errorf("op: %w", errors.Join(typedErr{}, pgErr)), "pkg.typed"},
		{"empty ErrorType falls through", emptyTyped{}, other},
		{"our sentinel", circuitbreaker.ErrOpen, "circuitbreaker.open"},
		{"our unexported wrapper is looked through", retry.Permanent(circuitbreaker.ErrOpen), "circuitbreaker.open"},
		{"our unexported wrapper of a plain error", retry.Permanent(errors.New("boom")), other},
		{"SQLSTATE", pgErr, "42P01"},
		{"SQLSTATE inside pgx's batch error", fmt.Errorf("append: %w", unexportedWrapper{pgErr}), "42P01"},
		{"Redis prefix", wrongType, "WRONGTYPE"},
		{"Redis prefix, wrapped", fmt.Errorf("get: %w", redisReply(t, "NOSCRIPT No matching script")), "NOSCRIPT"},
		{"redis.Nil is no server reply", redis.Nil, other},
		{"deadline", context.DeadlineExceeded, "context.DeadlineExceeded"},
		{"deadline, wrapped", fmt.Errorf("query: %w", context.DeadlineExceeded), "context.DeadlineExceeded"},
		{"canceled", context.Canceled, "context.Canceled"},
		{"canceled, wrapped twice", fmt.Errorf("a: %w", fmt.Errorf("b: %w", context.Canceled)), "context.Canceled"},
		{"exported type", &url.Error{Op: "Get", URL: "http://x", Err: errors.New("boom")}, "net/url.Error"},
		{"exported type behind fmt and an unexported wrapper", fmt.Errorf("x: %w", unexportedWrapper{&url.Error{Err: errors.New("boom")}}), "net/url.Error"},
		{"the outermost exported type wins", &url.Error{Err: &net.OpError{Err: errors.New("refused")}}, "net/url.Error"},
		{"a type of an internal package is not canonical", &ExportedErr{}, other},
		{"an internal package's wrapper is looked through", &ExportedErr{err: &net.OpError{Err: errors.New("refused")}}, "net.OpError"},
		{"exported standard library type", &net.OpError{Op: "dial", Err: errors.New("refused")}, "net.OpError"},
		{"os.PathError", &os.PathError{Op: "open", Path: "/x", Err: os.ErrNotExist}, "io/fs.PathError"},
		{"errors.New", errors.New("boom"), other},
		{"fmt.Errorf without a cause", fmt.Errorf("boom %d", 1), other},
		{"errors.Join of plain errors", errors.Join(errors.New("a"), errors.New("b")), other},
		{"nil", nil, other},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := telemetry.ErrorTypeString(tt.err); got != tt.want {
				t.Errorf("ErrorTypeString(%v) = %q; want %q", tt.err, got, tt.want)
			}
			if tt.err == nil {
				return
			}
			if got := telemetry.ErrorType(tt.err); got.Key != semconv.ErrorTypeKey || got.Value.AsString() != tt.want {
				t.Errorf("ErrorType(%v) = %v; want %v=%q", tt.err, got, semconv.ErrorTypeKey, tt.want)
			}
		})
	}
}

func TestRedisErrorPrefix(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{redisReply(t, "ERR unknown command 'FOO'"), "ERR"},
		{redisReply(t, "MOVED 3999 127.0.0.1:6381"), "MOVED"},
		{redisReply(t, "redis: nil"), ""},
		{redis.Nil, ""},
		{errors.New("WRONGTYPE but not from redis"), ""},
		{nil, ""},
	}
	for _, tt := range tests {
		if got := telemetry.RedisErrorPrefix(tt.err); got != tt.want {
			t.Errorf("RedisErrorPrefix(%v) = %q; want %q", tt.err, got, tt.want)
		}
	}
}

func TestSQLState(t *testing.T) {
	if got := telemetry.SQLState(fmt.Errorf("x: %w", &pgconn.PgError{Code: "40001"})); got != "40001" {
		t.Errorf("SQLState() = %q; want 40001", got)
	}
	if got := telemetry.SQLState(errors.New("x")); got != "" {
		t.Errorf("SQLState(plain) = %q; want none", got)
	}
}

// redisReply returns the error go-redis returns for a server's error reply
// msg: a value of its internal proto.RedisError type (that of redis.Nil),
// made by reflection since the type cannot be named outside go-redis.
func redisReply(t *testing.T, msg string) error {
	t.Helper()
	err := reflect.ValueOf(msg).Convert(reflect.TypeOf(redis.Nil)).Interface().(error)
	var re redis.Error
	if !errors.As(err, &re) {
		t.Fatalf("%q is not a redis.Error", msg)
	}
	return err
}
