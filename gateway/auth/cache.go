package auth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"sync"
	"time"
	"unsafe"

	"github.com/otelpatterns/patterns/gateway"
)

// tokenCache remembers tokens that verified, by the SHA-256 digest of the
// whole token, until the earlier of their exp and the cache's TTL, so that
// a client sending the same token again costs a hash, a map lookup and a
// look at the key it was verified with (still there, the same key, the
// same algorithm?) instead of a signature check. Only tokens that verified
// enter it, so a flood of bad tokens cannot fill it; it holds at most size
// entries and at most maxBytes of their estimated size (tokenCost), and
// drops arbitrary ones to make room.
type tokenCache struct {
	ttl      time.Duration
	size     int
	maxBytes int64

	mu      sync.Mutex
	entries map[[sha256.Size]byte]cached
	bytes   int64 // the costs of the entries
}

type cached struct {
	p       *gateway.Principal
	expires time.Time
	by      keyUse
	cost    int64
}

// tokenCacheBytes bounds the estimated size of the cache's entries: with
// tokens of a few KB the entry count binds first; large tokens (up to
// maxTokenLength each) cannot make the cache hold more than this.
const tokenCacheBytes = 32 << 20

// tokenCost estimates what the cache holds for a token whose principal is
// p: the entry itself, the claims' strings (about twice the token's
// length) and the Go values that hold the decoded claims (jsonCost). The
// token's length alone would undercount claims of many small values,
// which decode to several times the token's size.
func tokenCost(token string, p *gateway.Principal) int64 {
	return 256 + 2*int64(len(token)) + 16*int64(len(p.Roles)+len(p.Scopes)) + jsonCost(p.Claims)
}

// jsonCost estimates the heap that x, a decoded JSON value, takes beyond
// its strings' bytes: a map's header and its groups of eight slots, a
// slice's elements, a boxed number, a string's header. It errs high.
func jsonCost(x any) int64 {
	switch x := x.(type) {
	case map[string]any:
		n := 64 + 288*int64((len(x)+7)/8)
		for _, v := range x {
			n += jsonCost(v)
		}
		return n
	case []any:
		n := 24 + 16*int64(len(x))
		for _, v := range x {
			n += jsonCost(v)
		}
		return n
	case []string:
		return 24 + 16*int64(len(x))
	default: // a string's header, a number or a bool in an interface
		return 16
	}
}

// keyUse is the key a token was verified with: its ID, the algorithm and
// the key itself, which must all still hold for a cached token to pass.
type keyUse struct {
	kid, alg string
	key      any
}

func newTokenCache(size int, ttl time.Duration) *tokenCache {
	return &tokenCache{ttl: ttl, size: size, maxBytes: tokenCacheBytes, entries: make(map[[sha256.Size]byte]cached, min(size, 1024))}
}

// get returns the principal of token if it verified less than the TTL
// ago and has not expired since. The principal is the cache's, shared by
// every request with the token: the caller must not change it, nor hand
// it out but as a copy (gateway.WithSharedPrincipal, Principal.Clone).
// The caller checks the key of the returned keyUse before it believes
// the principal, and removes the entry when the key no longer holds.
func (c *tokenCache) get(digest [sha256.Size]byte, now time.Time) (*gateway.Principal, keyUse, bool) {
	c.mu.Lock()
	e, ok := c.entries[digest]
	if ok && !now.Before(e.expires) {
		c.drop(digest, e)
		ok = false
	}
	c.mu.Unlock()
	if !ok {
		return nil, keyUse{}, false
	}
	return e.p, e.by, true
}

// tokenDigest returns the SHA-256 digest of token, which keys the cache.
// The hash reads the string's bytes where they are: []byte(token) would
// copy them to the heap on every request, and sha256 only reads its
// input.
func tokenDigest(token string) [sha256.Size]byte {
	return sha256.Sum256(unsafe.Slice(unsafe.StringData(token), len(token)))
}

// remove forgets a token.
func (c *tokenCache) remove(digest [sha256.Size]byte) {
	c.mu.Lock()
	if e, ok := c.entries[digest]; ok {
		c.drop(digest, e)
	}
	c.mu.Unlock()
}

// drop removes the entry e of digest; c.mu is held.
func (c *tokenCache) drop(digest [sha256.Size]byte, e cached) {
	delete(c.entries, digest)
	c.bytes -= e.cost
}

// put remembers the principal of a token that verified with by and
// expires at exp (exactly: the leeway is not extended to cached tokens).
// p is kept as it is, shared from then on: the caller must not change it
// either. cost is the entry's estimated size (tokenCost); an entry that
// would not fit in the cache alone is not kept.
func (c *tokenCache) put(digest [sha256.Size]byte, p *gateway.Principal, by keyUse, exp, now time.Time, cost int64) {
	expires := now.Add(c.ttl)
	if exp.Before(expires) {
		expires = exp
	}
	if !now.Before(expires) || cost > c.maxBytes {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.entries[digest]; ok {
		c.drop(digest, e)
	}
	for len(c.entries) >= c.size || c.bytes+cost > c.maxBytes {
		for k, e := range c.entries {
			c.drop(k, e)
			break
		}
	}
	c.entries[digest] = cached{p: p, expires: expires, by: by, cost: cost}
	c.bytes += cost
}

// sameKey reports whether two verification keys are the same key: equal
// public keys, or equal HMAC secrets.
func sameKey(a, b any) bool {
	switch k := a.(type) {
	case []byte:
		kb, ok := b.([]byte)
		return ok && subtle.ConstantTimeCompare(k, kb) == 1
	case *rsa.PublicKey:
		// The same pointer first: Equal copies both moduli to compare
		// them (two allocations).
		kb, ok := b.(*rsa.PublicKey)
		return ok && (k == kb || k.Equal(kb))
	case *ecdsa.PublicKey:
		kb, ok := b.(*ecdsa.PublicKey)
		return ok && (k == kb || k.Equal(kb))
	case interface{ Equal(crypto.PublicKey) bool }:
		return k.Equal(b)
	}
	return false
}
