// Package kit hands the store helpers that package eventsource keeps
// unexported (its in-memory stores use them) to package
// eventsource/storekit, which exports them, without an import cycle:
// eventsource sets these variables when it is initialised, and storekit,
// which imports eventsource, asserts their types when it is initialised.
package kit

// The helpers, as func values of the types storekit asserts.
var (
	CheckAppend   any // func(string, eventsource.ExpectedVersion, []eventsource.NewEvent) error
	CheckSnapshot any // func(eventsource.Snapshot) error
	PrepareAppend any // func(context.Context, []eventsource.NewEvent) []eventsource.NewEvent
)
