package auth

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"slices"

	"github.com/otelpatterns/patterns/gateway"
)

// APIKey is a key a client presents instead of a JWT, with the principal
// it authenticates as.
type APIKey struct {
	// Name identifies the key's holder: it becomes the principal's
	// Subject. Names must be unique.
	Name string
	// Secret is the key itself, at least 16 characters; generate it
	// with crypto/rand.
	Secret string
	// Roles and Scopes are the principal's, for [RequireAnyRole] and
	// [RequireScopes].
	Roles  []string
	Scopes []string
}

// apiKey is an APIKey as checked: only the SHA-256 digest of the secret is
// kept, so every comparison has the same length and the secrets do not
// stay in memory.
type apiKey struct {
	digest [sha256.Size]byte
	name   string
	roles  []string
	scopes []string
}

func newAPIKeys(keys []APIKey) []apiKey {
	out := make([]apiKey, len(keys))
	for i, k := range keys {
		out[i] = apiKey{
			digest: sha256.Sum256([]byte(k.Secret)),
			name:   k.Name,
			roles:  slices.Clone(k.Roles),
			scopes: slices.Clone(k.Scopes),
		}
	}
	return out
}

// apiKeyFrom returns the API key the request carries, in the header or,
// if configured, the query parameter.
func (a *Authenticator) apiKeyFrom(r *http.Request) (string, bool) {
	if vs := r.Header.Values(a.apiKeyHeader); len(vs) > 0 {
		return vs[0], true
	}
	if a.apiKeyQuery != "" && r.URL != nil && r.URL.RawQuery != "" {
		if vs, ok := r.URL.Query()[a.apiKeyQuery]; ok && len(vs) > 0 {
			return vs[0], true
		}
	}
	return "", false
}

// checkAPIKey compares the presented key with every configured key, in
// constant time and without stopping at a match, so the time taken says
// neither whether nor which key matched.
func (a *Authenticator) checkAPIKey(presented string) (*gateway.Principal, error) {
	d := sha256.Sum256([]byte(presented))
	match := -1
	for i := range a.apiKeys {
		eq := subtle.ConstantTimeCompare(d[:], a.apiKeys[i].digest[:])
		match = subtle.ConstantTimeSelect(eq, i, match)
	}
	if match < 0 {
		return nil, errAPIKey
	}
	k := &a.apiKeys[match]
	// Copies: a handler that changes its principal must not change the key.
	return &gateway.Principal{Scheme: SchemeAPIKey, Subject: k.name, Roles: slices.Clone(k.roles), Scopes: slices.Clone(k.scopes)}, nil
}
