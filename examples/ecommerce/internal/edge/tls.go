package edge

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"slices"
	"time"
)

// certLifetime is how long a generated certificate is valid: longer
// than any run of the example.
const certLifetime = 30 * 24 * time.Hour

// serverCert returns the gateway's certificate in certFile and keyFile,
// and roots that trust it, for clients in the same process. When both
// are empty it returns nil roots: the certificate is made by
// [generatedCert] once the gateway's address is known.
func serverCert(certFile, keyFile string) (cert tls.Certificate, roots *x509.CertPool, err error) {
	switch {
	case certFile == "" && keyFile == "":
		return cert, nil, nil
	case certFile == "" || keyFile == "":
		return cert, nil, errors.New("edge: CertFile and KeyFile go together: set both or neither")
	default:
		cert, err = tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return cert, nil, fmt.Errorf("edge: loading the gateway's certificate: %w", err)
		}
		// A certificate from a CA the system trusts verifies with the
		// system's roots; a self-signed one, as the leaf added below.
		if roots, err = x509.SystemCertPool(); err != nil {
			roots = x509.NewCertPool()
		}
	}
	roots.AddCert(cert.Leaf)
	return cert, roots, nil
}

// generatedCert makes the gateway's self-signed certificate for the
// address it listens on (addr), and roots that trust it.
func generatedCert(addr net.Addr) (tls.Certificate, *x509.CertPool, error) {
	var ip net.IP
	if a, ok := addr.(*net.TCPAddr); ok {
		ip = a.IP
	}
	cert, err := selfSigned(time.Now(), ip)
	if err != nil {
		return cert, nil, fmt.Errorf("edge: making the gateway's certificate: %w", err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(cert.Leaf)
	return cert, roots, nil
}

// selfSigned makes a self-signed ECDSA P-256 certificate for 127.0.0.1,
// ::1, localhost, this host's name and ip, the address the gateway is
// bound to (unless nil or unspecified): the gateway's URL names that
// address, so a client checking the certificate against the URL needs
// it there.
func selfSigned(now time.Time, ip net.IP) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return tls.Certificate{}, err
	}
	names := []string{"localhost"}
	if h, err := os.Hostname(); err == nil && h != "" && h != "localhost" {
		names = append(names, h)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{Organization: []string{"otelpatterns ecommerce example"}, CommonName: "localhost"},
		NotBefore:    now.Add(-time.Minute), // a little clock skew
		NotAfter:     now.Add(certLifetime),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		// A self-signed leaf is its own root, so it says it is a CA.
		BasicConstraintsValid: true,
		IsCA:                  true,
		DNSNames:              names,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	if ip != nil && !ip.IsUnspecified() && !slices.ContainsFunc(tmpl.IPAddresses, ip.Equal) {
		tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}
