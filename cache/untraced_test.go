package cache_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/otelpatterns/patterns/cache"
	"github.com/otelpatterns/patterns/internal/telemetry/telemetrytest"
	"github.com/otelpatterns/patterns/internal/testenv"
)

// TestLoadSpanUntraced: a loader call starts no cache.load span when the
// tracer can only make non-recording ones and the caller's span is not
// recording (the loader's ctx is the caller's, its trace included), and
// starts one under a recording span of the caller's.
func TestLoadSpanUntraced(t *testing.T) {
	c, err := cache.New[string](cache.WithTracerProvider(noop.NewTracerProvider()))
	require.NoError(t, err)
	defer c.Close()
	ctx := context.Background()
	got, span := cache.StartLoad(c, ctx)
	assert.Equal(t, ctx, got, "no span started")
	assert.False(t, span.IsRecording())
	span.End()

	tel := telemetrytest.New(t)
	recording, caller := tel.TracerProvider.Tracer("test").Start(ctx, "caller")
	defer caller.End()
	got, span = cache.StartLoad(c, recording)
	assert.NotEqual(t, recording, got, "a span started under a recording one")
	span.End()
}

// TestLoadSpanOnceGlobalSet: a cache built on the global provider before
// any was set starts no cache.load span then, and starts them once
// otel.SetTracerProvider installs one. It runs in a process of its own,
// since the global provider cannot be unset.
func TestLoadSpanOnceGlobalSet(t *testing.T) {
	if !testenv.InOwnProcess(t) {
		return
	}
	ctx := context.Background()
	c, err := cache.New(cache.WithLoader(func(context.Context, string) (string, error) { return "v", nil }))
	require.NoError(t, err)
	defer c.Close()
	got, _ := cache.StartLoad(c, ctx)
	assert.Equal(t, ctx, got, "no span started before a provider is set")

	tel := telemetrytest.New(t)
	otel.SetTracerProvider(tel.TracerProvider)
	_, err = c.Get(ctx, "k")
	require.NoError(t, err)
	assert.Len(t, tel.SpansNamed("cache.load"), 1, "the load after the global provider was set")
}
