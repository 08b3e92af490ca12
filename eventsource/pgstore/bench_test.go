package pgstore_test

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/trace"

	"github.com/otelpatterns/patterns/eventsource"
	"github.com/otelpatterns/patterns/eventsource/pgstore"
	"github.com/otelpatterns/patterns/internal/testenv"
)

// The benchmarks compare the store with a baseline written with pgx alone:
// the same rows, inserted into a table made like the store's events table
// (same columns, constraints and indexes; see benchSetup) with the
// statement a careful user would write: one INSERT … SELECT FROM unnest(…)
// per batch, in a transaction. The baseline checks no expected version
// beyond the unique (stream_id, version) constraint, skips no duplicate
// IDs, takes no lock and notifies no subscriber; the difference is what
// the store's guarantees cost.
//
// Each benchmark runs in a schema of its own, created by Migrate and
// dropped at the end, whose tables hold 10,000 events (in 100 streams) and
// have been analyzed before it starts (see benchSetup). They need
// PostgreSQL (PATTERNS_POSTGRES_URL):
//
//	PATTERNS_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test?sslmode=disable \
//		go test -run '^$' -bench . -benchtime 2s -count 3 ./eventsource/pgstore/
//
// The rows named pgstore use the global (no-op) OpenTelemetry providers;
// the rows named pgstore_sdk use SDK providers that record every span and
// metric (with no exporter), as a service with telemetry would.

// benchType is the event type of the benchmarks, and benchData a typical
// small payload.
const benchType = "bench.incremented.v1"

var benchData = []byte(`{"by":1,"reason":"a typical small event payload of about a hundred bytes"}`)

// incremented is the benchmarks' event, and counter their aggregate.
type incremented struct {
	By     int    `json:"by"`
	Reason string `json:"reason"`
}

type counter struct {
	eventsource.Base
	Total int `json:"total"`
}

func (c *counter) Apply(event any) error {
	e, ok := event.(incremented)
	if !ok {
		return fmt.Errorf("unexpected %T", event)
	}
	c.Total += e.By
	return nil
}

// benchEnv is a migrated store in a schema of its own, with the baseline's
// table next to its events table.
type benchEnv struct {
	pool   *pgxpool.Pool
	store  *pgstore.Store
	schema string // quoted
}

// benchSetup returns a benchEnv on a pool of maxConns connections, with
// the store's options opts.
func benchSetup(b *testing.B, maxConns int32, opts ...pgstore.Option) *benchEnv {
	b.Helper()
	ctx := context.Background()
	pool := testenv.PostgresPool(b, maxConns)
	schema := schemaName(b)
	store := newStoreIn(b, pool, schema, opts...)
	if err := store.Migrate(ctx); err != nil {
		b.Fatal(err)
	}
	env := &benchEnv{pool: pool, store: store, schema: pgx.Identifier{schema}.Sanitize()}
	// The baseline's table: the columns, constraints and indexes of the
	// store's events table (pgstore migrations 1, 3 and 4, less seq),
	// under other names.
	if _, err := pool.Exec(ctx, strings.ReplaceAll(`CREATE TABLE {s}.raw_events (
	position    bigserial PRIMARY KEY,
	id          uuid NOT NULL,
	stream_id   text NOT NULL,
	version     bigint NOT NULL,
	type        text NOT NULL,
	data        bytea NOT NULL,
	metadata    jsonb,
	recorded_at timestamptz NOT NULL DEFAULT clock_timestamp(),
	CONSTRAINT raw_events_id_key UNIQUE (id),
	CONSTRAINT raw_events_stream_version_key UNIQUE (stream_id, version)
)`, "{s}", env.schema)); err != nil {
		b.Fatal(err)
	}
	env.checkSameTables(b, schema)

	// A store in use holds events and has statistics. Without them the
	// benchmarks would measure a cold start: pgx prepares each statement
	// and PostgreSQL caches a generic plan after 5 executions, made while
	// the table is a few pages long; the store's check for stored IDs
	// (id = ANY($1)) is then planned as a sequential scan and stays one,
	// getting slower with every append, until autovacuum analyzes the
	// table (within a minute or so). Fill both tables alike and analyze.
	// The store's positions are its transaction's (one transaction, of
	// fewer than 16384 events).
	for _, table := range []string{"events", "raw_events"} {
		position := "pg_current_xact_id()::text::bigint * 16384 + g + 1"
		if table == "raw_events" {
			position = "nextval(pg_get_serial_sequence('" + env.schema + ".raw_events', 'position'))"
		}
		if _, err := pool.Exec(ctx, `INSERT INTO `+env.schema+`.`+table+` (position, id, stream_id, version, type, data)
SELECT `+position+`, gen_random_uuid(), 'prefill-' || (g / 100), g % 100 + 1, $1, $2
FROM generate_series(0, $3 - 1) g`, benchType, benchData, prefill); err != nil {
			b.Fatal(err)
		}
		if _, err := pool.Exec(ctx, `ANALYZE `+env.schema+`.`+table); err != nil {
			b.Fatal(err)
		}
	}
	return env
}

// prefill is how many events the tables hold before a benchmark starts.
const prefill = 10_000

// checkSameTables fails the benchmark if the baseline's table is not made
// like the store's: a migration that changed the events table must change
// the baseline too, or the comparison means nothing.
func (env *benchEnv) checkSameTables(b *testing.B, schema string) {
	b.Helper()
	describe := func(table string) string {
		var cols, idx string
		// Since migration 4 the store writes positions itself (no
		// default) and numbers events in seq, which only its lag gauge
		// reads; the baseline keeps a bigserial position, as a user's
		// table would, and has no seq: defaults and seq are left out.
		err := env.pool.QueryRow(context.Background(), `SELECT
	(SELECT string_agg(format('%s %s %s', column_name, data_type, is_nullable), ', ' ORDER BY ordinal_position)
		FROM information_schema.columns WHERE table_schema = $1 AND table_name = $2 AND column_name <> 'seq'),
	(SELECT string_agg(indexdef, ', ' ORDER BY indexdef) FROM pg_indexes WHERE schemaname = $1 AND tablename = $2)`,
			schema, table).Scan(&cols, &idx)
		if err != nil {
			b.Fatal(err)
		}
		// Names differ: the table's, its sequence's and its indexes'.
		return regexp.MustCompile(`\b(raw_)?events`).ReplaceAllString(cols+"; "+idx, "T")
	}
	if got, want := describe("raw_events"), describe("events"); got != want {
		b.Fatalf("the baseline's table differs from the store's:\n%s\nwant:\n%s", got, want)
	}
}

// rawAppend inserts events as versions from+1… of stream, as the baseline:
// one INSERT … SELECT FROM unnest(…) in a transaction. The IDs are new,
// as the store gives events without one; the metadata is NULL, as the
// store's is without a propagator.
func (env *benchEnv) rawAppend(ctx context.Context, stream string, from int64, n int) error {
	ids := make([]pgtype.UUID, n)
	versions := make([]int64, n)
	types := make([]string, n)
	data := make([][]byte, n)
	metadata := make([][]byte, n)
	for i := range n {
		ids[i] = pgtype.UUID{Bytes: uuid.New(), Valid: true}
		versions[i] = from + 1 + int64(i)
		types[i] = benchType
		data[i] = benchData
	}
	tx, err := env.pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, `INSERT INTO `+env.schema+`.raw_events (id, stream_id, version, type, data, metadata)
SELECT u.id, $1, u.version, u.type, u.data, u.metadata
FROM unnest($2::uuid[], $3::bigint[], $4::text[], $5::bytea[], $6::jsonb[]) AS u(id, version, type, data, metadata)`,
		stream, ids, versions, types, data, metadata); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

// newEvents returns n new events of the benchmarks' type and payload.
func newEvents(n int) []eventsource.NewEvent {
	out := make([]eventsource.NewEvent, n)
	for i := range out {
		out[i] = eventsource.NewEvent{Type: benchType, Data: benchData}
	}
	return out
}

// sdkOptions returns store options with SDK providers that record every
// span and metric, exporting nothing, shut down when b ends.
func sdkOptions(b *testing.B) []pgstore.Option {
	tp := trace.NewTracerProvider(trace.WithSampler(trace.AlwaysSample()))
	mp := metric.NewMeterProvider(metric.WithReader(metric.NewManualReader()))
	b.Cleanup(func() {
		_ = tp.Shutdown(context.Background())
		_ = mp.Shutdown(context.Background())
	})
	return []pgstore.Option{pgstore.WithTracerProvider(tp), pgstore.WithMeterProvider(mp)}
}

// reportEventsPerSecond reports events/s for events appended in the time
// the benchmark has run.
func reportEventsPerSecond(b *testing.B, events int64) {
	b.ReportMetric(float64(events)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkAppend measures appends to one stream, each expecting the
// stream's version: single events (latency) and batches of 100 events
// (throughput, in events/s).
func BenchmarkAppend(b *testing.B) {
	for _, size := range []int{1, 100} {
		name := "single"
		if size > 1 {
			name = fmt.Sprintf("batch%d", size)
		}
		b.Run(name+"/raw", func(b *testing.B) {
			env := benchSetup(b, 2)
			ctx := context.Background()
			var version int64
			for b.Loop() {
				if err := env.rawAppend(ctx, "stream-1", version, size); err != nil {
					b.Fatal(err)
				}
				version += int64(size)
			}
			reportEventsPerSecond(b, version)
		})
		for _, sdk := range []bool{false, true} {
			rowName := name + "/pgstore"
			if sdk {
				rowName += "_sdk"
			}
			b.Run(rowName, func(b *testing.B) {
				var opts []pgstore.Option
				if sdk {
					opts = sdkOptions(b)
				}
				env := benchSetup(b, 2, opts...)
				ctx := context.Background()
				var version int64
				for b.Loop() {
					if _, err := env.store.Append(ctx, "stream-1", eventsource.Exact(version), newEvents(size)...); err != nil {
						b.Fatal(err)
					}
					version += int64(size)
				}
				reportEventsPerSecond(b, version)
			})
		}
		// The same appends, uploading their events before the lock as
		// appends larger than StageAbove do: the cost of the upload table.
		b.Run(name+"/pgstore_staged", func(b *testing.B) {
			env := benchSetup(b, 2)
			pgstore.SetStageAbove(env.store, 0)
			ctx := context.Background()
			var version int64
			for b.Loop() {
				if _, err := env.store.Append(ctx, "stream-1", eventsource.Exact(version), newEvents(size)...); err != nil {
					b.Fatal(err)
				}
				version += int64(size)
			}
			reportEventsPerSecond(b, version)
		})
	}
}

// BenchmarkAppendInterleaved appends batches of 100 events alternately
// through the baseline and the store (to a stream of the same name in
// each one's table), and reports each one's events/s and their ratio
// (pgstore/raw). Alternating exposes both to the same state of the
// server and its disk, whose fsync latency drifts over seconds, so the
// ratio is steadier than one computed from separate benchmarks.
func BenchmarkAppendInterleaved(b *testing.B) {
	const size = 100
	env := benchSetup(b, 2)
	ctx := context.Background()
	var version int64
	var rawTime, storeTime time.Duration
	for b.Loop() {
		start := time.Now()
		if err := env.rawAppend(ctx, "stream-1", version, size); err != nil {
			b.Fatal(err)
		}
		mid := time.Now()
		if _, err := env.store.Append(ctx, "stream-1", eventsource.Exact(version), newEvents(size)...); err != nil {
			b.Fatal(err)
		}
		rawTime += mid.Sub(start)
		storeTime += time.Since(mid)
		version += size
	}
	rawRate := float64(version) / rawTime.Seconds()
	storeRate := float64(version) / storeTime.Seconds()
	b.ReportMetric(rawRate, "raw_events/s")
	b.ReportMetric(storeRate, "pgstore_events/s")
	b.ReportMetric(storeRate/rawRate, "pgstore/raw")
}

// BenchmarkAppendParallel measures single-event appends from 8 goroutines
// at once (4 per core on 2 cores), each to a stream of its own.
func BenchmarkAppendParallel(b *testing.B) {
	const perCPU = 4
	for _, raw := range []bool{true, false} {
		name := "pgstore"
		if raw {
			name = "raw"
		}
		b.Run(name, func(b *testing.B) {
			env := benchSetup(b, 16)
			ctx := context.Background()
			var goroutines, appended atomic.Int64
			b.SetParallelism(perCPU)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				stream := fmt.Sprintf("stream-%d", goroutines.Add(1))
				var version int64
				for pb.Next() {
					var err error
					if raw {
						err = env.rawAppend(ctx, stream, version, 1)
					} else {
						_, err = env.store.Append(ctx, stream, eventsource.Exact(version), newEvents(1)...)
					}
					if err != nil {
						b.Error(err)
						return
					}
					version++
				}
				appended.Add(version)
			})
			reportEventsPerSecond(b, appended.Load())
		})
	}
}

// BenchmarkLoad measures loading an aggregate whose stream has 1,000
// events: through the repository with no snapshot (every event read and
// applied), with a snapshot at the last event, and with a snapshot 99
// events behind (the most a load replays with snapshots every 100 events);
// and, as the baseline, a pgx query of the same rows, each decoded with
// encoding/json and applied.
func BenchmarkLoad(b *testing.B) {
	const streamLen = 1000
	const stream = "stream-1"
	for _, bc := range []struct {
		name       string
		snapshotAt int64 // 0 for none
	}{
		{"raw", 0},
		{"no_snapshot", 0},
		{"snapshot_at_last", streamLen},
		{"snapshot_99_behind", streamLen - 99},
	} {
		b.Run(fmt.Sprintf("stream%d/%s", streamLen, bc.name), func(b *testing.B) {
			env := benchSetup(b, 2)
			ctx := context.Background()
			for v := int64(0); v < streamLen; v += 100 {
				if _, err := env.store.Append(ctx, stream, eventsource.Exact(v), newEvents(100)...); err != nil {
					b.Fatal(err)
				}
				if err := env.rawAppend(ctx, stream, v, 100); err != nil {
					b.Fatal(err)
				}
			}
			if bc.name == "raw" {
				benchRawLoad(b, env, stream, streamLen)
				return
			}

			reg := eventsource.NewRegistry()
			eventsource.Register[incremented](reg, benchType)
			var opts []eventsource.RepositoryOption
			if bc.snapshotAt > 0 {
				// The snapshot interval does not matter to Load.
				opts = append(opts, eventsource.WithSnapshots(env.store, 100))
				data, err := json.Marshal(counter{Total: int(bc.snapshotAt)})
				if err != nil {
					b.Fatal(err)
				}
				if err := env.store.SaveSnapshot(ctx, eventsource.Snapshot{StreamID: stream, Version: bc.snapshotAt, Data: data}); err != nil {
					b.Fatal(err)
				}
			}
			repo, err := eventsource.NewRepository(env.store, reg, func() *counter { return &counter{} }, opts...)
			if err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				c, err := repo.Load(ctx, stream)
				if err != nil {
					b.Fatal(err)
				}
				if c.Total != streamLen || c.Version() != streamLen {
					b.Fatalf("Load() = total %d at version %d; want %d at %d", c.Total, c.Version(), streamLen, streamLen)
				}
			}
		})
	}
}

// benchRawLoad is the baseline of BenchmarkLoad: one query for the
// stream's rows, each decoded and applied.
func benchRawLoad(b *testing.B, env *benchEnv, stream string, streamLen int) {
	ctx := context.Background()
	query := `SELECT version, type, data FROM ` + env.schema + `.raw_events WHERE stream_id = $1 ORDER BY version`
	for b.Loop() {
		rows, err := env.pool.Query(ctx, query, stream)
		if err != nil {
			b.Fatal(err)
		}
		var c counter
		var version int64
		var typ string
		var data []byte
		for rows.Next() {
			if err := rows.Scan(&version, &typ, &data); err != nil {
				b.Fatal(err)
			}
			if typ != benchType {
				b.Fatalf("type %q", typ)
			}
			var e incremented
			if err := json.Unmarshal(data, &e); err != nil {
				b.Fatal(err)
			}
			if err := c.Apply(e); err != nil {
				b.Fatal(err)
			}
		}
		if err := rows.Err(); err != nil {
			b.Fatal(err)
		}
		if c.Total != streamLen || version != int64(streamLen) {
			b.Fatalf("raw load = total %d at version %d; want %d", c.Total, version, streamLen)
		}
	}
}

// BenchmarkAppendConcurrent measures single-event appends from 8 and 32
// goroutines at once, each to a stream of its own, against the raw
// baseline in the same run: each iteration is one round of appendsPerRound
// appends by each goroutine through raw pgx, then through the store
// (alternating which goes first), so that both see the same load of a
// shared machine. It reports the medians of the rounds' rates and the
// median of the rounds' ratios (pgstore/raw); run it with -benchtime Nx
// for N rounds.
func BenchmarkAppendConcurrent(b *testing.B) {
	const appendsPerRound = 40
	for _, goroutines := range []int{8, 32} {
		b.Run(fmt.Sprintf("goroutines=%d", goroutines), func(b *testing.B) {
			env := benchSetup(b, int32(goroutines)+2)
			ctx := context.Background()
			versions := make([]int64, goroutines) // of the store's streams
			rawVersions := make([]int64, goroutines)
			round := func(raw bool, r int) float64 {
				start := time.Now()
				var wg sync.WaitGroup
				for g := range goroutines {
					wg.Go(func() {
						stream := fmt.Sprintf("stream-%d", g)
						for range appendsPerRound {
							var err error
							if raw {
								err = env.rawAppend(ctx, stream, rawVersions[g], 1)
								rawVersions[g]++
							} else {
								_, err = env.store.Append(ctx, stream, eventsource.Exact(versions[g]), newEvents(1)...)
								versions[g]++
							}
							if err != nil {
								b.Error(err)
								return
							}
						}
					})
				}
				wg.Wait()
				return float64(goroutines*appendsPerRound) / time.Since(start).Seconds()
			}
			var rawRates, storeRates, ratios []float64
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				var raw, store float64
				if i%2 == 0 {
					raw, store = round(true, i), round(false, i)
				} else {
					store, raw = round(false, i), round(true, i)
				}
				rawRates = append(rawRates, raw)
				storeRates = append(storeRates, store)
				ratios = append(ratios, store/raw)
			}
			b.ReportMetric(median(rawRates), "raw_events/s")
			b.ReportMetric(median(storeRates), "pgstore_events/s")
			b.ReportMetric(median(ratios), "pgstore/raw")
			b.Logf("ratios of the rounds: %.2f", ratios)
		})
	}
}

// median returns the median of xs, which it sorts.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	slices.Sort(xs)
	if n := len(xs); n%2 == 0 {
		return (xs[n/2-1] + xs[n/2]) / 2
	}
	return xs[len(xs)/2]
}
