package auth

import (
	"crypto/sha256"
	"strconv"
	"testing"
	"time"

	"github.com/otelpatterns/patterns/gateway"
)

// TestTokenCacheExpiry: an entry lives until the earlier of its token's
// exp and the TTL, not a moment longer, and hands out copies.
func TestTokenCacheExpiry(t *testing.T) {
	c := newTokenCache(10, time.Minute)
	now := time.Now()
	d1, d2 := sha256.Sum256([]byte("a")), sha256.Sum256([]byte("b"))
	c.put(d1, &gateway.Principal{Subject: "exp-first"}, keyUse{}, now.Add(10*time.Second), now)
	c.put(d2, &gateway.Principal{Subject: "ttl-first"}, keyUse{}, now.Add(time.Hour), now)

	p, _, ok := c.get(d1, now.Add(9*time.Second))
	if !ok || p.Subject != "exp-first" {
		t.Fatalf("get before exp = %v, %v", p, ok)
	}
	p.Subject = "changed"
	if p, _, _ := c.get(d1, now); p.Subject != "exp-first" {
		t.Errorf("a change to a returned principal reached the cache: %q", p.Subject)
	}
	if _, _, ok := c.get(d1, now.Add(10*time.Second)); ok {
		t.Error("get at exp hit")
	}
	if _, _, ok := c.get(d2, now.Add(59*time.Second)); !ok {
		t.Error("get within the TTL missed")
	}
	if _, _, ok := c.get(d2, now.Add(time.Minute)); ok {
		t.Error("get at the TTL hit")
	}
	c.put(d1, &gateway.Principal{}, keyUse{}, now.Add(-time.Second), now)
	if _, _, ok := c.get(d1, now); ok {
		t.Error("an expired token was cached")
	}
}

// TestTokenCacheBounded: the cache never holds more than its size.
func TestTokenCacheBounded(t *testing.T) {
	c := newTokenCache(100, time.Minute)
	now := time.Now()
	for i := range 1000 {
		c.put(sha256.Sum256([]byte(strconv.Itoa(i))), &gateway.Principal{}, keyUse{}, now.Add(time.Hour), now)
	}
	if n := len(c.entries); n != 100 {
		t.Errorf("cache holds %d entries; want 100", n)
	}
}
