package eventsource

import "github.com/otelpatterns/patterns/eventsource/internal/kit"

// The helpers of store implementations are exported by
// eventsource/storekit, which reaches them through internal/kit: they stay
// out of this package's index, where users of stores look.
func init() {
	kit.CheckAppend = checkAppend
	kit.CheckSnapshot = checkSnapshot
	kit.PrepareAppend = prepareAppend
}
