package pgcheckpoint

import (
	"context"

	"github.com/otelpatterns/patterns/eventsource"
)

// SetBeforeCommit makes [Store.Project] of s call f in the transaction of
// each event, after the handler and the checkpoint update and before the
// commit. Call it before s is used.
func SetBeforeCommit(s *Store, f func(ctx context.Context, e eventsource.Event)) { s.beforeCommit = f }
