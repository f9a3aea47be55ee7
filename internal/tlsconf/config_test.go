package tlsconf

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/idvault/idvault/internal/testenv/testtls"
)

func TestServerConfigPolicy(t *testing.T) {
	ca := testtls.NewCA(t, "server CA")
	ecReloader, _, ecSerial := newTestReloader(t, ca, testtls.LeafOptions{}, nil)
	rsaReloader, _, rsaSerial := newTestReloader(t, ca, testtls.LeafOptions{RSA: true}, nil)

	tests := []struct {
		name        string
		rsa         bool
		client      *tls.Config
		wantOK      bool
		wantVersion uint16
		wantSuite   uint16
		wantCurve   tls.CurveID
		wantProto   string
	}{
		{
			name:        "tls13 default client",
			client:      &tls.Config{NextProtos: []string{"h2", "http/1.1"}},
			wantOK:      true,
			wantVersion: tls.VersionTLS13,
			wantCurve:   tls.X25519MLKEM768,
			wantProto:   "h2",
		},
		{
			name:        "tls13 http1 only client",
			client:      &tls.Config{NextProtos: []string{"http/1.1"}},
			wantOK:      true,
			wantVersion: tls.VersionTLS13,
			wantProto:   "http/1.1",
		},
		{
			name:        "tls13 x25519 only",
			client:      &tls.Config{CurvePreferences: []tls.CurveID{tls.X25519}},
			wantOK:      true,
			wantVersion: tls.VersionTLS13,
			wantCurve:   tls.X25519,
		},
		{
			name:        "tls13 p256 only",
			client:      &tls.Config{CurvePreferences: []tls.CurveID{tls.CurveP256}},
			wantOK:      true,
			wantVersion: tls.VersionTLS13,
			wantCurve:   tls.CurveP256,
		},
		{
			name:   "tls13 p384 only refused",
			client: &tls.Config{CurvePreferences: []tls.CurveID{tls.CurveP384}},
		},
		{
			name:        "tls12 ecdsa aes128 gcm",
			client:      tls12Client(tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256),
			wantOK:      true,
			wantVersion: tls.VersionTLS12,
			wantSuite:   tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
		},
		{
			name:        "tls12 ecdsa aes256 gcm",
			client:      tls12Client(tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384),
			wantOK:      true,
			wantVersion: tls.VersionTLS12,
			wantSuite:   tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
		},
		{
			name:        "tls12 ecdsa chacha20",
			client:      tls12Client(tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256),
			wantOK:      true,
			wantVersion: tls.VersionTLS12,
			wantSuite:   tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
		},
		{
			name:        "tls12 rsa aes128 gcm",
			rsa:         true,
			client:      tls12Client(tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256),
			wantOK:      true,
			wantVersion: tls.VersionTLS12,
			wantSuite:   tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
		},
		{
			name:        "tls12 rsa aes256 gcm",
			rsa:         true,
			client:      tls12Client(tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384),
			wantOK:      true,
			wantVersion: tls.VersionTLS12,
			wantSuite:   tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
		},
		{
			name:        "tls12 rsa chacha20",
			rsa:         true,
			client:      tls12Client(tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256),
			wantOK:      true,
			wantVersion: tls.VersionTLS12,
			wantSuite:   tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
		},
		{
			name:   "tls12 rsa cbc only refused",
			rsa:    true,
			client: tls12Client(tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA),
		},
		{
			name:   "tls12 ecdsa cbc only refused",
			client: tls12Client(tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA),
		},
		{
			name:   "tls12 rsa key exchange refused",
			rsa:    true,
			client: tls12Client(tls.TLS_RSA_WITH_AES_128_GCM_SHA256),
		},
		{
			name: "tls12 p384 only refused",
			client: func() *tls.Config {
				c := tls12Client()
				c.CurvePreferences = []tls.CurveID{tls.CurveP384}
				return c
			}(),
		},
		{
			name:   "tls11 refused",
			client: oldClient(tls.VersionTLS11),
		},
		{
			name:   "tls10 refused",
			client: oldClient(tls.VersionTLS10),
		},
		{
			name:   "tls11 rsa refused",
			rsa:    true,
			client: oldClient(tls.VersionTLS11),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src, wantSerial := ecReloader, ecSerial
			if tt.rsa {
				src, wantSerial = rsaReloader, rsaSerial
			}
			client := tt.client.Clone()
			client.RootCAs = ca.Pool()
			client.ServerName = "localhost"
			res := handshake(t, ServerConfig(src, nil), client)
			if !tt.wantOK {
				if res.clientErr == nil || res.serverErr == nil {
					t.Fatalf("handshake: client error %v, server error %v; want both to fail", res.clientErr, res.serverErr)
				}
				return
			}
			if !res.ok() {
				t.Fatalf("handshake: client error %v, server error %v; want success", res.clientErr, res.serverErr)
			}
			st := res.client
			if st.Version != tt.wantVersion {
				t.Errorf("Version = %s, want %s", tls.VersionName(st.Version), tls.VersionName(tt.wantVersion))
			}
			if tt.wantSuite != 0 && st.CipherSuite != tt.wantSuite {
				t.Errorf("CipherSuite = %s, want %s", tls.CipherSuiteName(st.CipherSuite), tls.CipherSuiteName(tt.wantSuite))
			}
			if tt.wantCurve != 0 && st.CurveID != tt.wantCurve {
				t.Errorf("CurveID = %s, want %s", st.CurveID, tt.wantCurve)
			}
			if st.NegotiatedProtocol != tt.wantProto {
				t.Errorf("NegotiatedProtocol = %q, want %q", st.NegotiatedProtocol, tt.wantProto)
			}
			if got := res.peerSerial(); got.Cmp(wantSerial) != 0 {
				t.Errorf("peer serial = %x, want %x", got, wantSerial)
			}
		})
	}
}

// TestRefusedClientsWorkWithoutPolicy shows that the refusals above come from
// ServerConfig and not from the test clients: the same clients complete a
// handshake with a permissive server.
func TestRefusedClientsWorkWithoutPolicy(t *testing.T) {
	t.Setenv("GODEBUG", "tls10server=1")
	ca := testtls.NewCA(t, "server CA")
	rsaReloader, _, _ := newTestReloader(t, ca, testtls.LeafOptions{RSA: true}, nil)
	tests := []struct {
		name   string
		client *tls.Config
	}{
		{name: "tls12 rsa cbc", client: tls12Client(tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA)},
		{name: "tls11", client: oldClient(tls.VersionTLS11)},
		{name: "tls10", client: oldClient(tls.VersionTLS10)},
		{name: "tls12 p384", client: func() *tls.Config {
			c := tls12Client()
			c.CurvePreferences = []tls.CurveID{tls.CurveP384}
			return c
		}()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			client := tt.client.Clone()
			client.RootCAs = ca.Pool()
			client.ServerName = "localhost"
			permissive := &tls.Config{GetCertificate: rsaReloader.GetCertificate}
			if res := handshake(t, permissive, client); !res.ok() {
				t.Fatalf("handshake with permissive server: client error %v, server error %v; want success", res.clientErr, res.serverErr)
			}
			if res := handshake(t, ServerConfig(rsaReloader, nil), client); res.ok() {
				t.Fatal("handshake with ServerConfig succeeded, want failure")
			}
		})
	}
}

func tls12Client(suites ...uint16) *tls.Config {
	return &tls.Config{MaxVersion: tls.VersionTLS12, CipherSuites: suites}
}

func oldClient(version uint16) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS10,
		MaxVersion: version,
		CipherSuites: []uint16{
			tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA,
			tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA,
		},
	}
}

func TestServerConfigFields(t *testing.T) {
	ca := testtls.NewCA(t, "server CA")
	r, _, _ := newTestReloader(t, ca, testtls.LeafOptions{}, nil)

	c := ServerConfig(r, nil)
	if c.MinVersion != tls.VersionTLS12 {
		t.Errorf("MinVersion = %s, want TLS 1.2", tls.VersionName(c.MinVersion))
	}
	if c.ClientAuth != tls.NoClientCert || c.ClientCAs != nil {
		t.Errorf("ServerConfig(r, nil): ClientAuth = %v, ClientCAs = %v, want NoClientCert, nil", c.ClientAuth, c.ClientCAs)
	}
	if want := []string{"h2", "http/1.1"}; !slices.Equal(c.NextProtos, want) {
		t.Errorf("NextProtos = %q, want %q", c.NextProtos, want)
	}
	insecure := tls.InsecureCipherSuites()
	for _, id := range c.CipherSuites {
		for _, s := range insecure {
			if s.ID == id {
				t.Errorf("CipherSuites has insecure %s", s.Name)
			}
		}
	}
	// The returned config is the caller's: changing it must not change the policy.
	c.CipherSuites[0] = tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA
	c.CurvePreferences[0] = tls.CurveP521
	if d := ServerConfig(r, nil); d.CipherSuites[0] == tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA || d.CurvePreferences[0] == tls.CurveP521 {
		t.Error("changing a returned config changed the next one")
	}

	pool := ca.Pool()
	m := ServerConfig(r, pool)
	if m.ClientAuth != tls.RequireAndVerifyClientCert || m.ClientCAs != pool {
		t.Errorf("ServerConfig(r, pool): ClientAuth = %v, want RequireAndVerifyClientCert with the pool", m.ClientAuth)
	}
}

func TestServerConfigMTLS(t *testing.T) {
	serverCA := testtls.NewCA(t, "server CA")
	clientCA := testtls.NewCA(t, "client CA")
	otherCA := testtls.NewCA(t, "other CA")
	r, _, _ := newTestReloader(t, serverCA, testtls.LeafOptions{}, nil)

	serverOnlyCert := clientCA.Issue(t, "leaf", testtls.LeafOptions{}).TLSCertificate(t)
	clientCert := clientCA.Issue(t, "leaf", testtls.LeafOptions{Client: true}).TLSCertificate(t)
	otherCert := otherCA.Issue(t, "leaf", testtls.LeafOptions{Client: true}).TLSCertificate(t)
	// The client sends cert whatever CAs the server names, so that the
	// server's own verification is what is tested.
	tests := []struct {
		name   string
		cert   *tls.Certificate
		wantOK bool
	}{
		{name: "no client certificate"},
		{name: "certificate from client CA", cert: &clientCert, wantOK: true},
		{name: "certificate from other CA", cert: &otherCert},
		{name: "client CA certificate without clientAuth usage", cert: &serverOnlyCert},
	}
	for _, version := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		for _, tt := range tests {
			t.Run(tls.VersionName(version)+"/"+tt.name, func(t *testing.T) {
				client := &tls.Config{
					RootCAs:    serverCA.Pool(),
					ServerName: "localhost",
					MaxVersion: version,
					GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
						if tt.cert == nil {
							return &tls.Certificate{}, nil
						}
						return tt.cert, nil
					},
				}
				res := handshake(t, ServerConfig(r, clientCA.Pool()), client)
				if tt.wantOK {
					if !res.ok() {
						t.Fatalf("handshake: client error %v, server error %v; want success", res.clientErr, res.serverErr)
					}
					if res.client.Version != version {
						t.Errorf("Version = %s, want %s", tls.VersionName(res.client.Version), tls.VersionName(version))
					}
					return
				}
				if res.clientErr == nil || res.serverErr == nil {
					t.Fatalf("handshake: client error %v, server error %v; want both to fail", res.clientErr, res.serverErr)
				}
			})
		}
	}
}

func TestLoadClientCAs(t *testing.T) {
	ca1 := testtls.NewCA(t, "one")
	ca2 := testtls.NewCA(t, "two")
	keyPEM := ca1.Issue(t, "leaf", testtls.LeafOptions{}).KeyPEM
	badCert := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte("not DER")})

	tests := []struct {
		name    string
		data    []byte
		wantErr error
	}{
		{name: "two CAs", data: append(append([]byte("# bundle\n"), ca1.PEM...), ca2.PEM...)},
		{name: "one CA", data: ca1.PEM},
		{name: "empty", data: nil, wantErr: ErrNoCertificate},
		{name: "text only", data: []byte("hello"), wantErr: ErrNoCertificate},
		{name: "private key block", data: append(append([]byte(nil), ca1.PEM...), keyPEM...), wantErr: ErrNoCertificate},
		{name: "unparseable certificate", data: append(append([]byte(nil), ca1.PEM...), badCert...), wantErr: ErrNoCertificate},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "ca.pem")
			if err := os.WriteFile(file, tt.data, 0o644); err != nil {
				t.Fatal(err)
			}
			pool, err := LoadClientCAs(file)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("LoadClientCAs() error = %v, want %v", err, tt.wantErr)
			}
			if tt.wantErr != nil {
				return
			}
			leaf := ca1.Issue(t, "leaf", testtls.LeafOptions{Client: true}).Cert
			_, err = leaf.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
			if err != nil {
				t.Errorf("verify client certificate of CA one against pool: %v", err)
			}
		})
	}

	t.Run("missing file", func(t *testing.T) {
		_, err := LoadClientCAs(filepath.Join(t.TempDir(), "none.pem"))
		if !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("LoadClientCAs() error = %v, want %v", err, fs.ErrNotExist)
		}
	})
}

// TestTLS12CipherSuites checks that the exported list is the one
// ServerConfig enables, and that callers get their own copy.
func TestTLS12CipherSuites(t *testing.T) {
	ca := testtls.NewCA(t, "server CA")
	r, _, _ := newTestReloader(t, ca, testtls.LeafOptions{}, nil)
	got := TLS12CipherSuites()
	if want := ServerConfig(r, nil).CipherSuites; !slices.Equal(got, want) {
		t.Fatalf("TLS12CipherSuites() = %v, want ServerConfig's %v", got, want)
	}
	got[0] = tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA
	if TLS12CipherSuites()[0] == tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA {
		t.Error("changing a returned list changed the next one")
	}
}

// TestLoadCAs checks the loader the syslog sink and the Regula clients use:
// as strict as LoadClientCAs, with errors that name the file but not the
// client role.
func TestLoadCAs(t *testing.T) {
	ca := testtls.NewCA(t, "one")
	pool, err := LoadCAs(ca.File)
	if err != nil {
		t.Fatalf("LoadCAs(CA file) error = %v, want nil", err)
	}
	if !pool.Equal(ca.Pool()) {
		t.Error("LoadCAs(CA file) pool differs from the CA's")
	}
	keyOnly := filepath.Join(t.TempDir(), "key.pem")
	testtls.WritePEM(t, keyOnly, "PRIVATE KEY", []byte("not a key"))
	_, err = LoadCAs(keyOnly)
	if !errors.Is(err, ErrNoCertificate) {
		t.Fatalf("LoadCAs(key file) error = %v, want %v", err, ErrNoCertificate)
	}
	want := "CA file " + keyOnly + `: tlsconf: no valid certificate: PEM block 1 is "PRIVATE KEY"`
	if got := err.Error(); got != want {
		t.Errorf("LoadCAs(key file) error = %q, want %q", got, want)
	}
	if _, err := LoadClientCAs(keyOnly); err == nil || err.Error() != "client "+want {
		t.Errorf("LoadClientCAs(key file) error = %v, want %q", err, "client "+want)
	}
}

func FuzzParseCertPool(f *testing.F) {
	ca := testtls.NewCA(f, "fuzz")
	f.Add(ca.PEM)
	f.Add(append(append([]byte(nil), ca.PEM...), ca.PEM...))
	f.Add([]byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, data []byte) {
		pool, err := parseCertPool(data)
		if err != nil {
			if !errors.Is(err, ErrNoCertificate) {
				t.Fatalf("parseCertPool() error = %v, want one wrapping ErrNoCertificate", err)
			}
			return
		}
		if pool == nil {
			t.Fatal("parseCertPool() = nil pool with nil error")
		}
		if block, _ := pem.Decode(data); block == nil || block.Type != "CERTIFICATE" {
			t.Fatal("parseCertPool() accepted input whose first PEM block is not a certificate")
		}
	})
}
