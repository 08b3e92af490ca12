package aggregate_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/otelpatterns/patterns/cache"
	"github.com/otelpatterns/patterns/cache/rediscache"
	"github.com/otelpatterns/patterns/gateway"
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

// hangingRedis accepts connections and reads from them, but never
// answers: a frozen Redis, or one behind a partition that drops packets.
func hangingRedis(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		conns []net.Conn
		wg    sync.WaitGroup
	)
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Go(func() { _, _ = io.Copy(io.Discard, c) })
		}
	})
	t.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		for _, c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

// TestFrozenL2KeepsRouteDeadline checks that with the L2 (Redis) frozen,
// a part's answer (TTL) or a document (WithTTL) that came in time is
// not held past the route's deadline by its cache write, which waits
// for no more than the time the request has left: the response is a
// complete 200, in time.
func TestFrozenL2KeepsRouteDeadline(t *testing.T) {
	const timeout = 300 * time.Millisecond
	for _, tt := range []struct {
		name string
		part aggregate.Part
		opts []aggregate.Option
	}{
		{"part", aggregate.Part{TTL: time.Minute}, nil},
		{"document", aggregate.Part{}, []aggregate.Option{aggregate.WithTTL(time.Minute)}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			client := redis.NewClient(&redis.Options{Addr: hangingRedis(t), ContextTimeoutEnabled: true, MaxRetries: -1,
				DialTimeout: 100 * time.Millisecond})
			store, err := rediscache.New(client, rediscache.WithPrefix("aggregate-frozen:"), rediscache.WithTimeout(time.Second))
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
				_ = client.Close()
			})
			u := newUpstream(t, "orders", jsonAnswer(map[string]any{"id": "7"}))
			part := tt.part
			part.Name, part.Upstream, part.Path = "order", "orders", "/orders/{id}"
			st := startWith(t, upstreamsOf(u), gateway.Route{Pattern: "GET /orders/{id}", Timeout: timeout},
				[]aggregate.Part{part}, nil, append(tt.opts, aggregate.WithCache(c))...)
			begin := time.Now()
			resp, doc := st.get(t, "/orders/7")
			took := time.Since(begin)
			if resp.StatusCode != http.StatusOK {
				t.Errorf("upstream answered in time, L2 frozen: %d %v after %v; want 200", resp.StatusCode, doc, took)
			}
			if took > timeout+60*time.Millisecond {
				t.Errorf("answered after %v, past the route's Timeout of %v", took, timeout)
			}
		})
	}
}
