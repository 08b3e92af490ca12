package pgcdc_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelpatterns/patterns/gateway/strangler/pgcdc"
)

// TestPartitionedTable: the changes of a partitioned table arrive under
// the table's name, not lost as changes of its partitions, which the
// consumer was not asked for.
func TestPartitionedTable(t *testing.T) {
	f := newFixture(t)
	f.exec("CREATE TABLE " + f.table("t") + " (id int PRIMARY KEY) PARTITION BY RANGE (id)")
	f.exec("CREATE TABLE " + f.table("t_low") + " PARTITION OF " + f.table("t") + " FOR VALUES FROM (0) TO (100)")
	f.exec("CREATE TABLE " + f.table("marker") + " (id int PRIMARY KEY)")
	h, ch := channel()
	c := f.consumer([]string{"t", "marker"}, h)
	f.setup(c)
	stop := run(t, c)
	f.insert(1)
	f.exec("INSERT INTO " + f.table("marker") + " VALUES (1)")
	first := one(t, next(t, ch))
	require.NoError(t, stop())
	assert.Equal(t, pgcdc.Change{Table: f.table("t"), Op: pgcdc.OpInsert, New: map[string]any{"id": int32(1)}, Key: map[string]any{"id": int32(1)}}, first,
		"the partition's insert, under the partitioned table's name")
}
