package pgstore_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelpatterns/patterns/eventsource"
	"github.com/otelpatterns/patterns/eventsource/pgstore"
	"github.com/otelpatterns/patterns/internal/brief"
	"github.com/otelpatterns/patterns/internal/telemetry/telemetrytest"
	"github.com/otelpatterns/patterns/internal/testenv"
)

// longID returns a 1 MiB identifier that does not compress, so that
// PostgreSQL refuses it as a key (an index row is at most a few KiB).
func longID(t testing.TB) string {
	b := make([]byte, 1<<19)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// maxErr is the longest error text an operation on a 1 MiB id may give.
const maxErr = 4 << 10

// TestLongStreamIDIsShortened appends to, reads and snapshots a stream
// whose id is 1 MiB long: no error and no span attribute may carry it
// whole (issue 12 item 9).
func TestLongStreamIDIsShortened(t *testing.T) {
	t.Parallel()
	p := telemetrytest.New(t)
	s, _ := newStore(t, 2, pgstore.WithTracerProvider(p.TracerProvider), pgstore.WithMeterProvider(p.MeterProvider))
	ctx := testenv.Context(t, 20*time.Second)
	id := longID(t)

	_, err := s.Append(ctx, id, eventsource.NoStream, events(1, "test.v1")...)
	require.Error(t, err, "PostgreSQL stores no 1 MiB key")
	assert.LessOrEqual(t, len(err.Error()), maxErr, "Append: %.300s", err)

	err = s.SaveSnapshot(ctx, eventsource.Snapshot{StreamID: id, Version: 1, Data: []byte("{}")})
	require.Error(t, err)
	assert.LessOrEqual(t, len(err.Error()), maxErr, "SaveSnapshot: %.300s", err)

	_, err = s.LoadSnapshot(ctx, id)
	require.ErrorIs(t, err, eventsource.ErrNotFound)
	assert.LessOrEqual(t, len(err.Error()), maxErr, "LoadSnapshot: %.300s", err)

	for _, err := range s.ReadStream(ctx, id, 1) {
		require.NoError(t, err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	for _, err := range s.ReadStream(cctx, id, 1) {
		require.True(t, errors.Is(err, context.Canceled), "ReadStream: %.300v", err)
		assert.LessOrEqual(t, len(err.Error()), maxErr, "ReadStream: %.300s", err)
	}

	spans := p.Spans.Ended()
	require.NotEmpty(t, spans)
	for _, span := range spans {
		for _, kv := range span.Attributes() {
			assert.LessOrEqual(t, len(kv.Value.String()), brief.MaxLen+32, "span %s: attribute %s is %d bytes long", span.Name(), kv.Key, len(kv.Value.String()))
		}
		assert.LessOrEqual(t, len(span.Status().Description), maxErr, "span %s: status", span.Name())
	}
}
