package cache_test

import (
	"bytes"
	"context"
	"math"
	"reflect"
	"strconv"
	"sync/atomic"
	"testing"
	"unicode/utf8"

	"github.com/otelpatterns/patterns/cache"
)

// fuzzRecord is a value with the shapes that JSON decoding treats apart:
// strings, integers, floats, booleans, a slice, a map and a pointer to
// itself.
type fuzzRecord struct {
	ID    string         `json:"id"`
	N     int64          `json:"n"`
	F     float64        `json:"f"`
	OK    bool           `json:"ok"`
	Tags  []string       `json:"tags"`
	Attrs map[string]int `json:"attrs"`
	Next  *fuzzRecord    `json:"next,omitempty"`
}

// fuzzSeeds are stored values as an L2 may hold them: written by this
// version, by another, partly, or not JSON at all.
var fuzzSeeds = [][]byte{
	[]byte(`{"id":"a","n":1,"f":1.5,"ok":true,"tags":["x"],"attrs":{"k":1},"next":{"id":"b"}}`),
	[]byte(`{"id":"a","extra":[1,2,{}]}`),
	[]byte(`{}`),
	[]byte(`null`),
	[]byte(" \n null \t"),
	[]byte(`{"next":null,"tags":null,"attrs":null}`),
	[]byte(`{"n":1e400}`),
	[]byte(`{"n":"1"}`),
	[]byte(`[]`),
	[]byte(`"a string"`),
	[]byte(`{"id":"\ud800"}`),
	[]byte("{not json"),
	{0xff, 0xfe, 0x00},
	{},
}

// FuzzJSONCodec feeds the JSON codec stored bytes and values. Unmarshal
// must never panic and never take null for a value; what it decodes must
// encode again and decode to the same value; a value must survive
// Marshal and Unmarshal (its strings coerced to valid UTF-8, as
// encoding/json does), or Marshal must refuse it (NaN, infinities).
func FuzzJSONCodec(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s, "id", int64(7), 0.5, "tag")
	}
	f.Add([]byte(`{}`), "\xff", int64(-1), math.Copysign(0, -1), "")
	codec := cache.JSON[fuzzRecord]{}
	f.Fuzz(func(t *testing.T, data []byte, id string, n int64, fl float64, tag string) {
		v, err := codec.Unmarshal(data)
		if bytes.Equal(bytes.Trim(data, " \t\r\n"), []byte("null")) && err == nil {
			t.Fatalf("Unmarshal(%q) = %+v, nil; want an error for null", data, v)
		}
		if err == nil {
			b, err := codec.Marshal(v)
			if err != nil {
				t.Fatalf("Marshal(Unmarshal(%q) = %+v) = %v", data, v, err)
			}
			again, err := codec.Unmarshal(b)
			if err != nil {
				t.Fatalf("Unmarshal(%q) = %v, encoded from Unmarshal(%q)", b, err, data)
			}
			if !reflect.DeepEqual(again, v) {
				t.Fatalf("Unmarshal(Marshal(%+v)) = %+v; want it unchanged (stored %q)", v, again, data)
			}
		}

		r := fuzzRecord{ID: id, N: n, F: fl, Tags: []string{tag}, Attrs: map[string]int{tag: int(n % 1000)},
			Next: &fuzzRecord{ID: tag}}
		b, err := codec.Marshal(r)
		if err != nil {
			if !math.IsNaN(fl) && !math.IsInf(fl, 0) {
				t.Fatalf("Marshal(%+v) = %v", r, err)
			}
			return
		}
		got, err := codec.Unmarshal(b)
		if err != nil {
			t.Fatalf("Unmarshal(Marshal(%+v) = %q) = %v", r, b, err)
		}
		if utf8.ValidString(id) && utf8.ValidString(tag) && !reflect.DeepEqual(got, r) {
			t.Fatalf("Unmarshal(Marshal(%+v)) = %+v", r, got)
		}
	})
}

// FuzzCacheGetStored reads through a Cache whose L2 holds fuzzed bytes:
// Get must never panic or fail, and must return the value the codec
// decodes from them without loading, or, when it cannot decode them, load
// the key and overwrite them.
func FuzzCacheGetStored(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s, "key")
	}
	f.Add([]byte(`{"id":"k"}`), "")
	f.Add([]byte(`{"id":"k"}`), "\x00\xff")
	ctx := context.Background()
	store := &cache.MemoryStore{}
	var loads atomic.Int64
	loaded := fuzzRecord{ID: "loaded", Tags: []string{"from the source"}}
	c, err := cache.New[fuzzRecord](cache.WithStore(store), cache.WithMaxEntries(100),
		cache.WithLoader(func(context.Context, string) (fuzzRecord, error) {
			loads.Add(1)
			return loaded, nil
		}))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = c.Close() })
	var keys atomic.Int64
	codec := cache.JSON[fuzzRecord]{}
	f.Fuzz(func(t *testing.T, stored []byte, key string) {
		key = strconv.FormatInt(keys.Add(1), 10) + "/" + key // a key no earlier run used
		if err := store.Set(ctx, key, stored, 0); err != nil {
			t.Fatal(err)
		}
		want, decodeErr := codec.Unmarshal(stored)
		before := loads.Load()
		got, err := c.Get(ctx, key)
		if err != nil {
			t.Fatalf("Get() over L2 %q = %v", stored, err)
		}
		if decodeErr == nil {
			if !reflect.DeepEqual(got, want) || loads.Load() != before {
				t.Fatalf("Get() over L2 %q = %+v after %d loads; want %+v, decoded, without loading",
					stored, got, loads.Load()-before, want)
			}
			return
		}
		if !reflect.DeepEqual(got, loaded) || loads.Load() != before+1 {
			t.Fatalf("Get() over undecodable L2 %q = %+v after %d loads; want the loaded value after 1",
				stored, got, loads.Load()-before)
		}
		if err := c.Flush(ctx); err != nil { // the L2 fill runs after the answer
			t.Fatalf("Flush: %v", err)
		}
		b, err := store.Get(ctx, key)
		if err != nil {
			t.Fatalf("L2 after the load: %v", err)
		}
		now, err := cache.JSON[fuzzRecord]{}.Unmarshal(b)
		if err != nil || !reflect.DeepEqual(now, loaded) {
			t.Fatalf("L2 after the load holds %q; want the loaded value", b)
		}
	})
}
