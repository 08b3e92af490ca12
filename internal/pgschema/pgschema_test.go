package pgschema_test

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/assert"

	"github.com/otelpatterns/patterns/internal/pgschema"
)

func TestCheckName(t *testing.T) {
	for _, name := range []string{"saga", "Orders", "with space", `quo"te`, "ünïcødé", strings.Repeat("s", 11), "PG_upper"} {
		assert.NoError(t, pgschema.CheckName(name, 11), "%q", name)
	}
	for _, tt := range []struct{ name, want string }{
		{"", "empty schema name"},
		{strings.Repeat("s", 12), "schema name of 12 bytes; at most 11"},
		{"bad\xff", "schema name is not valid UTF-8"},
		{"nul\x00", "schema name contains NUL"},
		{"pg_x", `schema names starting with "pg_" are reserved by PostgreSQL`},
	} {
		err := pgschema.CheckName(tt.name, 11)
		if assert.Error(t, err, "%q", tt.name) {
			assert.Equal(t, tt.want, err.Error())
		}
	}
}

func TestLockKey(t *testing.T) {
	h := fnv.New64a()
	h.Write([]byte("example.com/p\x00migrate\x00s"))
	assert.Equal(t, int64(h.Sum64()), pgschema.LockKey("example.com/p", "migrate", "s"), "the key is the FNV-1a hash of scope, purpose and schema")
	assert.NotEqual(t, pgschema.LockKey("p", "migrate", "s"), pgschema.LockKey("p", "append", "s"))
	assert.NotEqual(t, pgschema.LockKey("p", "migrate", "s"), pgschema.LockKey("p", "migrate", "t"))
	assert.NotEqual(t, pgschema.LockKey("p", "migrate", "s"), pgschema.LockKey("q", "migrate", "s"))
}

func TestErr(t *testing.T) {
	missing := fmt.Errorf("query: %w", &pgconn.PgError{Code: "42P01"})
	other := errors.New("other")

	err := pgschema.Err(context.Background(), missing)
	assert.ErrorIs(t, err, missing)
	assert.Contains(t, err.Error(), "(has Migrate been called?)")
	assert.Contains(t, pgschema.Hint(&pgconn.PgError{Code: "3F000"}).Error(), "(has Migrate been called?)")
	assert.Equal(t, other, pgschema.Err(context.Background(), other))

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err = pgschema.Err(ctx, other)
	assert.ErrorIs(t, err, context.Canceled)
	assert.ErrorIs(t, err, other)
	assert.Equal(t, context.Canceled, pgschema.Err(ctx, context.Canceled), "an error that is the context's is returned as is")
}
