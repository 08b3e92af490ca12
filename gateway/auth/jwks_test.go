package auth_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/otelpatterns/patterns/gateway/auth"
)

func jwksAuth(t testing.TB, srv *jwksServer, opts ...auth.Option) *auth.Authenticator {
	t.Helper()
	return newAuth(t, append([]auth.Option{
		auth.WithJWKS(srv.URL+"/jwks.json", "RS256", "ES256"),
		auth.WithIssuer(testIssuer),
		auth.WithAudience(testAudience),
	}, opts...)...)
}

func reasonOf(t testing.TB, err error) auth.Reason {
	t.Helper()
	var e *auth.Error
	require.ErrorAs(t, err, &e)
	return e.Reason
}

// TestJWKSUnknownKIDRefreshesOnce sends many tokens naming unknown key
// IDs, one by one and then at once: the key set is fetched again once,
// not once per request, and every such token is refused.
func TestJWKSUnknownKIDRefreshesOnce(t *testing.T) {
	srv := newJWKSServer(t)
	srv.add(t, "k1", rsa1, "RS256")
	a := jwksAuth(t, srv)
	require.EqualValues(t, 1, srv.hits.Load(), "fetches after New")

	_, err := a.VerifyToken(t.Context(), sign(t, jwt.SigningMethodRS256, rsa1, "k1", claims("alice")))
	require.NoError(t, err)
	assert.EqualValues(t, 1, srv.hits.Load(), "a known key ID fetched the set")

	for i := range 50 {
		_, err := a.VerifyToken(t.Context(), sign(t, jwt.SigningMethodRS256, rsa2, fmt.Sprintf("random-%d", i), claims("mallory")))
		assert.Equal(t, auth.ReasonUnknownKey, reasonOf(t, err))
	}
	assert.EqualValues(t, 2, srv.hits.Load(), "fetches after 50 unknown key IDs; want one more than after New")

	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() {
			tok := sign(t, jwt.SigningMethodRS256, rsa2, fmt.Sprintf("burst-%d", i), claims("mallory"))
			resp, _, _ := serve(t, a, bearerRequest(tok))
			assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
		})
	}
	wg.Wait()
	assert.EqualValues(t, 2, srv.hits.Load(), "fetches after a burst of unknown key IDs within the minimum interval")
}

// TestJWKSRotation: a key added to the set is picked up by the fetch its
// first token causes.
func TestJWKSRotation(t *testing.T) {
	srv := newJWKSServer(t)
	srv.add(t, "k1", rsa1, "RS256")
	a := jwksAuth(t, srv)
	srv.add(t, "k2", ec1, "ES256")

	p, err := a.VerifyToken(t.Context(), sign(t, jwt.SigningMethodES256, ec1, "k2", claims("bob")))
	require.NoError(t, err)
	assert.Equal(t, "bob", p.Subject)
	assert.EqualValues(t, 2, srv.hits.Load())
	_, err = a.VerifyToken(t.Context(), sign(t, jwt.SigningMethodRS256, rsa1, "k1", claims("alice")))
	assert.NoError(t, err, "the old key still verifies")
}

// TestJWKSAlgorithms: a JWK's own "alg" pins it; a JWK whose "alg" is not
// among the configured algorithms is unusable; a JWK without "alg" verifies
// the configured algorithms its key type fits.
func TestJWKSAlgorithms(t *testing.T) {
	srv := newJWKSServer(t)
	srv.add(t, "pinned", rsa1, "RS256")
	srv.add(t, "ps", rsa2, "PS256")
	srv.add(t, "bare", ec1, "")
	a := newAuth(t, auth.WithJWKS(srv.URL, "RS256", "RS384", "ES256"))

	_, err := a.VerifyToken(t.Context(), sign(t, jwt.SigningMethodRS256, rsa1, "pinned", claims("a")))
	assert.NoError(t, err)
	_, err = a.VerifyToken(t.Context(), sign(t, jwt.SigningMethodRS384, rsa1, "pinned", claims("a")))
	assert.Equal(t, auth.ReasonAlgorithm, reasonOf(t, err), "RS384 with a key whose JWK says RS256")
	_, err = a.VerifyToken(t.Context(), sign(t, jwt.SigningMethodPS256, rsa2, "ps", claims("a")))
	assert.Equal(t, auth.ReasonUnknownKey, reasonOf(t, err), "a key whose alg is not configured")
	_, err = a.VerifyToken(t.Context(), sign(t, jwt.SigningMethodES256, ec1, "bare", claims("a")))
	assert.NoError(t, err)
	_, err = a.VerifyToken(t.Context(), sign(t, jwt.SigningMethodHS256, rsaPublicPEM(), "pinned", claims("a")))
	assert.Equal(t, auth.ReasonAlgorithm, reasonOf(t, err), "HS256 with the RSA public key as secret")
}

// TestJWKSServerDown: with the key set's server down, tokens of the keys
// already fetched keep passing, through failed background refreshes too;
// a token of an unknown key is refused with 401, not 500.
func TestJWKSServerDown(t *testing.T) {
	srv := newJWKSServer(t)
	srv.add(t, "k1", rsa1, "RS256")
	a := jwksAuth(t, srv, auth.WithJWKSRefresh(10*time.Millisecond))
	srv.setDown(true)
	before := srv.hits.Load()
	require.Eventually(t, func() bool { return srv.hits.Load() >= before+3 }, 5*time.Second, 5*time.Millisecond,
		"background refreshes while down")

	good := sign(t, jwt.SigningMethodRS256, rsa1, "k1", claims("alice"))
	resp, _, got := serve(t, a, bearerRequest(good))
	assert.Equal(t, http.StatusOK, resp.StatusCode, "a cached key with the server down")
	require.NotNil(t, got)

	resp, _, _ = serve(t, a, bearerRequest(sign(t, jwt.SigningMethodRS256, rsa2, "k9", claims("alice"))))
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "an unknown key with the server down")
}

// TestJWKSNoKeys: New succeeds with the server down; tokens are then
// refused with 401, not 500; once the server is back, the fetch a token
// causes brings the keys.
func TestJWKSNoKeys(t *testing.T) {
	srv := newJWKSServer(t)
	srv.add(t, "k1", rsa1, "RS256")
	srv.setDown(true)
	a := jwksAuth(t, srv)
	tok := sign(t, jwt.SigningMethodRS256, rsa1, "k1", claims("alice"))

	down := jwksAuth(t, srv)
	resp, body, _ := serve(t, down, bearerRequest(tok))
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	assert.JSONEq(t, `{"error":"invalid_token"}`, body)

	srv.setDown(false)
	resp, _, _ = serve(t, a, bearerRequest(tok))
	assert.Equal(t, http.StatusOK, resp.StatusCode, "after the server came back")
}

// TestJWKSNoKeysAtAll: a server that answers an empty set.
func TestJWKSNoKeysAtAll(t *testing.T) {
	srv := newJWKSServer(t)
	a := jwksAuth(t, srv)
	resp, _, _ := serve(t, a, bearerRequest(sign(t, jwt.SigningMethodRS256, rsa1, "k1", claims("alice"))))
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
}

// TestJWKSClose: after Close no goroutine of the authenticator is left and
// no fetch starts, neither in the background nor for an unknown key ID;
// the keys already fetched still verify.
func TestJWKSClose(t *testing.T) {
	srv := newJWKSServer(t)
	srv.add(t, "k1", rsa1, "RS256")
	ignore := goleak.IgnoreCurrent()
	a, err := auth.New(auth.WithJWKS(srv.URL, "RS256"), auth.WithJWKSRefresh(5*time.Millisecond))
	require.NoError(t, err)
	require.Eventually(t, func() bool { return srv.hits.Load() >= 3 }, 5*time.Second, time.Millisecond)

	a.Close()
	a.Close()
	goleak.VerifyNone(t, ignore)
	hits := srv.hits.Load()
	time.Sleep(30 * time.Millisecond)
	_, err = a.VerifyToken(t.Context(), sign(t, jwt.SigningMethodRS256, rsa2, "k2", claims("a")))
	assert.Equal(t, auth.ReasonUnknownKey, reasonOf(t, err))
	assert.Equal(t, hits, srv.hits.Load(), "fetches after Close")
	_, err = a.VerifyToken(t.Context(), sign(t, jwt.SigningMethodRS256, rsa1, "k1", claims("a")))
	assert.NoError(t, err, "a fetched key after Close")
}

// TestJWKSCloseDuringFetch: Close cancels a fetch stuck on a server that
// does not answer (one caused by an unknown key ID, under the request's
// context), instead of waiting for its timeout.
func TestJWKSCloseDuringFetch(t *testing.T) {
	release := make(chan struct{})
	var n atomic.Int64
	stuck := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) == 1 {
			_, _ = w.Write([]byte(`{"keys":[]}`))
			return
		}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer stuck.Close()
	defer close(release)
	ignore := goleak.IgnoreCurrent()
	a, err := auth.New(auth.WithJWKS(stuck.URL, "RS256"), auth.WithJWKSTimeout(time.Minute))
	require.NoError(t, err)
	var calls sync.WaitGroup
	calls.Go(func() {
		_, _ = a.VerifyToken(t.Context(), sign(t, jwt.SigningMethodRS256, rsa1, "k1", claims("a")))
	})
	require.Eventually(t, func() bool { return n.Load() == 2 }, 5*time.Second, time.Millisecond, "the fetch for the unknown key")
	start := time.Now()
	a.Close()
	assert.Less(t, time.Since(start), time.Second, "Close with a fetch stuck")
	calls.Wait()
	goleak.VerifyNone(t, ignore)
}

// TestJWKSOverTLS: an https key set, fetched with the client given.
func TestJWKSOverTLS(t *testing.T) {
	jwk, err := jwkset.NewJWKFromKey(&rsa1.PublicKey, jwkset.JWKOptions{Metadata: jwkset.JWKMetadataOptions{KID: "k1"}})
	require.NoError(t, err)
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(jwkset.JWKSMarshal{Keys: []jwkset.JWKMarshal{jwk.Marshal()}})
	}))
	defer srv.Close()
	a := newAuth(t, auth.WithJWKS(srv.URL, "RS256"), auth.WithHTTPClient(srv.Client()))
	_, err = a.VerifyToken(t.Context(), sign(t, jwt.SigningMethodRS256, rsa1, "k1", claims("a")))
	assert.NoError(t, err)
}

// TestTokenCacheKeyChange: a cached token passes only while the key it
// was verified with is still its kid's key in the key set. A key removed
// from the set, or replaced under the same kid, ends the cached tokens it
// verified as soon as the set is fetched again: when an authenticator
// without a cache starts refusing them, not at the entry's TTL.
func TestTokenCacheKeyChange(t *testing.T) {
	for _, change := range []string{"removed", "replaced"} {
		t.Run(change, func(t *testing.T) {
			srv := newJWKSServer(t)
			srv.add(t, "k1", rsa1, "RS256")
			cachedAuth := jwksAuth(t, srv, auth.WithTokenCache(100, auth.MaxTokenCacheTTL), auth.WithJWKSRefresh(5*time.Millisecond))
			plain := jwksAuth(t, srv, auth.WithTokenCache(0, 0), auth.WithJWKSRefresh(5*time.Millisecond))
			tok := sign(t, jwt.SigningMethodRS256, rsa1, "k1", claims("alice"))
			_, err := cachedAuth.VerifyToken(t.Context(), tok)
			require.NoError(t, err)
			_, err = plain.VerifyToken(t.Context(), tok)
			require.NoError(t, err)

			srv.mu.Lock()
			srv.keys = nil
			srv.mu.Unlock()
			if change == "replaced" {
				srv.add(t, "k1", rsa2, "RS256")
			}
			require.Eventually(t, func() bool {
				_, err := plain.VerifyToken(t.Context(), tok)
				return err != nil
			}, 5*time.Second, 5*time.Millisecond, "the uncached authenticator refusing the token")
			// The entry's TTL is 5 minutes: refused within seconds, it was
			// refused for its key.
			require.Eventually(t, func() bool {
				_, err := cachedAuth.VerifyToken(t.Context(), tok)
				return err != nil
			}, 5*time.Second, 5*time.Millisecond, "the cached token whose key was %s", change)
		})
	}
}

// TestTokenCacheDefault: the cache is on by default; WithTokenCache(0, 0)
// turns it off; the key check still runs on a hit.
func TestTokenCacheDefault(t *testing.T) {
	a := newAuth(t, auth.WithKeys(auth.Key{ID: "k1", Algorithm: "RS256", Key: &rsa1.PublicKey}))
	tok := sign(t, jwt.SigningMethodRS256, rsa1, "k1", claims("alice"))
	p1, err := a.VerifyToken(t.Context(), tok)
	require.NoError(t, err)
	p2, err := a.VerifyToken(t.Context(), tok)
	require.NoError(t, err)
	assert.Equal(t, p1, p2)
	assert.NotSame(t, p1, p2, "each caller gets its own principal")
	_, err = auth.New(auth.WithKeys(auth.Key{ID: "k1", Algorithm: "RS256", Key: &rsa1.PublicKey}), auth.WithTokenCache(0, 0))
	require.NoError(t, err)
}

// TestJWKSKeyUse: a key published for encryption (use "enc"), or whose
// key_ops do not include verify, does not verify tokens (RFC 7517, 4.2
// and 4.3); "sig" and keys that say nothing do.
func TestJWKSKeyUse(t *testing.T) {
	srv := newJWKSServer(t)
	publish := func(kid string, use jwkset.USE, ops ...jwkset.KEYOPS) {
		jwk, err := jwkset.NewJWKFromKey(&rsa1.PublicKey, jwkset.JWKOptions{Metadata: jwkset.JWKMetadataOptions{
			KID: kid, ALG: jwkset.AlgRS256, USE: use, KEYOPS: ops}})
		require.NoError(t, err)
		srv.mu.Lock()
		srv.keys = append(srv.keys, jwk.Marshal())
		srv.mu.Unlock()
	}
	publish("enc", jwkset.UseEnc)
	publish("sig", jwkset.UseSig)
	publish("none", "")
	publish("ops-encrypt", "", jwkset.KeyOpsEncrypt)
	publish("ops-verify", "", jwkset.KeyOpsVerify)
	a := jwksAuth(t, srv)
	for kid, ok := range map[string]bool{"enc": false, "sig": true, "none": true, "ops-encrypt": false, "ops-verify": true} {
		_, err := a.VerifyToken(t.Context(), sign(t, jwt.SigningMethodRS256, rsa1, kid, claims("a")))
		if ok {
			assert.NoError(t, err, "key %s", kid)
		} else {
			assert.Equal(t, auth.ReasonUnknownKey, reasonOf(t, err), "key %s", kid)
		}
	}
}

// TestJWKSSeveralSets: with two key sets, a token of the second made
// the first, which lacks its key ID, fetch its set again (within its
// unknown-kid limit) for every token of the second, each waiting for
// that fetch. A key ID that one set holds fetches none.
func TestJWKSSeveralSets(t *testing.T) {
	first, second := newJWKSServer(t), newJWKSServer(t)
	first.add(t, "k1", rsa1, "RS256")
	second.add(t, "k2", rsa2, "RS256")
	a := newAuth(t, auth.WithJWKS(first.URL, "RS256"), auth.WithJWKS(second.URL, "RS256"),
		auth.WithJWKSMinRefresh(time.Second), auth.WithTokenCache(0, 0))
	require.EqualValues(t, 1, first.hits.Load(), "the first set's fetches after New")
	for i := range 3 {
		_, err := a.VerifyToken(t.Context(), sign(t, jwt.SigningMethodRS256, rsa2, "k2", claims(fmt.Sprint("bob", i))))
		require.NoError(t, err)
	}
	assert.EqualValues(t, 1, first.hits.Load(), "the first set's fetches after 3 tokens of the second")
	assert.EqualValues(t, 1, second.hits.Load(), "the second set's fetches after 3 of its tokens")

	// A key ID that neither holds: one fetch of each, as the limit allows.
	_, err := a.VerifyToken(t.Context(), sign(t, jwt.SigningMethodRS256, rsa2, "k3", claims("mallory")))
	assert.Equal(t, auth.ReasonUnknownKey, reasonOf(t, err))
	assert.EqualValues(t, 2, first.hits.Load(), "the first set's fetches after an unknown key ID")
	assert.EqualValues(t, 2, second.hits.Load(), "the second set's fetches after an unknown key ID")
}

// TestJWKSUnknownKIDNeverWaits: a request with an unknown key ID waited
// in the unknown-kid limiter for its next token, up to the fetch
// timeout, whenever WithJWKSMinRefresh was shorter than that: ten at
// once were held for up to 5s. One fetches; the others fail at once.
func TestJWKSUnknownKIDNeverWaits(t *testing.T) {
	srv := newJWKSServer(t)
	srv.add(t, "k1", rsa1, "RS256")
	a := newAuth(t, auth.WithJWKS(srv.URL, "RS256"), auth.WithJWKSMinRefresh(time.Second))
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		longest time.Duration
	)
	for i := range 10 {
		wg.Go(func() {
			tok := sign(t, jwt.SigningMethodRS256, rsa2, fmt.Sprint("random-", i), claims("mallory"))
			start := time.Now()
			_, _ = a.VerifyToken(t.Context(), tok)
			mu.Lock()
			longest = max(longest, time.Since(start))
			mu.Unlock()
		})
	}
	wg.Wait()
	assert.EqualValues(t, 2, srv.hits.Load(), "fetches: New's and one for the unknown key IDs")
	// One local fetch takes milliseconds; waiting for the limiter's next
	// token takes WithJWKSMinRefresh (1s), and the last of ten waited 4s
	// or more.
	assert.Less(t, longest, 900*time.Millisecond, "the longest of 10 requests with unknown key IDs")
}
