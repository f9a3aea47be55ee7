package tlsconf

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/idvault/idvault/internal/testenv/testtls"
)

var testNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func TestEnsureSelfSignedIdempotent(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tls")
	hosts := []string{"api.idvault.test", "10.1.2.3"}

	certFile, keyFile, created, err := EnsureSelfSigned(dir, hosts, testNow)
	if err != nil || !created {
		t.Fatalf("EnsureSelfSigned() first call = created %v, error %v; want true, nil", created, err)
	}
	fp1, err := Fingerprint(certFile)
	if err != nil {
		t.Fatalf("Fingerprint() error = %v", err)
	}

	certFile2, keyFile2, created, err := EnsureSelfSigned(dir, hosts, testNow.Add(24*time.Hour))
	if err != nil || created {
		t.Fatalf("EnsureSelfSigned() second call = created %v, error %v; want false, nil", created, err)
	}
	if certFile2 != certFile || keyFile2 != keyFile {
		t.Errorf("EnsureSelfSigned() second call = %s, %s, want %s, %s", certFile2, keyFile2, certFile, keyFile)
	}
	fp2, err := Fingerprint(certFile2)
	if err != nil {
		t.Fatalf("Fingerprint() error = %v", err)
	}
	if fp2 != fp1 {
		t.Errorf("Fingerprint() after second call = %s, want %s", fp2, fp1)
	}

	// A subset of the hosts is covered too.
	if _, _, created, err := EnsureSelfSigned(dir, nil, testNow); err != nil || created {
		t.Errorf("EnsureSelfSigned(no hosts) = created %v, error %v; want false, nil", created, err)
	}

	if runtime.GOOS != "windows" {
		for _, f := range []struct {
			name string
			want os.FileMode
		}{{keyFile, 0o600}, {certFile, 0o644}, {dir, 0o700}} {
			fi, err := os.Stat(f.name)
			if err != nil {
				t.Fatal(err)
			}
			if got := fi.Mode().Perm(); got != f.want {
				t.Errorf("mode of %s = %04o, want %04o", filepath.Base(f.name), got, f.want)
			}
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if want := []string{"cert.pem", "key.pem"}; !slices.Equal(names, want) {
		t.Errorf("files in dir = %q, want %q (no temporary files left)", names, want)
	}
}

func TestEnsureSelfSignedCertificate(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, _, err := EnsureSelfSigned(dir, []string{"API.idvault.test.", "10.1.2.3", "localhost", " "}, testNow)
	if err != nil {
		t.Fatalf("EnsureSelfSigned() error = %v", err)
	}
	r, err := NewReloader(certFile, keyFile, nil)
	if err != nil {
		t.Fatalf("NewReloader() error = %v", err)
	}
	c, _ := r.GetCertificate(nil)
	leaf := c.Leaf

	if got, want := leaf.DNSNames, []string{"localhost", "api.idvault.test"}; !slices.Equal(got, want) {
		t.Errorf("DNSNames = %q, want %q", got, want)
	}
	var ips []string
	for _, ip := range leaf.IPAddresses {
		ips = append(ips, ip.String())
	}
	if want := []string{"127.0.0.1", "::1", "10.1.2.3"}; !slices.Equal(ips, want) {
		t.Errorf("IPAddresses = %q, want %q", ips, want)
	}
	if got, want := leaf.NotAfter, testNow.Add(365*24*time.Hour); !got.Equal(want) {
		t.Errorf("NotAfter = %v, want %v", got, want)
	}
	if !leaf.NotBefore.Before(testNow) {
		t.Errorf("NotBefore = %v, want before %v", leaf.NotBefore, testNow)
	}
	if leaf.PublicKeyAlgorithm != x509.ECDSA || leaf.IsCA {
		t.Errorf("key algorithm %v, IsCA %v; want ECDSA leaf", leaf.PublicKeyAlgorithm, leaf.IsCA)
	}
	if !slices.Equal(leaf.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}) {
		t.Errorf("ExtKeyUsage = %v, want serverAuth", leaf.ExtKeyUsage)
	}

	// A client that pins the certificate connects by name and by address.
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	for _, name := range []string{"localhost", "127.0.0.1"} {
		t.Run(name, func(t *testing.T) {
			cfg := ServerConfig(r, nil)
			// The certificate's validity starts at testNow, not the wall clock.
			client := &tls.Config{RootCAs: pool, ServerName: name, Time: func() time.Time { return testNow }}
			if res := handshake(t, cfg, client); !res.ok() {
				t.Fatalf("handshake: client error %v, server error %v; want success", res.clientErr, res.serverErr)
			}
		})
	}
}

func TestEnsureSelfSignedRegenerates(t *testing.T) {
	tests := []struct {
		name   string
		hosts  []string
		now    time.Time
		damage func(t *testing.T, certFile, keyFile string)
	}{
		{name: "expired", now: testNow.Add(366 * 24 * time.Hour)},
		{name: "not yet valid", now: testNow.Add(-2 * time.Hour)},
		{name: "new host", hosts: []string{"new.idvault.test"}, now: testNow},
		{name: "new address", hosts: []string{"192.0.2.7"}, now: testNow},
		{name: "broken key", now: testNow, damage: func(t *testing.T, _, keyFile string) {
			writeTestFile(t, keyFile, []byte("garbage"))
		}},
		{name: "missing cert", now: testNow, damage: func(t *testing.T, certFile, _ string) {
			if err := os.Remove(certFile); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "mismatched key", now: testNow, damage: func(t *testing.T, _, keyFile string) {
			otherKey := testtls.NewCA(t, "other").Issue(t, "leaf", testtls.LeafOptions{}).KeyPEM
			writeTestFile(t, keyFile, otherKey)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			certFile, keyFile, _, err := EnsureSelfSigned(dir, nil, testNow)
			if err != nil {
				t.Fatal(err)
			}
			before, err := os.ReadFile(certFile)
			if err != nil {
				t.Fatal(err)
			}
			if tt.damage != nil {
				tt.damage(t, certFile, keyFile)
			}
			_, _, created, err := EnsureSelfSigned(dir, tt.hosts, tt.now)
			if err != nil || !created {
				t.Fatalf("EnsureSelfSigned() = created %v, error %v; want true, nil", created, err)
			}
			after, err := os.ReadFile(certFile)
			if err != nil {
				t.Fatal(err)
			}
			if string(after) == string(before) {
				t.Error("certificate file unchanged, want a new certificate")
			}
			if _, err := NewReloader(certFile, keyFile, nil); err != nil {
				t.Errorf("NewReloader() on regenerated pair error = %v, want nil", err)
			}
		})
	}
}

func TestEnsureSelfSignedInvalidHost(t *testing.T) {
	for _, host := range []string{"bad host", "host:8443", "-lead.example", "a..b", "under_score.example", "ünï.example", strings.Repeat("a", 64) + ".example"} {
		t.Run(host, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "tls")
			_, _, _, err := EnsureSelfSigned(dir, []string{host}, testNow)
			if !errors.Is(err, ErrInvalidHost) {
				t.Fatalf("EnsureSelfSigned(%q) error = %v, want %v", host, err, ErrInvalidHost)
			}
			if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("directory created for invalid host: stat error = %v", err)
			}
		})
	}
}

func TestFingerprint(t *testing.T) {
	ca := testtls.NewCA(t, "fp")
	block, _ := pem.Decode(ca.PEM)
	sum := sha256.Sum256(block.Bytes)
	want := strings.ToUpper(hex.EncodeToString(sum[:]))
	keyPEM := ca.Issue(t, "leaf", testtls.LeafOptions{}).KeyPEM

	tests := []struct {
		name    string
		data    []byte
		want    string
		wantErr error
	}{
		{name: "certificate", data: ca.PEM, want: want},
		{name: "key then certificate", data: append(append([]byte(nil), keyPEM...), ca.PEM...), want: want},
		{name: "key only", data: keyPEM, wantErr: ErrNoCertificate},
		{name: "empty", data: nil, wantErr: ErrNoCertificate},
		{name: "bad certificate", data: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{1, 2}}), wantErr: ErrNoCertificate},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "c.pem")
			writeTestFile(t, file, tt.data)
			got, err := Fingerprint(file)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Fingerprint() error = %v, want %v", err, tt.wantErr)
			}
			if tt.wantErr != nil {
				return
			}
			if !regexp.MustCompile(`^([0-9A-F]{2}:){31}[0-9A-F]{2}$`).MatchString(got) {
				t.Errorf("Fingerprint() = %q, want 32 colon-separated upper-case hex bytes", got)
			}
			if plain := strings.ReplaceAll(got, ":", ""); plain != tt.want {
				t.Errorf("Fingerprint() = %s, want %s", plain, tt.want)
			}
		})
	}
	t.Run("missing file", func(t *testing.T) {
		if _, err := Fingerprint(filepath.Join(t.TempDir(), "none.pem")); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("Fingerprint() error = %v, want %v", err, fs.ErrNotExist)
		}
	})
}

func TestSplitHosts(t *testing.T) {
	dns, ips, err := splitHosts([]string{"localhost", "LOCALHOST", "127.0.0.1", "::1", "0:0:0:0:0:0:0:1", "x.test.", "", "10.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"localhost", "x.test"}; !slices.Equal(dns, want) {
		t.Errorf("splitHosts() names = %q, want %q", dns, want)
	}
	if want := []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1"), net.ParseIP("10.0.0.1")}; !slices.EqualFunc(ips, want, net.IP.Equal) {
		t.Errorf("splitHosts() addresses = %v, want %v", ips, want)
	}
}

func writeTestFile(t *testing.T, name string, data []byte) {
	t.Helper()
	if err := os.WriteFile(name, data, 0o600); err != nil {
		t.Fatal(err)
	}
}
