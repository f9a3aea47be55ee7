// Package testtls makes throwaway certificate authorities, certificates and
// https servers for tests of TLS clients and servers on loopback. Only tests
// import it: its keys are made for one test binary and never kept.
//
// Every certificate is valid from an hour ago to 24 hours from now and has a
// random serial number of up to 96 bits. Keys are ECDSA P-256, fresh for
// each certificate, except leaves issued with LeafOptions.RSA, which share
// one RSA 2048 key per test binary because RSA key generation is slow.
// Leaves name localhost and 127.0.0.1. Functions that fail call tb.Fatal.
package testtls

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// CA is a certificate authority made for one test. Its fields MUST NOT be
// changed.
type CA struct {
	// Cert is the CA's self-signed certificate.
	Cert *x509.Certificate
	// PEM is Cert in PEM.
	PEM []byte
	// File is a file holding PEM, removed when the test ends.
	File string

	key *ecdsa.PrivateKey
}

// NewCA returns a new CA whose subject common name is name.
func NewCA(tb testing.TB, name string) *CA {
	tb.Helper()
	key := newECKey(tb)
	tmpl := template(tb, name)
	tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature
	tmpl.BasicConstraintsValid = true
	tmpl.IsCA = true
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		tb.Fatalf("create CA certificate: %v", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatalf("parse CA certificate: %v", err)
	}
	return &CA{Cert: cert, PEM: encodePEM("CERTIFICATE", der), File: CertFile(tb, cert), key: key}
}

// Pool returns a new pool holding only the CA's certificate.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

// LeafOptions say what kind of leaf CA.Issue makes. The zero value is an
// ECDSA server certificate.
type LeafOptions struct {
	// Client gives the leaf the clientAuth extended key usage instead of
	// serverAuth.
	Client bool
	// RSA gives the leaf the shared RSA 2048 key instead of a fresh ECDSA
	// P-256 one.
	RSA bool
}

// Leaf is a certificate issued by a CA, with its private key.
type Leaf struct {
	// Cert is the parsed certificate.
	Cert *x509.Certificate
	// CertPEM is the certificate in PEM.
	CertPEM []byte
	// KeyPEM is the private key in PKCS #8 PEM.
	KeyPEM []byte
}

// Issue returns a new leaf certificate issued by ca for localhost and
// 127.0.0.1, whose subject common name is name.
func (ca *CA) Issue(tb testing.TB, name string, o LeafOptions) *Leaf {
	tb.Helper()
	var (
		pub    crypto.PublicKey
		signer crypto.Signer
	)
	tmpl := template(tb, name)
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	if o.RSA {
		k := rsaKey()
		pub, signer = &k.PublicKey, k
		tmpl.KeyUsage |= x509.KeyUsageKeyEncipherment
	} else {
		k := newECKey(tb)
		pub, signer = &k.PublicKey, k
	}
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	if o.Client {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	tmpl.DNSNames = []string{"localhost"}
	tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, pub, ca.key)
	if err != nil {
		tb.Fatalf("create leaf certificate: %v", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatalf("parse leaf certificate: %v", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(signer)
	if err != nil {
		tb.Fatalf("marshal leaf key: %v", err)
	}
	return &Leaf{Cert: cert, CertPEM: encodePEM("CERTIFICATE", der), KeyPEM: encodePEM("PRIVATE KEY", keyDER)}
}

// TLSCertificate returns the leaf as a certificate for tls.Config, with its
// Leaf field set.
func (l *Leaf) TLSCertificate(tb testing.TB) tls.Certificate {
	tb.Helper()
	c, err := tls.X509KeyPair(l.CertPEM, l.KeyPEM)
	if err != nil {
		tb.Fatalf("load leaf key pair: %v", err)
	}
	return c
}

// Files writes the leaf's certificate and key to a new directory, removed
// when the test ends, as WritePair does, and returns their paths.
func (l *Leaf) Files(tb testing.TB) (certFile, keyFile string) {
	tb.Helper()
	return WritePair(tb, tb.TempDir(), l.CertPEM, l.KeyPEM)
}

// WritePair writes certPEM to dir/tls.crt (mode 0644) and keyPEM to
// dir/tls.key (mode 0600), replacing any earlier files, and returns their
// paths. The two need not match, so that tests can write broken pairs.
func WritePair(tb testing.TB, dir string, certPEM, keyPEM []byte) (certFile, keyFile string) {
	tb.Helper()
	certFile = filepath.Join(dir, "tls.crt")
	keyFile = filepath.Join(dir, "tls.key")
	if err := os.WriteFile(certFile, certPEM, 0o644); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		tb.Fatal(err)
	}
	return certFile, keyFile
}

// WritePEM writes der to file (mode 0600) as one PEM block of type
// blockType. der need not be valid, so that tests can write broken files.
func WritePEM(tb testing.TB, file, blockType string, der []byte) {
	tb.Helper()
	if err := os.WriteFile(file, encodePEM(blockType, der), 0o600); err != nil {
		tb.Fatal(err)
	}
}

// CertFile writes cert in PEM to a file in a new directory, removed when
// the test ends, and returns its path: a CA file for clients that must
// trust cert.
func CertFile(tb testing.TB, cert *x509.Certificate) string {
	tb.Helper()
	file := filepath.Join(tb.TempDir(), "ca.pem")
	WritePEM(tb, file, "CERTIFICATE", cert.Raw)
	return file
}

// NewServer starts an https server for h on a loopback port with
// httptest's certificate for 127.0.0.1, and returns it with a CA file
// (see CertFile) that trusts that certificate. configure, when not nil,
// changes the server's tls.Config, which starts empty, before the server
// starts. Handshakes the server refuses are not logged, since some tests
// want them. The server is closed when the test ends.
func NewServer(tb testing.TB, h http.Handler, configure func(*tls.Config)) (srv *httptest.Server, caFile string) {
	tb.Helper()
	srv = httptest.NewUnstartedServer(h)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.TLS = &tls.Config{}
	if configure != nil {
		configure(srv.TLS)
	}
	srv.StartTLS()
	tb.Cleanup(srv.Close)
	return srv, CertFile(tb, srv.Certificate())
}

// template returns the fields every certificate shares.
func template(tb testing.TB, name string) *x509.Certificate {
	tb.Helper()
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 96))
	if err != nil {
		tb.Fatalf("serial number: %v", err)
	}
	now := time.Now()
	return &x509.Certificate{
		SerialNumber: serial.Add(serial, big.NewInt(1)),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
	}
}

func newECKey(tb testing.TB) *ecdsa.PrivateKey {
	tb.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatalf("generate ECDSA key: %v", err)
	}
	return k
}

// rsaKey is generated once per test binary: RSA key generation is slow.
var rsaKey = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
})

func encodePEM(blockType string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: blockType, Bytes: der})
}
