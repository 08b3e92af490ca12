package pglog_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/otelpatterns/patterns/saga"
	"github.com/otelpatterns/patterns/saga/pglog"
)

// BenchmarkAppend measures appending one transition, which checks the
// lease, updates the saga's row and inserts the transition in one
// statement, against a bare pgx INSERT of the same row into a table made
// like the log's transitions table (same columns and primary key, no
// foreign key), which checks nothing. The difference is what the fencing
// costs. It needs PostgreSQL (PATTERNS_POSTGRES_URL):
//
//	PATTERNS_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test?sslmode=disable \
//		go test -run '^$' -bench . -benchtime 2s -count 3 ./saga/pglog/
//
// The row named pglog uses the global (no-op) OpenTelemetry providers;
// pglog_sdk uses SDK providers that record every span and metric (with no
// exporter), as a service with telemetry would.
func BenchmarkAppend(b *testing.B) {
	ctx := context.Background()
	l, pool, rawSchema := newLog(b, 4)
	schema := pglog.Schema(l)
	data := []byte(`{"order":42,"total":1200,"reserved":true,"reason":"a typical small saga payload"}`)
	if _, err := pool.Exec(ctx, `CREATE TABLE `+schema+`.bare_transitions (LIKE `+schema+`.transitions INCLUDING ALL)`); err != nil {
		b.Fatal(err)
	}
	bare := `INSERT INTO ` + schema + `.bare_transitions (saga_id, seq, status, step, phase, kind, attempt, data, error)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`

	n := 0 // makes the saga of each run of a sub-benchmark new
	b.Run("bare", func(b *testing.B) {
		n++
		id := fmt.Sprint("bare-", n)
		b.ReportAllocs()
		for i := int64(1); b.Loop(); i++ {
			if _, err := pool.Exec(ctx, bare, id, i, "", "reserve", "forward", "succeeded", 1, data, ""); err != nil {
				b.Fatal(err)
			}
		}
	})
	run := func(b *testing.B, l *pglog.Log, id string) {
		if err := l.Create(ctx, saga.Record{ID: id, Name: "bench", Version: 1}, "me", time.Hour); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for i := int64(1); b.Loop(); i++ {
			t := saga.Transition{Seq: i, Step: "reserve", Phase: saga.Forward, Kind: saga.Succeeded, Attempt: 1, Data: data}
			if err := l.Append(ctx, id, "me", t); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("pglog", func(b *testing.B) {
		n++
		run(b, l, fmt.Sprint("pglog-", n))
	})
	tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.AlwaysSample()))
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
	b.Cleanup(func() {
		_ = tp.Shutdown(context.Background())
		_ = mp.Shutdown(context.Background())
	})
	sdk, err := pglog.New(pool, pglog.WithSchema(rawSchema), pglog.WithTracerProvider(tp), pglog.WithMeterProvider(mp))
	if err != nil {
		b.Fatal(err)
	}
	b.Run("pglog_sdk", func(b *testing.B) {
		n++
		run(b, sdk, fmt.Sprint("sdk-", n))
	})
}
