package cache_test

import (
	"context"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelpatterns/patterns/cache"
)

// ptrCodec is a Codec whose methods have a pointer receiver, so that a
// nil *ptrCodec is a Codec that fails when used.
type ptrCodec struct{}

func (*ptrCodec) Marshal(v string) ([]byte, error)       { return []byte(v), nil }
func (*ptrCodec) Unmarshal(b []byte) (string, error)     { return string(b), nil }
func loadString(context.Context, string) (string, error) { return "v", nil }
func flushStrings(context.Context, []cache.Write[string]) error {
	return nil
}

// TestNewRejectsInvalidOptions walks the invalid inputs of New: each must
// be rejected with an error naming the option (and its argument where it
// has one), and none may panic or be accepted silently.
func TestNewRejectsInvalidOptions(t *testing.T) {
	wb := cache.WithWriteBehind(flushStrings)
	load := cache.WithLoader(loadString)
	nan := math.NaN()
	tests := []struct {
		name string
		opts []cache.Option[string]
		want []string
	}{
		// nil options and nil arguments
		{"nil option", []cache.Option[string]{nil}, []string{"opts[0] is nil"}},
		{"nil option among others", []cache.Option[string]{cache.WithTTL(time.Minute), nil, load}, []string{"opts[1] is nil"}},
		{"nil loader", []cache.Option[string]{cache.WithLoader[string](nil)}, []string{"WithLoader(nil)"}},
		{"nil writer", []cache.Option[string]{cache.WithWriter[string](nil)}, []string{"WithWriter(nil)"}},
		{"nil flush", []cache.Option[string]{cache.WithWriteBehind[string](nil)}, []string{"WithWriteBehind(nil)"}},
		{"nil dead letter", []cache.Option[string]{wb, cache.WithWriteBehindDeadLetter[string](nil)}, []string{"WithWriteBehindDeadLetter(nil)"}},
		{"nil flush error handler", []cache.Option[string]{wb, cache.WithFlushErrorHandler(nil)}, []string{"WithFlushErrorHandler(nil)"}},
		{"nil codec", []cache.Option[string]{cache.WithCodec[string](nil)}, []string{"WithCodec(nil)"}},
		{"nil pointer codec", []cache.Option[string]{cache.WithCodec[string]((*ptrCodec)(nil))}, []string{"WithCodec(nil)"}},
		{"nil store", []cache.Option[string]{cache.WithStore(nil)}, []string{"WithStore(nil)"}},
		{"nil pointer store", []cache.Option[string]{cache.WithStore((*cache.MemoryStore)(nil))}, []string{"WithStore(nil)"}},

		// sizes
		{"zero entries", []cache.Option[string]{cache.WithMaxEntries(0)}, []string{"WithMaxEntries(0)"}},
		{"negative entries", []cache.Option[string]{cache.WithMaxEntries(-1)}, []string{"WithMaxEntries(-1)"}},
		{"negative entries, then bytes", []cache.Option[string]{cache.WithMaxEntries(-1), cache.WithMaxBytes(1 << 20)}, []string{"WithMaxEntries(-1)"}},
		{"entries beyond counting", []cache.Option[string]{cache.WithMaxEntries(math.MaxInt64)}, []string{"WithMaxEntries(9223372036854775807): too large"}},
		{"zero bytes", []cache.Option[string]{cache.WithMaxBytes(0)}, []string{"WithMaxBytes(0)"}},
		{"negative bytes", []cache.Option[string]{cache.WithMaxBytes(-1)}, []string{"WithMaxBytes(-1)"}},
		{"zero queue", []cache.Option[string]{wb, cache.WithWriteQueue(0)}, []string{"WithWriteQueue(0)"}},
		{"negative queue", []cache.Option[string]{wb, cache.WithWriteQueue(-1)}, []string{"WithWriteQueue(-1)"}},
		{"zero batch", []cache.Option[string]{wb, cache.WithWriteBatch(0, time.Second)}, []string{"WithWriteBatch(0, 1s)"}},
		{"zero batch interval", []cache.Option[string]{wb, cache.WithWriteBatch(1, 0)}, []string{"WithWriteBatch(1, 0s)"}},
		{"negative batch", []cache.Option[string]{wb, cache.WithWriteBatch(-1, -time.Second)}, []string{"WithWriteBatch(-1, -1s)"}},
		{"negative retries", []cache.Option[string]{wb, cache.WithWriteBehindRetries(-1)}, []string{"WithWriteBehindRetries(-1)"}},
		{"bloom without keys", []cache.Option[string]{cache.WithBloomFilter(0, 0.01)}, []string{"WithBloomFilter(0, 0.01)"}},

		// durations
		{"negative ttl", []cache.Option[string]{cache.WithTTL(-time.Second)}, []string{"WithTTL(-1s)"}},
		{"negative close timeout", []cache.Option[string]{wb, cache.WithCloseTimeout(-time.Second)}, []string{"WithCloseTimeout(-1s)"}},
		{"negative load timeout", []cache.Option[string]{cache.WithLoadTimeout(-time.Second)}, []string{"WithLoadTimeout(-1s)"}},
		{"negative negative ttl", []cache.Option[string]{load, cache.WithNegativeTTL(-time.Second)}, []string{"WithNegativeTTL(-1s)"}},
		{"negative double delete", []cache.Option[string]{cache.WithDoubleDelete(-time.Second)}, []string{"WithDoubleDelete(-1s)"}},

		// fractions
		{"jitter 1", []cache.Option[string]{cache.WithTTLJitter(1)}, []string{"WithTTLJitter(1)"}},
		{"negative jitter", []cache.Option[string]{cache.WithTTLJitter(-0.1)}, []string{"WithTTLJitter(-0.1)"}},
		{"NaN jitter", []cache.Option[string]{cache.WithTTLJitter(nan)}, []string{"WithTTLJitter(NaN)"}},
		{"bloom rate 0", []cache.Option[string]{cache.WithBloomFilter(10, 0)}, []string{"WithBloomFilter(10, 0)"}},
		{"bloom rate 1", []cache.Option[string]{cache.WithBloomFilter(10, 1)}, []string{"WithBloomFilter(10, 1)"}},
		{"NaN bloom rate", []cache.Option[string]{cache.WithBloomFilter(10, nan)}, []string{"WithBloomFilter(10, NaN)"}},
		{"refresh-ahead 1", []cache.Option[string]{load, cache.WithRefreshAhead(1)}, []string{"WithRefreshAhead(1)"}},
		{"negative refresh-ahead", []cache.Option[string]{load, cache.WithRefreshAhead(-0.5)}, []string{"WithRefreshAhead(-0.5)"}},
		{"NaN refresh-ahead", []cache.Option[string]{load, cache.WithRefreshAhead(nan)}, []string{"WithRefreshAhead(NaN)"}},

		// options that need another
		{"refresh-ahead without a loader", []cache.Option[string]{cache.WithRefreshAhead(0.5)}, []string{"WithRefreshAhead(0.5): needs WithLoader"}},
		{"refresh-ahead with a nil loader", []cache.Option[string]{cache.WithLoader[string](nil), cache.WithRefreshAhead(0.5)}, []string{"WithLoader(nil)"}},
		{"refresh-ahead without a ttl", []cache.Option[string]{load, cache.WithTTL(0), cache.WithRefreshAhead(0.5)}, []string{"WithRefreshAhead(0.5): needs WithLoader and a positive WithTTL"}},
		{"negative ttl without a loader", []cache.Option[string]{cache.WithNegativeTTL(time.Second)}, []string{"WithNegativeTTL(1s): needs WithLoader"}},
		{"queue without write-behind", []cache.Option[string]{cache.WithWriteQueue(10)}, []string{"WithWriteQueue: needs WithWriteBehind"}},
		{"batch without write-behind", []cache.Option[string]{cache.WithWriteBatch(10, time.Second)}, []string{"WithWriteBatch: needs WithWriteBehind"}},
		{"reject without write-behind", []cache.Option[string]{cache.WithWriteBehindReject()}, []string{"WithWriteBehindReject: needs WithWriteBehind"}},
		{"retries without write-behind", []cache.Option[string]{cache.WithWriteBehindRetries(3)}, []string{"WithWriteBehindRetries: needs WithWriteBehind"}},
		{"dead letter without write-behind", []cache.Option[string]{cache.WithWriteBehindDeadLetter(func(context.Context, []cache.Write[string], error) {})}, []string{"WithWriteBehindDeadLetter: needs WithWriteBehind"}},
		{"error handler without write-behind", []cache.Option[string]{cache.WithFlushErrorHandler(func(error) {})}, []string{"WithFlushErrorHandler: needs WithWriteBehind"}},
		{"writer and write-behind", []cache.Option[string]{cache.WithWriter(func(context.Context, string, string) error { return nil }), wb}, []string{"WithWriter and WithWriteBehind"}},

		// options of another value type, converted by hand (without the
		// conversion they do not compile: see TestOptionTypes)
		{"loader of int", []cache.Option[string]{cache.Option[string](cache.WithLoader(func(context.Context, string) (int, error) { return 0, nil }))},
			[]string{"WithLoader: built for another value type: given a func(context.Context, string) (int, error) where this cache needs a func(context.Context, string) (string, error)"}},
		{"writer of int", []cache.Option[string]{cache.Option[string](cache.WithWriter(func(context.Context, string, int) error { return nil }))},
			[]string{"WithWriter: built for another value type"}},
		{"codec of int", []cache.Option[string]{cache.Option[string](cache.WithCodec[int](cache.JSON[int]{}))},
			[]string{"WithCodec: built for another value type: given a cache.JSON[int] where this cache needs a cache.Codec[string]"}},
		{"write-behind of int", []cache.Option[string]{cache.Option[string](cache.WithWriteBehind(func(context.Context, []cache.Write[int]) error { return nil }))},
			[]string{"WithWriteBehind: built for another value type"}},
		{"dead letter of int", []cache.Option[string]{wb, cache.Option[string](cache.WithWriteBehindDeadLetter(func(context.Context, []cache.Write[int], error) {}))},
			[]string{"WithWriteBehindDeadLetter: built for another value type"}},
		{"loader of int kept in a Setting", []cache.Option[string]{intLoaderSetting()},
			[]string{"WithLoader: built for another value type"}},

		// every fault at once
		{"several", []cache.Option[string]{nil, cache.WithLoader[string](nil), cache.WithTTL(-1), cache.WithNegativeTTL(-1), cache.WithMaxEntries(0), cache.WithWriteQueue(0), cache.WithStore(nil)},
			[]string{"opts[0] is nil", "WithLoader(nil)", "WithTTL(-1ns)", "WithNegativeTTL(-1ns)", "WithMaxEntries(0)", "WithWriteQueue(0)", "WithWriteQueue: needs WithWriteBehind", "WithStore(nil)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c *cache.Cache[string]
			var err error
			require.NotPanics(t, func() { c, err = cache.New(tt.opts...) })
			require.Error(t, err, "New() accepted the options")
			assert.Nil(t, c)
			assert.True(t, strings.HasPrefix(err.Error(), "cache: New: "), "New() error = %q; want the prefix %q", err, "cache: New: ")
			for _, w := range tt.want {
				assert.Contains(t, err.Error(), w)
			}
			if n := strings.Count(err.Error(), "\n") + 1; n != len(tt.want) && tt.name != "several" {
				t.Errorf("New() reported %d faults; want %d:\n%v", n, len(tt.want), err)
			}
		})
	}
}

// TestNewAcceptsZeroValues protects the valid edges of the options: the
// zero values documented as meaning something, and nil providers, which
// mean the global ones.
func TestNewAcceptsZeroValues(t *testing.T) {
	c, err := cache.New(
		cache.WithLoader(loadString),
		cache.WithTTL(0),
		cache.WithTTLJitter(0),
		cache.WithLoadTimeout(0),
		cache.WithNegativeTTL(0),
		cache.WithRefreshAhead(0),
		cache.WithDoubleDelete(0),
		cache.WithName(""),
		cache.WithTracerProvider(nil),
		cache.WithMeterProvider(nil),
		cache.WithWriteBehind(flushStrings),
		cache.WithWriteBehindRetries(0),
		cache.WithCloseTimeout(0),
	)
	require.NoError(t, err)
	v, err := c.Get(context.Background(), "k")
	require.NoError(t, err)
	assert.Equal(t, "v", v)
	require.NoError(t, c.Close())
}

// TestNewSizesL1WithTheLastSizeOption checks what WithMaxEntries
// documents: of it and WithMaxBytes, the last given sizes L1, whichever
// order they come in.
func TestNewSizesL1WithTheLastSizeOption(t *testing.T) {
	tests := []struct {
		name string
		opts []cache.Option[string]
	}{
		{"entries, then bytes", []cache.Option[string]{cache.WithMaxEntries(100), cache.WithMaxBytes(1 << 20)}},
		{"bytes, then entries", []cache.Option[string]{cache.WithMaxBytes(1 << 20), cache.WithMaxEntries(100)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := cache.New(tt.opts...)
			require.NoError(t, err)
			require.NoError(t, c.Close())
		})
	}
}

// intLoaderSetting returns a loader of int kept in a Setting, to which an
// Option[int] is assignable without a conversion: it then compiles as an
// option of any cache, and New must catch it.
func intLoaderSetting() cache.Setting {
	var s cache.Setting = cache.WithLoader(func(context.Context, string) (int, error) { return 0, nil })
	return s
}
