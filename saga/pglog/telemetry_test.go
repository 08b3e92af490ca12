package pglog_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/semconv/v1.40.0/dbconv"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelpatterns/patterns/internal/pgtel"
	"github.com/otelpatterns/patterns/internal/telemetry"
	"github.com/otelpatterns/patterns/internal/telemetry/telemetrytest"
	"github.com/otelpatterns/patterns/internal/testenv"
	"github.com/otelpatterns/patterns/saga"
	"github.com/otelpatterns/patterns/saga/pglog"
)

var opDuration = dbconv.ClientOperationDuration{}.Name()

var (
	dbRequired = []attribute.Key{semconv.DBSystemNameKey, semconv.DBOperationNameKey, semconv.DBNamespaceKey,
		semconv.DBQuerySummaryKey, semconv.ServerAddressKey}
	dbOptional = []attribute.Key{semconv.ServerPortKey, semconv.ErrorTypeKey, semconv.DBResponseStatusCodeKey}
	onTable    = append([]attribute.Key{semconv.DBCollectionNameKey}, dbRequired...)
	withID     = append([]attribute.Key{saga.AttrID}, onTable...)
	withRows   = append([]attribute.Key{semconv.DBResponseReturnedRowsKey}, dbOptional...)
	// A write in a batch of two or more has its size.
	writeOptional = append([]attribute.Key{pglog.AttrBatchSize}, dbOptional...)
)

// documentedSpans are the log's spans as doc.go describes them.
var documentedSpans = []telemetrytest.Span{
	{Name: "create {collection}", Kind: trace.SpanKindClient, Required: withID, Optional: writeOptional},
	{Name: "append {collection}", Kind: trace.SpanKindClient, Required: withID, Optional: writeOptional},
	{Name: "renew {collection}", Kind: trace.SpanKindClient, Required: onTable, Optional: withRows},
	{Name: "claim {collection}", Kind: trace.SpanKindClient, Required: onTable, Optional: withRows},
	{Name: "release {collection}", Kind: trace.SpanKindClient, Required: withID, Optional: dbOptional},
	{Name: "load {collection}", Kind: trace.SpanKindClient, Required: withID, Optional: withRows},
	{Name: "reopen {collection}", Kind: trace.SpanKindClient, Required: withID, Optional: dbOptional},
	{Name: "migrate {namespace}", Kind: trace.SpanKindClient, Required: dbRequired, Optional: dbOptional},
}

// documentedMetrics are the log's metrics as doc.go describes them.
var documentedMetrics = []telemetrytest.Instrument{
	{Name: opDuration, Kind: telemetrytest.Histogram, Unit: dbconv.ClientOperationDuration{}.Unit(),
		Required: dbRequired, Optional: append([]attribute.Key{semconv.DBCollectionNameKey}, dbOptional...)},
}

// exercise calls every operation of l, which is not migrated yet, under
// ctx.
func exercise(t *testing.T, ctx context.Context, l *pglog.Log) {
	t.Helper()
	_, _, err := l.Load(ctx, "a") // fails: no table yet
	require.Error(t, err)
	require.NoError(t, l.Migrate(ctx))
	require.NoError(t, l.Create(ctx, saga.Record{ID: "a", Name: "order", Version: 1}, "me", time.Minute))
	require.NoError(t, l.Append(ctx, "a", "me", saga.Transition{Seq: 1, Step: "s", Phase: saga.Forward, Kind: saga.Started, Attempt: 1}))
	require.ErrorIs(t, l.Append(ctx, "a", "other", saga.Transition{Seq: 2}), saga.ErrLeaseLost)
	_, err = l.Renew(ctx, "me", time.Minute, []string{"a", "b"})
	require.NoError(t, err)
	require.NoError(t, l.Release(ctx, "a", "me"))
	recs, err := l.Claim(ctx, "you", []string{"order"}, time.Minute, 10)
	require.NoError(t, err)
	require.Len(t, recs, 1)
	_, ts, err := l.Load(ctx, "a")
	require.NoError(t, err)
	require.Len(t, ts, 1)
	require.NoError(t, l.Append(ctx, "a", "you", saga.Transition{Seq: 2, Status: saga.NeedsAttention}))
	require.NoError(t, l.Reopen(ctx, "a", "me", time.Minute))
	require.ErrorIs(t, l.Reopen(ctx, "a", "you", time.Minute), saga.ErrLeaseLost)
}

// TestTelemetryConforms runs every operation of the log, failures
// included, and checks every span and data point against the documented
// telemetry, and doc.go against it.
func TestTelemetryConforms(t *testing.T) {
	t.Parallel()
	for _, optIn := range []bool{false, true} {
		p := telemetrytest.New(t)
		opts := []pglog.Option{pglog.WithTracerProvider(p.TracerProvider), pglog.WithMeterProvider(p.MeterProvider)}
		if optIn {
			opts = append(opts, pglog.WithOptInAttributes())
		}
		l := newLogIn(t, testenv.PostgresPool(t, 4), schemaName(t), opts...)
		exercise(t, testenv.Context(t, 10*time.Second), l)
		p.CheckSpans(t, pglog.ScopeName, documentedSpans, "create {collection}", "append {collection}",
			"renew {collection}", "claim {collection}", "release {collection}", "load {collection}", "reopen {collection}",
			"migrate {namespace}")
		p.CheckMetrics(t, pglog.ScopeName, documentedMetrics, opDuration)
	}
	telemetrytest.CheckDoc(t, "doc.go", documentedMetrics, documentedSpans)
}

// TestTelemetry checks the names and values of the attributes of the
// log's spans and durations.
func TestTelemetry(t *testing.T) {
	t.Parallel()
	p := telemetrytest.New(t)
	pool := testenv.PostgresPool(t, 4)
	schema := schemaName(t)
	l := newLogIn(t, pool, schema, pglog.WithTracerProvider(p.TracerProvider), pglog.WithMeterProvider(p.MeterProvider),
		pglog.WithOptInAttributes())
	exercise(t, testenv.Context(t, 10*time.Second), l)

	cc := pool.Config().ConnConfig
	namespace := cc.Database + "|" + schema
	common := []attribute.KeyValue{semconv.DBSystemNamePostgreSQL, semconv.DBNamespace(namespace),
		semconv.ServerAddress(cc.Host), semconv.ServerPort(int(cc.Port))} // Opt-In at 5432
	sagas, transitions := schema+".sagas", schema+".transitions"
	for _, tt := range []struct {
		op, collection, sagaID string
		count                  int
	}{
		{"migrate", "", "", 1},
		{"create", sagas, "a", 1},
		{"append", transitions, "a", 3},
		{"renew", sagas, "", 1},
		{"release", sagas, "a", 1},
		{"claim", sagas, "", 1},
		{"load", sagas, "a", 2},
		{"reopen", sagas, "a", 2},
	} {
		summary := tt.op + " " + namespace
		want := append([]attribute.KeyValue{semconv.DBOperationName(tt.op)}, common...)
		if tt.collection != "" {
			summary = tt.op + " " + tt.collection
			want = append(want, semconv.DBCollectionName(tt.collection))
		}
		want = append(want, semconv.DBQuerySummary(summary))
		spans := p.SpansNamed(summary)
		require.Len(t, spans, tt.count, "spans named %q (the db.query.summary)", summary)
		for _, span := range spans {
			assert.Equal(t, trace.SpanKindClient, span.SpanKind(), summary)
			a := telemetrytest.Attrs(span)
			for _, kv := range want {
				assert.Equal(t, kv.Value, a[kv.Key], "%s: %s", summary, kv.Key)
			}
			if tt.sagaID != "" {
				assert.Equal(t, tt.sagaID, a[saga.AttrID].AsString(), summary)
			}
		}
		if spans[len(spans)-1].Status().Code == codes.Unset {
			assert.Positive(t, p.HistogramCount(t, opDuration, want...), "%s: %s", summary, p.Describe(t, opDuration))
		}
	}
	appends := p.SpansNamed("append " + transitions)
	assert.Equal(t, codes.Unset, appends[0].Status().Code)
	assert.Equal(t, codes.Error, appends[1].Status().Code)
	assert.Equal(t, "saga.lease_lost", telemetrytest.Attrs(appends[1])[semconv.ErrorTypeKey].AsString())
	assert.Equal(t, uint64(1), p.HistogramCount(t, opDuration, append(common, semconv.DBOperationName("append"),
		semconv.DBCollectionName(transitions), semconv.DBQuerySummary("append "+transitions),
		semconv.ErrorTypeKey.String("saga.lease_lost"))...), p.Describe(t, opDuration))

	loads := p.SpansNamed("load " + sagas)
	assert.Equal(t, codes.Error, loads[0].Status().Code)
	assert.Equal(t, "42P01", telemetrytest.Attrs(loads[0])[semconv.DBResponseStatusCodeKey].AsString(), "undefined_table")
	assert.Equal(t, "42P01", telemetrytest.Attrs(loads[0])[semconv.ErrorTypeKey].AsString(), "error.type is the SQLSTATE")
	rows := func(span string) int64 {
		return telemetrytest.Attrs(p.SpansNamed(span)[0])[semconv.DBResponseReturnedRowsKey].AsInt64()
	}
	assert.Equal(t, int64(1), telemetrytest.Attrs(loads[1])[semconv.DBResponseReturnedRowsKey].AsInt64(), "transitions loaded")
	assert.Equal(t, int64(1), rows("claim "+sagas), "sagas claimed")
	assert.Equal(t, int64(1), rows("renew "+sagas), "leases lost")
}

// TestIdleClaimAndRenewHaveNoSpan protects trace backends from a root span
// at every recovery tick and every lease renewal: a claim that takes
// nothing and a renewal that loses nothing, with no span in the context,
// record only their duration.
func TestIdleClaimAndRenewHaveNoSpan(t *testing.T) {
	t.Parallel()
	p := telemetrytest.New(t)
	l, _, schema := newLog(t, 4, pglog.WithTracerProvider(p.TracerProvider), pglog.WithMeterProvider(p.MeterProvider))
	ctx := testenv.Context(t, 10*time.Second)
	require.NoError(t, l.Create(ctx, saga.Record{ID: "a", Name: "order", Version: 1}, "me", time.Minute))
	before := len(p.Spans.Ended())

	recs, err := l.Claim(ctx, "you", []string{"order"}, time.Minute, 10) // leased to me: nothing
	require.NoError(t, err)
	require.Empty(t, recs)
	lost, err := l.Renew(ctx, "me", time.Minute, []string{"a"})
	require.NoError(t, err)
	require.Empty(t, lost)
	assert.Len(t, p.Spans.Ended(), before, "idle claim and renew started spans")
	for _, op := range []string{"claim", "renew"} {
		var n uint64
		for _, set := range telemetrytest.AttributeSets(p.Metric(t, opDuration)) {
			if v, _ := set.Value(semconv.DBOperationNameKey); v.AsString() == op {
				n++
			}
		}
		assert.Equal(t, uint64(1), n, "%s has its duration", op)
	}

	// Under a caller's span, or when they do something, they have one.
	pctx, parent := p.TracerProvider.Tracer("test").Start(ctx, "caller")
	_, err = l.Claim(pctx, "you", []string{"order"}, time.Minute, 10)
	require.NoError(t, err)
	parent.End()
	require.Len(t, p.SpansNamed("claim "+schema+".sagas"), 1)
	lost, err = l.Renew(ctx, "you", time.Minute, []string{"a"})
	require.NoError(t, err)
	require.Equal(t, []string{"a"}, lost)
	require.Len(t, p.SpansNamed("renew "+schema+".sagas"), 1, "a renewal that lost a lease")
	require.NoError(t, l.Release(ctx, "a", "me"))
	recs, err = l.Claim(ctx, "you", []string{"order"}, time.Minute, 10)
	require.NoError(t, err)
	require.Len(t, recs, 1)
	require.Len(t, p.SpansNamed("claim "+schema+".sagas"), 2, "a claim that took a saga")
}

// TestUntracedCallsHaveNoSpan: under a context marked untraced (a saga
// orchestrator's lease renewals and recovery ticks), claim and renew make
// no span even when they do something, and no call does, under a sampler
// that ignores the parent (the test providers sample everything); their
// durations are recorded (issue 11).
func TestUntracedCallsHaveNoSpan(t *testing.T) {
	t.Parallel()
	p := telemetrytest.New(t)
	l, _, _ := newLog(t, 4, pglog.WithTracerProvider(p.TracerProvider), pglog.WithMeterProvider(p.MeterProvider))
	ctx := telemetry.Untraced(testenv.Context(t, 10*time.Second))
	migrated := len(p.Spans.Ended())
	require.NoError(t, l.Create(ctx, saga.Record{ID: "a", Name: "order", Version: 1}, "me", time.Minute))
	lost, err := l.Renew(ctx, "you", time.Minute, []string{"a"})
	require.NoError(t, err)
	require.Equal(t, []string{"a"}, lost, "a lost lease")
	require.NoError(t, l.Release(ctx, "a", "me"))
	recs, err := l.Claim(ctx, "you", []string{"order"}, time.Minute, 10)
	require.NoError(t, err)
	require.Len(t, recs, 1, "a claimed saga")
	_, _, err = l.Load(ctx, "a")
	require.NoError(t, err)
	assert.Len(t, p.Spans.Ended(), migrated, "spans under an untraced context")
	n := 0
	for range telemetrytest.AttributeSets(p.Metric(t, opDuration)) {
		n++
	}
	assert.GreaterOrEqual(t, n, 4, "the durations of create, renew, release, claim and load")
}

// TestDefaultPortIsOptIn: without WithOptInAttributes, server.port is
// left out at PostgreSQL's default port, and db.response.returned_rows
// everywhere.
func TestDefaultPortIsOptIn(t *testing.T) {
	t.Parallel()
	p := telemetrytest.New(t)
	l, pool, _ := newLog(t, 4, pglog.WithTracerProvider(p.TracerProvider))
	_, _, err := l.Load(testenv.Context(t, 10*time.Second), "missing")
	require.ErrorIs(t, err, saga.ErrNotFound)
	for _, span := range p.Spans.Ended() {
		a := telemetrytest.Attrs(span)
		_, port := a[semconv.ServerPortKey]
		assert.Equal(t, pool.Config().ConnConfig.Port != pgtel.DefaultPort, port, "%s: server.port", span.Name())
		assert.NotContains(t, a, semconv.DBResponseReturnedRowsKey, span.Name())
	}
}

// TestOrchestratorUpkeepMakesNoSpans protects an idle orchestrator on
// PostgreSQL from sending a trace every few seconds whatever the sampler:
// with AlwaysSample (which ignores the parent), the upkeep's claims and
// renewals made spans under a parent never exported, until the saga
// package marked them untraced and pglog honoured the mark.
func TestOrchestratorUpkeepMakesNoSpans(t *testing.T) {
	p := telemetrytest.New(t) // AlwaysSample
	l, _, _ := newLog(t, 4, pglog.WithTracerProvider(p.TracerProvider), pglog.WithMeterProvider(p.MeterProvider))
	block := make(chan struct{})
	started := make(chan struct{}, 1)
	def, err := saga.Define("upkeep", 1, saga.Step[struct{}]{Name: "wait",
		Action: func(ctx context.Context, _ struct{}) (func(*struct{}), error) {
			started <- struct{}{}
			select {
			case <-block:
			case <-ctx.Done():
			}
			return nil, nil
		},
		Compensate: func(context.Context, struct{}) error { return nil }})
	require.NoError(t, err)
	o, err := saga.NewOrchestrator(l, saga.WithDefinitions(def), saga.WithLease(time.Second),
		saga.WithRecoverInterval(50*time.Millisecond), saga.WithTracerProvider(p.TracerProvider), saga.WithMeterProvider(p.MeterProvider))
	require.NoError(t, err)
	defer o.Close(context.Background())
	id, err := o.Start(context.Background(), def, struct{}{})
	require.NoError(t, err)
	<-started
	before := len(p.Spans.Ended())
	time.Sleep(800 * time.Millisecond) // renewals every 333 ms, claims every 50 ms
	for _, s := range p.Spans.Ended()[before:] {
		t.Errorf("span %q during upkeep alone", s.Name())
	}
	close(block)
	_, err = o.Wait(context.Background(), id)
	require.NoError(t, err)
}
