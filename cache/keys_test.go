package cache_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelpatterns/patterns/cache"
	"github.com/otelpatterns/patterns/internal/telemetry/telemetrytest"
)

// Keys come from callers and can be megabytes long: errors and span
// attributes hold them shortened (issue 12, item 9).

// hugeKey is 1 MiB long.
var hugeKey = strings.Repeat("k", 1<<20)

// maxErrLen is the longest error text or span attribute that a test
// accepts: a shortened key (128 bytes and its length) and the message.
const maxErrLen = 1024

type failingCodec struct{ cache.JSON[string] }

func (failingCodec) Marshal(string) ([]byte, error) { return nil, errors.New("cannot encode") }

func TestHugeKeysAreShortenedInErrors(t *testing.T) {
	ctx := context.Background()
	short := func(t *testing.T, what string, err error) {
		t.Helper()
		require.Error(t, err, what)
		assert.LessOrEqual(t, len(err.Error()), maxErrLen, "%s: error of %d bytes: %.200s…", what, len(err.Error()), err.Error())
		assert.Contains(t, err.Error(), "(1048576 bytes)", "%s: error names the key's length", what)
	}

	err := (&cache.DecodeError{Key: hugeKey, Err: errors.New("bad")}).Error()
	assert.LessOrEqual(t, len(err), maxErrLen, "DecodeError of a 1 MiB key: %d bytes", len(err))

	down := newCache[string](t, cache.WithStore(&failingStore{}))
	short(t, "Set() with L2 down", down.Set(ctx, hugeKey, "v"))
	short(t, "Delete() with L2 down", down.Delete(ctx, hugeKey))

	mute := newCache[string](t, cache.WithStore(&unannouncedStore{}))
	short(t, "Set() with invalidations failing", mute.Set(ctx, hugeKey, "v"))

	enc := newCache[string](t, cache.WithStore(&cache.MemoryStore{}), cache.WithCodec[string](failingCodec{}))
	short(t, "Set() with a codec that fails", enc.Set(ctx, hugeKey, "v"))

	synctest.Test(t, func(t *testing.T) {
		f := &scriptedFlush{release: make(chan struct{})}
		wb := newStrategyCache(t, cache.WithWriteBehind(f.flush), cache.WithWriteBatch(1, time.Hour))
		require.NoError(t, wb.Set(t.Context(), hugeKey, "v"))
		synctest.Wait() // in flight
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		short(t, "Delete() of a key being flushed, giving up", wb.Delete(ctx, hugeKey))
		close(f.release)
	})
}

func TestHugeKeysAreShortenedInSpans(t *testing.T) {
	ctx := context.Background()
	tel := telemetrytest.New(t)
	store := &cache.MemoryStore{}
	require.NoError(t, store.Set(ctx, hugeKey, []byte("{not json"), 0))
	c := newCache[string](t, cache.WithStore(store), cache.WithTracerProvider(tel.TracerProvider))
	_, err := c.Get(ctx, hugeKey)
	require.ErrorIs(t, err, cache.ErrNotFound)
	down := newCache[string](t, cache.WithStore(&failingStore{}), cache.WithTracerProvider(tel.TracerProvider))
	_ = down.Set(ctx, hugeKey, "v")
	_ = down.Delete(ctx, hugeKey)

	spans := tel.Spans.Ended()
	require.NotEmpty(t, spans)
	for _, s := range spans {
		assert.LessOrEqual(t, len(s.Status().Description), maxErrLen, "span %s: status of %d bytes", s.Name(), len(s.Status().Description))
		for _, a := range s.Attributes() {
			assert.LessOrEqual(t, len(a.Value.String()), maxErrLen, "span %s: attribute %s of %d bytes", s.Name(), a.Key, len(a.Value.String()))
		}
		for _, e := range s.Events() {
			for _, a := range e.Attributes {
				assert.LessOrEqual(t, len(a.Value.String()), maxErrLen, "span %s: event %s: attribute %s of %d bytes",
					s.Name(), e.Name, a.Key, len(a.Value.String()))
			}
		}
	}
}
