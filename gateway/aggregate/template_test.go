package aggregate

import (
	"encoding/json"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// FuzzExpand checks that no value, from the route or from an upstream's
// answer, changes the shape of a part's request: it stays one path
// segment and one query value, whatever it holds. A dot segment ("."
// or ".."), which the upstream would resolve however it is escaped,
// fails the part in the path, and is a value like any other in the
// query.
func FuzzExpand(f *testing.F) {
	for _, s := range []string{"42", "..", ".", "...", ".a", "%2E%2E", "a/b", "?x=1", "%2F", "#frag", "a b", "&q=2", "{id}", "\x00\xff"} {
		f.Add(s)
	}
	tmpl, err := compilePath("/a/{id}/{order.x}?q={id}&r={order.x}")
	if err != nil {
		f.Fatal(err)
	}
	tmpl2, err := compilePath("/b/{order.y}")
	if err != nil {
		f.Fatal(err)
	}
	query, err := compilePath("/q?q={id}&r={order.y}")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, v string) {
		if v == "" {
			return // a route's path value is never empty
		}
		in := httptest.NewRequest("GET", "/", nil)
		in.SetPathValue("id", v)
		earlier := Results{"order": map[string]any{"x": json.Number("1"), "y": v}}
		if v == "." || v == ".." {
			for _, tm := range [][]segment{tmpl, tmpl2} {
				if uri, err := expand(tm, in, earlier); err == nil {
					t.Fatalf("expand(%q) = %q; want an error for a dot segment", v, uri)
				}
			}
			uri, err := expand(query, in, earlier)
			if err != nil {
				t.Fatalf("expand(%q in the query) = %v", v, err)
			}
			parsed, err := url.Parse("http://upstream" + uri)
			if err != nil || parsed.Query().Get("q") != v || parsed.Query().Get("r") != v {
				t.Fatalf("%q: query %v (%v); want q=%q r=%q", uri, parsed.Query(), err, v, v)
			}
			return
		}
		uri, err := expand(tmpl, in, earlier)
		if err != nil {
			t.Fatalf("expand(%q) = %v", v, err)
		}
		uri2, err := expand(tmpl2, in, earlier)
		if err != nil {
			t.Fatalf("expand(field %q) = %v", v, err)
		}
		for _, u := range []string{uri, uri2} {
			parsed, err := url.Parse("http://upstream" + u)
			if err != nil {
				t.Fatalf("%q: %v", u, err)
			}
			segs := strings.Split(parsed.EscapedPath(), "/")
			if len(segs) != 3 && len(segs) != 4 {
				t.Fatalf("%q: %d segments", u, len(segs))
			}
			if got, err := url.PathUnescape(segs[2]); err != nil || got != v {
				t.Fatalf("%q: segment %q unescapes to %q (%v); want %q", u, segs[2], got, err, v)
			}
			if u == uri {
				q := parsed.Query()
				if q.Get("q") != v || q.Get("r") != "1" || len(q) != 2 {
					t.Fatalf("%q: query %v; want q=%q r=1", u, q, v)
				}
			}
		}
	})
}
