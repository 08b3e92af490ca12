package aggregate

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"maps"
	"net/http"
	"reflect"
	"runtime"
	"slices"
	"strconv"
	"time"

	"github.com/otelpatterns/patterns/gateway"
)

// Entry is what the cache of [WithCache] holds: a part's answer, or a
// whole document ([WithTTL]).
type Entry struct {
	// Body is the part's answer as its upstream sent it, or the
	// document as the handler sent it.
	Body json.RawMessage `json:"body"`
	// Stored is when it was received; it is fresh for the part's (or
	// the route's) TTL after that.
	Stored time.Time `json:"stored"`
	// Parts are a document's parts, counted as cached when it is
	// served.
	Parts []string `json:"parts,omitempty"`
}

// keyHash hashes the fields of a key, each with its length, so that
// fields cannot run into each other, and so that the key of a request
// with an Authorization header keeps no token readable in the cache.
type keyHash struct{ hash.Hash }

func newKeyHash() keyHash { return keyHash{sha256.New()} }

func (k keyHash) add(s string) {
	var n [binary.MaxVarintLen64]byte
	k.Write(n[:binary.PutUvarint(n[:], uint64(len(s)))])
	k.Write([]byte(s))
}

func (k keyHash) key(prefix string) string { return prefix + hex.EncodeToString(k.Sum(nil)) }

// subject is who the caller is, or "" for an anonymous one: the
// principal's scheme, subject and issuer. A principal without a subject
// (a JWT without sub, which gateway/auth accepts) is told apart by all
// its claims, so that callers who have nothing in common but their
// scheme do not share answers.
func subject(r *http.Request) string {
	p, ok := gateway.PrincipalFrom(r.Context())
	if !ok {
		return ""
	}
	k := newKeyHash()
	k.add(p.Scheme)
	k.add(p.Subject)
	iss, _ := p.Claims["iss"].(string)
	k.add(iss)
	if p.Subject == "" {
		b, err := json.Marshal(p.Claims) // its keys sorted
		if err != nil {
			b = fmt.Appendf(nil, "%#v", p.Claims)
		}
		k.add(string(b))
	}
	return k.key("")
}

// key identifies identical aggregations: those that would run the same
// parts with the same requests for the same caller and shape.
func (h *Handler) key(r *http.Request, clientType string) string {
	k := newKeyHash()
	route, _ := gateway.RouteFrom(r.Context())
	k.add(h.id)
	k.add(route)
	k.add(r.Method)
	k.add(r.Host)
	k.add(r.URL.RequestURI())
	k.add(clientType)
	k.add(subject(r))
	// The credentials the request came with, which a Request function
	// may send on: two callers with different ones never share a
	// document, though the gateway found the same principal, or none.
	// They go into the hash, never into the key in the clear.
	for _, name := range credentialHeaders {
		for _, v := range r.Header.Values(name) {
			k.add(name)
			k.add(v)
		}
	}
	for _, name := range h.headers {
		for _, v := range r.Header.Values(name) {
			k.add(name)
			k.add(v)
		}
	}
	if h.cfg.key != nil {
		k.add(h.cfg.key(r))
	}
	return k.key("aggregate:doc:")
}

// credentialHeaders are the headers of the incoming request whose
// digest is part of the key of an aggregation (see key).
var credentialHeaders = []string{"Authorization", "Proxy-Authorization", "Cookie"}

// configKey tells handlers that share a cache apart: those of the
// routes of one pattern, told apart by matchers, and versions of one
// handler across the instances sharing an L2. Functions (Request
// functions, shapes, the client type and WithKey's) are told apart by
// their names (funcName), which every instance of one binary shares.
func configKey(ps []*part, cfg config) string {
	k := newKeyHash()
	list := func(xs []string) {
		k.add(strconv.Itoa(len(xs)))
		for _, x := range xs {
			k.add(x)
		}
	}
	for _, p := range ps {
		k.add(p.Name)
		k.add(p.Upstream)
		k.add(p.Method)
		k.add(p.Path)
		list(p.header)
		list(p.After)
		k.add(strconv.FormatBool(p.Optional))
		k.add(funcName(p.Request))
		k.add(strconv.FormatInt(p.maxBytes, 10))
	}
	types := slices.Sorted(maps.Keys(cfg.shapes))
	list(types)
	for _, t := range types {
		k.add(funcName(cfg.shapes[t]))
	}
	k.add(funcName(cfg.clientType))
	k.add(funcName(cfg.key))
	return k.key("")
}

// funcName returns the name of f's function ("" for nil), such as
// "example.com/bff.mobileShape" or "example.com/bff.New.func2": the
// same in every process of one binary, so that instances sharing an L2
// agree on their keys. Every closure of one function literal has the
// literal's name, whatever it captured: two Select shapes, or two
// Request functions made by one constructor, have one name.
func funcName(f any) string {
	v := reflect.ValueOf(f)
	if v.Kind() != reflect.Func || v.IsNil() {
		return ""
	}
	if fn := runtime.FuncForPC(v.Pointer()); fn != nil {
		return fn.Name()
	}
	return "?"
}

// partKey identifies a part's answer: the request sent (the upstream,
// method, URL and every header), and the caller unless the part is
// public. The request is all the upstream sees, so two requests with one
// key get one answer.
func partKey(req *http.Request, public bool) string {
	k := newKeyHash()
	k.add(req.Method)
	k.add(req.URL.String())
	names := make([]string, 0, len(req.Header))
	for name := range req.Header {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		for _, v := range req.Header[name] {
			k.add(name)
			k.add(v)
		}
	}
	if !public {
		k.add(subject(req))
	}
	return k.key("aggregate:part:")
}
