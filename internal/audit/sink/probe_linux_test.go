package sink

import (
	"crypto/tls"
	"errors"
	"net"
	"syscall"
	"testing"

	"github.com/idvault/idvault/internal/testenv/testtls"
)

// TestPeerClosed checks the liveness probe against a crypto/tls server
// (TLS 1.3, which sends session tickets after the handshake) that stays up,
// closes with close_notify, closes the socket without it, or resets it.
func TestPeerClosed(t *testing.T) {
	ca := testtls.NewCA(t, "probe CA")
	cert := ca.Issue(t, "probe-server", testtls.LeafOptions{}).TLSCertificate(t)
	pool := ca.Pool()
	tests := []struct {
		name  string
		close func(*tls.Conn) error
		want  bool
	}{
		{"open", nil, false},
		// Records waiting on the socket go through crypto/tls; data (which
		// a syslog server never sends) leaves the connection open.
		{"data waiting", func(c *tls.Conn) error { _, err := c.Write([]byte("x")); return err }, false},
		{"close_notify", func(c *tls.Conn) error { return c.Close() }, true},
		{"FIN without close_notify", func(c *tls.Conn) error { return c.NetConn().Close() }, true},
		{"RST", func(c *tls.Conn) error {
			tcp := c.NetConn().(*net.TCPConn)
			if err := tcp.SetLinger(0); err != nil {
				return err
			}
			return tcp.Close()
		}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			accepted := make(chan *tls.Conn, 1)
			go func() {
				c, err := ln.Accept()
				if err != nil {
					close(accepted)
					return
				}
				tc := c.(*tls.Conn)
				if err := tc.Handshake(); err != nil {
					_ = tc.Close()
					close(accepted)
					return
				}
				accepted <- tc
			}()
			client, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: pool, ServerName: "localhost"})
			if err != nil {
				t.Fatal(err)
			}
			defer client.Close()
			server, ok := <-accepted
			if !ok {
				t.Fatal("server handshake failed")
			}
			defer server.Close()
			if peerClosed(client) {
				t.Fatal("peerClosed = true on an open connection")
			}
			if tt.close != nil {
				if err := tt.close(server); err != nil {
					t.Fatal(err)
				}
				waitReadable(t, client)
			}
			if got := peerClosed(client); got != tt.want {
				t.Errorf("peerClosed after %s = %v, want %v", tt.name, got, tt.want)
			}
			if !tt.want {
				if _, err := client.Write([]byte("still usable")); err != nil {
					t.Errorf("Write after the probe: %v", err)
				}
			}
		})
	}
}

// waitReadable blocks until the client's socket has something to read: data,
// end of stream or an error.
func waitReadable(t *testing.T, c *tls.Conn) {
	t.Helper()
	raw, err := c.NetConn().(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var buf [1]byte
	if err := raw.Read(func(fd uintptr) bool {
		_, _, err := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		return !errors.Is(err, syscall.EAGAIN)
	}); err != nil {
		t.Fatal(err)
	}
}
