package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"io"
	"maps"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// requestTimeout bounds every API request a test makes, unless the test
// says otherwise.
const requestTimeout = 10 * time.Second

// startTimeout bounds how long a server may take to print its serving line.
const startTimeout = 60 * time.Second

// exitTimeout bounds how long a signalled server may take to exit.
const exitTimeout = 60 * time.Second

var (
	buildOnce sync.Once
	binDir    string
	binPath   string
	binErr    error
	binSkip   string
)

func TestMain(m *testing.M) {
	code := m.Run()
	for _, dir := range []string{binDir, benchDirs.root} {
		if dir == "" {
			continue
		}
		if err := os.RemoveAll(dir); err != nil {
			fmt.Fprintf(os.Stderr, "e2e: remove %s: %v\n", dir, err)
		}
	}
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "e2e: leaked goroutines: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

// binary returns the path of the idvault binary, building it on first use.
// Without a go command it skips the test, or fails it when
// IDVAULT_TEST_REQUIRE_INTEGRATION=1.
func binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(build)
	switch {
	case binSkip != "":
		if os.Getenv("IDVAULT_TEST_REQUIRE_INTEGRATION") == "1" {
			t.Fatalf("IDVAULT_TEST_REQUIRE_INTEGRATION=1 but %s", binSkip)
		}
		t.Skip(binSkip)
	case binErr != nil:
		t.Fatal(binErr)
	}
	return binPath
}

func build() {
	goCmd, err := exec.LookPath("go")
	if err != nil {
		binSkip = "the go command is not on PATH, so the idvault binary cannot be built"
		return
	}
	root, err := moduleRoot()
	if err != nil {
		binErr = err
		return
	}
	if binDir, err = os.MkdirTemp("", "idvault-e2e-"); err != nil {
		binErr = fmt.Errorf("create build directory: %w", err)
		return
	}
	binPath = filepath.Join(binDir, "idvault")
	cmd := exec.Command(goCmd, "build", "-o", binPath, "./cmd/idvault")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		binErr = fmt.Errorf("go build ./cmd/idvault: %w\n%s", err, out)
	}
}

// moduleRoot walks up from the working directory to the directory holding
// go.mod.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

// environ returns the process environment without any IDVAULT_ variable,
// with the given KEY=VALUE entries added.
func environ(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(strings.ToUpper(kv), "IDVAULT_") {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

// runCLI runs the binary with args and env (added to a clean environment)
// and returns its stdout, stderr and exit code.
func runCLI(t *testing.T, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary(t), args...)
	cmd.Env = environ(env...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	if exitErr, ok := errors.AsType[*exec.ExitError](err); ok {
		return o.String(), e.String(), exitErr.ExitCode()
	}
	if err != nil {
		t.Fatalf("run idvault %s: %v", strings.Join(args, " "), err)
	}
	return o.String(), e.String(), 0
}

// lines collects the lines a process writes to one stream.
type lines struct {
	mu  sync.Mutex
	all []string
}

func (l *lines) add(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.all = append(l.all, s)
}

func (l *lines) snapshot() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.all)
}

func (l *lines) text() string { return strings.Join(l.snapshot(), "\n") }

// credentials are what serve or init prints once.
type credentials struct {
	TenantID      string `json:"tenantId"`
	AdminUser     string `json:"adminUser"`
	AdminPassword string `json:"adminPassword"`
	APIKey        string `json:"apiKey"`
	URL           string `json:"url"`
}

// server is one running `idvault serve` process.
type server struct {
	t       testing.TB
	dataDir string
	cmd     *exec.Cmd
	stdout  lines
	stderr  lines
	exited  chan struct{}
	state   *os.ProcessState

	serving   chan struct{} // closed at the stdout serving line
	listening chan struct{} // closed at the "api listening" log line

	// Set before serving and listening are closed.
	addr        string
	fingerprint string

	base   string // https://addr
	client *http.Client
	apiKey string
	// timeout bounds each request; requestTimeout when zero.
	timeout time.Duration
	// header holds headers added to every request (a User-Agent, a stated
	// purpose); the request's own headers win.
	header http.Header
	// trail, when set, records every request: it chooses the request's
	// X-Request-Id and notes whether the request was acknowledged.
	trail *auditTrail
}

// startServer starts `idvault serve` on dataDir, listening on a free
// loopback port, and waits until it serves. env entries are added to the
// test environment, which already shortens the scheduler's interval and
// lease, and raises the per-address and per-principal rate limits far above
// what the tests send from their one address (the limiter stays on).
func startServer(t testing.TB, dataDir string, env ...string) *server {
	t.Helper()
	s := &server{
		t: t, dataDir: dataDir,
		exited: make(chan struct{}), serving: make(chan struct{}), listening: make(chan struct{}),
	}
	s.cmd = exec.Command(binary(t), "serve", "--data-dir", dataDir, "--listen", "127.0.0.1:0")
	s.cmd.Env = environ(append([]string{
		"IDVAULT_SCHEDULER__INTERVAL=1s",
		"IDVAULT_SCHEDULER__LEASETTL=3s",
		"IDVAULT_LOG__FORMAT=json",
		"IDVAULT_API__RATELIMIT__ADDRESS__RATE=100000", "IDVAULT_API__RATELIMIT__ADDRESS__BURST=100000",
		"IDVAULT_API__RATELIMIT__PRINCIPAL__RATE=100000", "IDVAULT_API__RATELIMIT__PRINCIPAL__BURST=100000",
	}, env...)...)
	stdout, err := s.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := s.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("start idvault serve: %v", err)
	}
	var readers sync.WaitGroup
	readers.Go(func() { readLines(stdout, &s.stdout, s.onStdout) })
	readers.Go(func() { readLines(stderr, &s.stderr, s.onStderr) })
	go func() {
		readers.Wait()
		_ = s.cmd.Wait()
		s.state = s.cmd.ProcessState
		close(s.exited)
	}()
	t.Cleanup(s.cleanup)

	deadline := time.NewTimer(startTimeout)
	defer deadline.Stop()
	for _, ch := range []chan struct{}{s.serving, s.listening} {
		select {
		case <-ch:
		case <-s.exited:
			t.Fatalf("idvault serve exited before serving: %v\nstdout:\n%s\nstderr:\n%s", s.state, s.stdout.text(), s.stderr.text())
		case <-deadline.C:
			t.Fatalf("idvault serve did not serve within %s\nstdout:\n%s\nstderr:\n%s", startTimeout, s.stdout.text(), s.stderr.text())
		}
	}
	s.base = "https://" + s.addr
	pool, certSum := loadCert(t, filepath.Join(dataDir, "tls", "cert.pem"))
	if s.fingerprint != certSum {
		t.Errorf("serving line fingerprint = %s, want %s (SHA-256 of tls/cert.pem)", s.fingerprint, certSum)
	}
	s.client = &http.Client{Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
		ForceAttemptHTTP2: true,
		MaxIdleConns:      16, MaxIdleConnsPerHost: 16,
	}}
	if c, ok := s.credentials(); ok {
		s.apiKey = c.APIKey
	}
	return s
}

// readLines copies r line by line into l, calling on for each line.
func readLines(r io.Reader, l *lines, on func(string)) {
	br := bufio.NewReader(r)
	for {
		line, err := br.ReadString('\n')
		if line != "" {
			line = strings.TrimRight(line, "\n")
			l.add(line)
			on(line)
		}
		if err != nil {
			return
		}
	}
}

// onStdout runs on the stdout reader goroutine.
func (s *server) onStdout(line string) {
	const prefix = "idvault: serving "
	if !strings.HasPrefix(line, prefix) {
		return
	}
	_, fp, _ := strings.Cut(line, "TLS certificate SHA-256 ")
	s.fingerprint = strings.TrimSpace(fp)
	close(s.serving)
}

// onStderr runs on the stderr reader goroutine.
func (s *server) onStderr(line string) {
	var rec struct {
		Msg  string `json:"msg"`
		Addr string `json:"addr"`
	}
	if json.Unmarshal([]byte(line), &rec) != nil || rec.Msg != "api listening" || s.addr != "" {
		return
	}
	s.addr = rec.Addr
	close(s.listening)
}

// credentials parses the once-printed credentials from stdout.
func (s *server) credentials() (credentials, bool) {
	var c credentials
	for _, line := range s.stdout.snapshot() {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		switch k {
		case "tenant id":
			c.TenantID = v
		case "admin user":
			c.AdminUser = v
		case "admin password":
			c.AdminPassword = v
		case "API key":
			c.APIKey = v
		case "URL":
			c.URL = v
		}
	}
	return c, c.APIKey != ""
}

// loadCert returns a pool trusting the PEM certificate in file and the
// certificate's SHA-256 fingerprint in the form the serving line prints.
func loadCert(t testing.TB, file string) (*x509.CertPool, string) {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(data)
	if block == nil {
		t.Fatalf("%s holds no PEM block", file)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	sum := sha256.Sum256(block.Bytes)
	parts := make([]string, len(sum))
	for i, b := range sum {
		parts[i] = fmt.Sprintf("%02X", b)
	}
	return pool, strings.Join(parts, ":")
}

// signal sends sig to the process.
func (s *server) signal(sig os.Signal) {
	s.t.Helper()
	if err := s.cmd.Process.Signal(sig); err != nil {
		s.t.Fatalf("signal %v: %v", sig, err)
	}
}

// wait waits for the process to exit and returns its exit code (-1 when a
// signal killed it).
func (s *server) wait() int {
	s.t.Helper()
	select {
	case <-s.exited:
	case <-time.After(exitTimeout):
		s.t.Fatalf("idvault serve did not exit within %s", exitTimeout)
	}
	s.client.CloseIdleConnections()
	return s.state.ExitCode()
}

// stop sends SIGTERM and requires a clean exit.
func (s *server) stop() {
	s.t.Helper()
	s.signal(syscall.SIGTERM)
	if code := s.wait(); code != 0 {
		s.t.Fatalf("idvault serve exit code after SIGTERM = %d, want 0\nstderr:\n%s", code, s.stderr.text())
	}
}

func (s *server) cleanup() {
	select {
	case <-s.exited:
	default:
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
	if s.client != nil {
		s.client.CloseIdleConnections()
	}
	if s.t.Failed() {
		tail := s.stderr.snapshot()
		if len(tail) > 40 {
			tail = tail[len(tail)-40:]
		}
		s.t.Logf("idvault serve on %s (%v), last stderr lines:\n%s", s.addr, s.state, strings.Join(tail, "\n"))
	}
}

// statusError is a complete HTTP response with an unexpected status.
type statusError struct {
	method, path string
	status       int
	body         string
}

func (e *statusError) Error() string {
	return fmt.Sprintf("%s %s: status %d: %s", e.method, e.path, e.status, e.body)
}

// call makes one API request with the server's API key and returns the
// response read completely. A response with a status other than want is a
// *statusError.
func (s *server) call(ctx context.Context, method, path, contentType string, body []byte, want int) ([]byte, http.Header, error) {
	h := http.Header{"Authorization": {"ApiKey " + s.apiKey}}
	if contentType != "" {
		h.Set("Content-Type", contentType)
	}
	return s.send(ctx, method, path, h, body, want)
}

// send makes one API request with header, over the server's extra headers,
// and returns the response read completely. A response with a status other
// than want is a *statusError. The request is acknowledged when its
// response, with status want, was read to the end.
func (s *server) send(ctx context.Context, method, path string, header http.Header, body []byte, want int) ([]byte, http.Header, error) {
	timeout := s.timeout
	if timeout == 0 {
		timeout = requestTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, s.base+path, r)
	if err != nil {
		return nil, nil, err
	}
	maps.Copy(req.Header, s.header)
	maps.Copy(req.Header, header)
	var sent *sentRequest
	if s.trail != nil {
		sent = s.trail.send(method, path)
		req.Header.Set("X-Request-Id", sent.id)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, nil, err
	}
	if resp.StatusCode != want {
		return data, resp.Header, &statusError{method: method, path: path, status: resp.StatusCode, body: string(data)}
	}
	if sent != nil {
		if got := resp.Header.Get("X-Request-Id"); got != sent.id {
			s.t.Errorf("%s %s: X-Request-Id = %q, want the %q sent", method, path, got, sent.id)
			return data, resp.Header, fmt.Errorf("%s %s: request id not kept", method, path)
		}
		s.trail.ack(sent)
	}
	return data, resp.Header, nil
}

func (s *server) callJSON(ctx context.Context, method, path, contentType string, body []byte, want int, out any) error {
	data, _, err := s.call(ctx, method, path, contentType, body, want)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%s %s: decode %q: %w", method, path, data, err)
	}
	return nil
}

// fileView and sessionView mirror the API's JSON.
type fileView struct {
	ID          string    `json:"id"`
	Kind        string    `json:"kind"`
	Size        int64     `json:"size"`
	SHA256      string    `json:"sha256"`
	ContentType string    `json:"contentType"`
	Width       int       `json:"width"`
	Height      int       `json:"height"`
	CreatedAt   time.Time `json:"createdAt"`
}

type sessionView struct {
	ID         string          `json:"id"`
	WorkflowID string          `json:"workflowId"`
	Status     string          `json:"status"`
	Metadata   json.RawMessage `json:"metadata"`
	CreatedAt  time.Time       `json:"createdAt"`
	UpdatedAt  time.Time       `json:"updatedAt"`
	ExpiresAt  time.Time       `json:"expiresAt"`
	Files      []fileView      `json:"files"`
}

type sessionPage struct {
	Items      []sessionView `json:"items"`
	NextCursor string        `json:"nextCursor"`
}

func (s *server) createSession(ctx context.Context, body string) (sessionView, error) {
	var v sessionView
	err := s.callJSON(ctx, "POST", "/api/v1/sessions", "application/json", []byte(body), http.StatusCreated, &v)
	return v, err
}

func (s *server) getSession(ctx context.Context, id string) (sessionView, error) {
	var v sessionView
	err := s.callJSON(ctx, "GET", "/api/v1/sessions/"+id, "", nil, http.StatusOK, &v)
	return v, err
}

func (s *server) cancelSession(ctx context.Context, id string) (sessionView, error) {
	var v sessionView
	err := s.callJSON(ctx, "POST", "/api/v1/sessions/"+id+"/cancel", "", nil, http.StatusOK, &v)
	return v, err
}

func (s *server) upload(ctx context.Context, id, kind, contentType string, data []byte) (fileView, error) {
	var v fileView
	err := s.callJSON(ctx, "POST", "/api/v1/sessions/"+id+"/files?kind="+kind, contentType, data, http.StatusCreated, &v)
	return v, err
}

func (s *server) download(ctx context.Context, id, fileID string) ([]byte, http.Header, error) {
	return s.call(ctx, "GET", "/api/v1/sessions/"+id+"/files/"+fileID, "", nil, http.StatusOK)
}

func (s *server) listPage(ctx context.Context, q url.Values) (sessionPage, error) {
	var p sessionPage
	err := s.callJSON(ctx, "GET", "/api/v1/sessions?"+q.Encode(), "", nil, http.StatusOK, &p)
	return p, err
}

// listAll follows nextCursor from the first page of q to the last and
// returns every item in order.
func (s *server) listAll(ctx context.Context, q url.Values) ([]sessionView, error) {
	q = cloneQuery(q)
	var all []sessionView
	for {
		p, err := s.listPage(ctx, q)
		if err != nil {
			return nil, err
		}
		all = append(all, p.Items...)
		if p.NextCursor == "" {
			return all, nil
		}
		q.Set("cursor", p.NextCursor)
	}
}

func cloneQuery(q url.Values) url.Values {
	out := url.Values{}
	for k, v := range q {
		out[k] = slices.Clone(v)
	}
	return out
}

// waitStatus polls the session until it has status want or the deadline
// passes, and returns the last view.
func (s *server) waitStatus(ctx context.Context, id, want string, within time.Duration) (sessionView, error) {
	deadline := time.Now().Add(within)
	for {
		v, err := s.getSession(ctx, id)
		if err != nil || v.Status == want {
			return v, err
		}
		if time.Now().After(deadline) {
			return v, fmt.Errorf("session %s status = %s after %s, want %s", id, v.Status, within, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// noise returns a w×h image of random opaque pixels, so that every run of
// its encoded bytes is distinctive.
func noise(r *rand.Rand, w, h int) *image.NRGBA {
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			v := r.Uint32()
			img.SetNRGBA(x, y, color.NRGBA{R: uint8(v), G: uint8(v >> 8), B: uint8(v >> 16), A: 255})
		}
	}
	return img
}

// encodeJPEG and encodePNG encode img. They report an error on t, which
// makes them safe to call from any goroutine.
func encodeJPEG(t testing.TB, img image.Image) []byte {
	var b bytes.Buffer
	if err := jpeg.Encode(&b, img, &jpeg.Options{Quality: 90}); err != nil {
		t.Errorf("encode JPEG: %v", err)
	}
	return b.Bytes()
}

func encodePNG(t testing.TB, img image.Image, level png.CompressionLevel) []byte {
	var b bytes.Buffer
	if err := (&png.Encoder{CompressionLevel: level}).Encode(&b, img); err != nil {
		t.Errorf("encode PNG: %v", err)
	}
	return b.Bytes()
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// newRand returns a seeded generator and logs the seed.
func newRand(t *testing.T) *rand.Rand {
	seed := rand.Uint64()
	t.Logf("random seed %d", seed)
	return rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
}
