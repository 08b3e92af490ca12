package strangler

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// deepChain is {"a":{"a":…{"b":1}…}} nested depth times.
func deepChain(depth int, leaf string) string {
	return strings.Repeat(`{"a":`, depth) + `{"b":` + leaf + `}` + strings.Repeat(`}`, depth)
}

// TestIgnoreDeepDocument: matching the ignore paths costs each node of a
// document the same whatever its depth. Matching each node's whole path
// against each pattern again made a "**" cost the node's depth, and two
// of them its depth squared: an answer nested a few thousand levels (as
// deep as encoding/json takes) held a shadow worker for hours. The
// bound below is not a performance claim: it is minutes above what the
// comparison takes, and far below what the old matching took.
func TestIgnoreDeepDocument(t *testing.T) {
	const depth = 5000
	ignore := ignores(t, "**.a.**.c.**.d", "**.x")
	legacy, modern := jsonResp(200, deepChain(depth, "1")), jsonResp(200, deepChain(depth, "2"))
	done := make(chan []FieldDiff, 1)
	go func() {
		got, _ := compare(legacy, modern, nil, ignore)
		done <- got
	}()
	select {
	case got := <-done:
		if len(got) != 1 || string(got[0].Legacy) != "1" || string(got[0].New) != "2" {
			t.Errorf("compare() = %s; want the one leaf b", fields(got))
		}
	case <-time.After(2 * time.Minute):
		t.Fatal("compare() of a deep document did not finish")
	}

	// Ignoring still works at depth.
	got, _ := compare(legacy, modern, nil, ignores(t, "**.b"))
	if len(got) != 0 {
		t.Errorf("compare() ignoring **.b = %s; want nothing", fields(got))
	}
}

// TestIgnoredAgreesWithMatch: the matching kept while the walk descends
// decides as path.match does on the whole path.
func TestIgnoredAgreesWithMatch(t *testing.T) {
	paths := []string{"id", "items.*.id", "**.created_at", "a.**", "a.**.z", `\*`, "**", "**.**", "*.**.*", "**.a.**.b", "*", "a.*.**.b.*"}
	keyss := [][]string{{}, {"id"}, {"items", "3", "id"}, {"items", "3"}, {"created_at"}, {"a", "b", "2", "created_at"},
		{"created_at", "x"}, {"a"}, {"a", "z"}, {"a", "b", "c", "z"}, {"*"}, {"x"}, {"a", "a", "b", "b"}, {"a", "q", "b", "c"}, {"a", "q", "r", "b", "c"}}
	for _, ps := range paths {
		p := ignores(t, ps)
		for _, keys := range keyss {
			d := newDiffer(p)
			for _, k := range keys {
				d.push(k)
			}
			if got, want := d.ignored(), p[0].match(keys); got != want {
				t.Errorf("%q at %q: ignored() = %v; match() = %v", ps, keys, got, want)
			}
			for range keys {
				d.pop()
			}
			if got, want := d.ignored(), p[0].match(nil); got != want || len(d.states) != d.width {
				t.Errorf("%q at the root again: ignored() = %v; want %v", ps, got, want)
			}
		}
	}
}

// TestFieldBounded: a difference's field name is bounded like its
// values. Built from the keys above it, it was as long as they were: an
// answer of 1 MiB with long keys nested over its differences made each
// of the 32 kept fields about that long, in every sample kept.
func TestFieldBounded(t *testing.T) {
	key := strings.Repeat("k", 10_000)
	var l, m strings.Builder
	for _, b := range []*strings.Builder{&l, &m} {
		b.WriteString(strings.Repeat(`{"`+key+`":`, 10))
	}
	l.WriteString(`[1,2,3]`)
	m.WriteString(`[4,5,6]`)
	for _, b := range []*strings.Builder{&l, &m} {
		b.WriteString(strings.Repeat(`}`, 10))
	}
	got, _ := compare(jsonResp(200, l.String()), jsonResp(200, m.String()), nil, nil)
	if len(got) != 3 {
		t.Fatalf("compare() = %d differences; want 3", len(got))
	}
	for _, d := range got {
		if len(d.Field) > maxValue+len("…") || !strings.HasPrefix(d.Field, "body.kkk") || !utf8.ValidString(d.Field) {
			t.Errorf("field of %d bytes: %.40q…; want at most %d, valid UTF-8", len(d.Field), d.Field, maxValue)
		}
	}
}

// TestTeeLetsGoOverLimit: once a primary's answer has gone past
// MaxResponseBytes it will not be compared, and the tee keeps no memory
// for it while the answer goes on (an event stream can go on for
// hours): Reset kept the buffer's capacity, up to twice the bound.
func TestTeeLetsGoOverLimit(t *testing.T) {
	w := &teeWriter{ResponseWriter: httptest.NewRecorder(), limit: 64 << 10, buf: new(bytes.Buffer)}
	chunk := make([]byte, 1<<10)
	for range 65 {
		if _, err := w.Write(chunk); err != nil {
			t.Fatal(err)
		}
	}
	if !w.over || w.buf.Cap() > 0 {
		t.Errorf("past the limit: over %v, %d bytes held; want true, 0", w.over, w.buf.Cap())
	}
}

// TestDiffsAreCopies: what Diffs returns is the caller's: changing it
// changes neither the samples nor what DiffHandler serves (which reads
// them concurrently). The fields were shared with the ring.
func TestDiffsAreCopies(t *testing.T) {
	r := newRing(2)
	r.add(Diff{Path: "/a", Fields: []FieldDiff{{Field: "status"}}})
	got := r.list()
	got[0].Fields[0].Field = "changed"
	if f := r.list()[0].Fields[0].Field; f != "status" {
		t.Errorf("after the caller changed its copy, the sample's field is %q; want status", f)
	}
}

// TestGzipPastDecodeBound: gzip bodies that decode past maxDecoded are
// not compared on their first maxDecoded bytes alone: two answers that
// differed only past it matched.
func TestGzipPastDecodeBound(t *testing.T) {
	zeros := strings.Repeat("\x00", maxDecoded+1000)
	a, b := gzipResp(t, zeros+"a"), gzipResp(t, zeros+"b")
	a.Header.Set("Content-Type", "application/octet-stream")
	b.Header.Set("Content-Type", "application/octet-stream")
	if got, _ := compare(a, b, nil, nil); len(got) != 1 {
		t.Errorf("compare() = %s; want a body difference", fields(got))
	}
	c := gzipResp(t, zeros+"a")
	c.Header.Set("Content-Type", "application/octet-stream")
	if got, _ := compare(a, c, nil, nil); len(got) != 0 {
		t.Errorf("compare() of the same = %s", fields(got))
	}
}

// TestQueuedBytesReturn: once the copies are compared, the bytes they
// held are all given back, though run adds ShadowHeader to a copy's
// headers after enqueue counted them.
func TestQueuedBytesReturn(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "same") })
	f, err := New(h, h, WithShadow(Shadow{Workers: 1}))
	if err != nil {
		t.Fatal(err)
	}
	for range 10 {
		r := httptest.NewRequest(http.MethodGet, "/x", nil)
		r.Header.Set("Connection", ShadowHeader)
		f.ServeHTTP(httptest.NewRecorder(), r)
	}
	if err := f.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := f.shadow.held.Load(); n != 0 {
		t.Errorf("after Shutdown, %d bytes are still held; want 0", n)
	}
}
