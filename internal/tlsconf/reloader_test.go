package tlsconf

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/idvault/idvault/internal/testenv/testlog"
	"github.com/idvault/idvault/internal/testenv/testtls"
)

// serveSerial completes a handshake against r and returns the serial number
// of the certificate the client saw.
func serveSerial(t *testing.T, ca *testtls.CA, r *Reloader) *big.Int {
	t.Helper()
	res := handshake(t, ServerConfig(r, nil), &tls.Config{RootCAs: ca.Pool(), ServerName: "localhost"})
	if !res.ok() {
		t.Fatalf("handshake: client error %v, server error %v; want success", res.clientErr, res.serverErr)
	}
	return res.peerSerial()
}

func TestNewReloaderErrors(t *testing.T) {
	ca := testtls.NewCA(t, "server CA")
	leaf, other := ca.Issue(t, "leaf", testtls.LeafOptions{}), ca.Issue(t, "other", testtls.LeafOptions{})
	certPEM, keyPEM, otherKeyPEM := leaf.CertPEM, leaf.KeyPEM, other.KeyPEM

	tests := []struct {
		name    string
		cert    []byte // nil: file missing
		key     []byte // nil: file missing
		wantErr error
	}{
		{name: "mismatched pair", cert: certPEM, key: otherKeyPEM, wantErr: ErrInvalidKeyPair},
		{name: "key file holds certificate", cert: certPEM, key: certPEM, wantErr: ErrInvalidKeyPair},
		{name: "cert file holds key", cert: keyPEM, key: keyPEM, wantErr: ErrInvalidKeyPair},
		{name: "empty key", cert: certPEM, key: []byte{}, wantErr: ErrInvalidKeyPair},
		{name: "empty cert", cert: []byte{}, key: keyPEM, wantErr: ErrInvalidKeyPair},
		{name: "half-written key", cert: certPEM, key: keyPEM[:len(keyPEM)/2], wantErr: ErrInvalidKeyPair},
		{name: "missing cert file", key: keyPEM, wantErr: fs.ErrNotExist},
		{name: "missing key file", cert: certPEM, wantErr: fs.ErrNotExist},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			certFile := filepath.Join(dir, "tls.crt")
			keyFile := filepath.Join(dir, "tls.key")
			if tt.cert != nil {
				if err := os.WriteFile(certFile, tt.cert, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if tt.key != nil {
				if err := os.WriteFile(keyFile, tt.key, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			var logs testlog.Buffer
			r, err := NewReloader(certFile, keyFile, logs.TextLogger())
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("NewReloader() error = %v, want %v", err, tt.wantErr)
			}
			if r != nil {
				t.Errorf("NewReloader() = %v, want nil on error", r)
			}
			assertNoKeyMaterial(t, logs.String(), keyPEM, otherKeyPEM)
			assertNoKeyMaterial(t, err.Error(), keyPEM, otherKeyPEM)
		})
	}
}

func TestReloadSwapsCertificate(t *testing.T) {
	ca := testtls.NewCA(t, "server CA")
	var logs testlog.Buffer
	r, dir, serialA := newTestReloader(t, ca, testtls.LeafOptions{}, &logs)
	if got := serveSerial(t, ca, r); got.Cmp(serialA) != 0 {
		t.Fatalf("serial before reload = %x, want %x", got, serialA)
	}

	leafB := ca.Issue(t, "leaf", testtls.LeafOptions{RSA: true})
	keyPEM, serialB := leafB.KeyPEM, leafB.Cert.SerialNumber
	testtls.WritePair(t, dir, leafB.CertPEM, keyPEM)
	if err := r.Reload(); err != nil {
		t.Fatalf("Reload() error = %v, want nil", err)
	}
	if got := serveSerial(t, ca, r); got.Cmp(serialB) != 0 {
		t.Fatalf("serial after reload = %x, want %x", got, serialB)
	}
	if !strings.Contains(logs.String(), "serial="+serialB.Text(16)) {
		t.Errorf("log does not name the new serial %x:\n%s", serialB, logs.String())
	}
	assertNoKeyMaterial(t, logs.String(), keyPEM)
}

func TestReloadKeepsCertificateOnBadPair(t *testing.T) {
	ca := testtls.NewCA(t, "server CA")
	leaf, other := ca.Issue(t, "leaf", testtls.LeafOptions{}), ca.Issue(t, "other", testtls.LeafOptions{})
	newCertPEM, newKeyPEM, otherKeyPEM := leaf.CertPEM, leaf.KeyPEM, other.KeyPEM

	tests := []struct {
		name    string
		cert    []byte
		key     []byte
		wantErr error
	}{
		{name: "broken key", cert: newCertPEM, key: []byte("-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n"), wantErr: ErrInvalidKeyPair},
		{name: "half-written key", cert: newCertPEM, key: newKeyPEM[:len(newKeyPEM)/2], wantErr: ErrInvalidKeyPair},
		{name: "new cert with old key", cert: newCertPEM, key: nil, wantErr: ErrInvalidKeyPair},
		{name: "mismatched new pair", cert: newCertPEM, key: otherKeyPEM, wantErr: ErrInvalidKeyPair},
		{name: "half-written cert", cert: newCertPEM[:len(newCertPEM)/2], key: newKeyPEM, wantErr: ErrInvalidKeyPair},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs testlog.Buffer
			r, dir, serialA := newTestReloader(t, ca, testtls.LeafOptions{}, &logs)
			oldKeyPEM, err := os.ReadFile(filepath.Join(dir, "tls.key"))
			if err != nil {
				t.Fatal(err)
			}
			key := tt.key
			if key == nil {
				key = oldKeyPEM
			}
			testtls.WritePair(t, dir, tt.cert, key)

			err = r.Reload()
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Reload() error = %v, want %v", err, tt.wantErr)
			}
			if got := serveSerial(t, ca, r); got.Cmp(serialA) != 0 {
				t.Errorf("serial after failed reload = %x, want old %x", got, serialA)
			}
			out := logs.String()
			if !strings.Contains(out, "level=WARN") || !strings.Contains(out, "keeping current certificate") {
				t.Errorf("log has no warning about keeping the certificate:\n%s", out)
			}
			assertNoKeyMaterial(t, out, oldKeyPEM, newKeyPEM, otherKeyPEM)
		})
	}
}

func TestPoll(t *testing.T) {
	defer goleak.VerifyNone(t)
	ca := testtls.NewCA(t, "server CA")
	var logs testlog.Buffer
	r, dir, serialA := newTestReloader(t, ca, testtls.LeafOptions{}, &logs)

	ctx, cancel := context.WithCancel(context.Background())
	ticks := make(chan time.Time)
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.run(ctx, ticks)
	}()
	// pollOnce returns after one complete poll: run takes the second tick
	// only after it has finished the poll started by the first.
	pollOnce := func() {
		ticks <- time.Time{}
		ticks <- time.Time{}
	}
	defer func() {
		cancel()
		<-done
	}()

	pollOnce()
	if got, want := strings.Count(logs.String(), "tls certificate loaded"), 1; got != want {
		t.Errorf("after a poll of unchanged files: %d load messages, want %d", got, want)
	}
	if got := serveSerial(t, ca, r); got.Cmp(serialA) != 0 {
		t.Errorf("serial after poll of unchanged files = %x, want %x", got, serialA)
	}

	leafB := ca.Issue(t, "leaf", testtls.LeafOptions{})
	certPEM, keyPEM, serialB := leafB.CertPEM, leafB.KeyPEM, leafB.Cert.SerialNumber
	testtls.WritePair(t, dir, certPEM, []byte("-----BEGIN PRIVATE KEY-----\n"))
	pollOnce()
	pollOnce()
	if got := serveSerial(t, ca, r); got.Cmp(serialA) != 0 {
		t.Errorf("serial after poll of broken key = %x, want old %x", got, serialA)
	}
	if got, want := strings.Count(logs.String(), "tls certificate pair rejected"), 1; got != want {
		t.Errorf("after polls of one broken pair: %d warnings, want %d:\n%s", got, want, logs.String())
	}

	if err := os.Remove(filepath.Join(dir, "tls.key")); err != nil {
		t.Fatal(err)
	}
	pollOnce()
	pollOnce()
	if got, want := strings.Count(logs.String(), "tls certificate poll failed"), 1; got != want {
		t.Errorf("after polls of a missing key: %d warnings, want %d:\n%s", got, want, logs.String())
	}

	testtls.WritePair(t, dir, certPEM, keyPEM)
	pollOnce()
	if got := serveSerial(t, ca, r); got.Cmp(serialB) != 0 {
		t.Errorf("serial after poll of repaired pair = %x, want %x", got, serialB)
	}
	assertNoKeyMaterial(t, logs.String(), keyPEM)
}

func TestRunStopsOnCancel(t *testing.T) {
	defer goleak.VerifyNone(t)
	ca := testtls.NewCA(t, "server CA")
	r, _, _ := newTestReloader(t, ca, testtls.LeafOptions{}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.Run(ctx, time.Hour)
	}()
	cancel()
	<-done
}

func TestReloaderKeyFileMode(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("file modes are not checked on Windows")
	}
	ca := testtls.NewCA(t, "server CA")
	tests := []struct {
		name     string
		mode     os.FileMode
		wantWarn bool
	}{
		{name: "owner only", mode: 0o600},
		{name: "owner read only", mode: 0o400},
		{name: "group readable", mode: 0o640, wantWarn: true},
		{name: "world readable", mode: 0o644, wantWarn: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			leaf := ca.Issue(t, "leaf", testtls.LeafOptions{})
			certFile, keyFile := testtls.WritePair(t, dir, leaf.CertPEM, leaf.KeyPEM)
			if err := os.Chmod(keyFile, tt.mode); err != nil {
				t.Fatal(err)
			}
			var logs testlog.Buffer
			if _, err := NewReloader(certFile, keyFile, logs.TextLogger()); err != nil {
				t.Fatalf("NewReloader() error = %v, want nil", err)
			}
			if got := strings.Contains(logs.String(), "accessible to group or others"); got != tt.wantWarn {
				t.Errorf("mode %04o: warned = %v, want %v:\n%s", tt.mode, got, tt.wantWarn, logs.String())
			}
		})
	}
}

func TestReloaderConcurrentUse(t *testing.T) {
	ca := testtls.NewCA(t, "server CA")
	r, dir, _ := newTestReloader(t, ca, testtls.LeafOptions{}, nil)
	leaf := ca.Issue(t, "leaf", testtls.LeafOptions{})
	testtls.WritePair(t, dir, leaf.CertPEM, leaf.KeyPEM)

	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 50 {
				if c, err := r.GetCertificate(nil); c == nil || err != nil {
					t.Errorf("GetCertificate() = %v, %v, want a certificate", c, err)
					return
				}
			}
		})
	}
	wg.Go(func() {
		for range 5 {
			if err := r.Reload(); err != nil {
				t.Errorf("Reload() error = %v, want nil", err)
			}
			r.poll()
		}
	})
	wg.Wait()
}

// assertNoKeyMaterial fails if s holds any base64 line of the PEM keys, or a
// PEM header.
func assertNoKeyMaterial(t *testing.T, s string, keys ...[]byte) {
	t.Helper()
	if strings.Contains(s, "-----BEGIN") {
		t.Errorf("output contains a PEM header:\n%s", s)
	}
	for _, k := range keys {
		for line := range bytes.Lines(k) {
			line = bytes.TrimSpace(line)
			if len(line) < 16 || bytes.HasPrefix(line, []byte("-----")) {
				continue
			}
			if strings.Contains(s, string(line)) {
				t.Errorf("output contains key material %q", line)
			}
		}
	}
}

func BenchmarkGetCertificate(b *testing.B) {
	ca := testtls.NewCA(b, "server CA")
	r, _, _ := newTestReloader(b, ca, testtls.LeafOptions{}, nil)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if c, _ := r.GetCertificate(nil); c == nil {
				b.Fatal("GetCertificate() = nil")
			}
		}
	})
}

// BenchmarkPoll measures one poll of unchanged files, the steady-state cost
// of Run per interval.
func BenchmarkPoll(b *testing.B) {
	ca := testtls.NewCA(b, "server CA")
	r, dir, _ := newTestReloader(b, ca, testtls.LeafOptions{}, nil)
	var n int64
	for _, name := range []string{"tls.crt", "tls.key"} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			b.Fatal(err)
		}
		n += fi.Size()
	}
	b.SetBytes(n)
	b.ReportAllocs()
	for b.Loop() {
		r.poll()
	}
}
