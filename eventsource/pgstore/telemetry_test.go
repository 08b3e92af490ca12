package pgstore_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/semconv/v1.40.0/dbconv"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelpatterns/patterns/eventsource"
	"github.com/otelpatterns/patterns/eventsource/pgstore"
	"github.com/otelpatterns/patterns/internal/pgtel"
	"github.com/otelpatterns/patterns/internal/projlag"
	"github.com/otelpatterns/patterns/internal/telemetry/telemetrytest"
	"github.com/otelpatterns/patterns/internal/testenv"
)

var opDuration = dbconv.ClientOperationDuration{}.Name()

// The attributes every span and duration of the store carries; server.port
// is Opt-In at PostgreSQL's default port, recorded at any other.
var (
	dbRequired = []attribute.Key{semconv.DBSystemNameKey, semconv.DBOperationNameKey, semconv.DBNamespaceKey,
		semconv.DBQuerySummaryKey, semconv.ServerAddressKey}
	dbFailure = []attribute.Key{semconv.ServerPortKey, semconv.ErrorTypeKey, semconv.DBResponseStatusCodeKey}
)

func keys(lists ...[]attribute.Key) []attribute.Key {
	var out []attribute.Key
	for _, l := range lists {
		out = append(out, l...)
	}
	return out
}

// documentedSpans are the store's spans as doc.go describes them.
var documentedSpans = []telemetrytest.Span{
	{Name: "BATCH {collection}", Kind: trace.SpanKindClient,
		Required: keys(dbRequired, []attribute.Key{semconv.DBCollectionNameKey, pgstore.AttrStreamID}),
		Optional: keys(dbFailure, []attribute.Key{semconv.DBOperationBatchSizeKey})},
	{Name: "notify {namespace}", Kind: trace.SpanKindClient, Required: dbRequired, Optional: dbFailure, Parented: true},
	{Name: "read_stream {collection}", Kind: trace.SpanKindClient,
		Required: keys(dbRequired, []attribute.Key{semconv.DBCollectionNameKey, pgstore.AttrStreamID}),
		Optional: keys(dbFailure, []attribute.Key{semconv.DBResponseReturnedRowsKey})},
	{Name: "read_all {collection}", Kind: trace.SpanKindClient,
		Required: keys(dbRequired, []attribute.Key{semconv.DBCollectionNameKey}),
		Optional: keys(dbFailure, []attribute.Key{semconv.DBResponseReturnedRowsKey})},
	{Name: "subscribe {collection}", Kind: trace.SpanKindClient,
		Required: keys(dbRequired, []attribute.Key{semconv.DBCollectionNameKey}),
		Optional: keys(dbFailure, []attribute.Key{semconv.DBResponseReturnedRowsKey})},
	{Name: "listen {namespace}", Kind: trace.SpanKindClient, Required: dbRequired, Optional: dbFailure},
	{Name: "unlisten {namespace}", Kind: trace.SpanKindClient, Required: dbRequired, Optional: dbFailure},
	{Name: "head {collection}", Kind: trace.SpanKindClient,
		Required: keys(dbRequired, []attribute.Key{semconv.DBCollectionNameKey}), Optional: dbFailure},
	{Name: "command_recorded {collection}", Kind: trace.SpanKindClient,
		Required: keys(dbRequired, []attribute.Key{semconv.DBCollectionNameKey}), Optional: dbFailure},
	{Name: "load_snapshot {collection}", Kind: trace.SpanKindClient,
		Required: keys(dbRequired, []attribute.Key{semconv.DBCollectionNameKey, pgstore.AttrStreamID}), Optional: dbFailure},
	{Name: "save_snapshot {collection}", Kind: trace.SpanKindClient,
		Required: keys(dbRequired, []attribute.Key{semconv.DBCollectionNameKey, pgstore.AttrStreamID}), Optional: dbFailure},
	{Name: "delete_snapshot {collection}", Kind: trace.SpanKindClient,
		Required: keys(dbRequired, []attribute.Key{semconv.DBCollectionNameKey, pgstore.AttrStreamID}), Optional: dbFailure},
	{Name: "migrate {namespace}", Kind: trace.SpanKindClient, Required: dbRequired, Optional: dbFailure},
}

// documentedMetrics are the store's metrics as doc.go describes them.
var documentedMetrics = []telemetrytest.Instrument{
	{Name: opDuration, Kind: telemetrytest.Histogram, Unit: dbconv.ClientOperationDuration{}.Unit(),
		Required: dbRequired, Optional: keys(dbFailure, []attribute.Key{semconv.DBCollectionNameKey})},
	{Name: "eventsource.events.appended", Kind: telemetrytest.Counter, Unit: "{event}"},
	{Name: "eventsource.append.duration", Kind: telemetrytest.Histogram, Unit: "s", Optional: []attribute.Key{semconv.ErrorTypeKey}},
	{Name: "eventsource.conflicts", Kind: telemetrytest.Counter, Unit: "{conflict}"},
	{Name: "eventsource.subscription.lag", Kind: telemetrytest.Gauge, Unit: "{event}"},
	{Name: "eventsource.subscription.held_back", Kind: telemetrytest.Gauge, Unit: "s"},
}

// TestTelemetryConforms runs every operation of the store, a failure of
// one included, and checks every span and data point against the
// documented telemetry, and doc.go against it.
func TestTelemetryConforms(t *testing.T) {
	t.Parallel()
	for _, optIn := range []bool{false, true} {
		p := telemetrytest.New(t)
		opts := []pgstore.Option{pgstore.WithTracerProvider(p.TracerProvider), pgstore.WithMeterProvider(p.MeterProvider),
			pgstore.WithPollInterval(20 * time.Millisecond)}
		if optIn {
			opts = append(opts, pgstore.WithOptInAttributes())
		}
		pool := testenv.PostgresPool(t, 4)
		s := newStoreIn(t, pool, schemaName(t), opts...)
		ctx := testenv.Context(t, 10*time.Second)
		ctx, parent := p.TracerProvider.Tracer("test").Start(ctx, "caller")
		exercise(t, ctx, s)
		parent.End()

		p.CheckSpans(t, pgstore.ScopeName, documentedSpans,
			"BATCH {collection}", "notify {namespace}", "read_stream {collection}", "read_all {collection}",
			"subscribe {collection}", "listen {namespace}", "unlisten {namespace}", "head {collection}",
			"command_recorded {collection}", "load_snapshot {collection}", "save_snapshot {collection}",
			"delete_snapshot {collection}", "migrate {namespace}")
		p.CheckMetrics(t, pgstore.ScopeName, documentedMetrics, opDuration, "eventsource.events.appended",
			"eventsource.append.duration", "eventsource.conflicts", "eventsource.subscription.lag",
			"eventsource.subscription.held_back")
	}
	telemetrytest.CheckDoc(t, "doc.go", documentedMetrics, documentedSpans)
}

// exercise calls every operation of s, which is not migrated yet.
func exercise(t *testing.T, ctx context.Context, s *pgstore.Store) {
	t.Helper()
	for _, err := range s.ReadAll(ctx, 0) { // fails: no table yet
		require.Error(t, err)
	}
	require.NoError(t, s.Migrate(ctx))
	cctx := eventsource.WithCommandID(ctx, "cmd-1")
	appended, err := s.Append(cctx, "a", eventsource.NoStream, events(3, "test.v1")...)
	require.NoError(t, err)
	ok, err := s.CommandRecorded(ctx, "cmd-1")
	require.NoError(t, err)
	require.True(t, ok)
	_, err = s.Append(ctx, "a", eventsource.NoStream, events(1, "test.v1")...)
	require.ErrorIs(t, err, eventsource.ErrConcurrencyConflict)
	collect(t, s.ReadStream(ctx, "a", 1))
	require.NoError(t, s.AwaitVisible(ctx))
	collect(t, s.ReadAll(ctx, 1))
	head, err := s.Head(ctx)
	require.NoError(t, err)
	require.Equal(t, appended[2].Position, head)
	require.NoError(t, s.SaveSnapshot(ctx, eventsource.Snapshot{StreamID: "a", Version: 3, Data: []byte("{}")}))
	_, err = s.LoadSnapshot(ctx, "a")
	require.NoError(t, err)
	require.NoError(t, s.DeleteSnapshot(ctx, "a"))
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	n := 0
	for e, err := range s.Subscribe(sctx, 1) {
		require.NoError(t, err)
		if n++; n == 2 { // caught up; listening now
			_, err := s.Append(ctx, "a", eventsource.Exact(3), events(1, "test.v1")...)
			require.NoError(t, err)
		}
		if e.Version == 4 { // read on the listening connection
			cancel()
		}
	}
}

// TestTelemetry checks the names and values of the attributes of the
// store's spans and durations.
func TestTelemetry(t *testing.T) {
	t.Parallel()
	p := telemetrytest.New(t)
	pool := testenv.PostgresPool(t, 4)
	schema := schemaName(t)
	s := newStoreIn(t, pool, schema, pgstore.WithTracerProvider(p.TracerProvider), pgstore.WithMeterProvider(p.MeterProvider),
		pgstore.WithPollInterval(20*time.Millisecond))
	ctx := testenv.Context(t, 10*time.Second)
	ctx, parent := p.TracerProvider.Tracer("test").Start(ctx, "caller")
	exercise(t, ctx, s)
	parent.End()

	cc := pool.Config().ConnConfig
	namespace := cc.Database + "|" + schema
	common := []attribute.KeyValue{semconv.DBSystemNamePostgreSQL, semconv.DBNamespace(namespace),
		semconv.ServerAddress(cc.Host)}
	if cc.Port != pgtel.DefaultPort {
		common = append(common, semconv.ServerPort(int(cc.Port)))
	}
	events, snapshots, commands := schema+".events", schema+".snapshots", schema+".commands"
	for _, tt := range []struct {
		op, collection string
		count          int
	}{
		{"migrate", "", 1},
		{pgtel.Batch, events, 3},
		{"notify", "", 2},
		{"command_recorded", commands, 1},
		{"read_stream", events, 1},
		{"read_all", events, 2},
		{"head", events, 1},
		{"save_snapshot", snapshots, 1},
		{"load_snapshot", snapshots, 1},
		{"listen", "", 1},
		{"unlisten", "", 1},
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
			assert.NotContains(t, a, semconv.DBResponseReturnedRowsKey, "%s: Opt-In", summary)
		}
		if span := spans[len(spans)-1]; span.Status().Code == codes.Unset {
			assert.Positive(t, p.HistogramCount(t, opDuration, want...), "%s: %s", summary, p.Describe(t, opDuration))
		}
	}

	appends := p.SpansNamed(pgtel.Batch + " " + events)
	for _, a := range appends {
		assert.Equal(t, "a", telemetrytest.Attrs(a)[pgstore.AttrStreamID].AsString())
		assert.GreaterOrEqual(t, telemetrytest.Attrs(a)[semconv.DBOperationBatchSizeKey].AsInt64(), int64(4), "BEGIN, set_config and lock, INSERT, COMMIT, …")
	}
	assert.Equal(t, int64(4), telemetrytest.Attrs(appends[0])[semconv.DBOperationBatchSizeKey].AsInt64(),
		"BEGIN, set_config and lock, INSERT (with the command's), COMMIT")
	// The conflict: the same four (the INSERT storing nothing, the COMMIT
	// committing nothing); then the checked append: BEGIN, set_config and
	// lock, stored, version, ROLLBACK.
	assert.Equal(t, int64(9), telemetrytest.Attrs(appends[1])[semconv.DBOperationBatchSizeKey].AsInt64(),
		"the conflict's statements")
	assert.Equal(t, codes.Unset, appends[0].Status().Code)
	assert.Equal(t, codes.Error, appends[1].Status().Code)
	assert.Equal(t, "eventsource.concurrency_conflict", telemetrytest.Attrs(appends[1])[semconv.ErrorTypeKey].AsString())
	assert.Equal(t, uint64(1), p.HistogramCount(t, opDuration, append(common, semconv.DBOperationName(pgtel.Batch),
		semconv.DBCollectionName(events), semconv.DBQuerySummary(pgtel.Batch+" "+events),
		semconv.ErrorTypeKey.String("eventsource.concurrency_conflict"))...), p.Describe(t, opDuration))

	// The notification is a span of its own, a child of the append's.
	for i, n := range p.SpansNamed("notify " + namespace) {
		assert.Equal(t, appends[2*i].SpanContext().SpanID(), n.Parent().SpanID(), "notify's parent")
	}

	failed := p.SpansNamed("read_all " + events)[0]
	assert.Equal(t, codes.Error, failed.Status().Code)
	assert.Equal(t, "42P01", telemetrytest.Attrs(failed)[semconv.DBResponseStatusCodeKey].AsString(), "undefined_table")
	assert.Equal(t, "42P01", telemetrytest.Attrs(failed)[semconv.ErrorTypeKey].AsString(), "error.type is the SQLSTATE")
	assert.Equal(t, uint64(1), p.HistogramCount(t, opDuration, append(common, semconv.DBOperationName("read_all"),
		semconv.DBCollectionName(events), semconv.DBQuerySummary("read_all "+events),
		semconv.ErrorTypeKey.String("42P01"), semconv.DBResponseStatusCode("42P01"))...), p.Describe(t, opDuration))

	assert.Equal(t, int64(4), p.Int64(t, "eventsource.events.appended"))
	assert.Equal(t, int64(1), p.Int64(t, "eventsource.conflicts"))
	assert.Equal(t, uint64(2), p.HistogramCount(t, "eventsource.append.duration"))
	assert.Equal(t, uint64(1), p.HistogramCount(t, "eventsource.append.duration",
		semconv.ErrorTypeKey.String("eventsource.concurrency_conflict")))
}

// TestOptInAttributes: db.response.returned_rows and server.port 5432 are
// recorded only under WithOptInAttributes.
func TestOptInAttributes(t *testing.T) {
	t.Parallel()
	for _, optIn := range []bool{false, true} {
		p := telemetrytest.New(t)
		opts := []pgstore.Option{pgstore.WithTracerProvider(p.TracerProvider), pgstore.WithMeterProvider(p.MeterProvider)}
		if optIn {
			opts = append(opts, pgstore.WithOptInAttributes())
		}
		s, pool := newStore(t, 4, opts...)
		ctx := testenv.Context(t, 10*time.Second)
		_, err := s.Append(ctx, "a", eventsource.NoStream, events(2, "test.v1")...)
		require.NoError(t, err)
		collect(t, s.ReadStream(ctx, "a", 1))
		var read sdktrace.ReadOnlySpan
		for _, span := range p.Spans.Ended() {
			if telemetrytest.Attrs(span)[semconv.DBOperationNameKey].AsString() == "read_stream" {
				read = span
			}
		}
		require.NotNil(t, read)
		rows, ok := telemetrytest.Attrs(read)[semconv.DBResponseReturnedRowsKey]
		assert.Equal(t, optIn, ok, "db.response.returned_rows with Opt-In %v", optIn)
		if optIn {
			assert.Equal(t, int64(2), rows.AsInt64())
		}
		if pool.Config().ConnConfig.Port == pgtel.DefaultPort {
			_, ok := telemetrytest.Attrs(read)[semconv.ServerPortKey]
			assert.Equal(t, optIn, ok, "server.port 5432 with Opt-In %v", optIn)
		}
	}
}

// TestHeadTelemetry: Head has a span and a duration, but the reads of a
// projection lag gauge, every second, have only the duration.
func TestHeadTelemetry(t *testing.T) {
	t.Parallel()
	p := telemetrytest.New(t)
	s, _ := newStore(t, 4, pgstore.WithTracerProvider(p.TracerProvider), pgstore.WithMeterProvider(p.MeterProvider))
	ctx := testenv.Context(t, 10*time.Second)
	_, err := s.Head(ctx)
	require.NoError(t, err)
	spans := p.Spans.Ended()
	require.Len(t, spans, 2, "migrate and head")
	assert.Equal(t, "head", telemetrytest.Attrs(spans[1])[semconv.DBOperationNameKey].AsString())
	require.Equal(t, uint64(1), headReads(t, p))

	gauge := projlag.New(p.MeterProvider.Meter("test"), s, time.Hour)
	defer gauge.Close()
	pos := gauge.Track(ctx, "p", 0) // reads the head
	gauge.Untrack("p", pos)
	assert.Len(t, p.Spans.Ended(), 2, "the gauge's read of the head starts no span")
	assert.Equal(t, uint64(2), headReads(t, p), "both reads are in %s", opDuration)
}

// headReads returns how many reads of the head db.client.operation.duration
// holds.
func headReads(t *testing.T, p *telemetrytest.Providers) uint64 {
	t.Helper()
	var n uint64
	for _, dp := range p.Metric(t, opDuration).Data.(metricdata.Histogram[float64]).DataPoints {
		if v, _ := dp.Attributes.Value(semconv.DBOperationNameKey); v.AsString() == "head" {
			n += dp.Count
		}
	}
	return n
}

// TestSubscriptionLag checks the lag a subscription reports while it
// catches up: the positions between the last event it handed on and the
// newest one, and 0 once it is at the head.
func TestSubscriptionLag(t *testing.T) {
	t.Parallel()
	p := telemetrytest.New(t)
	pool := testenv.PostgresPool(t, 4)
	s := newStoreIn(t, pool, schemaName(t), pgstore.WithMeterProvider(p.MeterProvider), pgstore.WithPollInterval(20*time.Millisecond))
	pgstore.SetPageSize(s, 4)
	ctx := testenv.Context(t, 10*time.Second)
	require.NoError(t, s.Migrate(ctx))
	appended, err := s.Append(ctx, "a", eventsource.NoStream, events(10, "test.v1")...)
	require.NoError(t, err)
	require.NoError(t, s.AwaitVisible(ctx))
	last := appended[9].Position

	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var lags []int64
	for e, err := range s.Subscribe(sctx, 0) {
		require.NoError(t, err)
		lags = append(lags, p.Int64(t, "eventsource.subscription.lag"))
		if e.Position == last {
			break
		}
	}
	// Pages of 4: read at 0 (10 behind), at 4 (6 behind), at 8 (2 behind).
	assert.Equal(t, []int64{10, 10, 10, 10, 6, 6, 6, 6, 2, 2}, lags)

	sctx, cancel = context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	for _, err := range s.Subscribe(sctx, last) {
		require.NoError(t, err)
	}
	assert.Equal(t, int64(0), p.Int64(t, "eventsource.subscription.lag"), "at the head")
}

// TestBatchErrorType: an append whose batch fails records the SQLSTATE as
// error.type, not pgx's batch error type that wraps it.
func TestBatchErrorType(t *testing.T) {
	t.Parallel()
	p := telemetrytest.New(t)
	s := newStoreIn(t, testenv.PostgresPool(t, 2), schemaName(t), pgstore.WithTracerProvider(p.TracerProvider),
		pgstore.WithMeterProvider(p.MeterProvider))
	_, err := s.Append(testenv.Context(t, 10*time.Second), "a", eventsource.NoStream, events(1, "test.v1")...) // no tables yet
	require.Error(t, err)
	spans := p.Spans.Ended()
	require.Len(t, spans, 1)
	a := telemetrytest.Attrs(spans[0])
	assert.Equal(t, "42P01", a[semconv.ErrorTypeKey].AsString(), "error.type")
	assert.Equal(t, "42P01", a[semconv.DBResponseStatusCodeKey].AsString(), "db.response.status_code")
	assert.Equal(t, uint64(1), p.HistogramCount(t, "eventsource.append.duration", semconv.ErrorTypeKey.String("42P01")),
		p.Describe(t, "eventsource.append.duration"))
}

// TestFailedAppendNotifiesNothing: an append that fails on the server
// commits nothing, so it owes subscribers no notification. A failed
// append that led the notifications used to mark one owed, which a timer
// sent a millisecond after Append returned: a NOTIFY (and its span) for
// nothing, which also made TestBatchErrorType fail now and then. (A
// conflicting append's own batch still ends with its NOTIFY, which runs
// after the COMMIT that committed nothing: one round trip, at the price
// of a notification for nothing. This test counts the timer's spans.)
func TestFailedAppendNotifiesNothing(t *testing.T) {
	t.Parallel()
	p := telemetrytest.New(t)
	pool := testenv.PostgresPool(t, 2)
	migrated, bare := schemaName(t), schemaName(t)
	s := newStoreIn(t, pool, migrated, pgstore.WithTracerProvider(p.TracerProvider))
	noTables := newStoreIn(t, pool, bare, pgstore.WithTracerProvider(p.TracerProvider))
	ctx := testenv.Context(t, 10*time.Second)
	require.NoError(t, s.Migrate(ctx))

	_, err := s.Append(ctx, "a", eventsource.NoStream, events(1, "test.v1")...)
	require.NoError(t, err)
	_, err = s.Append(ctx, "a", eventsource.NoStream, events(1, "test.v1")...)
	require.ErrorIs(t, err, eventsource.ErrConcurrencyConflict)
	_, err = noTables.Append(ctx, "a", eventsource.NoStream, events(1, "test.v1")...)
	require.Error(t, err)

	// Far past the timer of a notification owed (a millisecond), and of
	// one that overtakes an append in flight (10 ms).
	time.Sleep(200 * time.Millisecond)
	database := pool.Config().ConnConfig.Database
	assert.Len(t, p.SpansNamed("notify "+database+"|"+migrated), 1, "the successful append's own notification alone")
	assert.Empty(t, p.SpansNamed("notify "+database+"|"+bare), "no notification from a store whose append failed")
}

// TestConcurrentAppendsTakeOneRoundTrip appends from 8 goroutines at
// once, Any to one shared stream and Exact to a stream of each one's, and
// checks, by the statements each append's span counts, that every append
// stored its events in its first transaction (BEGIN, lock, INSERT,
// COMMIT) rather than in the checked one after it: the INSERT reads the
// stream's version after the stream's lock, so appends to one stream
// taking turns never find it at a version they did not expect. (With the
// lock left out of that transaction, 44 of 160 appends fell back to the
// checked one, and some of those to the shared stream failed.)
func TestConcurrentAppendsTakeOneRoundTrip(t *testing.T) {
	t.Parallel()
	const writers, rounds = 8, 10
	p := telemetrytest.New(t)
	schema := schemaName(t)
	s := newStoreIn(t, testenv.PostgresPool(t, writers+2), schema,
		pgstore.WithTracerProvider(p.TracerProvider), pgstore.WithMeterProvider(p.MeterProvider))
	ctx := testenv.Context(t, 30*time.Second)
	require.NoError(t, s.Migrate(ctx))
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range rounds {
				_, err := s.Append(ctx, "shared", eventsource.Any, events(1+i%2, "test.v1")...)
				assert.NoError(t, err)
				_, err = s.Append(ctx, fmt.Sprint("own-", w), eventsource.Exact(int64(i)), events(1, "test.v1")...)
				assert.NoError(t, err)
			}
		})
	}
	wg.Wait()
	appends := p.SpansNamed(pgtel.Batch + " " + schema + ".events")
	require.Len(t, appends, 2*writers*rounds)
	for _, a := range appends {
		assert.Equal(t, int64(4), telemetrytest.Attrs(a)[semconv.DBOperationBatchSizeKey].AsInt64(),
			"statements of the append to %s", telemetrytest.Attrs(a)[pgstore.AttrStreamID].AsString())
	}
	assert.Len(t, collect(t, s.ReadStream(ctx, "shared", 1)), writers*rounds*3/2)
}
