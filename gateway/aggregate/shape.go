package aggregate

import (
	"net/http"
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
// mobile").
func FromHeader(name string) ClientType {
	return func(r *http.Request) string { return r.Header.Get(name) }
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
// out.
//
//	aggregate.Select(map[string]string{
//		"id":       "order.id",
//		"total":    "order.total",
//		"customer": "customer.name",
//	})
func Select(fields map[string]string) Shape {
	return func(doc map[string]any) map[string]any {
		out := make(map[string]any, len(fields))
		for to, from := range fields {
			v, ok := Results(doc).Lookup(from)
			if !ok {
				continue
			}
			m := out
			for {
				head, rest, nested := strings.Cut(to, ".")
				if !nested {
					m[head] = v
					break
				}
				next, ok := m[head].(map[string]any)
				if !ok {
					next = map[string]any{}
					m[head] = next
				}
				m, to = next, rest
			}
		}
		return out
	}
}
