package tlsconf

import (
	"crypto/tls"
	"net"
	"testing"

	"github.com/idvault/idvault/internal/testenv/testtls"
)

// BenchmarkHandshake measures full handshakes (no resumption) over
// loopback TCP, both ends in this process.
func BenchmarkHandshake(b *testing.B) {
	serverCA := testtls.NewCA(b, "server CA")
	clientCA := testtls.NewCA(b, "client CA")
	ec, _, _ := newTestReloader(b, serverCA, testtls.LeafOptions{}, nil)
	rsa, _, _ := newTestReloader(b, serverCA, testtls.LeafOptions{RSA: true}, nil)
	clientCert := clientCA.Issue(b, "leaf", testtls.LeafOptions{Client: true}).TLSCertificate(b)

	tests := []struct {
		name   string
		server *tls.Config
		client *tls.Config
	}{
		{name: "tls13-ecdsa", server: ServerConfig(ec, nil), client: &tls.Config{}},
		{name: "tls13-ecdsa-x25519", server: ServerConfig(ec, nil), client: &tls.Config{CurvePreferences: []tls.CurveID{tls.X25519}}},
		{name: "tls13-rsa", server: ServerConfig(rsa, nil), client: &tls.Config{}},
		{name: "tls12-ecdsa-aes128gcm", server: ServerConfig(ec, nil), client: tls12Client(tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256)},
		{name: "tls13-ecdsa-mtls", server: ServerConfig(ec, clientCA.Pool()), client: &tls.Config{Certificates: []tls.Certificate{clientCert}}},
	}
	for _, tt := range tests {
		b.Run(tt.name, func(b *testing.B) {
			client := tt.client.Clone()
			client.RootCAs = serverCA.Pool()
			client.ServerName = "localhost"
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			serverErr := make(chan error)
			go func() {
				for {
					conn, err := ln.Accept()
					if err != nil {
						close(serverErr)
						return
					}
					srv := tls.Server(conn, tt.server)
					err = srv.Handshake()
					_ = srv.Close()
					serverErr <- err
				}
			}()
			defer func() {
				_ = ln.Close()
				for range serverErr {
				}
			}()
			addr := ln.Addr().String()
			b.ReportAllocs()
			for b.Loop() {
				conn, err := net.Dial("tcp", addr)
				if err != nil {
					b.Fatal(err)
				}
				cli := tls.Client(conn, client)
				if err := cli.Handshake(); err != nil {
					b.Fatalf("client handshake: %v", err)
				}
				_ = cli.Close()
				if err := <-serverErr; err != nil {
					b.Fatalf("server handshake: %v", err)
				}
			}
		})
	}
}
