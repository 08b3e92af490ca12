package pgcdc_test

import (
	"context"
	"errors"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelpatterns/patterns/gateway/strangler/pgcdc"
	"github.com/otelpatterns/patterns/internal/telemetry/telemetrytest"
	"github.com/otelpatterns/patterns/internal/testenv"
)

// documentedSpans are the consumer's spans as doc.go describes them.
var documentedSpans = []telemetrytest.Span{{
	Name: pgcdc.SpanOperation + " {slot}",
	Kind: trace.SpanKindConsumer,
	Required: []attribute.Key{semconv.DBSystemNameKey, semconv.DBNamespaceKey, semconv.ServerAddressKey,
		semconv.MessagingOperationTypeKey, semconv.MessagingOperationNameKey, semconv.MessagingConsumerGroupNameKey,
		semconv.MessagingDestinationNameKey, semconv.MessagingBatchMessageCountKey,
		pgcdc.AttrXID, pgcdc.AttrCommitLSN, pgcdc.AttrAttempts},
	Optional: []attribute.Key{semconv.ServerPortKey, semconv.ErrorTypeKey},
}}

// documentedMetrics are the consumer's metrics as doc.go describes them.
var documentedMetrics = []telemetrytest.Instrument{
	{Name: pgcdc.MetricChanges, Kind: telemetrytest.Counter, Unit: "{change}",
		Required: []attribute.Key{semconv.DBCollectionNameKey, pgcdc.AttrOperation, semconv.MessagingConsumerGroupNameKey}},
	{Name: pgcdc.MetricLag, Kind: telemetrytest.Gauge, Unit: "By",
		Required: []attribute.Key{semconv.MessagingConsumerGroupNameKey}},
}

// documentedEvents are the span events as doc.go describes them.
var documentedEvents = []telemetrytest.Instrument{
	{Name: pgcdc.EventRetry, Required: []attribute.Key{semconv.ErrorTypeKey, pgcdc.AttrAttempts}},
}

// TestTelemetryConforms handles a transaction that fails once, panics once
// and then succeeds, and one that fails until the consumer gives up, and
// checks the spans, events and metrics against the documented ones, and
// doc.go against them.
func TestTelemetryConforms(t *testing.T) {
	f := newFixture(t)
	f.exec("CREATE TABLE " + f.table("t") + " (id int PRIMARY KEY)")
	tel := telemetrytest.New(t)
	var calls atomic.Int32
	var lagWhileStreaming atomic.Bool
	c := f.consumer([]string{"t"}, func(ctx context.Context, tx pgcdc.Transaction) error {
		switch calls.Add(1) {
		case 1:
			return errors.New("once")
		case 2:
			panic("twice")
		case 3:
			lagWhileStreaming.Store(tel.HasMetric(t, pgcdc.MetricLag))
			return nil
		}
		return errors.New("always")
	}, pgcdc.WithTracerProvider(tel.TracerProvider), pgcdc.WithMeterProvider(tel.MeterProvider), pgcdc.WithMaxAttempts(3))
	f.setup(c)
	f.exec("INSERT INTO " + f.table("t") + " VALUES (1), (2)")
	f.exec("INSERT INTO " + f.table("t") + " VALUES (3)")
	err := c.Run(testenv.Context(t, time.Minute))
	var herr *pgcdc.HandlerError
	require.ErrorAs(t, err, &herr)
	assert.True(t, lagWhileStreaming.Load(), "the lag was reported while streaming")

	tel.CheckSpans(t, pgcdc.ScopeName, documentedSpans, documentedSpans[0].Name)
	tel.CheckEvents(t, documentedEvents, pgcdc.EventRetry)
	tel.CheckMetrics(t, pgcdc.ScopeName, documentedMetrics, pgcdc.MetricChanges)
	telemetrytest.CheckDoc(t, "doc.go", documentedMetrics, documentedSpans)
	for _, e := range documentedEvents {
		telemetrytest.CheckDoc(t, "doc.go", []telemetrytest.Instrument{e}, nil)
	}

	spans := tel.SpansNamed(pgcdc.SpanOperation + " " + f.schema)
	require.Len(t, spans, 2)
	ok, failed := telemetrytest.Attrs(spans[0]), telemetrytest.Attrs(spans[1])
	assert.Equal(t, codes.Unset, spans[0].Status().Code)
	assert.Equal(t, int64(3), ok[pgcdc.AttrAttempts].AsInt64())
	assert.Equal(t, int64(2), ok[semconv.MessagingBatchMessageCountKey].AsInt64())
	assert.Equal(t, "postgresql", ok[semconv.DBSystemNameKey].AsString())
	assert.Equal(t, f.schema, ok[semconv.MessagingConsumerGroupNameKey].AsString())
	assert.Equal(t, herr.CommitLSN.String(), failed[pgcdc.AttrCommitLSN].AsString())
	assert.Equal(t, codes.Error, spans[1].Status().Code)
	assert.Equal(t, "pgcdc.handler", failed[semconv.ErrorTypeKey].AsString())
	var types []string
	for _, e := range spans[0].Events() {
		for _, kv := range e.Attributes {
			if kv.Key == semconv.ErrorTypeKey {
				types = append(types, kv.Value.AsString())
			}
		}
	}
	assert.Equal(t, []string{"_OTHER", "pgcdc.panic"}, types)

	assert.Equal(t, int64(2), tel.Int64(t, pgcdc.MetricChanges, semconv.DBCollectionName(f.table("t")),
		pgcdc.AttrOperation.String("insert"), semconv.MessagingConsumerGroupName(f.schema)),
		"the changes handled; none of the transaction that failed")
	assert.False(t, tel.HasMetric(t, pgcdc.MetricLag), "no lag once Run returned")
}

// TestCancelledSpanHasAttempts: the span of a transaction that Run's
// context ended on, while its handler ran or while the consumer backed
// off before calling it again, has pgcdc.attempts, as doc.go lists on
// every span ("how many times the handler was called with it").
func TestCancelledSpanHasAttempts(t *testing.T) {
	for _, tt := range []struct {
		name string
		fail bool // the handler fails at once, and the backoff is long
	}{
		{"handler running", false},
		{"backing off", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			f.exec("CREATE TABLE " + f.table("t") + " (id int PRIMARY KEY)")
			tel := telemetrytest.New(t)
			started := make(chan struct{}, 1)
			c := f.consumer([]string{"t"}, func(ctx context.Context, tx pgcdc.Transaction) error {
				started <- struct{}{}
				if tt.fail {
					return errors.New("downstream unavailable")
				}
				<-ctx.Done()
				return ctx.Err()
			}, pgcdc.WithTracerProvider(tel.TracerProvider), pgcdc.WithMeterProvider(tel.MeterProvider),
				pgcdc.WithBackoff(time.Hour, time.Hour))
			f.setup(c)
			stop := run(t, c)
			f.insert(1)
			select {
			case <-started:
			case <-time.After(30 * time.Second):
				t.Fatal("the handler was not called within 30s")
			}
			require.NoError(t, stop())
			spans := tel.SpansNamed(pgcdc.SpanOperation + " " + f.schema)
			require.Len(t, spans, 1)
			tel.CheckSpans(t, pgcdc.ScopeName, documentedSpans, documentedSpans[0].Name)
			attrs := telemetrytest.Attrs(spans[0])
			assert.Equal(t, int64(1), attrs[pgcdc.AttrAttempts].AsInt64())
			assert.Equal(t, "context.Canceled", attrs[semconv.ErrorTypeKey].AsString())
		})
	}
}

// TestDBNamespaceIsStreamedDatabase: with a connection string that names
// no database (the consumer then streams from the one named after the
// user, as TestConnStringWithoutDatabase shows), db.namespace is that
// database, current_database() on the server, not "".
func TestDBNamespaceIsStreamedDatabase(t *testing.T) {
	base := testenv.PostgresURL(t)
	u, err := url.Parse(base)
	require.NoError(t, err)
	u.Path = "" // no database: the user's
	f := newFixture(t)
	ctx := testenv.Context(t, time.Minute)
	conn, err := pgx.Connect(ctx, u.String())
	require.NoError(t, err)
	t.Cleanup(func() {
		_, _ = conn.Exec(context.Background(), "DROP SCHEMA IF EXISTS "+f.schema+" CASCADE")
		_, _ = conn.Exec(context.Background(), "DROP PUBLICATION IF EXISTS "+f.schema)
		_ = conn.Close(context.Background())
	})
	var db string
	require.NoError(t, conn.QueryRow(ctx, "SELECT current_database()").Scan(&db))
	_, err = conn.Exec(ctx, "CREATE SCHEMA "+f.schema)
	require.NoError(t, err)
	_, err = conn.Exec(ctx, "CREATE TABLE "+f.table("t")+" (id int PRIMARY KEY)")
	require.NoError(t, err)
	tel := telemetrytest.New(t)
	h, ch := channel()
	c, err := pgcdc.New(u.String(), f.schema, []string{f.table("t")}, h, pgcdc.WithTracerProvider(tel.TracerProvider))
	require.NoError(t, err)
	f.setup(c)
	stop := run(t, c)
	_, err = conn.Exec(ctx, "INSERT INTO "+f.table("t")+" VALUES (1)")
	require.NoError(t, err)
	next(t, ch)
	require.NoError(t, stop())
	spans := tel.SpansNamed(pgcdc.SpanOperation + " " + f.schema)
	require.Len(t, spans, 1)
	assert.Equal(t, db, telemetrytest.Attrs(spans[0])[semconv.DBNamespaceKey].AsString(),
		"db.namespace of a consumer streaming from database %s", db)
}
