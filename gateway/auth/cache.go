package auth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"slices"
	"sync"
	"time"

	"github.com/otelpatterns/patterns/gateway"
)

// tokenCache remembers tokens that verified, by the SHA-256 digest of the
// whole token, until the earlier of their exp and the cache's TTL, so that
// a client sending the same token again costs a hash, a map lookup and a
// look at the key it was verified with (still there, the same key, the
// same algorithm?) instead of a signature check. Only tokens that verified
// enter it, so a flood of bad tokens cannot fill it; it holds at most size
// entries and drops an arbitrary one to make room.
type tokenCache struct {
	ttl  time.Duration
	size int

	mu      sync.Mutex
	entries map[[sha256.Size]byte]cached
}

type cached struct {
	p       *gateway.Principal
	expires time.Time
	by      keyUse
}

// keyUse is the key a token was verified with: its ID, the algorithm and
// the key itself, which must all still hold for a cached token to pass.
type keyUse struct {
	kid, alg string
	key      any
}

func newTokenCache(size int, ttl time.Duration) *tokenCache {
	return &tokenCache{ttl: ttl, size: size, entries: make(map[[sha256.Size]byte]cached, min(size, 1024))}
}

// get returns a copy of the principal of token if it verified less than
// the TTL ago and has not expired since.
// The caller checks the key of the returned keyUse before it believes
// the principal, and removes the entry when the key no longer holds.
func (c *tokenCache) get(digest [sha256.Size]byte, now time.Time) (*gateway.Principal, keyUse, bool) {
	c.mu.Lock()
	e, ok := c.entries[digest]
	if ok && !now.Before(e.expires) {
		delete(c.entries, digest)
		ok = false
	}
	c.mu.Unlock()
	if !ok {
		return nil, keyUse{}, false
	}
	return clonePrincipal(e.p), e.by, true // a handler that changes its principal changes no other's
}

// remove forgets a token.
func (c *tokenCache) remove(digest [sha256.Size]byte) {
	c.mu.Lock()
	delete(c.entries, digest)
	c.mu.Unlock()
}

// clonePrincipal copies p deeply: its slices and its claims (JSON values:
// objects, arrays and scalars), which a shallow copy would share.
func clonePrincipal(p *gateway.Principal) *gateway.Principal {
	cp := *p
	cp.Roles = slices.Clone(p.Roles)
	cp.Scopes = slices.Clone(p.Scopes)
	if p.Claims != nil {
		cp.Claims = cloneJSON(p.Claims).(map[string]any)
	}
	return &cp
}

func cloneJSON(v any) any {
	switch v := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(v))
		for k, x := range v {
			m[k] = cloneJSON(x)
		}
		return m
	case []any:
		s := make([]any, len(v))
		for i, x := range v {
			s[i] = cloneJSON(x)
		}
		return s
	case []string:
		return slices.Clone(v)
	}
	return v
}

// put remembers the principal of a token that verified with by and
// expires at exp (exactly: the leeway is not extended to cached tokens).
func (c *tokenCache) put(digest [sha256.Size]byte, p *gateway.Principal, by keyUse, exp, now time.Time) {
	expires := now.Add(c.ttl)
	if exp.Before(expires) {
		expires = exp
	}
	if !now.Before(expires) {
		return
	}
	cp := clonePrincipal(p)
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.entries[digest]; !ok && len(c.entries) >= c.size {
		for k := range c.entries {
			delete(c.entries, k)
			break
		}
	}
	c.entries[digest] = cached{p: cp, expires: expires, by: by}
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
