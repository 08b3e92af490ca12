package telemetry_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/otelpatterns/patterns/internal/telemetry"
	"github.com/otelpatterns/patterns/internal/telemetry/telemetrytest"
)

type typedErr struct{}

func (typedErr) Error() string     { return "typed" }
func (typedErr) ErrorType() string { return "pkg.typed" }

func TestRecordError(t *testing.T) {
	p := telemetrytest.New(t)
	_, span := p.TracerProvider.Tracer("test").Start(context.Background(), "op")
	telemetry.RecordError(span, nil)
	telemetry.RecordError(span, fmt.Errorf("call: %w", typedErr{}))
	span.End()
	ended := p.Spans.Ended()
	require.Len(t, ended, 1)
	assert.Equal(t, codes.Error, ended[0].Status().Code)
	assert.Equal(t, "call: typed", ended[0].Status().Description)
	assert.Contains(t, ended[0].Attributes(), attribute.String("error.type", "pkg.typed"))

	// A non-recording span is left alone.
	_, quiet := noop.NewTracerProvider().Tracer("x").Start(context.Background(), "op")
	telemetry.RecordError(quiet, errors.New("x"))
}

func TestAddEvent(t *testing.T) {
	p := telemetrytest.New(t)
	ctx, span := p.TracerProvider.Tracer("test").Start(context.Background(), "op")
	telemetry.AddEvent(ctx, "thing.happened", func() []attribute.KeyValue { return []attribute.KeyValue{attribute.Int("n", 1)} })
	span.End()
	called := false
	telemetry.AddEvent(context.Background(), "nobody.listens", func() []attribute.KeyValue { called = true; return nil })
	assert.False(t, called, "attributes are only built for a recording span")
	events := p.Spans.Ended()[0].Events()
	require.Len(t, events, 1)
	assert.Equal(t, "thing.happened", events[0].Name)
}

func TestProvidersFallBackToGlobals(t *testing.T) {
	assert.NotNil(t, telemetry.Tracer(nil, "scope"))
	assert.NotNil(t, telemetry.Meter(nil, "scope"))
	p := telemetrytest.New(t)
	_, span := telemetry.Tracer(p.TracerProvider, "github.com/otelpatterns/patterns/x").Start(context.Background(), "op")
	span.End()
	s := p.Spans.Ended()[0].InstrumentationScope()
	assert.Equal(t, "github.com/otelpatterns/patterns/x", s.Name)
	assert.Equal(t, telemetry.Version, s.Version)
}
