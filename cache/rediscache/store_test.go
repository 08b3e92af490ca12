package rediscache_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelpatterns/patterns/cache"
	"github.com/otelpatterns/patterns/cache/rediscache"
	"github.com/otelpatterns/patterns/cache/storetest"
	"github.com/otelpatterns/patterns/circuitbreaker"
	"github.com/otelpatterns/patterns/internal/telemetry/telemetrytest"
)

func TestConformance(t *testing.T) {
	client := sharedClient(t)
	storetest.Run(t, func(t *testing.T) cache.Store { return newStore(t, client) })
}

func TestNewRejectsBadConfig(t *testing.T) {
	client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"}) // never dialled
	defer client.Close()
	tests := []struct {
		name   string
		client redis.UniversalClient
		opts   []rediscache.Option
		want   []string
	}{
		{"nil client", nil, nil, []string{"client"}},
		{"nil pointer client", (*redis.Client)(nil), nil, []string{"client"}},
		{"empty prefix", client, []rediscache.Option{rediscache.WithPrefix("")}, []string{"WithPrefix"}},
		{"empty channel", client, []rediscache.Option{rediscache.WithChannel("")}, []string{"WithChannel"}},
		{"negative timeout", client, []rediscache.Option{rediscache.WithTimeout(-time.Second)}, []string{"WithTimeout"}},
		{"no dirty keys", client, []rediscache.Option{rediscache.WithMaxDirtyKeys(0)}, []string{"WithMaxDirtyKeys(0)"}},
		{"negative dirty keys", client, []rediscache.Option{rediscache.WithMaxDirtyKeys(-1)}, []string{"WithMaxDirtyKeys(-1)"}},
		{"nil option", client, []rediscache.Option{nil}, []string{"opts[0] is nil"}},
		{"nil option among others", client, []rediscache.Option{rediscache.WithPrefix("users:"), nil}, []string{"opts[1] is nil"}},
		{"bad breaker option", client, []rediscache.Option{rediscache.WithBreaker(circuitbreaker.WithOpenDuration(-time.Second))}, []string{"WithBreaker", "WithOpenDuration"}},
		{"nil breaker option", client, []rediscache.Option{rediscache.WithBreaker(circuitbreaker.WithConsecutiveFailures(3), nil)}, []string{"WithBreaker: opts[1] is nil"}},
		{"everything", nil, []rediscache.Option{nil, rediscache.WithPrefix(""), rediscache.WithChannel(""), rediscache.WithTimeout(-1), rediscache.WithMaxDirtyKeys(0),
			rediscache.WithBreaker(circuitbreaker.WithOpenDuration(-time.Second))},
			[]string{"client", "opts[0] is nil", "WithPrefix", "WithChannel", "WithTimeout", "WithMaxDirtyKeys(0)", "WithOpenDuration"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s *rediscache.Store
			var err error
			require.NotPanics(t, func() { s, err = rediscache.New(tt.client, tt.opts...) })
			require.Error(t, err)
			assert.Nil(t, s)
			assert.True(t, strings.HasPrefix(err.Error(), "rediscache: New: "), "New() error = %q; want the prefix %q", err, "rediscache: New: ")
			for _, w := range tt.want {
				assert.Contains(t, err.Error(), w)
			}
		})
	}
}

func TestDefaults(t *testing.T) {
	client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"}) // never dialled
	defer client.Close()
	tests := []struct {
		name                  string
		opts                  []rediscache.Option
		wantPrefix, wantChann string
	}{
		{"none", nil, "cache:", "cache:invalidate"},
		{"prefix", []rediscache.Option{rediscache.WithPrefix("users:")}, "users:", "users:invalidate"},
		{"channel", []rediscache.Option{rediscache.WithChannel("inv")}, "cache:", "inv"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := rediscache.New(client, tt.opts...)
			require.NoError(t, err)
			assert.Equal(t, tt.wantPrefix, s.Prefix())
			assert.Equal(t, tt.wantChann, s.Channel())
		})
	}
}

// TestKeysArePrefixed checks where values land in Redis, and that Set
// replaces a ttl and Get reads values that other clients wrote.
func TestKeysArePrefixed(t *testing.T) {
	client := sharedClient(t)
	s := newStore(t, client)
	ctx := ctxWithin(t, 5*time.Second)

	require.NoError(t, s.Set(ctx, "user:42", []byte("v"), 90*time.Second))
	got, err := client.Get(ctx, s.Prefix()+"user:42").Result()
	require.NoError(t, err)
	assert.Equal(t, "v", got)
	ttl, err := client.PTTL(ctx, s.Prefix()+"user:42").Result()
	require.NoError(t, err)
	assert.InDelta(t, 90*time.Second, ttl, float64(5*time.Second), "PTTL")

	require.NoError(t, s.Set(ctx, "user:42", []byte("w"), 1500*time.Millisecond))
	ttl, err = client.PTTL(ctx, s.Prefix()+"user:42").Result()
	require.NoError(t, err)
	assert.InDelta(t, 1500*time.Millisecond, ttl, float64(500*time.Millisecond), "PTTL after a Set with a ms ttl")

	require.NoError(t, client.Set(ctx, s.Prefix()+"written-elsewhere", "x", 0).Err())
	v, err := s.Get(ctx, "written-elsewhere")
	require.NoError(t, err)
	assert.Equal(t, []byte("x"), v)

	_, err = s.Get(ctx, "user:42x")
	assert.ErrorIs(t, err, cache.ErrNotFound)
	assert.Error(t, s.Set(ctx, "k", []byte("v"), -time.Second), "Set with a negative ttl")
}

// TestMalformedMessagesAreIgnored publishes what other software might on
// the channel: the subscription ignores it, counts it, and goes on.
func TestMalformedMessagesAreIgnored(t *testing.T) {
	client := sharedClient(t)
	tel := telemetrytest.New(t)
	s := newStore(t, client, rediscache.WithMeterProvider(tel.MeterProvider))
	e := newEvents()
	subscribe(t, s, e)
	ctx := ctxWithin(t, 5*time.Second)

	garbage := []string{"", "hello", `{"s":"src","k":["a"]}`, "\x01", "\x01\x05ab", "\x01\x00\x7f", "\x02\x00\x00", "\x01\x00\x01\x01ab"}
	for _, g := range garbage {
		require.NoError(t, client.Publish(ctx, s.Channel(), g).Err())
	}
	require.NoError(t, s.Publish(ctx, "src", "good"))
	assert.Equal(t, "src good", e.next(t, 2*time.Second), "the first announcement handled")
	assert.Equal(t, int64(len(garbage)), tel.Int64(t, "rediscache.messages", rediscache.AttrOutcome.String("malformed")))
	assert.Equal(t, int64(1), tel.Int64(t, "rediscache.messages", rediscache.AttrOutcome.String("handled")))
}

// TestHandlerPanicIsRecovered checks that a panicking handler neither
// crashes the process nor ends the subscription.
func TestHandlerPanicIsRecovered(t *testing.T) {
	client := sharedClient(t)
	tel := telemetrytest.New(t)
	s := newStore(t, client, rediscache.WithMeterProvider(tel.MeterProvider))
	got := make(chan string, 10)
	stop, err := s.Subscribe(ctxWithin(t, 5*time.Second), func(source, key string) {
		if key == "boom" {
			panic("handler bug")
		}
		got <- key
	}, nil)
	require.NoError(t, err)
	defer stop()
	require.NoError(t, s.Publish(ctxWithin(t, 5*time.Second), "src", "boom", "after"))
	select {
	case k := <-got:
		assert.Equal(t, "after", k)
	case <-time.After(2 * time.Second):
		t.Fatal("the key after the one whose handler panicked was not handled")
	}
	assert.Equal(t, int64(1), tel.Int64(t, "rediscache.handler.panics"))
}

func TestSubscribeErrors(t *testing.T) {
	client := sharedClient(t)
	s := newStore(t, client)
	_, err := s.Subscribe(context.Background(), nil, nil)
	assert.ErrorContains(t, err, "handle", "Subscribe with a nil handler")

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = s.Subscribe(ctx, func(string, string) {}, nil)
	assert.ErrorIs(t, err, context.Canceled, "Subscribe with a canceled context")

	dead := newClient(t, "127.0.0.1:"+itoa(freePort(t)))
	ds, err := rediscache.New(dead)
	require.NoError(t, err)
	within(t, 2*time.Second, "Subscribe with nothing listening", func() {
		_, err = ds.Subscribe(ctxWithin(t, time.Second), func(string, string) {}, nil)
	})
	assert.Error(t, err, "Subscribe with nothing listening")
}
