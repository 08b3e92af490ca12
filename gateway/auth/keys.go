package auth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"fmt"
	"net"
	"net/url"
	"strings"
)

// Key is a static key that verifies JWTs, pinned to one algorithm.
type Key struct {
	// ID is the key ID (kid) that tokens name to be checked with this key.
	// A key without an ID checks tokens that name none.
	ID string
	// Algorithm is the one algorithm this key verifies: RS256, RS384,
	// RS512, PS256, PS384, PS512 (Key an *rsa.PublicKey of 2048 bits or
	// more), ES256, ES384, ES512 (an *ecdsa.PublicKey on P-256, P-384,
	// P-521), EdDSA (an ed25519.PublicKey) or HS256, HS384, HS512 (a
	// []byte secret of at least 32, 48, 64 bytes). "none" is refused.
	Algorithm string
	// Key is the public key, or the HMAC secret. A private key is accepted
	// and its public half used.
	Key any
}

// minRSABits is the smallest RSA modulus accepted, as NIST SP 800-131A
// asks.
const minRSABits = 2048

// algorithms are the algorithms a key can be pinned to.
var algorithms = []string{
	"RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
	"ES256", "ES384", "ES512", "EdDSA", "HS256", "HS384", "HS512",
}

func hmacAlg(alg string) bool { return strings.HasPrefix(alg, "HS") }

// publicKey returns the public half of a private key, and other keys as
// they are.
// A typed nil private key (a parse whose error was ignored) is returned
// as a typed nil public key, which keyFits refuses.
func publicKey(k any) any {
	switch k := k.(type) {
	case *rsa.PrivateKey:
		if k == nil {
			return (*rsa.PublicKey)(nil)
		}
	case *ecdsa.PrivateKey:
		if k == nil {
			return (*ecdsa.PublicKey)(nil)
		}
	case ed25519.PrivateKey:
		if len(k) != ed25519.PrivateKeySize {
			return ed25519.PublicKey(nil)
		}
	default:
		return k
	}
	return k.(interface{ Public() crypto.PublicKey }).Public()
}

// keyFits reports why key cannot verify alg, or "" when it can.
func keyFits(alg string, key any) string {
	switch k := key.(type) {
	case *rsa.PublicKey:
		if !strings.HasPrefix(alg, "RS") && !strings.HasPrefix(alg, "PS") {
			return "an RSA key verifies RS* or PS* only"
		}
		if k == nil || k.N == nil || k.N.BitLen() < minRSABits {
			return fmt.Sprintf("RSA key has fewer than %d bits", minRSABits)
		}
	case *ecdsa.PublicKey:
		want := map[string]elliptic.Curve{"ES256": elliptic.P256(), "ES384": elliptic.P384(), "ES512": elliptic.P521()}[alg]
		if want == nil {
			return "an ECDSA key verifies ES* only"
		}
		if k == nil {
			return "ECDSA key is nil"
		}
		if k.Curve != want {
			return alg + " needs curve " + want.Params().Name
		}
	case ed25519.PublicKey:
		if alg != "EdDSA" {
			return "an Ed25519 key verifies EdDSA only"
		}
		if len(k) != ed25519.PublicKeySize {
			return "Ed25519 key has the wrong size"
		}
	case []byte:
		if !hmacAlg(alg) {
			return "a []byte secret verifies HS* only"
		}
		need := map[string]int{"HS256": 32, "HS384": 48, "HS512": 64}[alg]
		if len(k) < need {
			return fmt.Sprintf("%s secret must have at least %d bytes", alg, need)
		}
	default:
		return fmt.Sprintf("unsupported key type %T", key)
	}
	return ""
}

// verifier is a key ready to check tokens: the key and the algorithms
// it is pinned to.
type verifier struct {
	key  any
	algs []string
}

// checkJWKSURL reports what is wrong with a JWKS URL: it must be absolute
// and https, or http on a loopback host.
func checkJWKSURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return err
	}
	if u.Host == "" {
		return fmt.Errorf("URL %q has no host", raw)
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		if loopback(u.Hostname()) {
			return nil
		}
		return fmt.Errorf("URL %q must be https: keys fetched in the clear can be replaced on the way (http is allowed on loopback hosts only)", raw)
	}
	return fmt.Errorf("URL %q must be https", raw)
}

func loopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
