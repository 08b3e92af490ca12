package aggregate_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/otelpatterns/patterns/cache"
	"github.com/otelpatterns/patterns/cache/rediscache"
	"github.com/otelpatterns/patterns/gateway/aggregate"
	"github.com/otelpatterns/patterns/internal/testenv"
)

// TestSharedL2 checks that two instances of a BFF share parts' answers
// through Redis: the second instance, whose L1 is empty, does not call
// the upstream again, for the same user; another user still does.
func TestSharedL2(t *testing.T) {
	addr := testenv.RedisAddr(t)
	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	prefix := "aggregate-test:" + hex.EncodeToString(rnd[:]) + ":"
	client := redis.NewClient(&redis.Options{Addr: addr, ContextTimeoutEnabled: true})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if keys, _ := client.Keys(ctx, prefix+"*").Result(); len(keys) > 0 {
			client.Del(ctx, keys...)
		}
		_ = client.Close()
	})
	// An instance: its own store client and L1, as a process of its own.
	instanceCache := func() *cache.Cache[aggregate.Entry] {
		store, err := rediscache.New(client, rediscache.WithPrefix(prefix))
		if err != nil {
			t.Fatal(err)
		}
		c, err := cache.New[aggregate.Entry](cache.WithStore(store), cache.WithTTL(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = c.Close()
			_ = store.Close()
		})
		return c
	}

	s := newShop(t)
	parts := s.parts()
	parts[1].TTL = time.Hour // the customer
	first := startWith(t, upstreamsOf(s.upstreams()...), routeFor("GET /orders/{id}"), parts, nil, aggregate.WithCache(instanceCache()))
	second := startWith(t, upstreamsOf(s.upstreams()...), routeFor("GET /orders/{id}"), parts, nil, aggregate.WithCache(instanceCache()))

	if resp, doc := first.get(t, "/orders/7", "Authorization", "Bearer ada"); resp.StatusCode != 200 {
		t.Fatalf("first instance: %d %v", resp.StatusCode, doc)
	}
	if resp, doc := second.get(t, "/orders/7", "Authorization", "Bearer ada"); resp.StatusCode != 200 || field(doc, "customer.id") != `"c-7"` {
		t.Fatalf("second instance: %d %v", resp.StatusCode, doc)
	}
	if n := s.customers.hits.Load(); n != 1 {
		t.Errorf("customers called %d times by two instances; want 1 (the second from Redis)", n)
	}
	second.get(t, "/orders/7", "Authorization", "Bearer bob")
	if n := s.customers.hits.Load(); n != 2 {
		t.Errorf("customers called %d times after another user; want 2", n)
	}
}
