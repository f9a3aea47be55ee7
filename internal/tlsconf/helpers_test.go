package tlsconf

import (
	"bytes"
	"context"
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
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testCA is a certificate authority made for one test.
type testCA struct {
	cert *x509.Certificate
	key  crypto.Signer
	pem  []byte
}

// leafOpts says what kind of leaf testCA.issue makes.
type leafOpts struct {
	rsa    bool // RSA 2048 key instead of ECDSA P-256
	client bool // clientAuth instead of serverAuth extended key usage
}

// rsaKey is generated once per test binary: RSA key generation is slow.
var rsaKey = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
})

func randomSerial(tb testing.TB) *big.Int {
	tb.Helper()
	s, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 96))
	if err != nil {
		tb.Fatal(err)
	}
	return s.Add(s, big.NewInt(1))
}

func newECKey(tb testing.TB) *ecdsa.PrivateKey {
	tb.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

func newCA(tb testing.TB, name string) *testCA {
	tb.Helper()
	key := newECKey(tb)
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          randomSerial(tb),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		tb.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatal(err)
	}
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

func (ca *testCA) pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.cert)
	return p
}

// issue returns a PEM leaf certificate for localhost and 127.0.0.1, its PEM
// key and its serial number.
func (ca *testCA) issue(tb testing.TB, o leafOpts) (certPEM, keyPEM []byte, serial *big.Int) {
	tb.Helper()
	var (
		pub    crypto.PublicKey
		signer crypto.Signer
	)
	if o.rsa {
		k := rsaKey()
		pub, signer = &k.PublicKey, k
	} else {
		k := newECKey(tb)
		pub, signer = &k.PublicKey, k
	}
	eku := x509.ExtKeyUsageServerAuth
	if o.client {
		eku = x509.ExtKeyUsageClientAuth
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: randomSerial(tb),
		Subject:      pkix.Name{CommonName: "leaf"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{eku},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, pub, ca.key)
	if err != nil {
		tb.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(signer)
	if err != nil {
		tb.Fatal(err)
	}
	certPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	return certPEM, keyPEM, tmpl.SerialNumber
}

// clientCert returns a client certificate issued by ca for tls.Config.
func (ca *testCA) clientCert(tb testing.TB) tls.Certificate {
	tb.Helper()
	certPEM, keyPEM, _ := ca.issue(tb, leafOpts{client: true})
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

// writePair writes certPEM and keyPEM (mode 0600) to dir and returns the paths.
func writePair(tb testing.TB, dir string, certPEM, keyPEM []byte) (certFile, keyFile string) {
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

// newTestReloader writes a fresh leaf from ca and returns a Reloader for it,
// the directory, and the leaf's serial number.
func newTestReloader(tb testing.TB, ca *testCA, o leafOpts, logger *lockedBuffer) (*Reloader, string, *big.Int) {
	tb.Helper()
	dir := tb.TempDir()
	certPEM, keyPEM, serial := ca.issue(tb, o)
	certFile, keyFile := writePair(tb, dir, certPEM, keyPEM)
	r, err := NewReloader(certFile, keyFile, logger.logger())
	if err != nil {
		tb.Fatalf("NewReloader() error = %v, want nil", err)
	}
	return r, dir, serial
}

// lockedBuffer collects log output; safe for concurrent use. A nil
// *lockedBuffer gives a nil logger.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *lockedBuffer) logger() *slog.Logger {
	if b == nil {
		return nil
	}
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// hsResult is the outcome of one handshake seen from both ends.
type hsResult struct {
	client    tls.ConnectionState
	clientErr error
	serverErr error
}

func (r hsResult) ok() bool { return r.clientErr == nil && r.serverErr == nil }

// handshake runs one TLS connection over a loopback TCP listener. The server
// writes one byte after its handshake and the client reads it, so a client
// certificate the server rejects after a TLS 1.3 client has finished its side
// still shows up as a client error.
func handshake(tb testing.TB, serverCfg, clientCfg *tls.Config) hsResult {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	deadline, _ := ctx.Deadline()
	serverErr := make(chan error, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			serverErr <- err
			return
		}
		defer conn.Close()
		_ = conn.SetDeadline(deadline)
		srv := tls.Server(conn, serverCfg)
		if err := srv.HandshakeContext(ctx); err != nil {
			serverErr <- err
			return
		}
		_, err = srv.Write([]byte{1})
		serverErr <- err
	}()
	var res hsResult
	d := tls.Dialer{Config: clientCfg}
	conn, err := d.DialContext(ctx, "tcp", ln.Addr().String())
	if err == nil {
		tc := conn.(*tls.Conn)
		_ = tc.SetDeadline(deadline)
		res.client = tc.ConnectionState()
		var b [1]byte
		_, err = io.ReadFull(tc, b[:])
		_ = tc.Close()
	}
	res.clientErr = err
	res.serverErr = <-serverErr
	return res
}

// peerSerial returns the serial number of the server's leaf certificate.
func (r hsResult) peerSerial() *big.Int {
	if len(r.client.PeerCertificates) == 0 {
		return nil
	}
	return r.client.PeerCertificates[0].SerialNumber
}
