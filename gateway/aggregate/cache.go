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

// configKey tells handlers that share a cache apart: those of the
// routes of one pattern, told apart by matchers, and versions of one
// handler across the instances sharing an L2. Functions (Request,
// shapes) are told by where they are set, not what they do.
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
		k.add(strconv.FormatBool(p.Request != nil))
		k.add(strconv.FormatInt(p.maxBytes, 10))
	}
	list(slices.Sorted(maps.Keys(cfg.shapes)))
	return k.key("")
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
