package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"image/png"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// reviewTimeout bounds the wait for the workflow to move a session whose
// message was published at upload.
const reviewTimeout = 30 * time.Second

func TestQuickStart(t *testing.T) {
	dir := t.TempDir()
	s := startServer(t, dir)
	if s.apiKey == "" {
		t.Fatalf("first start printed no API key; stdout:\n%s", s.stdout.text())
	}
	ctx := t.Context()
	r := newRand(t)
	marker := fmt.Sprintf("E2E-PII-%016x", r.Uint64())

	created, err := s.createSession(ctx, `{"metadata":{"customerRef":"`+marker+`"},"ttl":3600}`)
	if err != nil {
		t.Fatal(err)
	}
	if created.Status != "pending" || created.WorkflowID != "document-selfie-review" {
		t.Errorf("created session = status %q, workflow %q, want pending, document-selfie-review", created.Status, created.WorkflowID)
	}
	if got := created.ExpiresAt.Sub(created.CreatedAt); got != time.Hour {
		t.Errorf("created session lifetime = %s, want 1h", got)
	}
	var meta struct{ CustomerRef string }
	if err := json.Unmarshal(created.Metadata, &meta); err != nil || meta.CustomerRef != marker {
		t.Errorf("created session metadata = %s, want customerRef %s", created.Metadata, marker)
	}

	doc := encodeJPEG(t, noise(r, 160, 120))
	selfie := encodePNG(t, noise(r, 96, 128), png.DefaultCompression)
	uploads := []struct {
		kind, contentType string
		data              []byte
		w, h              int
	}{
		{"document_front", "image/jpeg", doc, 160, 120},
		{"selfie", "image/png", selfie, 96, 128},
	}
	var fileIDs []string
	for _, u := range uploads {
		f, err := s.upload(ctx, created.ID, u.kind, u.contentType, u.data)
		if err != nil {
			t.Fatal(err)
		}
		want := fileView{ID: f.ID, Kind: u.kind, Size: int64(len(u.data)), SHA256: sha256Hex(u.data), ContentType: u.contentType,
			Width: u.w, Height: u.h, CreatedAt: f.CreatedAt}
		if f != want || f.ID == "" {
			t.Errorf("upload %s = %+v, want %+v", u.kind, f, want)
		}
		fileIDs = append(fileIDs, f.ID)
	}
	for i, u := range uploads {
		got, h, err := s.download(ctx, created.ID, fileIDs[i])
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, u.data) {
			t.Errorf("download %s = %d bytes (sha256 %s), want the %d uploaded bytes (sha256 %s)",
				u.kind, len(got), sha256Hex(got), len(u.data), sha256Hex(u.data))
		}
		if ct := h.Get("Content-Type"); ct != u.contentType {
			t.Errorf("download %s Content-Type = %q, want %q", u.kind, ct, u.contentType)
		}
	}
	reviewed, err := s.waitStatus(ctx, created.ID, "review", reviewTimeout)
	if err != nil {
		t.Fatal(err)
	}
	if len(reviewed.Files) != 2 {
		t.Errorf("session in review holds %d files, want 2", len(reviewed.Files))
	}

	var pending []string
	for range 5 {
		v, err := s.createSession(ctx, `{}`)
		if err != nil {
			t.Fatal(err)
		}
		pending = append(pending, v.ID)
	}
	t.Run("list pending in pages of 2", func(t *testing.T) {
		q := url.Values{"status": {"pending"}, "limit": {"2"}}
		var seen []string
		var sizes []int
		for {
			p, err := s.listPage(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			sizes = append(sizes, len(p.Items))
			for _, it := range p.Items {
				if it.Status != "pending" {
					t.Errorf("status=pending listed session %s in status %s", it.ID, it.Status)
				}
				seen = append(seen, it.ID)
			}
			if p.NextCursor == "" {
				break
			}
			q.Set("cursor", p.NextCursor)
		}
		if !slices.Equal(sizes, []int{2, 2, 1}) {
			t.Errorf("page sizes = %v, want [2 2 1]", sizes)
		}
		want := slices.Clone(pending)
		slices.Reverse(want) // newest first
		if !slices.Equal(seen, want) {
			t.Errorf("listed pending sessions = %v, want %v", seen, want)
		}
	})
	t.Run("list review", func(t *testing.T) {
		got, err := s.listAll(ctx, url.Values{"status": {"review"}})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || got[0].ID != created.ID {
			t.Errorf("status=review lists %d sessions, want only %s", len(got), created.ID)
		}
	})
	t.Run("cancel", func(t *testing.T) {
		v, err := s.cancelSession(ctx, pending[0])
		if err != nil {
			t.Fatal(err)
		}
		if v.Status != "cancelled" {
			t.Errorf("cancel = status %s, want cancelled", v.Status)
		}
		got, err := s.listAll(ctx, url.Values{"status": {"cancelled"}})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || got[0].ID != pending[0] {
			t.Errorf("status=cancelled lists %d sessions, want only %s", len(got), pending[0])
		}
		_, err = s.upload(ctx, pending[0], "selfie", "image/png", selfie)
		if se, ok := errors.AsType[*statusError](err); !ok || se.status != http.StatusConflict {
			t.Errorf("upload to a cancelled session: %v, want status 409", err)
		}
	})

	needles := map[string][]byte{
		"metadata marker":                     []byte(marker),
		"document JPEG bytes":                 doc[len(doc)/2 : len(doc)/2+32],
		"selfie PNG bytes":                    selfie[len(selfie)/2 : len(selfie)/2+32],
		"document JPEG bytes (first quarter)": doc[len(doc)/4 : len(doc)/4+32],
	}
	t.Run("data dir while running", func(t *testing.T) { scanDataDir(t, dir, needles) })
	s.stop()
	t.Run("data dir after stop", func(t *testing.T) { scanDataDir(t, dir, needles) })
	for name, out := range map[string]string{"stdout": s.stdout.text(), "stderr": s.stderr.text()} {
		if strings.Contains(out, marker) {
			t.Errorf("process %s holds the metadata marker", name)
		}
	}
}

// scanDataDir fails t for every file under dir, except the dev root key and
// the TLS directory, that holds one of needles.
func scanDataDir(t *testing.T, dir string, needles map[string][]byte) {
	t.Helper()
	scanned := 0
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		if d.IsDir() {
			if rel == "tls" {
				return filepath.SkipDir
			}
			return nil
		}
		if rel == filepath.Join("keys", "root.key") {
			return nil
		}
		data, err := os.ReadFile(path)
		if errors.Is(err, fs.ErrNotExist) {
			return nil // a WAL or temporary file removed meanwhile
		}
		if err != nil {
			return err
		}
		scanned++
		for name, n := range needles {
			if i := bytes.Index(data, n); i >= 0 {
				t.Errorf("%s holds the %s in clear at offset %d", rel, name, i)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if scanned < 2 {
		t.Errorf("scanned %d files under the data directory, want the database and the stored files", scanned)
	}
}

func TestInit(t *testing.T) {
	dir := t.TempDir()
	args := []string{"init", "--json", "--data-dir", dir, "--listen", "127.0.0.1:0"}
	stdout, stderr, code := runCLI(t, nil, args...)
	if code != 0 {
		t.Fatalf("idvault init --json exit code = %d, want 0; stderr:\n%s", code, stderr)
	}
	dec := json.NewDecoder(strings.NewReader(stdout))
	var obj map[string]any
	if err := dec.Decode(&obj); err != nil {
		t.Fatalf("init --json stdout %q: %v", stdout, err)
	}
	if rest, _ := io.ReadAll(dec.Buffered()); strings.TrimSpace(string(rest)) != "" || dec.More() {
		t.Errorf("init --json stdout = %q, want exactly one JSON object", stdout)
	}
	keys := make([]string, 0, len(obj))
	for k, v := range obj {
		keys = append(keys, k)
		if s, ok := v.(string); !ok || s == "" {
			t.Errorf("init --json %s = %v, want a non-empty string", k, v)
		}
	}
	slices.Sort(keys)
	if want := []string{"adminPassword", "adminUser", "apiKey", "tenantId", "url"}; !slices.Equal(keys, want) {
		t.Errorf("init --json keys = %v, want %v", keys, want)
	}
	if !strings.Contains(stderr, "root key") {
		t.Errorf("init --json stderr = %q, want the root key warning", stderr)
	}

	_, stderr2, code := runCLI(t, nil, args...)
	if code == 0 {
		t.Errorf("second idvault init exit code = 0, want non-zero")
	}
	if !strings.Contains(stderr2, "already initialised") {
		t.Errorf("second idvault init stderr = %q, want it to say the directory is already initialised", stderr2)
	}

	s := startServer(t, dir)
	if out := s.stdout.text(); strings.Contains(out, "initialised") || strings.Contains(out, "root key") {
		t.Errorf("serve after init printed credentials or a key warning:\n%s", out)
	}
	s.apiKey = obj["apiKey"].(string)
	if _, err := s.listPage(t.Context(), url.Values{}); err != nil {
		t.Errorf("list sessions with the key from init: %v", err)
	}
	s.stop()
}

func TestGracefulShutdown(t *testing.T) {
	dir := t.TempDir()
	s := startServer(t, dir)
	ctx := t.Context()
	sess, err := s.createSession(ctx, `{}`)
	if err != nil {
		t.Fatal(err)
	}
	// About 8 MB: stored deflate blocks of random pixels.
	big := encodePNG(t, noise(newRand(t), 1680, 1680), png.NoCompression)
	t.Logf("upload of %d bytes", len(big))

	pr, pw := io.Pipe()
	req, err := http.NewRequestWithContext(ctx, "POST", s.base+"/api/v1/sessions/"+sess.ID+"/files?kind=document_front", pr)
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = int64(len(big))
	req.Header.Set("Content-Type", "image/png")
	req.Header.Set("Authorization", "ApiKey "+s.apiKey)
	type result struct {
		status int
		body   []byte
		err    error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := s.client.Do(req)
		if err != nil {
			done <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		done <- result{status: resp.StatusCode, body: b, err: err}
	}()

	const chunk = 128 << 10
	send := func(part []byte) {
		for len(part) > 0 {
			n := min(chunk, len(part))
			if _, err := pw.Write(part[:n]); err != nil {
				t.Fatalf("write upload body: %v", err)
			}
			part = part[n:]
			time.Sleep(5 * time.Millisecond) // a slow client
		}
	}
	send(big[:len(big)/4])
	s.signal(syscall.SIGTERM)
	// The listener closes at once; the upload is still a quarter done.
	if err := waitRefused(s.addr, exitTimeout); err != nil {
		t.Fatal(err)
	}
	send(big[len(big)/4:])
	if err := pw.Close(); err != nil {
		t.Fatal(err)
	}
	res := <-done
	if res.err != nil || res.status != http.StatusCreated {
		t.Fatalf("upload during shutdown = %d %s (%v), want 201", res.status, res.body, res.err)
	}
	var f fileView
	if err := json.Unmarshal(res.body, &f); err != nil {
		t.Fatal(err)
	}
	if f.SHA256 != sha256Hex(big) {
		t.Errorf("upload during shutdown sha256 = %s, want %s", f.SHA256, sha256Hex(big))
	}
	if code := s.wait(); code != 0 {
		t.Fatalf("exit code after SIGTERM = %d, want 0", code)
	}

	s2 := startServer(t, dir)
	s2.apiKey = s.apiKey
	got, _, err := s2.download(ctx, sess.ID, f.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, big) {
		t.Errorf("download after restart = %d bytes (sha256 %s), want the %d uploaded bytes", len(got), sha256Hex(got), len(big))
	}
	s2.stop()
}

// waitRefused polls addr until a TCP connection to it is refused.
func waitRefused(addr string, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return nil
		}
		_ = c.Close()
		if time.Now().After(deadline) {
			return fmt.Errorf("%s still accepts connections %s after SIGTERM", addr, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestTLS(t *testing.T) {
	s := startServer(t, t.TempDir())
	pool, _ := loadCert(t, filepath.Join(s.dataDir, "tls", "cert.pem"))
	cbc := []uint16{
		tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA,
		tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA,
		tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256, tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256,
		tls.TLS_RSA_WITH_AES_128_CBC_SHA, tls.TLS_RSA_WITH_AES_256_CBC_SHA,
	}
	tests := []struct {
		name        string
		config      *tls.Config
		wantVersion uint16 // 0: the handshake must fail
	}{
		{"TLS 1.0", &tls.Config{MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS10}, 0},
		{"TLS 1.1", &tls.Config{MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11}, 0},
		{"TLS 1.2 CBC suites only", &tls.Config{MinVersion: tls.VersionTLS12, MaxVersion: tls.VersionTLS12, CipherSuites: cbc}, 0},
		{"TLS 1.2 default suites", &tls.Config{MinVersion: tls.VersionTLS12, MaxVersion: tls.VersionTLS12}, tls.VersionTLS12},
		{"TLS 1.3", &tls.Config{MinVersion: tls.VersionTLS13}, tls.VersionTLS13},
		{"client default prefers TLS 1.3", &tls.Config{}, tls.VersionTLS13},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.config.Clone()
			cfg.RootCAs = pool
			cfg.ServerName = "127.0.0.1"
			d := tls.Dialer{NetDialer: &net.Dialer{Timeout: 5 * time.Second}, Config: cfg}
			ctx, cancel := context.WithTimeout(t.Context(), requestTimeout)
			defer cancel()
			c, err := d.DialContext(ctx, "tcp", s.addr)
			if tc.wantVersion == 0 {
				if err == nil {
					v := c.(*tls.Conn).ConnectionState()
					_ = c.Close()
					t.Fatalf("handshake succeeded with version %s, suite %s; want it refused",
						tls.VersionName(v.Version), tls.CipherSuiteName(v.CipherSuite))
				}
				return
			}
			if err != nil {
				t.Fatalf("handshake: %v", err)
			}
			defer c.Close()
			if got := c.(*tls.Conn).ConnectionState().Version; got != tc.wantVersion {
				t.Errorf("negotiated %s, want %s", tls.VersionName(got), tls.VersionName(tc.wantVersion))
			}
		})
	}
	t.Run("plain HTTP", func(t *testing.T) {
		tr := &http.Transport{}
		defer tr.CloseIdleConnections()
		ctx, cancel := context.WithTimeout(t.Context(), requestTimeout)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, "GET", "http://"+s.addr+"/healthz", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := (&http.Client{Transport: tr}).Do(req)
		if err != nil {
			return
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Errorf("plain HTTP GET /healthz = 200, want no success")
		}
	})
	t.Run("HSTS", func(t *testing.T) {
		_, h, err := s.call(t.Context(), "GET", "/healthz", "", nil, http.StatusOK)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(h.Get("Strict-Transport-Security"), "max-age=") {
			t.Errorf("Strict-Transport-Security = %q, want max-age=…", h.Get("Strict-Transport-Security"))
		}
	})
	s.stop()
}

func TestConfigCheck(t *testing.T) {
	const literal = "literal-secret-value"
	hexKey := strings.Repeat("5a", 32)
	unknownKey := filepath.Join(t.TempDir(), "idvault.yaml")
	if err := os.WriteFile(unknownKey, []byte("api:\n  listen: 127.0.0.1:8443\n  lisen: 127.0.0.1:9443\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		env      []string
		args     []string
		wantCode int
		wantErr  []string // substrings of stderr
		secret   string   // must appear nowhere in the output
	}{
		{
			name:     "production with literal root key",
			env:      []string{"IDVAULT_MODE=production", "IDVAULT_CRYPTO__ROOTKEY=" + literal},
			wantCode: 1,
			wantErr:  []string{"crypto.rootKey", "api.tls.certFile", "api.tls.keyFile"},
			secret:   literal,
		},
		{
			name:   "dev with literal root key",
			env:    []string{"IDVAULT_CRYPTO__ROOTKEY=" + hexKey},
			secret: hexKey,
		},
		{
			name:     "unknown key in file",
			args:     []string{"--config", unknownKey},
			wantCode: 1,
			wantErr:  []string{"api.lisen"},
		},
		{
			name:     "unknown environment key",
			env:      []string{"IDVAULT_API__LISTN=127.0.0.1:1"},
			wantCode: 1,
			wantErr:  []string{"IDVAULT_API__LISTN"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"config", "check", "--data-dir", t.TempDir()}, tc.args...)
			stdout, stderr, code := runCLI(t, tc.env, args...)
			if code != tc.wantCode {
				t.Fatalf("config check exit code = %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tc.wantCode, stdout, stderr)
			}
			for _, w := range tc.wantErr {
				if !strings.Contains(stderr, w) {
					t.Errorf("config check stderr = %q, want it to name %s", stderr, w)
				}
			}
			if tc.secret != "" && strings.Contains(stdout+stderr, tc.secret) {
				t.Errorf("config check output holds the literal secret")
			}
			if tc.wantCode != 0 {
				return
			}
			var cfg struct {
				Mode   string `yaml:"mode"`
				Crypto struct {
					RootKey string `yaml:"rootKey"`
				} `yaml:"crypto"`
			}
			if err := yaml.Unmarshal([]byte(stdout), &cfg); err != nil {
				t.Fatalf("config check stdout is not YAML: %v\n%s", err, stdout)
			}
			if cfg.Mode != "dev" || cfg.Crypto.RootKey != "REDACTED" {
				t.Errorf("config check = mode %q, crypto.rootKey %q; want dev, REDACTED", cfg.Mode, cfg.Crypto.RootKey)
			}
		})
	}
}

func TestHelp(t *testing.T) {
	for _, args := range [][]string{
		{"--help"},
		{"serve", "--help"},
		{"init", "--help"},
		{"config", "check", "--help"},
		{"version", "--help"},
		{"version"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			stdout, stderr, code := runCLI(t, nil, args...)
			if code != 0 {
				t.Fatalf("exit code = %d, want 0; stderr:\n%s", code, stderr)
			}
			if !strings.Contains(stdout, "Usage") && !strings.HasPrefix(stdout, "idvault ") {
				t.Errorf("stdout = %q, want usage or the version", stdout)
			}
		})
	}
}
