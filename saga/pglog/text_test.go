package pglog_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelpatterns/patterns/internal/testenv"
	"github.com/otelpatterns/patterns/saga"
)

// TestAnyTextIsStored writes error messages and trace contexts holding
// NUL bytes and invalid UTF-8, which PostgreSQL's text and jsonb refuse:
// the writes succeed, storing the text with each NUL and each invalid run
// made U+FFFD, so that a step whose error says so cannot wedge its saga
// (issue 14 item 1). Text that is valid comes back as it was.
func TestAnyTextIsStored(t *testing.T) {
	t.Parallel()
	l, _, _ := newLog(t, 2)
	ctx := testenv.Context(t, 10*time.Second)
	rec := saga.Record{ID: "s1", Name: "order", Version: 1, Data: []byte("\x00data\xff"),
		Trace: map[string]string{"traceparent": "00-\x00", "bad\xffkey": "ok", "baggage": "ünï"}}
	require.NoError(t, l.Create(ctx, rec, "me", time.Minute), "Create with a NUL and invalid UTF-8 in the trace")
	ts := []saga.Transition{
		{Seq: 1, Step: "charge", Phase: saga.Forward, Kind: saga.Failed, Attempt: 1, Error: "card \x00declined"},
		{Seq: 2, Step: "charge", Phase: saga.Forward, Kind: saga.Failed, Attempt: 2, Error: "bad \xff\xfe bytes, then ünïcødé"},
		{Seq: 3, Status: saga.Compensating, Error: "\x00"},
		{Seq: 4, Step: "reserve", Phase: saga.Compensate, Kind: saga.Succeeded, Attempt: 1, Error: "fine: ünï"},
	}
	require.NoError(t, l.Append(ctx, "s1", "me", ts...), "Append of errors with a NUL and invalid UTF-8")

	got, gotTs, err := l.Load(ctx, "s1")
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"traceparent": "00-\uFFFD", "bad\uFFFDkey": "ok", "baggage": "ünï"}, got.Trace)
	assert.Equal(t, []byte("\x00data\xff"), got.Data, "data are bytes, stored as they are")
	require.Len(t, gotTs, 4)
	for i, want := range []string{"card \uFFFDdeclined", "bad \uFFFD bytes, then ünïcødé", "\uFFFD", "fine: ünï"} {
		assert.Equal(t, want, gotTs[i].Error, "transition %d", i+1)
	}
	assert.Equal(t, saga.Compensating, got.Status)
}
