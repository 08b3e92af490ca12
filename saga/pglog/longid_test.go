package pglog_test

import (
	"crypto/rand"
	"encoding/hex"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelpatterns/patterns/internal/brief"
	"github.com/otelpatterns/patterns/internal/telemetry/telemetrytest"
	"github.com/otelpatterns/patterns/internal/testenv"
	"github.com/otelpatterns/patterns/saga"
	"github.com/otelpatterns/patterns/saga/pglog"
)

// TestLongIDsAreShortened creates, loads, appends to and releases a saga
// whose id is 1 MiB long, with an owner as long: no error and no span
// attribute may carry them whole (issue 12 item 9).
func TestLongIDsAreShortened(t *testing.T) {
	t.Parallel()
	p := telemetrytest.New(t)
	l, _, _ := newLog(t, 2, pglog.WithTracerProvider(p.TracerProvider), pglog.WithMeterProvider(p.MeterProvider))
	ctx := testenv.Context(t, 20*time.Second)
	b := make([]byte, 1<<19)
	_, _ = rand.Read(b)
	id := hex.EncodeToString(b) // does not compress: PostgreSQL keys no such id
	const maxErr = 4 << 10

	err := l.Create(ctx, saga.Record{ID: id, Name: "long", Version: 1}, id, time.Minute)
	require.Error(t, err)
	assert.LessOrEqual(t, len(err.Error()), maxErr, "Create: %.300s", err)
	_, _, err = l.Load(ctx, id)
	require.ErrorIs(t, err, saga.ErrNotFound)
	assert.LessOrEqual(t, len(err.Error()), maxErr, "Load: %.300s", err)
	err = l.Append(ctx, id, id, saga.Transition{Seq: 1, Status: saga.Running})
	require.Error(t, err)
	assert.LessOrEqual(t, len(err.Error()), maxErr, "Append: %.300s", err)

	require.NoError(t, l.Create(ctx, saga.Record{ID: "short", Name: "long", Version: 1}, "me", time.Minute))
	err = l.Append(ctx, "short", id, saga.Transition{Seq: 1, Status: saga.Running})
	require.ErrorIs(t, err, saga.ErrLeaseLost)
	assert.LessOrEqual(t, len(err.Error()), maxErr, "Append by another owner: %.300s", err)

	for _, span := range p.Spans.Ended() {
		for _, kv := range span.Attributes() {
			assert.LessOrEqual(t, len(kv.Value.String()), brief.MaxLen+32, "span %s: attribute %s is %d bytes long", span.Name(), kv.Key, len(kv.Value.String()))
		}
		assert.LessOrEqual(t, len(span.Status().Description), maxErr, "span %s: status", span.Name())
	}
}
