package auth

import (
	"context"
	"errors"
	"io"
	"net/http"
	"slices"
	"sync"

	"github.com/MicahParks/jwkset"
	"github.com/MicahParks/keyfunc/v3"
	"golang.org/x/time/rate"

	"github.com/otelpatterns/patterns/internal/brief"
)

// jwksSource is one key set URL: keyfunc's storage of its keys (refreshed
// in the background, and on an unknown key ID at most once per
// WithJWKSMinRefresh) and the algorithms its keys may verify.
type jwksSource struct {
	url     string
	algs    []string
	storage jwkset.Storage
	unknown *rate.Limiter // the fetches an unknown key ID may cause
}

// heldOnly is a context already done: given it, keyfunc's storage looks a
// key ID up in the keys it holds and starts no fetch (its limiter's
// rate.Limiter.Wait fails at once on a done context).
var heldOnly = func() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}()

func newJWKSSource(ctx context.Context, c jwksConfig, cfg *config, client *http.Client, onErr func(url string, err error)) (*jwksSource, error) {
	algs := c.algs
	if len(algs) == 0 {
		algs = []string{defaultJWKSAlgorithm}
	}
	unknown := rate.NewLimiter(rate.Every(cfg.jwksMinRefresh), 1)
	kf, err := keyfunc.NewDefaultOverrideCtx(ctx, []string{c.url}, keyfunc.Override{
		Client:      client,
		HTTPTimeout: cfg.jwksTimeout,
		// RateLimitWaitMax bounds the fetch of an unknown key ID.
		// keyfunc's own limiter for those fetches lets every one
		// through: lookup asks for one only when s.unknown allows it,
		// with Allow, so that a request never queues for a fetch (as
		// it would in keyfunc's rate.Limiter.Wait, up to the next
		// token) and concurrent requests cannot both fetch.
		RateLimitWaitMax: cfg.jwksTimeout,
		RefreshErrorHandlerFunc: func(u string) func(context.Context, error) {
			return func(_ context.Context, err error) { onErr(u, err) }
		},
		RefreshInterval:   cfg.jwksRefresh,
		RefreshUnknownKID: rate.NewLimiter(rate.Inf, 1),
	})
	if err != nil {
		return nil, err
	}
	return &jwksSource{url: c.url, algs: algs, storage: kf.Storage(), unknown: unknown}, nil
}

// lookup returns the verifier of the key kid of this source, with fetch
// fetching the set again if it lacks kid and the unknown-kid limit
// allows; ok is false
// when the source has no such key. A key the source has but that cannot
// be used (its "alg" not among the source's algorithms, its "use" not
// "sig" or its "key_ops" without "verify", a weak or unsupported key)
// gives ok and a non-empty problem.
func (s *jwksSource) lookup(ctx context.Context, kid string, fetch bool) (v verifier, problem string, ok bool) {
	if !fetch || !s.unknown.Allow() {
		ctx = heldOnly // only the keys held: no fetch, and no wait
	}
	jwk, err := s.storage.KeyRead(ctx, kid)
	if err != nil {
		// Not found, or the fetch it caused failed or was not allowed
		// yet: this source cannot verify the token.
		return verifier{}, "", false
	}
	key := publicKey(jwk.Key())
	m := jwk.Marshal()
	// RFC 7517 4.2 and 4.3: a key published for encryption, or for
	// operations other than verifying, must not verify tokens.
	if use := m.USE.String(); use != "" && use != jwkset.UseSig.String() {
		return verifier{}, "key's use is " + brief.Quote(use) + ", not sig", true
	}
	if len(m.KEYOPS) > 0 && !slices.Contains(m.KEYOPS, jwkset.KeyOpsVerify) {
		return verifier{}, "key's key_ops do not include verify", true
	}
	var algs []string
	if alg := m.ALG.String(); alg != "" {
		if !slices.Contains(s.algs, alg) {
			return verifier{}, "key's alg " + alg + " is not among the configured algorithms", true
		}
		algs = []string{alg}
	} else {
		for _, a := range s.algs {
			if keyFits(a, key) == "" {
				algs = append(algs, a)
			}
		}
	}
	if len(algs) == 0 {
		return verifier{}, "key fits none of the configured algorithms", true
	}
	for _, a := range algs {
		if why := keyFits(a, key); why != "" {
			return verifier{}, why, true
		}
	}
	return verifier{key: key, algs: algs}, "", true
}

var errClosed = errors.New("auth: authenticator closed")

// fetchTracker is the transport of the key-set fetches: it counts the
// fetches in flight (until their body is closed) so that Close can wait
// for them, ends them when the authenticator's context is cancelled (a
// fetch caused by an unknown key ID runs under the request's context),
// and refuses new ones once closed.
type fetchTracker struct {
	base http.RoundTripper
	ctx  context.Context

	mu     sync.Mutex
	cond   *sync.Cond
	active int
	closed bool
}

func newFetchTracker(ctx context.Context, base http.RoundTripper) *fetchTracker {
	t := &fetchTracker{base: base, ctx: ctx}
	t.cond = sync.NewCond(&t.mu)
	return t
}

func (t *fetchTracker) RoundTrip(req *http.Request) (*http.Response, error) {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil, errClosed
	}
	t.active++
	t.mu.Unlock()
	ctx, cancel := context.WithCancel(req.Context())
	stop := context.AfterFunc(t.ctx, cancel)
	end := func() {
		stop()
		cancel()
		t.done()
	}
	resp, err := t.base.RoundTrip(req.WithContext(ctx))
	if err != nil {
		end()
		return nil, err
	}
	resp.Body = &trackedBody{ReadCloser: resp.Body, end: end}
	return resp, nil
}

func (t *fetchTracker) done() {
	t.mu.Lock()
	t.active--
	t.cond.Broadcast()
	t.mu.Unlock()
}

// close refuses new fetches and waits for those in flight, which the
// cancelled context of the authenticator ends promptly.
func (t *fetchTracker) close() {
	t.mu.Lock()
	t.closed = true
	for t.active > 0 {
		t.cond.Wait()
	}
	t.mu.Unlock()
}

type trackedBody struct {
	io.ReadCloser
	end  func()
	once sync.Once
}

func (b *trackedBody) Close() error {
	err := b.ReadCloser.Close()
	b.once.Do(b.end)
	return err
}
