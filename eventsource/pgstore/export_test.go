package pgstore

import (
	"context"

	"github.com/otelpatterns/patterns/internal/pgschema"
)

// SetBeforeCommit makes every append of s call f inside its transaction,
// after the insert and before the commit, while it holds its stream's lock.
// Call it before s is used.
func SetBeforeCommit(s *Store, f func(ctx context.Context, streamID string)) { s.beforeCommit = f }

// SetListening makes s call f with the backend pid of every connection a
// subscription starts listening on. Call it before s is used.
func SetListening(s *Store, f func(pid uint32)) { s.listening = f }

// SkipNotify makes the appends of s send no notification, so that
// subscribers only learn of them by polling. Call it before s is used.
func SkipNotify(s *Store) { s.skipNotify = true }

// SetPageSize sets how many rows the reads of s fetch per query. Call it
// before s is used.
func SetPageSize(s *Store, n int) { s.pageSize = n }

// LockKeys returns the keys of the advisory locks of s: appends to
// stream, Migrate.
func LockKeys(s *Store, stream string) (appendKey, migrateKey int64) {
	return s.lockKey(stream), pgschema.MigrateLockKey(s.schema)
}

// SetStageAbove sets the size of events above which the appends of s
// upload them before they take the lock; -1 never. Call it before s is
// used.
func SetStageAbove(s *Store, n int) { s.stageAbove = n }

// MigrateTo brings the tables of s to version, below SchemaVersion, as an
// earlier release of the package would have.
func MigrateTo(ctx context.Context, s *Store, version int) error {
	return pgschema.MigrateComponent(ctx, s.pool, s.schema, pgschema.Component{
		Name: ScopeName, Released: released, Migrations: migrations[:version],
	})
}

// SetPending marks s as owing subscribers a notification, as an append
// that committed while another's notification was in flight does.
func SetPending(s *Store) { s.pending.Store(true) }

// Channel returns the channel on which s notifies subscribers.
func Channel(s *Store) string { return s.channel }
