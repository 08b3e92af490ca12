package cache_test

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelpatterns/patterns/cache"
)

type product struct {
	SKU   string   `json:"sku"`
	Price int      `json:"price"`
	Tags  []string `json:"tags,omitempty"`
}

// nulls are JSON nulls as another writer may have stored them.
var nulls = []string{"null", " null", "null\n", "\t\r\n null \n"}

// TestJSONNullIsNotAValue: encoding/json decodes null into a struct, a
// number, a string or a pointer without error, as the zero value; the
// codec reports it, so that the cache loads the key instead of serving
// that zero value for a whole TTL (issue 12, item 8).
func TestJSONNullIsNotAValue(t *testing.T) {
	for _, n := range nulls {
		_, err := cache.JSON[product]{}.Unmarshal([]byte(n))
		assert.Error(t, err, "JSON[product].Unmarshal(%q)", n)
		_, err = cache.JSON[*product]{}.Unmarshal([]byte(n))
		assert.Error(t, err, "JSON[*product].Unmarshal(%q)", n)
		_, err = cache.JSON[int]{}.Unmarshal([]byte(n))
		assert.Error(t, err, "JSON[int].Unmarshal(%q)", n)
		_, err = cache.JSON[string]{}.Unmarshal([]byte(n))
		assert.Error(t, err, "JSON[string].Unmarshal(%q)", n)
		_, err = cache.JSON[any]{}.Unmarshal([]byte(n))
		assert.Error(t, err, "JSON[any].Unmarshal(%q)", n)

		// A nil slice or map is what null stands for: it round-trips.
		s, err := cache.JSON[[]int]{}.Unmarshal([]byte(n))
		assert.NoError(t, err, "JSON[[]int].Unmarshal(%q)", n)
		assert.Nil(t, s)
		m, err := cache.JSON[map[string]int]{}.Unmarshal([]byte(n))
		assert.NoError(t, err, "JSON[map].Unmarshal(%q)", n)
		assert.Nil(t, m)
	}
	// "null" inside a value, or a string "null", is no null.
	v, err := cache.JSON[product]{}.Unmarshal([]byte(`{"sku":null,"price":3}`))
	require.NoError(t, err)
	assert.Equal(t, product{Price: 3}, v)
	str, err := cache.JSON[string]{}.Unmarshal([]byte(`"null"`))
	require.NoError(t, err)
	assert.Equal(t, "null", str)
	_, err = cache.JSON[product]{}.Unmarshal([]byte("nul"))
	assert.Error(t, err, "Unmarshal(nul)")
}

// TestJSONMarshalRefusesNull: the codec does not write what it would not
// read back.
func TestJSONMarshalRefusesNull(t *testing.T) {
	_, err := cache.JSON[*product]{}.Marshal(nil)
	assert.Error(t, err, "JSON[*product].Marshal(nil)")
	_, err = cache.JSON[any]{}.Marshal(nil)
	assert.Error(t, err, "JSON[any].Marshal(nil)")
	b, err := cache.JSON[*product]{}.Marshal(&product{SKU: "a"})
	require.NoError(t, err)
	assert.JSONEq(t, `{"sku":"a","price":0}`, string(b))
	b, err = cache.JSON[[]int]{}.Marshal(nil)
	require.NoError(t, err, "JSON[[]int].Marshal(nil)")
	assert.Equal(t, "null", string(b))
}

// TestJSONNullInL2IsAMiss: a Cache whose L2 holds null for a key loads it
// and overwrites the null, as for any undecodable value.
func TestJSONNullInL2IsAMiss(t *testing.T) {
	for _, n := range nulls {
		ctx := context.Background()
		store := &cache.MemoryStore{}
		require.NoError(t, store.Set(ctx, "sku-1", []byte(n), 0))
		var loads atomic.Int32
		c := newCache[product](t, cache.WithStore(store), cache.WithLoader(func(_ context.Context, key string) (product, error) {
			loads.Add(1)
			return product{SKU: key, Price: 42}, nil
		}))
		v, err := c.Get(ctx, "sku-1")
		require.NoError(t, err, "Get() over L2 %q", n)
		assert.Equal(t, product{SKU: "sku-1", Price: 42}, v, "Get() over L2 %q", n)
		assert.Equal(t, int32(1), loads.Load(), "loads over L2 %q", n)
		require.NoError(t, c.Flush(ctx), "waiting for the L2 fill")
		b, err := store.Get(ctx, "sku-1")
		require.NoError(t, err)
		assert.JSONEq(t, `{"sku":"sku-1","price":42}`, string(b), "L2 after the load")

		// Without a loader, it is a miss.
		bare := newCache[product](t, cache.WithStore(store))
		require.NoError(t, store.Set(ctx, "sku-2", []byte(n), 0))
		_, err = bare.Get(ctx, "sku-2")
		assert.ErrorIs(t, err, cache.ErrNotFound, "Get() over L2 %q without a loader", n)
	}
}
