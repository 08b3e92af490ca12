package telemetry

import (
	"context"
	"errors"
	"reflect"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
)

// The error.type values of the context package's errors.
const (
	errorTypeCanceled         = "context.Canceled"
	errorTypeDeadlineExceeded = "context.DeadlineExceeded"
)

// ErrorType returns the error.type attribute for err. The value is
// predictable and of low cardinality, as the semantic conventions ask; the
// first rule that applies gives it:
//
//  1. the value of an ErrorType() string method anywhere in err's chain (our
//     errors have one, such as "circuitbreaker.open");
//  2. the SQLSTATE of a PostgreSQL error in the chain, such as "40001";
//  3. the prefix of a Redis error in the chain, such as "WRONGTYPE";
//  4. "context.DeadlineExceeded" or "context.Canceled" for the context
//     package's errors;
//  5. the canonical name (import path, a dot, the type name) of the first
//     exported type in the chain, looking through wrappers that are not
//     exported types themselves (fmt's, errors.Join's, and unexported ones
//     of this module or others), such as "net.OpError";
//  6. "_OTHER" when none applies (an [errors.New] error, for example).
//
// err must not be nil.
func ErrorType(err error) attribute.KeyValue {
	return semconv.ErrorTypeKey.String(ErrorTypeString(err))
}

// ErrorTypeString is [ErrorType]'s value alone; "_OTHER" for nil.
func ErrorTypeString(err error) string {
	if err == nil {
		return semconv.ErrorTypeOther.Value.AsString()
	}
	var typed interface{ ErrorType() string }
	if errors.As(err, &typed) {
		if s := typed.ErrorType(); s != "" {
			return s
		}
	}
	if code := SQLState(err); code != "" {
		return code
	}
	if prefix := RedisErrorPrefix(err); prefix != "" {
		return prefix
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return errorTypeDeadlineExceeded
	case errors.Is(err, context.Canceled):
		return errorTypeCanceled
	}
	if name := exportedTypeName(err); name != "" {
		return name
	}
	return semconv.ErrorTypeOther.Value.AsString()
}

// SQLState returns the SQLSTATE code of the PostgreSQL error in err's chain
// (pgx's *pgconn.PgError, recognised by its SQLState method), or "".
func SQLState(err error) string {
	var pg interface{ SQLState() string }
	if err != nil && errors.As(err, &pg) {
		return pg.SQLState()
	}
	return ""
}

// RedisErrorPrefix returns the prefix of the Redis server error in err's
// chain: the first word of the reply, such as "ERR", "WRONGTYPE" or
// "NOSCRIPT", which the semantic conventions use as
// db.response.status_code. It returns "" when there is none; go-redis's
// own errors that are not server replies, such as redis.Nil, have none.
func RedisErrorPrefix(err error) string {
	var re interface {
		error
		RedisError()
	}
	if err == nil || !errors.As(err, &re) {
		return ""
	}
	word, _, _ := strings.Cut(re.Error(), " ")
	if word == "" {
		return ""
	}
	for _, c := range word {
		if (c < 'A' || c > 'Z') && (c < '0' || c > '9') && c != '_' && c != '-' {
			return ""
		}
	}
	return word
}

// exportedTypeName returns the canonical name of the first error in err's
// chain whose type is exported from a package users can import, looking
// through unexported wrappers, or "" if there is none.
func exportedTypeName(err error) string {
	for err != nil {
		t := reflect.TypeOf(err)
		if t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		if name, pkg := t.Name(), t.PkgPath(); name != "" && pkg != "" &&
			isExported(name) && !isInternal(pkg) {
			return pkg + "." + name
		}
		switch u := err.(type) {
		case interface{ Unwrap() error }:
			err = u.Unwrap()
		case interface{ Unwrap() []error }:
			errs := u.Unwrap()
			if len(errs) == 0 {
				return ""
			}
			err = errs[0]
		default:
			return ""
		}
	}
	return ""
}

func isExported(name string) bool { return name[0] >= 'A' && name[0] <= 'Z' }

func isInternal(pkg string) bool {
	return strings.HasSuffix(pkg, "/internal") || strings.Contains(pkg, "/internal/") ||
		strings.HasPrefix(pkg, "internal/") || pkg == "internal"
}
