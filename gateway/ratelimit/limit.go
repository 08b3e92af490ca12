package ratelimit

import (
	"crypto/sha256"
	"encoding/hex"
	"math"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"time"

	"github.com/otelpatterns/patterns/gateway"
)

// Limit is what a [Limiter] enforces: a token bucket of Burst tokens that
// refills at Requests per Per, one bucket per value of Key, per route or
// across routes as Scope says.
type Limit struct {
	// Name identifies the limit: in the RateLimit and RateLimit-Policy
	// headers, in telemetry, and in Redis, where limiters of the same
	// name share their budgets (that is how several gateway instances
	// share one). Printable ASCII without quotes or backslashes.
	Name string
	// Requests per Per is the sustained rate: 100 per time.Minute.
	Requests int
	Per      time.Duration
	// Burst is how many requests may come at once, the bucket's size;
	// 0 means Requests.
	Burst int
	// Key says whose budget a request spends: [ByClientIP],
	// [ByClaim], [ByHeader] or [AllClients]. Required.
	Key Key
	// Scope says whether each route has its own budgets ([PerRoute]) or
	// all the routes that list the limiter share them ([AcrossRoutes]).
	// Required.
	Scope Scope
}

// Scope says how a limit's budgets are divided between the routes that
// list its limiter.
type Scope int

// The scopes of a limit. There is no default: a limit says which it is.
const (
	// PerRoute gives each route (by its pattern, gateway.RouteFrom) its
	// own budgets: 100 a minute on /orders and 100 a minute on /users.
	PerRoute Scope = iota + 1
	// AcrossRoutes makes every route that lists the limiter spend the
	// same budgets: 100 a minute in all, however many routes.
	AcrossRoutes
)

func (s Scope) String() string {
	switch s {
	case PerRoute:
		return "PerRoute"
	case AcrossRoutes:
		return "AcrossRoutes"
	}
	return "Scope(" + strconv.Itoa(int(s)) + ")"
}

type keyKind int

const (
	keyNone keyKind = iota
	keyClientIP
	keyClaim
	keyHeader
	keyAll
)

// Key says which budget a request spends: whose it is.
type Key struct {
	kind keyKind
	name string
}

// ByClientIP keys budgets on the client's address: gateway.ClientIP, which
// the gateway derives from the connection and the forwarded headers of
// the proxies it trusts, never from headers a client can forge; outside a
// gateway, the connection's peer address. IPv6 clients are keyed by their
// /64 network ([WithIPv6Prefix]), since one host commonly has a whole /64
// to pick addresses from.
func ByClientIP() Key { return Key{kind: keyClientIP} }

// ByClaim keys budgets on a claim of the authenticated principal
// (gateway.PrincipalFrom, so the authentication middleware must come
// first): "sub" is the principal's Subject (an API key's name, say), other
// names a JWT claim (a string or a number below 2^53: one above lost
// digits when the token was read). A request without the claim, anonymous
// or not, is keyed by its client address instead, as with [ByClientIP].
func ByClaim(claim string) Key { return Key{kind: keyClaim, name: claim} }

// ByHeader keys budgets on the value of a request header. A client can
// send any value, so use it only for a header that an earlier middleware
// sets or checks (a tenant set from a verified claim, say). A request
// without the header is keyed by its client address instead. The value
// is kept as a SHA-256 digest, in the key table and in Redis, so that a
// header carrying a secret (an API key) does not end up in either.
func ByHeader(name string) Key { return Key{kind: keyHeader, name: http.CanonicalHeaderKey(name)} }

// AllClients gives all clients one budget: with [PerRoute] a limit on the
// route's total traffic, with [AcrossRoutes] on the limiter's.
func AllClients() Key { return Key{kind: keyAll} }

func (k Key) String() string {
	switch k.kind {
	case keyClientIP:
		return "ByClientIP()"
	case keyClaim:
		return "ByClaim(" + strconv.Quote(k.name) + ")"
	case keyHeader:
		return "ByHeader(" + strconv.Quote(k.name) + ")"
	case keyAll:
		return "AllClients()"
	}
	return "Key{}"
}

// maxKeyPart is the longest client key kept as it is; longer ones (a long
// header value) are replaced by a digest, so that a client cannot make
// the key table, or Redis, hold large keys.
const maxKeyPart = 64

// appendBucketKey appends to buf the key of the bucket r spends: the
// route's pattern first for PerRoute, then the client's key. Building it
// in a buffer lets the in-process table look it up without allocating.
func (l *Limiter) appendBucketKey(buf []byte, r *http.Request, route string) []byte {
	if l.limit.Scope == PerRoute {
		buf = append(append(buf, route...), 0)
	}
	start := len(buf)
	buf = l.appendClientKey(buf, r)
	if len(buf)-start > maxKeyPart {
		sum := sha256.Sum256(buf[start:])
		buf = hex.AppendEncode(append(buf[:start], "h:"...), sum[:16])
	}
	return buf
}

func (l *Limiter) appendClientKey(buf []byte, r *http.Request) []byte {
	switch l.limit.Key.kind {
	case keyAll:
		return append(buf, '*')
	case keyClaim:
		if p, ok := gateway.PrincipalFrom(r.Context()); ok {
			if l.limit.Key.name == "sub" {
				if p.Subject != "" {
					return append(append(buf, "c:"...), p.Subject...)
				}
			} else {
				switch v := p.Claims[l.limit.Key.name].(type) {
				case string:
					if v != "" {
						return append(append(buf, "c:"...), v...)
					}
				case float64:
					// Past 2^53 a JSON number lost digits when it was read:
					// two IDs would share a budget. Such a claim counts as
					// none.
					if math.Abs(v) < 1<<53 {
						return strconv.AppendFloat(append(buf, "c:"...), v, 'f', -1, 64)
					}
				}
			}
		}
	case keyHeader:
		if v := r.Header.Get(l.limit.Key.name); v != "" {
			// The header may carry a secret (an API key): the table and
			// Redis keep a digest of it, never the value.
			start := len(buf)
			buf = append(buf, v...)
			sum := sha256.Sum256(buf[start:])
			return hex.AppendEncode(append(buf[:start], "hv:"...), sum[:16])
		}
	}
	return l.appendClientIP(append(buf, "ip:"...), r)
}

// appendClientIP appends the client's address as the gateway derived it,
// or the connection's peer address outside a gateway; never a header.
// IPv6 addresses are cut to their network prefix.
func (l *Limiter) appendClientIP(buf []byte, r *http.Request) []byte {
	addr, ok := gateway.ClientIP(r.Context())
	if !ok {
		host, _, err := net.SplitHostPort(r.RemoteAddr)
		if err != nil {
			host = r.RemoteAddr
		}
		if addr, err = netip.ParseAddr(host); err != nil {
			return append(buf, r.RemoteAddr...)
		}
	}
	addr = addr.Unmap()
	if addr.Is6() && l.ipv6Prefix < 128 {
		if p, err := addr.WithZone("").Prefix(l.ipv6Prefix); err == nil {
			return p.AppendTo(buf)
		}
	}
	return addr.AppendTo(buf)
}
