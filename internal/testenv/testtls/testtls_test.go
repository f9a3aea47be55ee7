package testtls

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
)

func TestNewCA(t *testing.T) {
	ca := NewCA(t, "test CA")
	if !ca.Cert.IsCA || ca.Cert.Subject.CommonName != "test CA" || ca.Cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		t.Errorf("CA certificate: IsCA %t, CN %q, KeyUsage %v; want a signing CA named %q", ca.Cert.IsCA, ca.Cert.Subject.CommonName, ca.Cert.KeyUsage, "test CA")
	}
	if err := ca.Cert.CheckSignatureFrom(ca.Cert); err != nil {
		t.Errorf("CA certificate is not self-signed: %v", err)
	}
	data, err := os.ReadFile(ca.File)
	if err != nil || !bytes.Equal(data, ca.PEM) {
		t.Errorf("ReadFile(File) = %q, %v; want PEM", data, err)
	}
	if other := NewCA(t, "test CA"); other.Cert.SerialNumber.Cmp(ca.Cert.SerialNumber) == 0 {
		t.Errorf("two CAs share serial %x", ca.Cert.SerialNumber)
	}
}

func TestIssue(t *testing.T) {
	ca, other := NewCA(t, "CA"), NewCA(t, "other")
	tests := []struct {
		name    string
		o       LeafOptions
		wantEKU x509.ExtKeyUsage
		wantRSA bool
	}{
		{name: "server", o: LeafOptions{}, wantEKU: x509.ExtKeyUsageServerAuth},
		{name: "client", o: LeafOptions{Client: true}, wantEKU: x509.ExtKeyUsageClientAuth},
		{name: "RSA server", o: LeafOptions{RSA: true}, wantEKU: x509.ExtKeyUsageServerAuth, wantRSA: true},
		{name: "RSA client", o: LeafOptions{RSA: true, Client: true}, wantEKU: x509.ExtKeyUsageClientAuth, wantRSA: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			leaf := ca.Issue(t, tt.name, tt.o)
			if leaf.Cert.Subject.CommonName != tt.name || leaf.Cert.IsCA {
				t.Errorf("leaf CN %q, IsCA %t; want %q, false", leaf.Cert.Subject.CommonName, leaf.Cert.IsCA, tt.name)
			}
			if _, ok := leaf.Cert.PublicKey.(*rsa.PublicKey); ok != tt.wantRSA {
				t.Errorf("leaf key is %T, want RSA %t", leaf.Cert.PublicKey, tt.wantRSA)
			}
			if _, ok := leaf.Cert.PublicKey.(*ecdsa.PublicKey); ok == tt.wantRSA {
				t.Errorf("leaf key is %T, want ECDSA %t", leaf.Cert.PublicKey, !tt.wantRSA)
			}
			for _, host := range []string{"localhost", "127.0.0.1"} {
				opts := x509.VerifyOptions{Roots: ca.Pool(), DNSName: host, KeyUsages: []x509.ExtKeyUsage{tt.wantEKU}}
				if _, err := leaf.Cert.Verify(opts); err != nil {
					t.Errorf("Verify(%s, %v) = %v, want nil", host, tt.wantEKU, err)
				}
			}
			wrongEKU := x509.ExtKeyUsageClientAuth
			if tt.o.Client {
				wrongEKU = x509.ExtKeyUsageServerAuth
			}
			if _, err := leaf.Cert.Verify(x509.VerifyOptions{Roots: ca.Pool(), KeyUsages: []x509.ExtKeyUsage{wrongEKU}}); err == nil {
				t.Errorf("Verify with usage %v = nil, want an error", wrongEKU)
			}
			if _, err := leaf.Cert.Verify(x509.VerifyOptions{Roots: other.Pool(), KeyUsages: []x509.ExtKeyUsage{tt.wantEKU}}); err == nil {
				t.Error("Verify against another CA = nil, want an error")
			}
			c := leaf.TLSCertificate(t)
			if c.Leaf == nil || !c.Leaf.Equal(leaf.Cert) {
				t.Errorf("TLSCertificate().Leaf = %v, want the leaf", c.Leaf)
			}
		})
	}
}

func TestFiles(t *testing.T) {
	leaf := NewCA(t, "CA").Issue(t, "leaf", LeafOptions{})
	certFile, keyFile := leaf.Files(t)
	if filepath.Dir(certFile) != filepath.Dir(keyFile) {
		t.Errorf("Files() = %s, %s; want one directory", certFile, keyFile)
	}
	for _, f := range []struct {
		path string
		data []byte
		mode os.FileMode
	}{{certFile, leaf.CertPEM, 0o644}, {keyFile, leaf.KeyPEM, 0o600}} {
		data, err := os.ReadFile(f.path)
		if err != nil || !bytes.Equal(data, f.data) {
			t.Errorf("ReadFile(%s) = %q, %v; want %q", f.path, data, err, f.data)
		}
		if fi, err := os.Stat(f.path); err != nil || fi.Mode().Perm() != f.mode {
			t.Errorf("Stat(%s) = %v, %v; want mode %v", f.path, fi.Mode(), err, f.mode)
		}
	}
	if _, err := tls.LoadX509KeyPair(certFile, keyFile); err != nil {
		t.Errorf("LoadX509KeyPair(Files()) = %v, want nil", err)
	}
}

func TestNewServer(t *testing.T) {
	ca := NewCA(t, "client CA")
	srv, caFile := NewServer(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "ok")
	}), func(c *tls.Config) {
		c.MaxVersion = tls.VersionTLS12
		c.ClientCAs = ca.Pool()
		c.ClientAuth = tls.RequireAndVerifyClientCert
	})
	data, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(data) {
		t.Fatalf("CA file %s holds no certificate", caFile)
	}
	get := func(certs ...tls.Certificate) (*http.Response, error) {
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, Certificates: certs}}
		defer tr.CloseIdleConnections()
		resp, err := (&http.Client{Transport: tr}).Get(srv.URL)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
		}
		return resp, err
	}
	resp, err := get(ca.Issue(t, "client", LeafOptions{Client: true}).TLSCertificate(t))
	if err != nil {
		t.Fatalf("GET with a client certificate = %v, want success", err)
	}
	if resp.TLS.Version != tls.VersionTLS12 {
		t.Errorf("version = %s, want TLS 1.2 as configure set", tls.VersionName(resp.TLS.Version))
	}
	if _, err := get(); err == nil {
		t.Error("GET without a client certificate succeeded; configure was not applied")
	}
}

func TestWritePEM(t *testing.T) {
	file := filepath.Join(t.TempDir(), "key.pem")
	WritePEM(t, file, "PRIVATE KEY", []byte("not a key"))
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	want := "-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n"
	if string(data) != want {
		t.Errorf("file = %q, want %q", data, want)
	}
	if fi, err := os.Stat(file); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("Stat(%s) = %v, %v; want mode 0600", file, fi.Mode(), err)
	}
}
