package auth

import (
	"net/http"
	"time"

	"go.opentelemetry.io/otel/metric"
)

// Defaults of an [Authenticator] built without the matching option.
const (
	DefaultLeeway         = 30 * time.Second
	MaxLeeway             = 5 * time.Minute
	MaxTokenCacheTTL      = 5 * time.Minute
	DefaultTokenCacheSize = 10_000
	DefaultTokenCacheTTL  = time.Minute
	DefaultJWKSRefresh    = 15 * time.Minute
	DefaultJWKSMinRefresh = 30 * time.Second
	DefaultJWKSTimeout    = 5 * time.Second
	DefaultAPIKeyHeader   = "X-API-Key"
	DefaultRolesClaim     = "roles"
	DefaultScopesClaim    = "scope"
	defaultAltScopesClaim = "scp"
	maxTokenLength        = 16 << 10
	minAPIKeyLength       = 16
	defaultJWKSAlgorithm  = "RS256"
	maxRouteSeries        = 1024
	minJWKSRefreshFloor   = time.Second
)

// Option configures an [Authenticator].
type Option interface{ apply(*config) }

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

type config struct {
	keys           []Key
	jwks           []jwksConfig
	issuer         string
	audiences      []string
	leeway         time.Duration
	required       []string
	rolesClaim     string
	scopesClaim    string
	scopesSet      bool
	apiKeys        []APIKey
	apiKeyHeader   string
	apiKeyQuery    string
	claimHeaders   map[string]string
	realm          string
	jwksRefresh    time.Duration
	jwksMinRefresh time.Duration
	jwksTimeout    time.Duration
	httpClient     *http.Client
	cacheSize      int
	cacheTTL       time.Duration
	meterProvider  metric.MeterProvider
}

type jwksConfig struct {
	url  string
	algs []string
}

// WithKeys adds static keys to verify JWTs with. Each [Key] names the one
// algorithm it verifies, so a token can never choose how it is checked.
func WithKeys(keys ...Key) Option {
	return optionFunc(func(c *config) { c.keys = append(c.keys, keys...) })
}

// WithJWKS adds a JSON Web Key Set URL, such as an identity provider's
// jwks_uri, whose keys verify tokens with one of algorithms (RS256 when
// none is given; a key whose JWK names its "alg" verifies with that one
// alone, if it is among them). The URL must be https, except on a
// loopback host. Keys are fetched when [New] runs (a failure there is not
// an error: tokens are refused until a fetch succeeds), refreshed every
// [WithJWKSRefresh], and fetched again when a token names a key ID the set
// lacks, at most once per [WithJWKSMinRefresh]. Symmetric (HS*) algorithms
// cannot come from a URL.
func WithJWKS(url string, algorithms ...string) Option {
	return optionFunc(func(c *config) { c.jwks = append(c.jwks, jwksConfig{url: url, algs: algorithms}) })
}

// WithIssuer makes iss required and equal to issuer. By default iss is not
// checked; set it whenever the keys are an identity provider's, which signs
// tokens for others too.
func WithIssuer(issuer string) Option {
	return optionFunc(func(c *config) { c.issuer = issuer })
}

// WithAudience makes aud required and naming at least one of audiences. By
// default aud is not checked.
func WithAudience(audiences ...string) Option {
	return optionFunc(func(c *config) { c.audiences = append(c.audiences, audiences...) })
}

// WithLeeway sets the clock skew allowed when checking exp, nbf and iat, at
// most [MaxLeeway] (5m). The default is [DefaultLeeway] (30s).
func WithLeeway(d time.Duration) Option {
	return optionFunc(func(c *config) { c.leeway = d })
}

// WithRequiredClaims makes the named claims required: a token without one
// (or with it null) fails with [ReasonClaims]. exp is always required.
func WithRequiredClaims(names ...string) Option {
	return optionFunc(func(c *config) { c.required = append(c.required, names...) })
}

// WithRolesClaim names the claim that holds the roles (an array of strings
// or a space-separated string); a dotted name reaches into objects, as
// "realm_access.roles" for Keycloak. The default is "roles".
func WithRolesClaim(name string) Option {
	return optionFunc(func(c *config) { c.rolesClaim = name })
}

// WithScopesClaim names the claim that holds the scopes (a space-separated
// string as in RFC 8693, or an array). The default is "scope", and "scp"
// when the token has no "scope".
func WithScopesClaim(name string) Option {
	return optionFunc(func(c *config) { c.scopesClaim, c.scopesSet = name, true })
}

// WithAPIKeys adds API keys, a second scheme beside bearer JWTs: a request
// without an Authorization header is authenticated by the key in the
// [WithAPIKeyHeader] header (X-API-Key by default), or the
// [WithAPIKeyQuery] query parameter when set. Keys are compared in
// constant time, all of them on every request.
func WithAPIKeys(keys ...APIKey) Option {
	return optionFunc(func(c *config) { c.apiKeys = append(c.apiKeys, keys...) })
}

// WithAPIKeyHeader sets the header that carries an API key. The default is
// [DefaultAPIKeyHeader] (X-API-Key). Behind a gateway, a name with an
// underscore ("api_key") never arrives: the gateway removes such headers
// by default (gateway.WithUnderscoreHeaders keeps them).
func WithAPIKeyHeader(name string) Option {
	return optionFunc(func(c *config) { c.apiKeyHeader = name })
}

// WithAPIKeyQuery also accepts an API key in the query parameter param,
// which is removed before the request goes upstream. Keys in URLs end up
// in logs (and, on a route that sets [ForwardCredentials], in the
// url.full attribute of the gateway's client spans): prefer the header.
// By default query parameters are not read.
func WithAPIKeyQuery(param string) Option {
	return optionFunc(func(c *config) { c.apiKeyQuery = param })
}

// WithClaimHeaders passes claims to the upstream in headers: m maps a
// claim name (dotted for nested ones; "sub", the roles and the scopes
// claims work for API keys too) to a header name. The headers are removed
// from every incoming request first, so a client cannot forge them, and
// set only from a verified principal; arrays are joined with commas, and a
// value with control characters is left out, as is a number of 2^53 or
// more, which lost digits when the token was read (a 64-bit ID would be
// another's; send such IDs as strings). By default no header is set.
//
// The middleware removes them on the routes it guards, and with them the
// names that read as them once underscores are read as hyphens
// ("X_User_Id" for "X-User-Id"; for a name given with underscores, its
// spelling with hyphens), which nginx, CGI and WSGI upstreams take
// for the same header; give the same header names to
// gateway.WithDroppedHeaders so that no route, guarded or not, passes on
// a client's own.
func WithClaimHeaders(m map[string]string) Option {
	return optionFunc(func(c *config) {
		if c.claimHeaders == nil {
			c.claimHeaders = map[string]string{}
		}
		for k, v := range m {
			c.claimHeaders[k] = v
		}
	})
}

// WithRealm sets the realm of the WWW-Authenticate challenge. By default
// the challenge has none.
func WithRealm(realm string) Option {
	return optionFunc(func(c *config) { c.realm = realm })
}

// WithJWKSRefresh sets how often the key sets of [WithJWKS] are fetched
// again in the background. The default is [DefaultJWKSRefresh] (15m).
func WithJWKSRefresh(every time.Duration) Option {
	return optionFunc(func(c *config) { c.jwksRefresh = every })
}

// WithJWKSMinRefresh sets the least time between two fetches of a key set
// caused by tokens naming an unknown key ID, so that random key IDs cannot
// make the gateway hammer the identity provider: a request that would
// need a fetch sooner fails at once with [ReasonUnknownKey]. The default is
// [DefaultJWKSMinRefresh] (30s); the least allowed is 1s.
func WithJWKSMinRefresh(d time.Duration) Option {
	return optionFunc(func(c *config) { c.jwksMinRefresh = d })
}

// WithJWKSTimeout bounds one fetch of a key set, including the first, which
// [New] waits for. The default is [DefaultJWKSTimeout] (5s).
func WithJWKSTimeout(d time.Duration) Option {
	return optionFunc(func(c *config) { c.jwksTimeout = d })
}

// WithHTTPClient sets the client that fetches key sets (to trust a private
// CA, say). By default the authenticator uses a client of its own, whose
// idle connections [Authenticator.Close] closes.
func WithHTTPClient(c *http.Client) Option {
	return optionFunc(func(cfg *config) { cfg.httpClient = c })
}

// WithTokenCache sets the cache of tokens that verified: up to size
// tokens, each kept for up to ttl (at most [MaxTokenCacheTTL], 5m) and
// never past its exp, keyed by the SHA-256 of the whole token. A client
// that sends the same token again then costs a hash, a lookup and a look
// at the key (about 2µs) instead of a signature check (40µs for RS256,
// 90µs for ES256 on a 2-core test machine). WithTokenCache(0, 0) turns
// the cache off. The default is on: [DefaultTokenCacheSize] (10,000)
// tokens for [DefaultTokenCacheTTL] (1m). Whatever size says, the cache
// holds at most 32 MiB of tokens by an estimate of what each costs
// (twice its length, plus 256 bytes), so that large tokens cannot make
// it hold size times the largest one.
//
// It is on by default because it accepts nothing that verifying each
// time would refuse:
//
//   - A cached token passes only while the key it was verified with is
//     still the key of its kid, for the same algorithm: a key removed
//     from its JWKS, or replaced under its kid, ends the cached tokens it
//     verified when the set is next fetched, which is when it ends
//     tokens verified each time (with the cache or without, a removed
//     key is believed until then; [WithJWKSRefresh]).
//   - exp is checked exactly on every hit (without the leeway), nbf and
//     iat held when the token verified, and roles and scopes are checked
//     per route on every request, cached or not.
//   - The authenticator has no revocation list: a token is good until its
//     exp whether or not it is cached. Where tokens must be revoked
//     before their exp, check them in middleware of your own after
//     authentication (a denylist by jti, introspection); the cache does
//     not skip it.
//   - Only tokens that verified enter it, so bad tokens cannot fill it or
//     evict others; the digest keys it, so no token is kept in memory;
//     each caller gets its own copy of the principal (the middleware's
//     handlers when they ask [gateway.PrincipalFrom] for it, which copies
//     it then; see [gateway.WithSharedPrincipal]). A hit answers
//     faster than a miss, which tells a client only that a token it
//     holds was used lately.
//
// Envoy's jwt_authn keeps such a cache when a provider sets
// jwt_cache_config; Kong's jwt plugin and KrakenD verify every token and
// cache the keys only. Turn it off to verify every signature.
func WithTokenCache(size int, ttl time.Duration) Option {
	return optionFunc(func(c *config) { c.cacheSize, c.cacheTTL = size, ttl })
}

// WithMeterProvider sets the meter provider of the authenticator's
// metrics. The default is the global provider. A nil provider is ignored.
func WithMeterProvider(mp metric.MeterProvider) Option {
	return optionFunc(func(c *config) {
		if mp != nil {
			c.meterProvider = mp
		}
	})
}

// RouteOption configures what one route's middleware requires; see
// [Authenticator.Middleware].
type RouteOption interface{ applyRoute(*routeConfig) }

type routeOptionFunc func(*routeConfig)

func (f routeOptionFunc) applyRoute(c *routeConfig) { f(c) }

type routeConfig struct {
	anyRoles    [][]string
	scopes      []string
	anonymous   bool
	forwardCred bool
}

// RequireAnyRole requires the principal to have at least one of roles.
// Given more than once, each must hold: RequireAnyRole("admin"),
// RequireAnyRole("eu", "us") asks for admin and one of eu or us.
func RequireAnyRole(roles ...string) RouteOption {
	return routeOptionFunc(func(c *routeConfig) { c.anyRoles = append(c.anyRoles, roles) })
}

// RequireScopes requires the principal to have every one of scopes, as
// OAuth resource servers do. A principal without them is answered 403.
func RequireScopes(scopes ...string) RouteOption {
	return routeOptionFunc(func(c *routeConfig) { c.scopes = append(c.scopes, scopes...) })
}

// Anonymous lets requests without credentials through, with no principal
// in their context; requests with credentials are still authenticated, and
// refused if the credentials are bad. It cannot be combined with
// [RequireAnyRole] or [RequireScopes].
func Anonymous() RouteOption {
	return routeOptionFunc(func(c *routeConfig) { c.anonymous = true })
}

// ForwardCredentials passes the Authorization header (and the API key
// header or query parameter) on to the upstream. By default they are
// removed, so that an upstream never sees a credential it could replay.
// A key forwarded in the query stays in the URL, so the url.full
// attribute of the gateway's client span carries it.
func ForwardCredentials() RouteOption {
	return routeOptionFunc(func(c *routeConfig) { c.forwardCred = true })
}
