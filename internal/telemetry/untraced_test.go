package telemetry_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/otelpatterns/patterns/internal/telemetry"
)

func TestUntraced(t *testing.T) {
	ctx := context.Background()
	assert.False(t, telemetry.IsUntraced(ctx))
	u := telemetry.Untraced(ctx)
	assert.True(t, telemetry.IsUntraced(u))
	assert.Equal(t, u, telemetry.Untraced(u), "marking twice adds nothing")
	c, cancel := context.WithCancel(u)
	defer cancel()
	assert.True(t, telemetry.IsUntraced(c), "the mark is inherited")
	assert.False(t, telemetry.IsUntraced(ctx), "the parent is not marked")
}
