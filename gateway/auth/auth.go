package auth

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/otelpatterns/patterns/gateway"
	"github.com/otelpatterns/patterns/internal/brief"
)

// The schemes a [gateway.Principal] is authenticated by.
const (
	SchemeJWT    = "jwt"
	SchemeAPIKey = "apikey"
)

// Authenticator checks the credentials of requests: bearer JWTs verified
// with static keys or keys from JWKS URLs, and API keys. Its
// [Authenticator.Middleware] protects a route; [Authenticator.Authenticate]
// and [Authenticator.VerifyToken] check credentials anywhere else.
//
// An Authenticator is safe for concurrent use. One built with [WithJWKS]
// runs a background refresh per URL until [Authenticator.Close]. An
// Authenticator is made by [New]: one that was not (the zero
// Authenticator) knows no key and refuses every credential, and its
// Middleware panics when called.
type Authenticator struct {
	static       map[string]verifier
	sources      []*jwksSource
	parser       *jwt.Parser
	required     []string
	rolesClaim   []string
	scopesClaim  []string
	altScopes    bool
	apiKeys      []apiKey
	apiKeyHeader string
	apiKeyQuery  string
	claimHeaders []claimHeader
	challenge    [3]string // the WWW-Authenticate values: missing, invalid_token, insufficient_scope
	jwtEnabled   bool
	cache        *tokenCache
	tel          *instruments

	cancel    context.CancelFunc
	tracker   *fetchTracker
	ownClient *http.Client
	closeOnce sync.Once
}

type claimHeader struct {
	claim  []string // the dotted path
	raw    string
	header string
	alt    string // header spelled with hyphens, when it has underscores
}

// New returns an authenticator configured by opts. It needs at least one
// key source ([WithKeys], [WithJWKS] or [WithAPIKeys]). Every bad option
// is reported at once, each naming its option; a nil option is reported
// as "opts[i] is nil". With [WithJWKS], New
// fetches each key set before it returns, waiting up to
// [WithJWKSTimeout]; a set that cannot be fetched is not an error (tokens
// are refused until a later fetch succeeds).
func New(opts ...Option) (*Authenticator, error) {
	cfg := config{
		leeway:         DefaultLeeway,
		rolesClaim:     DefaultRolesClaim,
		scopesClaim:    DefaultScopesClaim,
		apiKeyHeader:   DefaultAPIKeyHeader,
		jwksRefresh:    DefaultJWKSRefresh,
		jwksMinRefresh: DefaultJWKSMinRefresh,
		jwksTimeout:    DefaultJWKSTimeout,
		cacheSize:      DefaultTokenCacheSize,
		cacheTTL:       DefaultTokenCacheTTL,
	}
	var errs []error
	for i, o := range opts {
		if o == nil {
			errs = append(errs, fmt.Errorf("auth: opts[%d] is nil", i))
			continue
		}
		o.apply(&cfg)
	}
	if err := errors.Join(append(errs, cfg.validate())...); err != nil {
		return nil, err
	}

	a := &Authenticator{
		static:       map[string]verifier{},
		required:     slices.Clone(cfg.required),
		rolesClaim:   strings.Split(cfg.rolesClaim, "."),
		scopesClaim:  strings.Split(cfg.scopesClaim, "."),
		altScopes:    !cfg.scopesSet,
		apiKeys:      newAPIKeys(cfg.apiKeys),
		apiKeyHeader: http.CanonicalHeaderKey(cfg.apiKeyHeader),
		apiKeyQuery:  cfg.apiKeyQuery,
		jwtEnabled:   len(cfg.keys) > 0 || len(cfg.jwks) > 0,
		tel:          newInstruments(cfg.meterProvider),
	}
	for claim, header := range cfg.claimHeaders {
		ch := claimHeader{claim: strings.Split(claim, "."), raw: claim, header: http.CanonicalHeaderKey(header)}
		if strings.IndexByte(header, '_') >= 0 {
			// nginx, CGI and WSGI upstreams read "X-User-Id" as
			// "X_User_Id": a client's must not pass beside the claim's.
			ch.alt = hyphenated(header)
		}
		a.claimHeaders = append(a.claimHeaders, ch)
	}
	slices.SortFunc(a.claimHeaders, func(x, y claimHeader) int { return strings.Compare(x.header, y.header) })
	a.challenge = challenges(cfg.realm)
	if cfg.cacheSize > 0 {
		a.cache = newTokenCache(cfg.cacheSize, cfg.cacheTTL)
	}
	a.tel.observe(a)

	common := []jwt.ParserOption{jwt.WithLeeway(cfg.leeway), jwt.WithExpirationRequired(), jwt.WithIssuedAt()}
	if cfg.issuer != "" {
		common = append(common, jwt.WithIssuer(cfg.issuer))
	}
	if len(cfg.audiences) > 0 {
		common = append(common, jwt.WithAudience(cfg.audiences...))
	}
	a.parser = jwt.NewParser(append(common, jwt.WithValidMethods(algorithms))...)
	for _, k := range cfg.keys {
		a.static[k.ID] = verifier{key: publicKey(k.Key), algs: []string{k.Algorithm}}
	}

	if len(cfg.jwks) > 0 {
		ctx, cancel := context.WithCancel(context.Background())
		a.cancel = cancel
		client := cfg.httpClient
		var base http.RoundTripper
		if client == nil {
			tr := http.DefaultTransport.(*http.Transport).Clone()
			base = tr
			a.ownClient = &http.Client{Transport: tr}
		} else {
			base = client.Transport
			if base == nil {
				base = http.DefaultTransport
			}
		}
		a.tracker = newFetchTracker(ctx, base)
		fetchClient := &http.Client{Transport: a.tracker}
		if client != nil {
			fetchClient.CheckRedirect, fetchClient.Jar, fetchClient.Timeout = client.CheckRedirect, client.Jar, client.Timeout
		}
		for _, j := range cfg.jwks {
			src, err := newJWKSSource(ctx, j, &cfg, fetchClient, a.tel.jwksFailed)
			if err != nil {
				a.Close()
				return nil, fmt.Errorf("auth: WithJWKS(%q): %w", j.url, err)
			}
			a.sources = append(a.sources, src)
		}
	}
	return a, nil
}

// validate reports every bad option at once.
func (c *config) validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf("auth: "+format, args...)) }
	if len(c.keys) == 0 && len(c.jwks) == 0 && len(c.apiKeys) == 0 {
		bad("no key source: give WithKeys, WithJWKS or WithAPIKeys")
	}
	ids := map[string]bool{}
	for i, k := range c.keys {
		switch {
		case ids[k.ID]:
			bad("WithKeys: key %d: ID %q given twice", i, k.ID)
		case !slices.Contains(algorithms, k.Algorithm):
			bad("WithKeys: key %q: Algorithm %q is not one of %s", k.ID, k.Algorithm, strings.Join(algorithms, ", "))
		default:
			if why := keyFits(k.Algorithm, publicKey(k.Key)); why != "" {
				bad("WithKeys: key %q: Key: %s", k.ID, why)
			}
		}
		ids[k.ID] = true
	}
	for _, j := range c.jwks {
		if err := checkJWKSURL(j.url); err != nil {
			bad("WithJWKS(%q): %v", j.url, err)
		}
		for _, alg := range j.algs {
			if !slices.Contains(algorithms, alg) || hmacAlg(alg) {
				bad("WithJWKS(%q): algorithm %q: want an asymmetric one (RS*, PS*, ES*, EdDSA)", j.url, alg)
			}
		}
	}
	if c.leeway < 0 || c.leeway > MaxLeeway {
		bad("WithLeeway(%v): must be in [0, %v]", c.leeway, MaxLeeway)
	}
	for _, a := range c.audiences {
		if a == "" {
			bad("WithAudience: an audience is empty")
		}
	}
	for _, n := range c.required {
		if n == "" {
			bad("WithRequiredClaims: a claim name is empty")
		}
	}
	if c.rolesClaim == "" {
		bad("WithRolesClaim: name is empty")
	}
	if c.scopesClaim == "" {
		bad("WithScopesClaim: name is empty")
	}
	names, secrets := map[string]bool{}, map[string]bool{}
	for i, k := range c.apiKeys {
		switch {
		case k.Name == "":
			bad("WithAPIKeys: key %d: Name is empty", i)
		case names[k.Name]:
			bad("WithAPIKeys: key %q: Name given twice", k.Name)
		}
		switch {
		case len(k.Secret) < minAPIKeyLength:
			bad("WithAPIKeys: key %q: Secret must have at least %d characters", k.Name, minAPIKeyLength)
		case secrets[k.Secret]:
			bad("WithAPIKeys: key %q: Secret is another key's", k.Name)
		}
		names[k.Name], secrets[k.Secret] = true, true
	}
	if !validToken(c.apiKeyHeader) {
		bad("WithAPIKeyHeader(%q): not a valid header name", c.apiKeyHeader)
	}
	for claim, h := range c.claimHeaders {
		switch {
		case claim == "":
			bad("WithClaimHeaders: a claim name is empty")
		case !validToken(h):
			bad("WithClaimHeaders: claim %q: %q is not a valid header name", claim, h)
		case http.CanonicalHeaderKey(h) == "Authorization" || http.CanonicalHeaderKey(h) == http.CanonicalHeaderKey(c.apiKeyHeader):
			bad("WithClaimHeaders: claim %q: header %q carries credentials", claim, h)
		}
	}
	if strings.ContainsAny(c.realm, "\"\\") || strings.ContainsFunc(c.realm, isCtl) {
		bad("WithRealm(%q): quotes, backslashes and control characters are not allowed", c.realm)
	}
	if c.jwksRefresh <= 0 {
		bad("WithJWKSRefresh(%v): must be positive", c.jwksRefresh)
	}
	if c.jwksMinRefresh < minJWKSRefreshFloor {
		bad("WithJWKSMinRefresh(%v): must be at least %v", c.jwksMinRefresh, minJWKSRefreshFloor)
	}
	if c.jwksTimeout <= 0 {
		bad("WithJWKSTimeout(%v): must be positive", c.jwksTimeout)
	}
	if c.cacheSize < 0 || (c.cacheSize > 0 && (c.cacheTTL <= 0 || c.cacheTTL > MaxTokenCacheTTL)) {
		bad("WithTokenCache(%d, %v): size must not be negative, and the TTL in (0, %v]", c.cacheSize, c.cacheTTL, MaxTokenCacheTTL)
	}
	return errors.Join(errs...)
}

// Close stops the background refresh of the key sets and waits for the
// fetches in flight, which it cancels; after Close no fetch starts, and
// tokens are still checked against the keys already fetched. It is safe
// to call more than once, and does nothing for an authenticator without
// [WithJWKS].
func (a *Authenticator) Close() {
	a.closeOnce.Do(func() {
		if a.cancel == nil {
			return
		}
		a.cancel()
		a.tracker.close()
		if a.ownClient != nil {
			a.ownClient.CloseIdleConnections()
		}
	})
}

// Authenticate checks the credentials of r: a bearer token in the
// Authorization header if there is one, else an API key if any is
// configured. It returns the principal, or an [*Error] saying why not
// ([ReasonMissing] when r carries no credentials). It neither changes r
// nor records telemetry.
func (a *Authenticator) Authenticate(r *http.Request) (*gateway.Principal, error) {
	p, shared, err := a.authenticate(r)
	if shared {
		p = p.Clone()
	}
	return p, err
}

// authenticate is Authenticate, without copying a principal that the
// token cache shares: shared says that p is one, which must not change.
func (a *Authenticator) authenticate(r *http.Request) (p *gateway.Principal, shared bool, err error) {
	if vs := r.Header.Values("Authorization"); len(vs) > 0 {
		if len(vs) > 1 {
			return nil, false, fail(ReasonMalformed, errors.New("more than one Authorization header"))
		}
		if tok, ok := bearerToken(vs[0]); ok {
			return a.verifyToken(r.Context(), tok)
		}
		// Another scheme (Basic, say): not ours, so no credentials.
	}
	if len(a.apiKeys) > 0 {
		if key, ok := a.apiKeyFrom(r); ok {
			p, err := a.checkAPIKey(key)
			return p, false, err
		}
	}
	return nil, false, errMissing
}

// bearerToken returns the token of an Authorization header value of the
// Bearer scheme, whose name is case-insensitive (RFC 9110, 11.1).
func bearerToken(v string) (string, bool) {
	const scheme = "bearer "
	if len(v) < len(scheme) || !strings.EqualFold(v[:len(scheme)], scheme) {
		return "", false
	}
	return strings.TrimLeft(v[len(scheme):], " "), true
}

// VerifyToken verifies a JWT: its key (by key ID, fetching the key sets
// again if needed and allowed), its algorithm (the one pinned to that key),
// its signature and its claims. It returns the principal, or an [*Error]
// saying why not. ctx bounds a fetch of a key set.
func (a *Authenticator) VerifyToken(ctx context.Context, token string) (*gateway.Principal, error) {
	p, shared, err := a.verifyToken(ctx, token)
	if shared {
		p = p.Clone() // a caller that changes its principal changes no other's
	}
	return p, err
}

// verifyToken is VerifyToken, without copying the principal: with the
// token cache on, it is the cache's (shared true), which must not change.
func (a *Authenticator) verifyToken(ctx context.Context, token string) (p *gateway.Principal, shared bool, err error) {
	p, err = a.verify(ctx, token)
	return p, err == nil && a.cache != nil, err
}

func (a *Authenticator) verify(ctx context.Context, token string) (*gateway.Principal, error) {
	if !a.jwtEnabled {
		return nil, fail(ReasonUnknownKey, errors.New("no JWT keys configured"))
	}
	if token == "" || len(token) > maxTokenLength {
		return nil, fail(ReasonMalformed, fmt.Errorf("token length %d not in 1..%d", len(token), maxTokenLength))
	}
	var digest [sha256.Size]byte
	if a.cache != nil {
		digest = tokenDigest(token)
		if p, by, ok := a.cache.get(digest, time.Now()); ok {
			// The key it was verified with must still be the key of its
			// kid, for its algorithm: a key removed from its key set, or
			// replaced, ends the cached tokens it verified as soon as the
			// set is fetched again, as it ends tokens verified each time.
			if v, err := a.resolve(ctx, by.kid); err == nil && slices.Contains(v.algs, by.alg) && sameKey(v.key, by.key) {
				return p, nil
			}
			a.cache.remove(digest)
		}
	}
	var by keyUse
	// One parse: golang-jwt decodes the header, and the key function
	// takes the key ID and algorithm from it. The parser accepts every
	// algorithm a key can be pinned to; the key function refuses any but
	// the key's own, before a signature is checked.
	claims := jwt.MapClaims{}
	tok, err := a.parser.ParseWithClaims(token, claims, func(t *jwt.Token) (any, error) {
		kid, err := headerKeyID(t.Header)
		if err != nil {
			return nil, fail(ReasonMalformed, err)
		}
		v, err := a.resolve(ctx, kid)
		if err != nil {
			return nil, err
		}
		alg := t.Method.Alg()
		if !slices.Contains(v.algs, alg) {
			return nil, fail(ReasonAlgorithm, fmt.Errorf("algorithm %s is not the key's %v", brief.Quote(alg), v.algs))
		}
		by = keyUse{kid: kid, alg: alg, key: v.key}
		return v.key, nil
	})
	if err != nil {
		var e *Error
		if errors.As(err, &e) {
			return nil, e
		}
		if tok != nil && tok.Method != nil && !slices.Contains(algorithms, tok.Method.Alg()) {
			// "none", or another that no key can be pinned to.
			return nil, fail(ReasonAlgorithm, err)
		}
		return nil, fail(classify(err), err)
	}
	for _, name := range a.required {
		if claims[name] == nil {
			return nil, fail(ReasonClaims, fmt.Errorf("required claim %q is missing", name))
		}
	}
	p, err := a.principal(claims)
	if err == nil && a.cache != nil {
		if exp, _ := claims.GetExpirationTime(); exp != nil {
			a.cache.put(digest, p, by, exp.Time, time.Now(), tokenCost(token, p))
		}
	}
	return p, err
}

// headerKeyID returns the kid of a JWT's header, as golang-jwt decoded
// it (exact member names), and refuses a header with critical
// extensions, which RFC 7515 (4.1.11) says to reject when they are not
// understood: none is.
func headerKeyID(h map[string]any) (string, error) {
	if _, ok := h["crit"]; ok {
		return "", errors.New("header has critical extensions (crit)")
	}
	switch k := h["kid"].(type) {
	case string:
		return k, nil
	case nil: // absent, or null: no key ID
		return "", nil
	default:
		return "", errors.New("header's kid is not a string")
	}
}

// resolve finds the key kid: among the static keys, then among the keys
// each key set holds, and only then, for a key ID that none holds, in
// each set fetched again (within its unknown-kid limit). Asked in turn
// with a fetch each, a set that lacks a key another set holds would be
// fetched again for every token of the other.
func (a *Authenticator) resolve(ctx context.Context, kid string) (verifier, error) {
	if v, ok := a.static[kid]; ok {
		return v, nil
	}
	for _, fetch := range []bool{false, true} {
		for _, s := range a.sources {
			v, problem, ok := s.lookup(ctx, kid, fetch)
			if !ok {
				continue
			}
			if problem != "" {
				return verifier{}, fail(ReasonUnknownKey, fmt.Errorf("key %s from %s: %s", brief.Quote(kid), s.url, problem))
			}
			return v, nil
		}
	}
	return verifier{}, fail(ReasonUnknownKey, fmt.Errorf("no key %s", brief.Quote(kid)))
}

// classify maps golang-jwt's error to a reason. Claims errors come joined;
// the first that applies, in this order, wins.
func classify(err error) Reason {
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return ReasonMalformed
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		return ReasonAlgorithm
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return ReasonSignature
	case errors.Is(err, jwt.ErrTokenExpired):
		return ReasonExpired
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return ReasonNotYetValid
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return ReasonIssuer
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return ReasonAudience
	}
	return ReasonClaims
}

// principal builds the principal of verified claims.
func (a *Authenticator) principal(claims jwt.MapClaims) (*gateway.Principal, error) {
	p := &gateway.Principal{Scheme: SchemeJWT, Claims: claims}
	if sub, ok := claims["sub"]; ok {
		s, isString := sub.(string)
		if !isString {
			return nil, fail(ReasonClaims, errors.New("sub is not a string"))
		}
		p.Subject = s
	}
	p.Roles = stringList(lookup(claims, a.rolesClaim))
	scopes, ok := lookupOK(claims, a.scopesClaim)
	if !ok && a.altScopes {
		scopes = claims[defaultAltScopesClaim]
	}
	p.Scopes = stringList(scopes)
	return p, nil
}

// lookup returns the value at a dotted path of claims, or nil.
func lookup(claims map[string]any, path []string) any {
	v, _ := lookupOK(claims, path)
	return v
}

func lookupOK(claims map[string]any, path []string) (any, bool) {
	var cur any = claims
	for _, p := range path {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[p]; !ok {
			return nil, false
		}
	}
	return cur, true
}

// stringList reads a claim that lists strings: an array (its non-string
// members ignored) or a space-separated string.
func stringList(v any) []string {
	switch v := v.(type) {
	case string:
		return strings.Fields(v)
	case []any:
		out := make([]string, 0, len(v))
		for _, x := range v {
			if s, ok := x.(string); ok {
				out = append(out, s)
			}
		}
		return out
	case []string:
		return v
	}
	return nil
}

// validToken reports whether s is an HTTP token (RFC 9110, 5.6.2), as a
// header name must be.
func validToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0 {
			continue
		}
		return false
	}
	return true
}

func isCtl(r rune) bool { return r < 0x20 || r == 0x7f }
