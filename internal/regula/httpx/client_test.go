package httpx

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/idvault/idvault/internal/regula/regulatest"
	"github.com/idvault/idvault/internal/testenv/testlog"
)

type payload struct {
	OK   bool   `json:"ok"`
	Name string `json:"name,omitempty"`
}

func TestNewRefusesBadConfig(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.pem")
	keyOnly := filepath.Join(dir, "key.pem")
	if err := os.WriteFile(garbage, []byte("not PEM"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyOnly, []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		cfg  Config
	}{
		{name: "empty url", cfg: Config{}},
		{name: "http remote", cfg: Config{URL: "http://docreader.internal:8080"}},
		{name: "http remote even when allowed", cfg: Config{URL: "http://10.0.0.7:8080", AllowLoopbackHTTP: true}},
		{name: "http loopback not allowed", cfg: Config{URL: "http://127.0.0.1:8080"}},
		{name: "http loopback-looking name", cfg: Config{URL: "http://localhost.example.com", AllowLoopbackHTTP: true}},
		{name: "ftp", cfg: Config{URL: "ftp://docreader"}},
		{name: "no host", cfg: Config{URL: "https:///api"}},
		{name: "relative", cfg: Config{URL: "docreader:8080"}},
		{name: "user info", cfg: Config{URL: "https://user:pass@docreader"}},
		{name: "query", cfg: Config{URL: "https://docreader/?license=x"}},
		{name: "client cert over http", cfg: Config{URL: "http://127.0.0.1", AllowLoopbackHTTP: true, CertFile: garbage, KeyFile: garbage}},
		{name: "cert without key", cfg: Config{URL: "https://docreader", CertFile: garbage}},
		{name: "unreadable client cert", cfg: Config{URL: "https://docreader", CertFile: garbage, KeyFile: garbage}},
		{name: "missing CA file", cfg: Config{URL: "https://docreader", CAFile: filepath.Join(dir, "none.pem")}},
		{name: "CA file without PEM", cfg: Config{URL: "https://docreader", CAFile: garbage}},
		{name: "CA file holding a key", cfg: Config{URL: "https://docreader", CAFile: keyOnly}},
		{name: "too many retries", cfg: Config{URL: "https://docreader", Retries: MaxRetries + 1}},
		{name: "negative retries", cfg: Config{URL: "https://docreader", Retries: -1}},
		{name: "negative timeout", cfg: Config{URL: "https://docreader", Timeout: -time.Second}},
		{name: "backoff max below base", cfg: Config{URL: "https://docreader", Backoff: Backoff{Base: time.Second, Max: time.Millisecond}}},
		{name: "negative breaker", cfg: Config{URL: "https://docreader", Breaker: Breaker{Failures: -1}}},
		{name: "negative size", cfg: Config{URL: "https://docreader", MaxResponseBytes: -1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := New(tt.cfg, Options{})
			if !errors.Is(err, ErrConfig) {
				t.Errorf("New(%+v) = %v, %v; want ErrConfig", tt.cfg, c, err)
			}
		})
	}
}

func TestNewAccepts(t *testing.T) {
	for _, raw := range []string{"https://docreader:8443", "https://gateway/regula/", "http://127.0.0.1:8080", "http://localhost:41101", "http://[::1]:8080"} {
		c, err := New(Config{URL: raw, AllowLoopbackHTTP: true}, Options{})
		if err != nil {
			t.Errorf("New(%q) = %v, want a client", raw, err)
			continue
		}
		if got := c.BreakerState(); got != Closed {
			t.Errorf("New(%q).BreakerState() = %v, want closed", raw, got)
		}
		c.Close()
	}
}

func TestDoRoundTrip(t *testing.T) {
	var got struct {
		method, path, query, contentType, accept string
		body                                     []byte
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.method, got.path, got.query = r.Method, r.URL.Path, r.URL.RawQuery
		got.contentType, got.accept = r.Header.Get("Content-Type"), r.Header.Get("Accept")
		var buf bytes.Buffer
		_, _ = buf.ReadFrom(r.Body)
		got.body = buf.Bytes()
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		_, _ = w.Write([]byte(`{"ok":true,"name":"answer"}`))
	}))
	t.Cleanup(srv.Close)
	c, _, _ := newTestClient(t, testConfig(srv.URL+"/prefix/"))
	var out payload
	err := c.Do(context.Background(), http.MethodPost, "/api/process", url.Values{"a": {"b c"}}, payload{Name: "question"}, &out)
	if err != nil {
		t.Fatalf("Do: %v", err)
	}
	if out != (payload{OK: true, Name: "answer"}) {
		t.Errorf("out = %+v, want ok answer", out)
	}
	if got.method != "POST" || got.path != "/prefix/api/process" || got.query != "a=b+c" {
		t.Errorf("request = %s %s?%s, want POST /prefix/api/process?a=b+c", got.method, got.path, got.query)
	}
	if got.contentType != "application/json" || got.accept != "application/json" {
		t.Errorf("headers Content-Type %q Accept %q, want application/json", got.contentType, got.accept)
	}
	if string(got.body) != `{"ok":false,"name":"question"}` {
		t.Errorf("body = %s", got.body)
	}
}

// TestRetryPolicy checks which answers are retried, how many times, and
// the waits asked for.
func TestRetryPolicy(t *testing.T) {
	const base, maxWait = 100 * time.Millisecond, time.Second
	tests := []struct {
		name         string
		statuses     []int
		retryAfter   string
		retries      int
		wantErr      bool
		wantStatus   int
		wantRequests int
		// checkWaits validates the waits asked for.
		wantWaits []time.Duration
		backoffs  int
	}{
		{name: "503 then ok", statuses: []int{503, 503, 200}, retries: 2, wantRequests: 3, backoffs: 2},
		{name: "502 and 504 then ok", statuses: []int{502, 504, 200}, retries: 2, wantRequests: 3, backoffs: 2},
		{name: "503 until retries run out", statuses: []int{503}, retries: 2, wantErr: true, wantStatus: 503, wantRequests: 3, backoffs: 2},
		{name: "no retries configured", statuses: []int{503}, retries: 0, wantErr: true, wantStatus: 503, wantRequests: 1},
		{name: "500 not retried", statuses: []int{500, 200}, retries: 2, wantErr: true, wantStatus: 500, wantRequests: 1},
		{name: "400 not retried", statuses: []int{400, 200}, retries: 2, wantErr: true, wantStatus: 400, wantRequests: 1},
		{name: "403 not retried", statuses: []int{403, 200}, retries: 2, wantErr: true, wantStatus: 403, wantRequests: 1},
		{name: "404 not retried", statuses: []int{404, 200}, retries: 2, wantErr: true, wantStatus: 404, wantRequests: 1},
		{name: "422 not retried", statuses: []int{422, 200}, retries: 2, wantErr: true, wantStatus: 422, wantRequests: 1},
		{name: "429 honors Retry-After seconds", statuses: []int{429, 200}, retryAfter: "2", retries: 2, wantRequests: 2, wantWaits: []time.Duration{2 * time.Second}},
		{name: "429 honors Retry-After date", statuses: []int{429, 200}, retryAfter: "Tue, 13 Jan 2026 10:00:07 GMT", retries: 2, wantRequests: 2, wantWaits: []time.Duration{7 * time.Second}},
		{name: "429 without Retry-After backs off", statuses: []int{429, 200}, retries: 2, wantRequests: 2, backoffs: 1},
		{name: "429 beyond MaxRetryAfter gives up", statuses: []int{429, 200}, retryAfter: "3600", retries: 2, wantErr: true, wantStatus: 429, wantRequests: 1},
		{name: "503 honors Retry-After", statuses: []int{503, 200}, retryAfter: "3", retries: 2, wantRequests: 2, wantWaits: []time.Duration{3 * time.Second}},
		{name: "redirect not followed", statuses: []int{302}, retries: 2, wantErr: true, wantStatus: 302, wantRequests: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newScript(t, tt.statuses...)
			s.header = http.Header{}
			if tt.retryAfter != "" {
				s.header.Set("Retry-After", tt.retryAfter)
			}
			s.header.Set("Location", "https://elsewhere.example/steal")
			cfg := testConfig(s.srv.URL)
			cfg.Retries = tt.retries
			cfg.Backoff = Backoff{Base: base, Max: maxWait}
			cfg.MaxRetryAfter = 10 * time.Second
			c, _, slp := newTestClient(t, cfg)
			var out payload
			err := c.Do(context.Background(), http.MethodPost, "/x", nil, payload{}, &out)
			if tt.wantErr {
				var se *StatusError
				if !errors.As(err, &se) || se.StatusCode != tt.wantStatus {
					t.Errorf("Do = %v, want StatusError %d", err, tt.wantStatus)
				}
			} else if err != nil || !out.OK {
				t.Errorf("Do = %v (out %+v), want success", err, out)
			}
			if got := s.count(); got != tt.wantRequests {
				t.Errorf("requests = %d, want %d", got, tt.wantRequests)
			}
			waits := slp.Waits()
			if tt.wantWaits != nil {
				if len(waits) != len(tt.wantWaits) {
					t.Fatalf("waits = %v, want %v", waits, tt.wantWaits)
				}
				for i := range waits {
					if waits[i] != tt.wantWaits[i] {
						t.Errorf("wait %d = %v, want %v", i, waits[i], tt.wantWaits[i])
					}
				}
				return
			}
			if len(waits) != tt.backoffs {
				t.Fatalf("waits = %v, want %d backoffs", waits, tt.backoffs)
			}
			for i, w := range waits {
				step := min(base<<i, maxWait)
				if w < step/2 || w > step {
					t.Errorf("backoff %d = %v, want within [%v, %v]", i, w, step/2, step)
				}
			}
		})
	}
}

func TestBackoffBoundsAndJitter(t *testing.T) {
	c, _, _ := newTestClient(t, Config{URL: "https://docreader", Backoff: Backoff{Base: 100 * time.Millisecond, Max: 2 * time.Second}})
	for attempt := range 8 {
		step := min((100*time.Millisecond)<<attempt, 2*time.Second)
		seen := make(map[time.Duration]bool)
		for range 200 {
			d := c.backoff(attempt)
			if d < step/2 || d > step {
				t.Fatalf("backoff(%d) = %v, want within [%v, %v]", attempt, d, step/2, step)
			}
			seen[d] = true
		}
		if len(seen) < 10 {
			t.Errorf("backoff(%d) took %d distinct values in 200 draws, want jitter", attempt, len(seen))
		}
	}
	if d := c.backoff(1000); d < time.Second || d > 2*time.Second {
		t.Errorf("backoff(1000) = %v, want capped at 2s", d)
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 13, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"5", 5 * time.Second},
		{"0", 0},
		{"-3", 0},
		{"soon", 0},
		{"99999999999999", (1 << 30) * time.Second},
		{"Tue, 13 Jan 2026 10:01:00 GMT", time.Minute},
		{"Tue, 13 Jan 2026 09:00:00 GMT", 0},
	}
	for _, tt := range tests {
		if got := parseRetryAfter(tt.in, now); got != tt.want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

// closedAddr returns a loopback URL where nothing listens.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	return "http://" + addr
}

func TestConnectErrorIsRetried(t *testing.T) {
	c, _, slp := newTestClient(t, testConfig(closedAddr(t)))
	err := c.Do(context.Background(), http.MethodPost, "/api/process", nil, payload{}, nil)
	var op *net.OpError
	if !errors.As(err, &op) || op.Op != "dial" {
		t.Fatalf("Do = %v, want a dial error", err)
	}
	if got := len(slp.Waits()); got != 2 {
		t.Errorf("waits = %d, want 2 (every retry used)", got)
	}
}

func TestTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })

	t.Run("config timeout", func(t *testing.T) {
		cfg := testConfig(srv.URL)
		cfg.Timeout = 50 * time.Millisecond
		cfg.Breaker.Failures = 1
		c, _, slp := newTestClient(t, cfg)
		err := c.Do(context.Background(), http.MethodPost, "/slow", nil, payload{}, nil)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Do = %v, want context.DeadlineExceeded", err)
		}
		if n := len(slp.Waits()); n != 0 {
			t.Errorf("a timeout was retried %d times, want never", n)
		}
		if got := c.BreakerState(); got != Open {
			t.Errorf("breaker after a timeout with failures=1: %v, want open (the service is too slow)", got)
		}
	})
	t.Run("caller deadline", func(t *testing.T) {
		cfg := testConfig(srv.URL)
		cfg.Breaker.Failures = 1
		c, _, _ := newTestClient(t, cfg)
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		err := c.Do(ctx, http.MethodPost, "/slow", nil, payload{}, nil)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Do = %v, want context.DeadlineExceeded", err)
		}
		if got := c.BreakerState(); got != Closed {
			t.Errorf("breaker after the caller's own deadline: %v, want closed", got)
		}
	})
	t.Run("caller cancel", func(t *testing.T) {
		c, _, _ := newTestClient(t, testConfig(srv.URL))
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := c.Do(ctx, http.MethodGet, "/slow", nil, nil, nil); !errors.Is(err, context.Canceled) {
			t.Fatalf("Do = %v, want context.Canceled", err)
		}
	})
}

func TestSleepTimer(t *testing.T) {
	if err := sleepTimer(context.Background(), time.Millisecond); err != nil {
		t.Errorf("sleepTimer = %v, want nil", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := sleepTimer(ctx, time.Hour); !errors.Is(err, context.Canceled) {
		t.Errorf("sleepTimer(cancelled) = %v, want context.Canceled", err)
	}
}

// TestRetryWaitBeyondDeadline checks that the client does not start a wait
// its deadline would cut short.
func TestRetryWaitBeyondDeadline(t *testing.T) {
	s := newScript(t, 429, 200)
	s.header = http.Header{"Retry-After": {"5"}}
	cfg := testConfig(s.srv.URL)
	cfg.Timeout = time.Second
	c, _, slp := newTestClient(t, cfg)
	var se *StatusError
	if err := c.Do(context.Background(), http.MethodGet, "/x", nil, nil, nil); !errors.As(err, &se) || se.StatusCode != 429 || se.RetryAfter != 5*time.Second {
		t.Fatalf("Do = %v, want StatusError 429 with RetryAfter 5s", err)
	}
	if len(slp.Waits()) != 0 || s.count() != 1 {
		t.Errorf("waits %v, requests %d; want no wait and one request", slp.Waits(), s.count())
	}
}

func TestBreaker(t *testing.T) {
	s := newScript(t, 503)
	cfg := testConfig(s.srv.URL)
	cfg.Retries = 0
	cfg.Breaker = Breaker{Failures: 3, CoolDown: time.Minute}
	c, clk, _ := newTestClient(t, cfg)
	ctx := context.Background()
	call := func() error { return c.Do(ctx, http.MethodGet, "/x", nil, nil, nil) }

	for i := range 3 {
		var se *StatusError
		if err := call(); !errors.As(err, &se) {
			t.Fatalf("call %d = %v, want StatusError", i, err)
		}
	}
	if got := c.BreakerState(); got != Open {
		t.Fatalf("after 3 failures: %v, want open", got)
	}
	for range 5 {
		if err := call(); !errors.Is(err, ErrUnavailable) {
			t.Fatalf("open breaker: %v, want ErrUnavailable", err)
		}
	}
	if got := s.count(); got != 3 {
		t.Errorf("requests = %d, want 3: an open breaker sends nothing", got)
	}

	clk.Advance(59 * time.Second)
	if err := call(); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("before the cool-down ends: %v, want ErrUnavailable", err)
	}
	clk.Advance(time.Second)
	if got := c.BreakerState(); got != HalfOpen {
		t.Fatalf("after the cool-down: %v, want half-open", got)
	}
	// The probe fails: open again at once.
	var se *StatusError
	if err := call(); !errors.As(err, &se) {
		t.Fatalf("probe = %v, want StatusError", err)
	}
	if got := c.BreakerState(); got != Open {
		t.Fatalf("after a failed probe: %v, want open", got)
	}
	if err := call(); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("after a failed probe: %v, want ErrUnavailable", err)
	}

	// The service recovers; the next probe closes the breaker.
	s.set(200)
	clk.Advance(time.Minute)
	if err := call(); err != nil {
		t.Fatalf("probe = %v, want success", err)
	}
	if got := c.BreakerState(); got != Closed {
		t.Fatalf("after a good probe: %v, want closed", got)
	}
	for range 3 {
		if err := call(); err != nil {
			t.Fatalf("closed breaker: %v", err)
		}
	}
}

func TestBreakerHalfOpenAllowsOneProbe(t *testing.T) {
	entered := make(chan struct{}, 1)
	release := make(chan struct{})
	var mu sync.Mutex
	failing := true
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		f := failing
		mu.Unlock()
		if f {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		entered <- struct{}{}
		<-release
	}))
	t.Cleanup(srv.Close)
	cfg := testConfig(srv.URL)
	cfg.Retries = 0
	cfg.Breaker = Breaker{Failures: 1, CoolDown: time.Minute}
	c, clk, _ := newTestClient(t, cfg)
	if err := c.Do(context.Background(), http.MethodGet, "/x", nil, nil, nil); err == nil {
		t.Fatal("first call succeeded, want 503")
	}
	mu.Lock()
	failing = false
	mu.Unlock()
	clk.Advance(time.Minute)

	probe := make(chan error)
	go func() { probe <- c.Do(context.Background(), http.MethodGet, "/x", nil, nil, nil) }()
	<-entered
	if err := c.Do(context.Background(), http.MethodGet, "/x", nil, nil, nil); !errors.Is(err, ErrUnavailable) {
		t.Errorf("call during the probe = %v, want ErrUnavailable", err)
	}
	close(release)
	if err := <-probe; err != nil {
		t.Fatalf("probe = %v, want success", err)
	}
	if got := c.BreakerState(); got != Closed {
		t.Errorf("after the probe: %v, want closed", got)
	}
}

func TestBreakerCounting(t *testing.T) {
	tests := []struct {
		name     string
		statuses []int
		want     State
	}{
		{name: "4xx resets the count", statuses: []int{503, 503, 400, 503, 503}, want: Closed},
		{name: "429 is neutral", statuses: []int{503, 503, 429, 503}, want: Open},
		{name: "429 alone never opens", statuses: []int{429, 429, 429, 429}, want: Closed},
		{name: "500 counts", statuses: []int{500, 500, 500}, want: Open},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newScript(t, tt.statuses...)
			cfg := testConfig(s.srv.URL)
			cfg.Retries = 0
			cfg.Breaker = Breaker{Failures: 3, CoolDown: time.Minute}
			c, _, _ := newTestClient(t, cfg)
			for range tt.statuses {
				_ = c.Do(context.Background(), http.MethodGet, "/x", nil, nil, nil)
			}
			if got := c.BreakerState(); got != tt.want {
				t.Errorf("breaker after %v: %v, want %v", tt.statuses, got, tt.want)
			}
		})
	}
}

func TestBreakerOpensDuringRetries(t *testing.T) {
	s := newScript(t, 503)
	cfg := testConfig(s.srv.URL)
	cfg.Retries = 5
	cfg.Breaker = Breaker{Failures: 2, CoolDown: time.Minute}
	c, _, _ := newTestClient(t, cfg)
	err := c.Do(context.Background(), http.MethodGet, "/x", nil, nil, nil)
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Do = %v, want ErrUnavailable once the breaker opens", err)
	}
	if got := s.count(); got != 2 {
		t.Errorf("requests = %d, want 2", got)
	}
}

func TestResponseChecks(t *testing.T) {
	big := strings.Repeat("x", 2048)
	tests := []struct {
		name        string
		contentType string
		body        string
		chunked     bool
		want        error
	}{
		{name: "malformed JSON", contentType: "application/json", body: `{"ok": tru`, want: ErrMalformed},
		{name: "trailing garbage", contentType: "application/json", body: `{"ok":true} {"ok":false}`, want: ErrMalformed},
		{name: "wrong type", contentType: "application/json", body: `{"ok":"yes"}`, want: ErrMalformed},
		{name: "HTML error page", contentType: "text/html", body: `<html>gateway</html>`, want: ErrMalformed},
		{name: "no content type", contentType: "", body: `{"ok":true}`, want: ErrMalformed},
		{name: "too large with length", contentType: "application/json", body: `{"name":"` + big + `"}`, want: ErrTooLarge},
		{name: "too large chunked", contentType: "application/json", body: `{"name":"` + big + `"}`, chunked: true, want: ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tt.contentType != "" {
					w.Header().Set("Content-Type", tt.contentType)
				} else {
					w.Header()["Content-Type"] = nil
				}
				if tt.chunked {
					_, _ = w.Write([]byte(tt.body[:10]))
					w.(http.Flusher).Flush()
					_, _ = w.Write([]byte(tt.body[10:]))
					return
				}
				_, _ = w.Write([]byte(tt.body))
			}))
			t.Cleanup(srv.Close)
			cfg := testConfig(srv.URL)
			cfg.MaxResponseBytes = 1024
			cfg.Breaker.Failures = 1
			c, _, slp := newTestClient(t, cfg)
			var out payload
			if err := c.Do(context.Background(), http.MethodGet, "/x", nil, nil, &out); !errors.Is(err, tt.want) {
				t.Fatalf("Do = %v, want %v", err, tt.want)
			}
			if len(slp.Waits()) != 0 {
				t.Errorf("retried a bad body")
			}
			if got := c.BreakerState(); got != Open {
				t.Errorf("breaker: %v, want open (a bad body is a failure)", got)
			}
		})
	}
}

// TestNoPersonalDataInErrorsOrLogs attacks the redaction claim: a marker
// sits in the request body, the query, the response of every failure and a
// malformed body; no error string and no log line may show it.
func TestNoPersonalDataInErrorsOrLogs(t *testing.T) {
	const marker = "ERIKSSON-L898902C3"
	var logs testlog.Buffer
	logger := logs.TextLogger()
	statuses := []int{400, 503, 500, 429, 200}
	for _, status := range statuses {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("X-Echo", marker)
			w.WriteHeader(status)
			_, _ = w.Write([]byte(`{"msg":"` + marker + `", "ok": ` + marker))
		}))
		cfg := testConfig(srv.URL)
		slp := &regulatest.Sleeper{}
		c, err := New(cfg, Options{Service: "test", Logger: logger, Sleep: slp.Sleep})
		if err != nil {
			t.Fatal(err)
		}
		var out payload
		err = c.Do(context.Background(), http.MethodPost, "/api/process", url.Values{"transactionId": {marker}}, payload{Name: marker}, &out)
		c.Close()
		srv.Close()
		if err == nil {
			t.Fatalf("status %d: Do succeeded on a broken answer", status)
		}
		if strings.Contains(err.Error(), marker) {
			t.Errorf("status %d: error %q shows personal data", status, err)
		}
	}
	if logs.Len() == 0 {
		t.Fatal("no log lines: the test would prove nothing")
	}
	if strings.Contains(logs.String(), marker) {
		t.Errorf("logs show personal data:\n%s", logs.String())
	}
}
