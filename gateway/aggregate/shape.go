package aggregate

import (
	"maps"
	"net/http"
	"reflect"
	"slices"
	"strings"

	"github.com/otelpatterns/patterns/gateway"
)

// Shape reshapes the merged document (each part's answer under its name)
// for one client type. It must not keep or modify doc beyond returning
// it; it may return a new map that shares doc's values. The metadata
// fields ("_partial", "_stale") are added to what it returns.
type Shape func(doc map[string]any) map[string]any

// ClientType tells the client type of a request, which chooses its
// [Shape].
type ClientType func(r *http.Request) string

// FromHeader takes the client type from a request header ("X-Client:
// mobile"). The handler's responses name the header in Vary, so that a
// cache in front of the gateway keeps a document per client type. The
// handler cannot tell which header a ClientType of one's own reads:
// name it in Vary from a route's middleware, and the handler adds its
// names to it.
//
//go:noinline
func FromHeader(name string) ClientType {
	// Not inlined, so that every ClientType it makes has the code of
	// this one closure, by which New knows it (headerOf).
	key := http.CanonicalHeaderKey(name)
	return func(r *http.Request) string {
		if r == headerProbe {
			return key
		}
		return r.Header.Get(key)
	}
}

// headerProbe is the request that a ClientType made by FromHeader
// answers with its header's name.
var headerProbe = new(http.Request)

// fromHeaderCode is the code of FromHeader's ClientTypes.
var fromHeaderCode = reflect.ValueOf(FromHeader("")).Pointer()

// headerOf returns the header that ct reads, if FromHeader made it: only
// such a function is given headerProbe, never one of the user's.
func headerOf(ct ClientType) (string, bool) {
	if ct == nil || reflect.ValueOf(ct).Pointer() != fromHeaderCode {
		return "", false
	}
	return ct(headerProbe), true
}

// FromPathValue takes the client type from a path value of the route's
// pattern ("/{client}/orders/{id}").
func FromPathValue(name string) ClientType {
	return func(r *http.Request) string { return r.PathValue(name) }
}

// FromClaim takes the client type from a string claim of the caller's
// JWT ([gateway.PrincipalFrom]), such as an OAuth client's azp.
func FromClaim(name string) ClientType {
	return func(r *http.Request) string {
		p, ok := gateway.PrincipalFrom(r.Context())
		if !ok {
			return ""
		}
		s, _ := p.Claims[name].(string)
		return s
	}
}

// Select returns a Shape that keeps the fields it names and nothing
// else: fields maps a field of the output, dotted for a nested one
// ("customer.name"), to a field of the merged document, starting with
// a part's name ("customer.full_name"; "order" for the whole answer).
// A field that the document lacks, as a failed optional part's, is left
// out. A field nested in one that is also selected goes into a copy of
// it ("customer" and "customer.order_id").
//
//	aggregate.Select(map[string]string{
//		"id":       "order.id",
//		"total":    "order.total",
//		"customer": "customer.name",
//	})
func Select(fields map[string]string) Shape {
	// In order, so that a field ("customer") comes before the fields
	// nested in it ("customer.id"), which go into it rather than being
	// overwritten by it.
	order := slices.Sorted(maps.Keys(fields))
	return func(doc map[string]any) map[string]any {
		out := make(map[string]any, len(fields))
		var own map[string]bool // the objects of out made here, by path
		for _, to := range order {
			v, ok := Results(doc).Lookup(fields[to])
			if !ok {
				continue
			}
			m, path := out, to
			for {
				head, rest, nested := strings.Cut(path, ".")
				if !nested {
					m[head] = v
					break
				}
				prefix := to[:len(to)-len(rest)-1]
				next, ok := m[head].(map[string]any)
				if !own[prefix] {
					// An object of the document is copied, not written to.
					next = maps.Clone(next)
					if !ok {
						next = map[string]any{}
					}
					m[head] = next
					if own == nil {
						own = map[string]bool{}
					}
					own[prefix] = true
				}
				m, path = next, rest
			}
		}
		return out
	}
}
