package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/otelpatterns/patterns/examples/ecommerce/internal/shop"
	"github.com/otelpatterns/patterns/examples/internal/examplepg"
	"github.com/otelpatterns/patterns/hexagonal"
)

// The variables that select the real backends (as in internal/testenv).
const (
	redisVar = "PATTERNS_REDIS_ADDR"
	natsVar  = "PATTERNS_NATS_URL"
	// kafkaVar holds the seed brokers of a Kafka cluster, comma-separated,
	// for -kafka; without it -kafka starts a kfake cluster in the process.
	kafkaVar = "PATTERNS_KAFKA_BROKERS"
)

// backends are the stores, cache and bus of one run, and how to release
// them.
type backends struct {
	shop   shop.Backends
	names  []string                 // what runs where, for the story
	checks []hexagonal.HealthOption // readiness of each real backend

	// private says the run made its schema and prefix for itself: close
	// removes them, with everything in them.
	private bool
	closers []func(context.Context) error
	once    sync.Once
	err     error
}

// openBackends connects to the backends the PATTERNS_* variables name,
// in memory for the others. With private, the PostgreSQL schema, the
// JetStream stream prefix and the Redis key prefix are new, for this run
// only, and close removes them; without, they are "ecommerce" and
// "ECOMMERCE" (or $ECOMMERCE_SCHEMA, $ECOMMERCE_STREAM_PREFIX), shared by
// the processes of one deployment and kept. only is the service run
// alone ("" for all): the order service uses PostgreSQL and NATS, the
// catalogue Redis, the others none, so that a process connects only to
// what its service uses. With kafka the events go over Kafka: the cluster
// of PATTERNS_KAFKA_BROKERS, or a kfake cluster of three brokers started
// in the process (and stopped by close) when that is not set.
func openBackends(ctx context.Context, private bool, only string, kafka bool) (_ *backends, err error) {
	b := &backends{private: private}
	defer func() {
		if err != nil {
			err = errors.Join(err, b.close(context.WithoutCancel(ctx)))
		}
	}()
	suffix := ""
	if private {
		var r [4]byte
		_, _ = rand.Read(r[:])
		suffix = "_" + hex.EncodeToString(r[:])
	}
	b.shop.StreamPrefix = envOr("ECOMMERCE_STREAM_PREFIX", "ECOMMERCE") + strings.ToUpper(suffix)

	orders, catalogue := only == "" || only == "orders", only == "" || only == "catalogue"
	if url := os.Getenv(examplepg.URLVar); url != "" && orders {
		if err := b.openPostgres(ctx, url, suffix); err != nil {
			return nil, err
		}
	} else if orders {
		b.names = append(b.names, "orders in memory (event store, saga log, checkpoints)")
	}
	if addr := os.Getenv(redisVar); addr != "" && catalogue {
		rdb := redis.NewClient(&redis.Options{Addr: addr})
		b.closers = append(b.closers, func(ctx context.Context) error {
			if b.private {
				return errors.Join(deleteKeys(ctx, rdb, b.shop.StreamPrefix), rdb.Close())
			}
			return rdb.Close()
		})
		if err := rdb.Ping(ctx).Err(); err != nil {
			return nil, fmt.Errorf("connecting to Redis at %s (%s): %w", addr, redisVar, err)
		}
		b.shop.Redis = rdb
		b.checks = append(b.checks, hexagonal.WithReadinessCheck("redis", hexagonal.RedisCheck(rdb)))
		b.names = append(b.names, "catalogue cache L1 in process, L2 in Redis")
	} else if catalogue {
		b.names = append(b.names, "catalogue cache in process")
	}
	if kafka && orders {
		if err := b.openKafka(ctx); err != nil {
			return nil, err
		}
	} else if url := os.Getenv(natsVar); url != "" && orders {
		nc, err := nats.Connect(url, nats.Name("examples/ecommerce"))
		if err != nil {
			return nil, fmt.Errorf("connecting to NATS at %s (%s): %w", url, natsVar, err)
		}
		b.closers = append(b.closers, func(ctx context.Context) error {
			var err error
			if b.private {
				err = deleteStreams(ctx, nc, b.shop.StreamPrefix)
			}
			nc.Close()
			return err
		})
		b.shop.NATS = nc
		b.checks = append(b.checks, hexagonal.WithReadinessCheck("nats", hexagonal.NATSCheck(nc)))
		b.names = append(b.names, "events over NATS JetStream")
	} else if orders {
		b.names = append(b.names, "events on the in-memory bus")
	}
	return b, nil
}

// openKafka sets the bus on the Kafka cluster of PATTERNS_KAFKA_BROKERS, or
// on a kfake cluster of its own; a private run deletes its topics at the
// end.
func (b *backends) openKafka(ctx context.Context) error {
	brokers := strings.Split(os.Getenv(kafkaVar), ",")
	if brokers[0] == "" {
		c, err := kfake.NewCluster(kfake.NumBrokers(3))
		if err != nil {
			return fmt.Errorf("starting an in-process Kafka cluster (kfake): %w", err)
		}
		b.closers = append(b.closers, func(context.Context) error { c.Close(); return nil })
		brokers = c.ListenAddrs()
		b.names = append(b.names, "events over Kafka (kfake, 3 brokers in the process)")
	} else {
		b.names = append(b.names, "events over Kafka ("+kafkaVar+")")
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return fmt.Errorf("connecting to Kafka at %v: %w", brokers, err)
	}
	b.closers = append(b.closers, func(ctx context.Context) error {
		defer cl.Close()
		if !b.private {
			return nil
		}
		return deleteTopics(ctx, kadm.NewClient(cl), shop.KafkaTopicPrefix(b.shop.StreamPrefix))
	})
	if err := cl.Ping(ctx); err != nil {
		return fmt.Errorf("connecting to Kafka at %v: %w", brokers, err)
	}
	b.shop.Kafka = brokers
	b.checks = append(b.checks, hexagonal.WithReadinessCheck("kafka", cl.Ping))
	return nil
}

// deleteTopics deletes the Kafka topics whose names start with prefix:
// those of a private run.
func deleteTopics(ctx context.Context, adm *kadm.Client, prefix string) error {
	topics, err := adm.ListTopics(ctx)
	if err != nil {
		return err
	}
	var names []string
	for _, t := range topics.Names() {
		if strings.HasPrefix(t, prefix) {
			names = append(names, t)
		}
	}
	if len(names) == 0 {
		return nil
	}
	resp, err := adm.DeleteTopics(ctx, names...)
	if err != nil {
		return err
	}
	return resp.Error()
}

// openPostgres connects to PostgreSQL and creates the schema.
func (b *backends) openPostgres(ctx context.Context, url, suffix string) error {
	pool, schema, drop, err := examplepg.Open(ctx, url, "ecommerce_example_", 10)
	if err != nil {
		return err
	}
	if !b.private {
		schema = envOr("ECOMMERCE_SCHEMA", "ecommerce")
		drop = func(context.Context) error { pool.Close(); return nil }
	}
	b.closers = append(b.closers, drop)
	if _, err := pool.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+pgx.Identifier{schema}.Sanitize()); err != nil {
		return fmt.Errorf("creating schema %s: %w", schema, err)
	}
	b.shop.Postgres, b.shop.Schema = pool, schema
	b.checks = append(b.checks, hexagonal.WithReadinessCheck("postgres", hexagonal.PingCheck(pool)))
	b.names = append(b.names, "orders in PostgreSQL (schema "+schema+")")
	return nil
}

// close releases the backends, removing what a private run made; only
// its first call does anything.
func (b *backends) close(ctx context.Context) error {
	b.once.Do(func() {
		for i := len(b.closers) - 1; i >= 0; i-- {
			b.err = errors.Join(b.err, b.closers[i](ctx))
		}
	})
	return b.err
}

// component is the backends as the App's first component: stopped last,
// after every service that uses them.
func (b *backends) component() hexagonal.Component {
	return hexagonal.Component{Name: "backends", Stop: b.close}
}

// deleteStreams deletes the JetStream streams whose names start with
// prefix: those of a private run.
func deleteStreams(ctx context.Context, nc *nats.Conn, prefix string) error {
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	var errs []error
	names := js.StreamNames(ctx)
	var mine []string
	for name := range names.Name() {
		if strings.HasPrefix(name, prefix) {
			mine = append(mine, name)
		}
	}
	if err := names.Err(); err != nil && !errors.Is(err, jetstream.ErrEndOfData) {
		errs = append(errs, err)
	}
	for _, name := range mine {
		if err := js.DeleteStream(ctx, name); err != nil {
			errs = append(errs, fmt.Errorf("deleting stream %s: %w", name, err))
		}
	}
	return errors.Join(errs...)
}

// deleteKeys deletes the Redis keys that start with prefix: those of a
// private run.
func deleteKeys(ctx context.Context, rdb *redis.Client, prefix string) error {
	iter := rdb.Scan(ctx, 0, prefix+"*", 500).Iterator()
	var keys []string
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	if err := iter.Err(); err != nil {
		return err
	}
	if len(keys) == 0 {
		return nil
	}
	return rdb.Del(ctx, keys...).Err()
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
