package pgcdc_test

import (
	"encoding/json"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelpatterns/patterns/gateway/strangler/pgcdc"
)

// TestUndecodableValueDeliveredAsText: a value of a type pgx knows that
// it fails to decode is delivered as its text, like a value of a type it
// does not know, instead of making the consumer connect again and fail
// on the same change forever, never delivering it nor anything after it.
// The values are real rows' values: a jsonb number beyond float64's
// range (now a json.Number, which keeps it), a "char" with its high bit
// set, which PostgreSQL writes as \ooo, and a json document nested
// deeper than encoding/json reads.
func TestUndecodableValueDeliveredAsText(t *testing.T) {
	deep := strings.Repeat("[", 10001) + strings.Repeat("]", 10001)
	for _, tt := range []struct {
		name, typ, value string
		want             any
	}{
		{"jsonb beyond float64", "jsonb", `{"amount": 1e400}`, // jsonb writes every digit
			map[string]any{"amount": json.Number("1" + strings.Repeat("0", 400))}},
		{"char with high bit", `"char"`, `\200`, `\200`},
		{"json nested too deep", "json", deep, deep},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			f.exec("CREATE TABLE " + f.table("t") + " (id int PRIMARY KEY, v " + tt.typ + ")")
			var failures atomic.Int32
			var lastErr atomic.Value
			h, ch := channel()
			c := f.consumer([]string{"t"}, h, pgcdc.WithErrorHandler(func(err error) {
				failures.Add(1)
				msg := err.Error()
				lastErr.Store(msg[:min(len(msg), 160)])
			}))
			f.setup(c)
			stop := run(t, c)
			f.exec("INSERT INTO "+f.table("t")+" VALUES (1, $1)", tt.value)
			f.exec("INSERT INTO " + f.table("t") + " VALUES (2, NULL)")
			tx, ok := within(ch, 10*time.Second)
			second, ok2 := within(ch, 10*time.Second)
			require.NoError(t, stop(), "Run")
			require.True(t, ok, "no transaction within 10s; the consumer reconnected %d times, last error: %v", failures.Load(), lastErr.Load())
			require.True(t, ok2, "the transaction after it")
			ins := one(t, tx)
			assert.Equal(t, tt.want, ins.New["v"])
			assert.Equal(t, []int32{2}, ids(second))
			assert.Zero(t, failures.Load())
		})
	}
}

// TestJSONNumbersKeepDigits: a json value's numbers keep their digits
// (json.Number), where float64 would make an integer beyond 2^53 another
// one: the copy would differ from the row. The value keeps the shape
// encoding/json gives it (map[string]any, []any).
func TestJSONNumbersKeepDigits(t *testing.T) {
	f := newFixture(t)
	f.exec("CREATE TABLE " + f.table("t") + " (id int PRIMARY KEY, doc jsonb, raw json, docs jsonb[])")
	h, ch := channel()
	c := f.consumer([]string{"t"}, h)
	f.setup(c)
	stop := run(t, c)
	f.exec("INSERT INTO " + f.table("t") + ` VALUES (1, '{"order_id": 9007199254740993, "lines": [0.10, 2]}',
'{"order_id": 9007199254740993}', ARRAY['{"n": 9007199254740993}'::jsonb])`)
	ins := one(t, next(t, ch))
	require.NoError(t, stop())
	assert.Equal(t, map[string]any{"order_id": json.Number("9007199254740993"),
		"lines": []any{json.Number("0.10"), json.Number("2")}}, ins.New["doc"])
	b, err := json.Marshal(ins.New["doc"])
	require.NoError(t, err)
	// Compared as text: JSONEq would compare the numbers as float64 too.
	assert.Equal(t, `{"lines":[0.10,2],"order_id":9007199254740993}`, string(b))
	assert.Equal(t, map[string]any{"order_id": json.Number("9007199254740993")}, ins.New["raw"])
	assert.Equal(t, []any{map[string]any{"n": json.Number("9007199254740993")}}, ins.New["docs"], "jsonb[]")
}

// TestArraysAndChars: an array of several dimensions is delivered as
// nested slices, by its dimensions (flattened, '{{1,2},{3,4}}' was the
// same value as '{1,2,3,4}'); an array whose indexes do not start at 1
// is its text; a "char" is a string of its one character.
func TestArraysAndChars(t *testing.T) {
	f := newFixture(t)
	f.exec("CREATE TABLE " + f.table("t") + ` (id int PRIMARY KEY, m int[], c "char", cs "char"[])`)
	h, ch := channel()
	c := f.consumer([]string{"t"}, h)
	f.setup(c)
	stop := run(t, c)
	f.exec("INSERT INTO " + f.table("t") + ` VALUES (1, '{1,2,3,4}', 'a', '{x,y}'), (2, '{{1,2},{3,4}}', '', NULL),
(3, '{{{1},{2}},{{3},{NULL}}}', NULL, NULL), (4, '{}', NULL, NULL), (5, '[0:1]={1,2}', NULL, NULL)`)
	tx := next(t, ch)
	require.NoError(t, stop())
	require.Len(t, tx.Changes, 5)
	m := func(i int) any { return tx.Changes[i].New["m"] }
	assert.Equal(t, []any{int32(1), int32(2), int32(3), int32(4)}, m(0))
	assert.Equal(t, []any{[]any{int32(1), int32(2)}, []any{int32(3), int32(4)}}, m(1))
	assert.Equal(t, []any{[]any{[]any{int32(1)}, []any{int32(2)}}, []any{[]any{int32(3)}, []any{nil}}}, m(2))
	assert.Equal(t, []any{}, m(3), "an empty array")
	assert.Equal(t, "[0:1]={1,2}", m(4), "an array with other bounds, as text")
	assert.Equal(t, "a", tx.Changes[0].New["c"])
	assert.Equal(t, []any{"x", "y"}, tx.Changes[0].New["cs"])
	assert.Equal(t, "", tx.Changes[1].New["c"], "the zero byte")
}
