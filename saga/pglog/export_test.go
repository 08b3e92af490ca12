package pglog

import (
	"context"
	"time"
)

// Schema returns the quoted name of the schema of l.
func Schema(l *Log) string { return l.sql.schema }

// CreateSQL returns the statement of l's Create.
func CreateSQL(l *Log) string { return l.sql.create }

// AppendSQL returns the statement of l's Append of n transitions as
// scalars (n 1 or 2), setting a status if set.
func AppendSQL(l *Log, set bool, n int) string {
	i := 0
	if set {
		i = 1
	}
	return l.sql.appends[i][n]
}

// MigrateTo brings the tables of l to version, below SchemaVersion, as an
// earlier release of the package would have.
func MigrateTo(ctx context.Context, l *Log, version int) error { return l.migrateTo(ctx, version) }

// Queued returns how many writes of l wait for a batch.
func Queued(l *Log) int {
	l.writer.mu.Lock()
	defer l.writer.mu.Unlock()
	return len(l.writer.queue)
}

// Slots returns how many writes or batches of l may be under way at once.
func Slots(l *Log) int { return l.writer.slots }

// SetStall sets how long a write of l waits for a slot, and a batch for a
// row lock, before they stop waiting.
func SetStall(l *Log, slot, lock time.Duration) { l.writer.setStall(slot, lock) }

// Busy returns how many of l's writes and batches hold a slot.
func Busy(l *Log) int {
	l.writer.mu.Lock()
	defer l.writer.mu.Unlock()
	return l.writer.busy
}
