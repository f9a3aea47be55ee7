package httpx

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/idvault/idvault/internal/regula/regulatest"
	"github.com/idvault/idvault/internal/testenv/testclock"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// script is a real HTTP server that answers each request with the next
// status of a script (the last one repeating) and counts requests.
type script struct {
	srv *httptest.Server

	mu       sync.Mutex
	statuses []int
	header   http.Header
	body     string
	requests int
	seen     []*http.Request
}

func newScript(t *testing.T, statuses ...int) *script {
	t.Helper()
	s := &script{statuses: statuses, body: `{"ok":true}`}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *script) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	i := min(s.requests, len(s.statuses)-1)
	status := s.statuses[i]
	s.requests++
	s.seen = append(s.seen, r.Clone(context.Background()))
	for k, v := range s.header {
		w.Header()[k] = v
	}
	body := s.body
	s.mu.Unlock()
	if status == http.StatusOK {
		w.Header().Set("Content-Type", "application/json")
	}
	w.WriteHeader(status)
	_, _ = w.Write([]byte(body))
}

func (s *script) set(statuses ...int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.statuses = statuses
	s.requests = 0
}

func (s *script) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests
}

// testConfig is a Config for a loopback test server.
func testConfig(url string) Config {
	return Config{
		URL:               url,
		AllowLoopbackHTTP: true,
		Retries:           2,
		Backoff:           Backoff{Base: 100 * time.Millisecond, Max: time.Second},
		Breaker:           Breaker{Failures: 100, CoolDown: time.Minute},
	}
}

// newTestClient builds a client with a manual clock and a recording sleeper.
func newTestClient(t *testing.T, cfg Config) (*Client, *testclock.Clock, *regulatest.Sleeper) {
	t.Helper()
	clk, slp := testclock.New(time.Date(2026, 1, 13, 10, 0, 0, 0, time.UTC)), &regulatest.Sleeper{}
	c, err := New(cfg, Options{Service: "test", Now: clk.Now, Sleep: slp.Sleep})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(c.Close)
	return c, clk, slp
}
