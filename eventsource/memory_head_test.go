package eventsource_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/otelpatterns/patterns/eventsource"
)

func TestMemoryStoreHead(t *testing.T) {
	var m eventsource.MemoryStore
	ctx := context.Background()
	head, err := m.Head(ctx)
	require.NoError(t, err)
	require.Zero(t, head)
	_, err = m.Append(ctx, "a", eventsource.Any, eventsource.NewEvent{Type: "t"}, eventsource.NewEvent{Type: "t"})
	require.NoError(t, err)
	head, err = m.Head(ctx)
	require.NoError(t, err)
	require.Equal(t, int64(2), head)

	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	_, err = m.Head(cancelled)
	require.ErrorIs(t, err, context.Canceled)
}
