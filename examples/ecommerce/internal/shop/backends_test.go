package shop

import (
	"context"
	"crypto/rand"
	"fmt"
	"net/http"
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
	// The first fills L2 in the background after it answers: a read of
	// the second before that lands would load from its own repository.
	eventually(t, 5*time.Second, func() error {
		keys, err := b.Redis.Keys(context.Background(), b.StreamPrefix+":catalogue:*").Result()
		if err != nil || len(keys) == 0 {
			return fmt.Errorf("the first catalogue's L2 fill has not landed (%v)", err)
		}
		return nil
	})
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

// A restarted order service finds on PostgreSQL and NATS what the last
// one left: the read model, the placed orders' commands (a copy of a
// request still places nothing), the stats rebuilt from the store.
func TestRestart(t *testing.T) {
	b := realBackends(t)
	first, stop := startedStop(t, Config{Backends: b})
	_, out := placeOrder(t, first, "k-restart", "judy", Line{"TEE-1", 1})
	id, _ := out["order_id"].(string)
	orderEnds(t, first, id, "completed", 15*time.Second)
	stop()

	second := started(t, Config{Backends: b})
	v, err := getOrder(second, id)
	if err != nil || v.Status != "completed" {
		t.Fatalf("after a restart: %+v, %v", v, err)
	}
	code, again := placeOrder(t, second, "k-restart", "judy", Line{"TEE-1", 1})
	if code != http.StatusAccepted || again["order_id"] != id {
		t.Fatalf("the request again after a restart: %d %v, want 202 %s", code, again, id)
	}
	eventually(t, 10*time.Second, func() error {
		if st := second.OrderStats(); st.Orders != 1 || st.ByStatus["completed"] != 1 {
			return fmt.Errorf("stats %+v, want the one completed order", st)
		}
		return nil
	})
	// No second saga: the inventory of this process saw no reservation.
	if second.stock.held(id) {
		t.Errorf("the order was reserved again after the restart")
	}
}
