package shop

import (
	"context"
	"crypto/rand"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"

	"github.com/otelpatterns/patterns/internal/testenv"
)

// realBackends returns the backends of the environment, each private to
// the test and removed when it ends: a schema, a stream, Redis keys.
func realBackends(t *testing.T) Backends {
	t.Helper()
	prefix := "shoptest_" + strings.ToLower(rand.Text()[:10])
	b := Backends{StreamPrefix: prefix}

	b.Postgres = testenv.PostgresPool(t, 20)
	b.Schema = testenv.Schema(t, "shop")

	rdb := redis.NewClient(&redis.Options{Addr: testenv.RedisAddr(t), ContextTimeoutEnabled: true})
	t.Cleanup(func() {
		ctx := context.Background()
		iter := rdb.Scan(ctx, 0, prefix+"*", 100).Iterator()
		for iter.Next(ctx) {
			rdb.Del(ctx, iter.Val())
		}
		rdb.Close()
	})
	b.Redis = rdb

	nc, err := nats.Connect(testenv.NATSURL(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if js, err := jetstream.New(nc); err == nil {
			_ = js.DeleteStream(ctx, natsName(prefix))
		}
		nc.Close()
	})
	b.NATS = nc
	return b
}

// The scenario on PostgreSQL (event store, saga log, checkpoints, read
// model), Redis (the catalogue's L2) and NATS JetStream (the bus).
func TestFlowRealBackends(t *testing.T) {
	b := realBackends(t)
	flow(t, Config{Backends: b})

	// What the flow left is where it should be: the events in the schema,
	// the catalogue in Redis, the events on the stream.
	ctx := testenv.Context(t, 10*time.Second)
	var events, views int
	if err := b.Postgres.QueryRow(ctx, `SELECT (SELECT count(*) FROM "`+b.Schema+`".events), (SELECT count(*) FROM "`+b.Schema+`".order_views)`).Scan(&events, &views); err != nil {
		t.Fatal(err)
	}
	if events == 0 || views == 0 {
		t.Errorf("PostgreSQL holds %d events and %d order views", events, views)
	}
	keys, err := b.Redis.Keys(ctx, b.StreamPrefix+":catalogue:*").Result()
	if err != nil || len(keys) == 0 {
		t.Errorf("Redis holds no catalogue keys (%v)", err)
	}
	js, err := jetstream.New(b.NATS)
	if err != nil {
		t.Fatal(err)
	}
	st, err := js.Stream(ctx, natsName(b.StreamPrefix))
	if err != nil {
		t.Fatal(err)
	}
	if info, err := st.Info(ctx); err != nil || info.State.Msgs == 0 {
		t.Errorf("the stream holds no messages (%v)", err)
	}
}

// With Redis, a second catalogue (another process) reads what the first
// loaded from the shared L2, not from its repository.
func TestCatalogueRedis(t *testing.T) {
	b := realBackends(t)
	b.Postgres, b.NATS = nil, nil
	first := started(t, Config{Only: Catalogue, Backends: b})
	second := started(t, Config{Only: Catalogue, Backends: b})
	var p Product
	if code := getJSON(t, first.URLs().Catalogue+"/products/BOOK-1", &p); code != 200 {
		t.Fatalf("GET: %d", code)
	}
	eventually(t, 5*time.Second, func() error {
		var q Product
		if code := getJSON(t, second.URLs().Catalogue+"/products/BOOK-1", &q); code != 200 || q != p {
			t.Fatalf("the second catalogue answered %d %+v, want %+v", code, q, p)
		}
		if n := second.catalogue.loads.Load(); n != 0 {
			return fmt.Errorf("the second catalogue read its repository %d times", n)
		}
		return nil
	})
}
