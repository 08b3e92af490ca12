// Package examplepg gives the examples that can run on PostgreSQL a pool
// and a schema of their own, dropped when the example ends, so that runs
// never see each other's data or leave any behind.
package examplepg

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// URLVar names the environment variable that selects PostgreSQL.
const URLVar = "PATTERNS_POSTGRES_URL"

// Open connects to url with a pool of at most maxConns connections and
// names a new schema, prefix followed by a random suffix, for the example
// to create its tables in. drop drops the schema, with everything in it,
// and then closes the pool.
func Open(ctx context.Context, url, prefix string, maxConns int32) (pool *pgxpool.Pool, schema string, drop func(context.Context) error, err error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, "", nil, fmt.Errorf("%s: %w", URLVar, err)
	}
	cfg.MaxConns = maxConns
	pool, err = pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, "", nil, fmt.Errorf("connecting to PostgreSQL: %w", err)
	}
	var suffix [4]byte
	_, _ = rand.Read(suffix[:])
	schema = prefix + hex.EncodeToString(suffix[:])
	drop = func(ctx context.Context) error {
		defer pool.Close()
		_, err := pool.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{schema}.Sanitize()+" CASCADE")
		return err
	}
	return pool, schema, drop, nil
}
