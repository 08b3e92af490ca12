package rediscache_test

import (
	"context"
	"testing"
	"time"

	"github.com/otelpatterns/patterns/cache/rediscache"
)

// BenchmarkStore measures a Get and a Set round trip through the store,
// against the same commands sent with the bare go-redis client. It needs
// PATTERNS_REDIS_ADDR.
func BenchmarkStore(b *testing.B) {
	ctx := context.Background()
	client := sharedClient(b)
	value := []byte(`{"sku":"sku-42","price":1999}`)
	b.Run("get/bare", func(b *testing.B) {
		prefix, _ := namespace(b)
		b.Cleanup(func() { deleteKeys(b, client, prefix) })
		if err := client.Set(ctx, prefix+"k", value, time.Minute).Err(); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := client.Get(ctx, prefix+"k").Bytes(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("get/store", func(b *testing.B) {
		s := newStore(b, client)
		if err := s.Set(ctx, "k", value, time.Minute); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := s.Get(ctx, "k"); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("get/store-without-breaker", func(b *testing.B) {
		s := newStore(b, client, rediscache.WithoutBreaker())
		if err := s.Set(ctx, "k", value, time.Minute); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := s.Get(ctx, "k"); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("set/bare", func(b *testing.B) {
		prefix, _ := namespace(b)
		b.Cleanup(func() { deleteKeys(b, client, prefix) })
		b.ReportAllocs()
		for b.Loop() {
			if err := client.Set(ctx, prefix+"k", value, time.Minute).Err(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("set/store", func(b *testing.B) {
		s := newStore(b, client)
		b.ReportAllocs()
		for b.Loop() {
			if err := s.Set(ctx, "k", value, time.Minute); err != nil {
				b.Fatal(err)
			}
		}
	})
}
