package auth_test

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/otelpatterns/patterns/gateway/auth"
)

var fuzzSecret = []byte("fuzz-secret-0123456789abcdef-0123")

// fuzzKeys are the keys of the fuzz target, and the algorithm each is
// pinned to.
func fuzzAuth(t testing.TB) *auth.Authenticator {
	return newAuth(t, auth.WithKeys(
		auth.Key{ID: "rsa1", Algorithm: "RS256", Key: &rsa1.PublicKey},
		auth.Key{ID: "ec1", Algorithm: "ES256", Key: ec1.Public()},
		auth.Key{ID: "hs", Algorithm: "HS256", Key: fuzzSecret},
	))
}

var pinned = map[string]string{"rsa1": "RS256", "ec1": "ES256", "hs": "HS256"}

var allReasons = []auth.Reason{
	auth.ReasonMissing, auth.ReasonMalformed, auth.ReasonUnknownKey, auth.ReasonAlgorithm,
	auth.ReasonSignature, auth.ReasonExpired, auth.ReasonNotYetValid, auth.ReasonIssuer,
	auth.ReasonAudience, auth.ReasonClaims, auth.ReasonAPIKey, auth.ReasonForbidden,
}

// FuzzVerifyToken feeds arbitrary bearer tokens to VerifyToken: it never
// panics, a refusal is an *auth.Error with one of the documented reasons,
// and a token it accepts names a configured key, with that key's
// algorithm, and verifies with that key alone on a parser of its own.
// The corpus in testdata/fuzz holds valid tokens of each key (expiring in
// 2100) and the attacks of TestJWTCases.
func FuzzVerifyToken(f *testing.F) {
	a := fuzzAuth(f)
	f.Add("")
	f.Add("a.b.c")
	f.Fuzz(func(t *testing.T, token string) {
		p, err := a.VerifyToken(t.Context(), token)
		if err != nil {
			var e *auth.Error
			if !errors.As(err, &e) || !slices.Contains(allReasons, e.Reason) {
				t.Fatalf("VerifyToken() = %v; want an *auth.Error with a documented reason", err)
			}
			return
		}
		if p == nil || p.Scheme != auth.SchemeJWT {
			t.Fatalf("VerifyToken() = %+v, nil; want a JWT principal", p)
		}
		seg, _, _ := strings.Cut(token, ".")
		raw, _ := base64.RawURLEncoding.DecodeString(seg)
		var h struct{ Alg, Kid string }
		if err := json.Unmarshal(raw, &h); err != nil {
			t.Fatalf("accepted a token whose header does not decode: %v", err)
		}
		alg, ok := pinned[h.Kid]
		if !ok || h.Alg != alg {
			t.Fatalf("accepted alg %q with kid %q; pinned: %v", h.Alg, h.Kid, pinned)
		}
		key := map[string]any{"rsa1": &rsa1.PublicKey, "ec1": ec1.Public(), "hs": fuzzSecret}[h.Kid]
		if _, err := jwt.NewParser(jwt.WithValidMethods([]string{alg})).Parse(token, func(*jwt.Token) (any, error) { return key, nil }); err != nil {
			t.Fatalf("accepted a token that its key does not verify: %v", err)
		}
	})
}

// TestWriteFuzzCorpus writes the seed corpus of FuzzVerifyToken when
// PATTERNS_WRITE_FUZZ_CORPUS=1; it is checked in, so this runs only when
// the seeds change.
func TestWriteFuzzCorpus(t *testing.T) {
	if os.Getenv("PATTERNS_WRITE_FUZZ_CORPUS") != "1" {
		t.Skip("set PATTERNS_WRITE_FUZZ_CORPUS=1 to write testdata/fuzz/FuzzVerifyToken")
	}
	exp := time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC).Unix()
	c := func(extra map[string]any) jwt.MapClaims {
		m := jwt.MapClaims{"sub": "fuzz", "exp": exp, "scope": "a b", "roles": []any{"r"}}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	rs := sign(t, jwt.SigningMethodRS256, rsa1, "rsa1", c(nil))
	none, _ := jwt.NewWithClaims(jwt.SigningMethodNone, c(nil)).SignedString(jwt.UnsafeAllowNoneSignatureType)
	seeds := map[string]string{
		"valid-rs256":       rs,
		"valid-es256":       sign(t, jwt.SigningMethodES256, ec1, "ec1", c(nil)),
		"valid-hs256":       sign(t, jwt.SigningMethodHS256, fuzzSecret, "hs", c(nil)),
		"alg-none":          none,
		"alg-none-kid":      unsigned(`{"alg":"none","kid":"rsa1"}`, c(nil), ""),
		"hs256-rsa-pubkey":  sign(t, jwt.SigningMethodHS256, rsaPublicPEM(), "rsa1", c(nil)),
		"rs384-pinned-256":  sign(t, jwt.SigningMethodRS384, rsa1, "rsa1", c(nil)),
		"expired":           sign(t, jwt.SigningMethodRS256, rsa1, "rsa1", c(map[string]any{"exp": 1})),
		"not-yet-valid":     sign(t, jwt.SigningMethodRS256, rsa1, "rsa1", c(map[string]any{"nbf": exp - 1})),
		"tampered-sig":      tamper(rs, 2),
		"tampered-body":     tamper(rs, 1),
		"unknown-kid":       sign(t, jwt.SigningMethodRS256, rsa2, "rsa2", c(nil)),
		"crit":              unsigned(`{"alg":"RS256","kid":"rsa1","crit":["x"]}`, c(nil), "AAAA"),
		"kid-number":        unsigned(`{"alg":"RS256","kid":1}`, c(nil), "AAAA"),
		"nested-claims":     sign(t, jwt.SigningMethodHS256, fuzzSecret, "hs", c(map[string]any{"realm_access": map[string]any{"roles": []any{"x", 1}}})),
		"four-segments":     rs + ".x",
		"padded-header":     strings.Replace(rs, ".", "=.", 1),
		"empty-json-header": unsigned(`{}`, c(nil), ""),
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzVerifyToken")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, tok := range seeds {
		body := fmt.Sprintf("go test fuzz v1\nstring(%s)\n", strconv.Quote(tok))
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
