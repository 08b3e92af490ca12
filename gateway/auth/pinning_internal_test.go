package auth

import (
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// TestParserPinsAlgorithm protects the pinning itself, below the check
// that only names the reason: the parser built for an RS256 key refuses an
// HS256 token even when handed the HMAC secret the token was signed with,
// and an alg "none" token even when handed the value that unlocks "none".
func TestParserPinsAlgorithm(t *testing.T) {
	b, err := os.ReadFile("testdata/rsa1.pem")
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	pub := &k.(*rsa.PrivateKey).PublicKey
	a, err := New(WithKeys(Key{ID: "rsa1", Algorithm: "RS256", Key: pub}))
	if err != nil {
		t.Fatal(err)
	}
	v := a.static["rsa1"]
	der, _ := x509.MarshalPKIXPublicKey(pub)
	secret := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	claims := jwt.MapClaims{"exp": time.Now().Add(time.Hour).Unix()}

	hs, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(secret)
	_, err = v.parser.ParseWithClaims(hs, jwt.MapClaims{}, func(*jwt.Token) (any, error) { return secret, nil })
	if err == nil || !strings.Contains(err.Error(), "signing method HS256 is invalid") {
		t.Errorf("ParseWithClaims(HS256 token, secret) = %v; want signing method HS256 is invalid", err)
	}
	none, _ := jwt.NewWithClaims(jwt.SigningMethodNone, claims).SignedString(jwt.UnsafeAllowNoneSignatureType)
	_, err = v.parser.ParseWithClaims(none, jwt.MapClaims{}, func(*jwt.Token) (any, error) { return jwt.UnsafeAllowNoneSignatureType, nil })
	if err == nil || !strings.Contains(err.Error(), "signing method none is invalid") {
		t.Errorf("ParseWithClaims(none token) = %v; want signing method none is invalid", err)
	}
}
