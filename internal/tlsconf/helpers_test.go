package tlsconf

import (
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"math/big"
	"net"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/idvault/idvault/internal/testenv/testlog"
	"github.com/idvault/idvault/internal/testenv/testtls"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// newTestReloader writes a fresh leaf from ca and returns a Reloader for it,
// the directory, and the leaf's serial number. The Reloader logs to logs,
// or has no logger when logs is nil.
func newTestReloader(tb testing.TB, ca *testtls.CA, o testtls.LeafOptions, logs *testlog.Buffer) (*Reloader, string, *big.Int) {
	tb.Helper()
	dir := tb.TempDir()
	leaf := ca.Issue(tb, "leaf", o)
	certFile, keyFile := testtls.WritePair(tb, dir, leaf.CertPEM, leaf.KeyPEM)
	var logger *slog.Logger
	if logs != nil {
		logger = logs.TextLogger()
	}
	r, err := NewReloader(certFile, keyFile, logger)
	if err != nil {
		tb.Fatalf("NewReloader() error = %v, want nil", err)
	}
	return r, dir, leaf.Cert.SerialNumber
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
