package pgcdc

import (
	"context"
	"testing"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestBackoffDoubles: the backoff is what WithBackoff documents: from
// initial, doubling up to max, with 50% jitter either side.
func TestBackoffDoubles(t *testing.T) {
	c, err := New("", "s", []string{"t"}, func(ctx context.Context, tx Transaction) error { return nil },
		WithBackoff(time.Second, 8*time.Second))
	require.NoError(t, err)
	b, ok := c.backoff().(*backoff.ExponentialBackOff)
	require.True(t, ok, "%T", c.backoff())
	assert.Equal(t, 2.0, b.Multiplier)
	assert.Equal(t, 0.5, b.RandomizationFactor)
	assert.Equal(t, time.Second, b.InitialInterval)
	assert.Equal(t, 8*time.Second, b.MaxInterval)
	for i, want := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 8 * time.Second} {
		d := b.NextBackOff()
		assert.True(t, d >= want/2 && d <= want*3/2, "wait %d = %v; want %v ± 50%%", i, d, want)
	}
}

// TestSilenceBound: a connection is taken for dead after 3 status
// intervals without a message, or the server's wal_sender_timeout if
// that is longer, as WithStatusInterval documents; twice that after
// each connection so taken since the last commit, up to a day.
func TestSilenceBound(t *testing.T) {
	for _, tt := range []struct {
		interval, senderTimeout time.Duration
		silences                int
		want                    time.Duration
	}{
		{10 * time.Second, time.Minute, 0, time.Minute},
		{10 * time.Second, 0, 0, 30 * time.Second},
		{time.Minute, time.Minute, 0, 3 * time.Minute},
		{10 * time.Second, 0, 1, time.Minute},
		{10 * time.Second, time.Minute, 3, 8 * time.Minute},
		{10 * time.Second, time.Minute, 20, maxSilence},
		{10 * time.Second, time.Minute, 1000, maxSilence},
	} {
		assert.Equal(t, tt.want, silenceBound(tt.interval, tt.senderTimeout, tt.silences),
			"silenceBound(%v, %v, %d)", tt.interval, tt.senderTimeout, tt.silences)
	}
}
