package httpx

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/idvault/idvault/internal/testenv/testtls"
)

// tlsServer starts an https server answering JSON with the TLS settings
// that configure gives, and returns it with a CA file for its certificate.
func tlsServer(t *testing.T, configure func(*tls.Config)) (*httptest.Server, string) {
	t.Helper()
	return testtls.NewServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"ok":true}`))
	}), configure)
}

func doOnce(t *testing.T, cfg Config) error {
	t.Helper()
	cfg.Retries = 2
	c, _, slp := newTestClient(t, cfg)
	var out payload
	err := c.Do(context.Background(), http.MethodGet, "/x", nil, nil, &out)
	if err == nil && !out.OK {
		t.Errorf("Do succeeded without decoding the answer")
	}
	if err != nil && len(slp.Waits()) != 0 {
		t.Errorf("a TLS failure was retried: %v", err)
	}
	return err
}

func TestTLSVerifiesServer(t *testing.T) {
	srv, caFile := tlsServer(t, nil)
	other := testtls.NewCA(t, "other CA")
	wrongCA, _ := other.Issue(t, "not the server's issuer", testtls.LeafOptions{Client: true}).Files(t)

	if err := doOnce(t, Config{URL: srv.URL, CAFile: caFile}); err != nil {
		t.Errorf("with the server's CA: %v, want success", err)
	}
	var unknown x509.UnknownAuthorityError
	if err := doOnce(t, Config{URL: srv.URL}); !errors.As(err, &unknown) {
		t.Errorf("with the system roots: %v, want an unknown authority error", err)
	}
	if err := doOnce(t, Config{URL: srv.URL, CAFile: wrongCA}); !errors.As(err, &unknown) {
		t.Errorf("with another CA: %v, want an unknown authority error", err)
	}
}

func TestTLSRefusesWeakServers(t *testing.T) {
	tests := []struct {
		name      string
		configure func(*tls.Config)
	}{
		{name: "TLS 1.1", configure: func(c *tls.Config) { c.MinVersion, c.MaxVersion = tls.VersionTLS10, tls.VersionTLS11 }},
		{name: "TLS 1.0", configure: func(c *tls.Config) { c.MinVersion, c.MaxVersion = tls.VersionTLS10, tls.VersionTLS10 }},
		{name: "TLS 1.2 CBC only", configure: func(c *tls.Config) {
			c.MaxVersion = tls.VersionTLS12
			c.CipherSuites = []uint16{tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, tls.TLS_RSA_WITH_AES_128_GCM_SHA256}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, caFile := tlsServer(t, tt.configure)
			if err := doOnce(t, Config{URL: srv.URL, CAFile: caFile}); err == nil {
				t.Errorf("the client accepted a %s server", tt.name)
			}
		})
	}
	t.Run("TLS 1.2 AEAD accepted", func(t *testing.T) {
		srv, caFile := tlsServer(t, func(c *tls.Config) { c.MaxVersion = tls.VersionTLS12 })
		if err := doOnce(t, Config{URL: srv.URL, CAFile: caFile}); err != nil {
			t.Errorf("TLS 1.2 with AEAD suites: %v, want success", err)
		}
	})
}

func TestMutualTLS(t *testing.T) {
	ca := testtls.NewCA(t, "client CA")
	certFile, keyFile := ca.Issue(t, "idvault workflow", testtls.LeafOptions{Client: true}).Files(t)
	rogue := testtls.NewCA(t, "rogue CA")
	rogueCert, rogueKey := rogue.Issue(t, "idvault workflow", testtls.LeafOptions{Client: true}).Files(t)
	srv, caFile := tlsServer(t, func(c *tls.Config) {
		c.ClientCAs = ca.Pool()
		c.ClientAuth = tls.RequireAndVerifyClientCert
	})
	if err := doOnce(t, Config{URL: srv.URL, CAFile: caFile, CertFile: certFile, KeyFile: keyFile}); err != nil {
		t.Errorf("with a client certificate: %v, want success", err)
	}
	if err := doOnce(t, Config{URL: srv.URL, CAFile: caFile}); err == nil {
		t.Error("without a client certificate: success, want a handshake failure")
	}
	if err := doOnce(t, Config{URL: srv.URL, CAFile: caFile, CertFile: rogueCert, KeyFile: rogueKey}); err == nil {
		t.Error("with a certificate of another CA: success, want a handshake failure")
	}
}
