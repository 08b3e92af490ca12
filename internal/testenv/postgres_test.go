package testenv_test

import (
	"context"
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelpatterns/patterns/internal/testenv"
)

func TestSchema(t *testing.T) {
	pool := testenv.PostgresPool(t, 2)
	assert.Equal(t, int32(2), pool.Config().MaxConns)
	ctx := testenv.Context(t, 10*time.Second)

	var schema string
	t.Run("Made/Of THIS-name", func(t *testing.T) {
		schema = testenv.Schema(t, "testenv_test_")
		assert.Regexp(t, regexp.MustCompile(`^testenv_test_testschema_made_of_this_name_[0-9a-f]{8}$`), schema)
		assert.LessOrEqual(t, len(testenv.Schema(t, "p_")), len("p_")+30+9, "the test name is cut to 30 bytes")
		_, err := pool.Exec(ctx, `CREATE SCHEMA "`+schema+`"; CREATE TABLE "`+schema+`".t (x int)`)
		require.NoError(t, err)
	})
	var exists bool
	require.NoError(t, pool.QueryRow(ctx, "SELECT EXISTS (SELECT FROM pg_namespace WHERE nspname = $1)", schema).Scan(&exists))
	assert.False(t, exists, "schema %s outlived its test", schema)
}

func TestContext(t *testing.T) {
	var ctx context.Context
	t.Run("inner", func(t *testing.T) {
		ctx = testenv.Context(t, time.Hour)
		deadline, ok := ctx.Deadline()
		assert.True(t, ok)
		assert.WithinDuration(t, time.Now().Add(time.Hour), deadline, time.Minute)
		assert.NoError(t, ctx.Err())
	})
	assert.ErrorIs(t, ctx.Err(), context.Canceled, "the context ends with its test")
}
