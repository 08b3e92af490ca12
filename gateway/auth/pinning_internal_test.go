package auth

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// TestParserPinsAlgorithm protects the pinning itself, below the reasons
// VerifyToken gives: the key function refuses an HS256 token for an RS256
// key even though the token was signed with that key's public PEM as the
// HMAC secret, and the parser refuses an alg "none" token even when its
// key function hands it the value that unlocks "none".
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
	der, _ := x509.MarshalPKIXPublicKey(pub)
	secret := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	claims := jwt.MapClaims{"exp": time.Now().Add(time.Hour).Unix()}

	hs := jwt.NewWithClaims(jwt.SigningMethodHS256, claims)
	hs.Header["kid"] = "rsa1"
	signed, _ := hs.SignedString(secret)
	_, err = a.VerifyToken(context.Background(), signed)
	var e *Error
	if !errors.As(err, &e) || e.Reason != ReasonAlgorithm {
		t.Errorf("VerifyToken(HS256 token signed with the RS256 key's PEM) = %v; want reason %v", err, ReasonAlgorithm)
	}
	none, _ := jwt.NewWithClaims(jwt.SigningMethodNone, claims).SignedString(jwt.UnsafeAllowNoneSignatureType)
	_, err = a.parser.ParseWithClaims(none, jwt.MapClaims{}, func(*jwt.Token) (any, error) { return jwt.UnsafeAllowNoneSignatureType, nil })
	if err == nil || !strings.Contains(err.Error(), "signing method none is invalid") {
		t.Errorf("ParseWithClaims(none token) = %v; want signing method none is invalid", err)
	}
}
