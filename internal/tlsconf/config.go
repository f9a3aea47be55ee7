package tlsconf

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"slices"
)

// ErrInvalidKeyPair reports a certificate and key that do not form a usable
// pair: a file without PEM data, a block that does not parse, or a key that
// does not match the certificate.
var ErrInvalidKeyPair = errors.New("tlsconf: invalid certificate and key pair")

// ErrNoCertificate reports a PEM file that holds no certificate, or holds a
// block that is not a parseable certificate.
var ErrNoCertificate = errors.New("tlsconf: no valid certificate")

// CertSource supplies the certificate for each TLS handshake. *Reloader is
// one. GetCertificate MUST be safe for concurrent use.
type CertSource interface {
	GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error)
}

// tls12CipherSuites are the only TLS 1.2 suites ServerConfig enables: ECDHE
// key exchange with an AEAD cipher.
var tls12CipherSuites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// curvePreferences are the key exchange groups ServerConfig enables. The
// order is not significant: crypto/tls applies its own preference order.
var curvePreferences = []tls.CurveID{
	tls.X25519MLKEM768,
	tls.SecP256r1MLKEM768,
	tls.X25519,
	tls.CurveP256,
}

// ServerConfig returns a new server configuration that applies the package
// policy (see the package doc) and takes certificates from src, which MUST NOT
// be nil. When clientCAs is not nil, every client must present a certificate
// that verifies against it; when it is nil, no client certificate is
// requested. The caller owns the returned value and may add to it (for
// example NextProtos for another protocol) but SHOULD NOT loosen MinVersion,
// CipherSuites or CurvePreferences.
func ServerConfig(src CertSource, clientCAs *x509.CertPool) *tls.Config {
	c := &tls.Config{
		MinVersion:       tls.VersionTLS12,
		CipherSuites:     slices.Clone(tls12CipherSuites),
		CurvePreferences: slices.Clone(curvePreferences),
		NextProtos:       []string{"h2", "http/1.1"},
		GetCertificate:   src.GetCertificate,
	}
	if clientCAs != nil {
		c.ClientCAs = clientCAs
		c.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return c
}

// LoadClientCAs reads a PEM file of CA certificates for verifying client
// certificates. Every PEM block in the file must be a certificate that parses,
// and there must be at least one; anything else is an error wrapping
// ErrNoCertificate, so a truncated or mistyped bundle cannot quietly trust
// fewer issuers than intended.
func LoadClientCAs(file string) (*x509.CertPool, error) {
	pool, err := LoadCAs(file)
	if err != nil {
		return nil, fmt.Errorf("client %w", err)
	}
	return pool, nil
}

// LoadCAs reads a PEM bundle of CA certificates with the same strictness as
// LoadClientCAs, for clients that verify a server (the syslog sink, the
// Regula clients). Errors name the file and wrap ErrNoCertificate when the
// content is wrong.
func LoadCAs(file string) (*x509.CertPool, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("CA file: %w", err)
	}
	pool, err := parseCertPool(data)
	if err != nil {
		return nil, fmt.Errorf("CA file %s: %w", file, err)
	}
	return pool, nil
}

// TLS12CipherSuites returns the TLS 1.2 suites of the platform's policy
// (ECDHE with an AEAD cipher), for clients that must offer the same ones
// the api role accepts. TLS 1.3 suites are fixed by crypto/tls.
func TLS12CipherSuites() []uint16 { return slices.Clone(tls12CipherSuites) }

// parseCertPool parses a PEM bundle strictly: every block must be a
// certificate, and there must be at least one.
func parseCertPool(data []byte) (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	n := 0
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("%w: PEM block %d is %q", ErrNoCertificate, n+1, block.Type)
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%w: PEM block %d: %w", ErrNoCertificate, n+1, err)
		}
		pool.AddCert(cert)
		n++
	}
	if n == 0 {
		return nil, fmt.Errorf("%w: no PEM certificate block", ErrNoCertificate)
	}
	return pool, nil
}
