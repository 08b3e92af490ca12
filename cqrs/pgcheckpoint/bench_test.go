package pgcheckpoint_test

import (
	"context"
	"testing"
)

// BenchmarkSaveCheckpoint measures saving a checkpoint (an upsert) against
// the same statement sent with bare pgx. It needs PATTERNS_POSTGRES_URL.
func BenchmarkSaveCheckpoint(b *testing.B) {
	ctx := context.Background()
	store, pool, schema := newStore(b)
	b.Run("bare", func(b *testing.B) {
		q := `INSERT INTO "` + schema + `".checkpoints (name, position) VALUES ($1, $2)
			ON CONFLICT (name) DO UPDATE SET position = excluded.position`
		b.ReportAllocs()
		for i := int64(0); b.Loop(); i++ {
			if _, err := pool.Exec(ctx, q, "bare", i); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("store", func(b *testing.B) {
		b.ReportAllocs()
		for i := int64(0); b.Loop(); i++ {
			if err := store.SaveCheckpoint(ctx, "store", i); err != nil {
				b.Fatal(err)
			}
		}
	})
}
