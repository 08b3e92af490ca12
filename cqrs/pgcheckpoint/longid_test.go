package pgcheckpoint_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelpatterns/patterns/cqrs/pgcheckpoint"
	"github.com/otelpatterns/patterns/eventsource"
	"github.com/otelpatterns/patterns/internal/brief"
	"github.com/otelpatterns/patterns/internal/telemetry/telemetrytest"
	"github.com/otelpatterns/patterns/internal/testenv"
)

// TestLongNamesAreShortened saves, projects and rebuilds under a
// checkpoint name 1 MiB long: no error and no span attribute or name may
// carry it whole (issue 12 item 9).
func TestLongNamesAreShortened(t *testing.T) {
	t.Parallel()
	p := telemetrytest.New(t)
	s, _, _ := newStore(t, pgcheckpoint.WithTracerProvider(p.TracerProvider), pgcheckpoint.WithMeterProvider(p.MeterProvider))
	ctx := testenv.Context(t, 20*time.Second)
	b := make([]byte, 1<<19)
	_, _ = rand.Read(b)
	name := hex.EncodeToString(b) // does not compress: PostgreSQL keys no such name
	const maxErr = 4 << 10

	err := s.SaveCheckpoint(ctx, name, 1)
	require.Error(t, err)
	assert.LessOrEqual(t, len(err.Error()), maxErr, "SaveCheckpoint: %.300s", err)
	err = s.Rebuild(ctx, name, func(context.Context, pgx.Tx) error { return nil })
	require.Error(t, err)
	assert.LessOrEqual(t, len(err.Error()), maxErr, "Rebuild: %.300s", err)
	err = s.Project(ctx, name, &eventsource.MemoryStore{}, func(context.Context, pgx.Tx, eventsource.Event) error { return nil })
	require.Error(t, err)
	assert.LessOrEqual(t, len(err.Error()), maxErr, "Project: %.300s", err)

	for _, span := range p.Spans.Ended() {
		assert.LessOrEqual(t, len(span.Name()), brief.MaxLen+64, "a span name is %d bytes long", len(span.Name()))
		for _, kv := range span.Attributes() {
			assert.LessOrEqual(t, len(kv.Value.String()), brief.MaxLen+32, "span %s: attribute %s is %d bytes long", span.Name(), kv.Key, len(kv.Value.String()))
		}
		assert.LessOrEqual(t, len(span.Status().Description), maxErr, "span %s: status", span.Name())
	}
}
