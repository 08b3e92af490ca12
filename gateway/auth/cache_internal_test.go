package auth

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/otelpatterns/patterns/gateway"
)

// TestTokenCacheExpiry: an entry lives until the earlier of its token's
// exp and the TTL, not a moment longer. (The cache hands out its own
// principal; TestCachedPrincipalNotShared checks that callers get copies.)
func TestTokenCacheExpiry(t *testing.T) {
	c := newTokenCache(10, time.Minute)
	now := time.Now()
	d1, d2 := sha256.Sum256([]byte("a")), sha256.Sum256([]byte("b"))
	c.put(d1, &gateway.Principal{Subject: "exp-first"}, keyUse{}, now.Add(10*time.Second), now, 1)
	c.put(d2, &gateway.Principal{Subject: "ttl-first"}, keyUse{}, now.Add(time.Hour), now, 1)

	p, _, ok := c.get(d1, now.Add(9*time.Second))
	if !ok || p.Subject != "exp-first" {
		t.Fatalf("get before exp = %v, %v", p, ok)
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
	c.put(d1, &gateway.Principal{}, keyUse{}, now.Add(-time.Second), now, 1)
	if _, _, ok := c.get(d1, now); ok {
		t.Error("an expired token was cached")
	}
}

// TestTokenCacheBounded: the cache never holds more than its size.
func TestTokenCacheBounded(t *testing.T) {
	c := newTokenCache(100, time.Minute)
	now := time.Now()
	for i := range 1000 {
		c.put(sha256.Sum256([]byte(strconv.Itoa(i))), &gateway.Principal{}, keyUse{}, now.Add(time.Hour), now, 1)
	}
	if n := len(c.entries); n != 100 {
		t.Errorf("cache holds %d entries; want 100", n)
	}
}

// TestTokenCacheBoundedByBytes: large tokens could make the cache hold
// size times the largest token; it also never holds more than its bytes'
// bound by their estimated size, and keeps no token that would not fit
// alone.
func TestTokenCacheBoundedByBytes(t *testing.T) {
	c := newTokenCache(100, time.Minute)
	c.maxBytes = 10_000
	now := time.Now()
	big := tokenCost(string(make([]byte, 2000)), &gateway.Principal{}) // 4,320: two fit
	for i := range 50 {
		c.put(sha256.Sum256([]byte(strconv.Itoa(i))), &gateway.Principal{}, keyUse{}, now.Add(time.Hour), now, big)
		if c.bytes > c.maxBytes {
			t.Fatalf("after %d puts the cache holds %d bytes; bound %d", i+1, c.bytes, c.maxBytes)
		}
	}
	if n := len(c.entries); n != 2 || c.bytes != 2*big {
		t.Errorf("cache holds %d entries, %d bytes; want 2 of %d", n, c.bytes, big)
	}
	for d, e := range c.entries {
		c.remove(d)
		if c.bytes != big*int64(len(c.entries)) {
			t.Errorf("after removing an entry of %d, the cache counts %d bytes for %d entries", e.cost, c.bytes, len(c.entries))
		}
	}
	c.put(sha256.Sum256([]byte("huge")), &gateway.Principal{}, keyUse{}, now.Add(time.Hour), now, c.maxBytes+1)
	if len(c.entries) != 0 || c.bytes != 0 {
		t.Errorf("an entry larger than the bound was kept: %d entries, %d bytes", len(c.entries), c.bytes)
	}
}

// TestSameKey: keys are the same when their material is, whatever the
// pointer; different keys and different kinds of keys are not.
func TestSameKey(t *testing.T) {
	ec1, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ec2, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ecCopy := ec1.PublicKey
	rs, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	rsCopy := rs.PublicKey
	ed, _, _ := ed25519.GenerateKey(rand.Reader)
	tests := []struct {
		a, b any
		want bool
	}{
		{&ec1.PublicKey, &ec1.PublicKey, true},
		{&ec1.PublicKey, &ecCopy, true},
		{&ec1.PublicKey, &ec2.PublicKey, false},
		{&rs.PublicKey, &rsCopy, true},
		{&rs.PublicKey, &ec1.PublicKey, false},
		{ed, slices.Clone(ed), true},
		{ed, []byte(ed), false},
		{[]byte("secret"), []byte("secret"), true},
		{[]byte("secret"), []byte("other!"), false},
		{[]byte("secret"), &ec1.PublicKey, false},
	}
	for i, tt := range tests {
		if got := sameKey(tt.a, tt.b); got != tt.want {
			t.Errorf("case %d: sameKey(%T, %T) = %v; want %v", i, tt.a, tt.b, got, tt.want)
		}
	}
}

// TestTokenCostCoversClaims: a token whose claims hold thousands of small
// values decodes to several times twice its length; tokenCost, which
// bounds the cache's bytes, must not count less than the heap a cached
// principal takes, or the cache would outgrow its bound.
func TestTokenCostCoversClaims(t *testing.T) {
	for _, tc := range []struct {
		name string
		elem string
	}{
		{"strings", `"r"`},
		{"numbers", `1`},
		{"empty objects", `{}`},
		{"objects", `{"a":1,"b":"x"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			payload := `{"sub":"u","roles":[` + strings.Repeat(tc.elem+",", 2999) + tc.elem + `]}`
			token := "h." + base64.RawURLEncoding.EncodeToString([]byte(payload)) + ".s"
			const copies = 100
			ps := make([]*gateway.Principal, copies)
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			for i := range ps {
				var claims map[string]any
				if err := json.Unmarshal([]byte(payload), &claims); err != nil {
					t.Fatal(err)
				}
				ps[i] = &gateway.Principal{Subject: "u", Claims: claims}
			}
			runtime.GC()
			runtime.ReadMemStats(&after)
			heap := int64(after.HeapAlloc-before.HeapAlloc) / copies
			runtime.KeepAlive(ps)
			if cost := tokenCost(token, ps[0]); cost < heap {
				t.Errorf("tokenCost = %d for a %d-byte token whose principal takes %d bytes of heap", cost, len(token), heap)
			} else {
				t.Logf("tokenCost = %d, heap %d (token %d bytes)", cost, heap, len(token))
			}
		})
	}
}
