package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// PostgresPool returns a pool of at most maxConns connections (pgx's
// default when maxConns is 0 or less) to the database of
// PATTERNS_POSTGRES_URL, closed when the test ends, or skips (or fails,
// see [Required]) the test when the variable is not set.
func PostgresPool(t testing.TB, maxConns int32) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(PostgresURL(t))
	if err != nil {
		t.Fatalf("parsing %s: %v", PostgresURLVar, err)
	}
	if maxConns > 0 {
		cfg.MaxConns = maxConns
	}
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatalf("connecting to PostgreSQL: %v", err)
	}
	t.Cleanup(pool.Close)
	return pool
}

var unsafeChars = regexp.MustCompile(`[^a-z0-9_]+`)

// Schema returns the name of a PostgreSQL schema private to this run of
// the test: prefix, the end of the test's name (30 bytes at most, lower
// case, with runs of characters other than a-z, 0-9 and _ made _) and a
// random suffix. The schema is dropped, with everything in it, when the
// test ends ([DropSchemaAtEnd]). Give each package a prefix of its own, so
// that packages testing in parallel never share a schema. It skips (or
// fails) the test like [PostgresURL].
func Schema(t testing.TB, prefix string) string {
	t.Helper()
	var b [4]byte
	_, _ = rand.Read(b[:])
	name := unsafeChars.ReplaceAllString(strings.ToLower(t.Name()), "_")
	if len(name) > 30 {
		name = name[len(name)-30:]
	}
	return DropSchemaAtEnd(t, prefix+name+"_"+hex.EncodeToString(b[:]))
}

// DropSchemaAtEnd drops schema, with everything in it, when the test ends,
// on a connection of its own (so that it works after the test closed its
// pools), reporting a failure with t.Errorf; it returns schema. It skips
// (or fails) the test like [PostgresURL].
func DropSchemaAtEnd(t testing.TB, schema string) string {
	t.Helper()
	url := PostgresURL(t)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			t.Errorf("dropping schema %s: %v", schema, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{schema}.Sanitize()+" CASCADE"); err != nil {
			t.Errorf("dropping schema %s: %v", schema, err)
		}
	})
	return schema
}

// Context returns a context that ends after d, or when the test ends.
func Context(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
