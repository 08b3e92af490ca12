package pgstore_test

import (
	"context"
	"strconv"
	"testing"

	"github.com/otelpatterns/patterns/eventsource"
)

// BenchmarkAppendCommand measures single-event appends to one stream as
// BenchmarkAppend does, each under a command ID of its own: against
// BenchmarkAppend/single/pgstore, the cost of recording the command.
func BenchmarkAppendCommand(b *testing.B) {
	env := benchSetup(b, 2)
	ctx := context.Background()
	var version int64
	for b.Loop() {
		cctx := eventsource.WithCommandID(ctx, "cmd-"+strconv.FormatInt(version, 10))
		if _, err := env.store.Append(cctx, "stream-1", eventsource.Exact(version), newEvents(1)...); err != nil {
			b.Fatal(err)
		}
		version++
	}
	reportEventsPerSecond(b, version)
}
