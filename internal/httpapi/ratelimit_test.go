package httpapi_test

import (
	"net/http"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/idvault/idvault/internal/httpapi"
	"github.com/idvault/idvault/internal/ratelimit"
)

func withLimits(t *testing.T, p ratelimit.Profile, proxies ...netip.Prefix) func(*httpapi.Deps) {
	t.Helper()
	l, err := ratelimit.New(p)
	if err != nil {
		t.Fatal(err)
	}
	return func(d *httpapi.Deps) { d.RateLimit, d.TrustedProxies = l, proxies }
}

// TestRateLimits floods the API from one address: per-address, sign-in and
// per-principal limits answer 429 rate-limited with Retry-After, change
// nothing, and a forged X-Forwarded-For from an untrusted peer does not
// buy a fresh budget.
func TestRateLimits(t *testing.T) {
	p := ratelimit.Profile{Name: "test", MaxBuckets: 1024,
		Address:   ratelimit.Limit{Rate: 1, Burst: 6},
		Principal: ratelimit.Limit{Rate: 1, Burst: 3},
		SignIn:    ratelimit.Limit{Rate: 0.1, Burst: 2}}

	t.Run("principal", func(t *testing.T) {
		h := newHarness(t, withLimits(t, p))
		for range 3 {
			wantStatus(t, h.do(t, "GET", "/api/v1/sessions", h.a.Auth(), "", nil), http.StatusOK)
		}
		before := h.snapshot(t)
		res := h.do(t, "POST", "/api/v1/sessions", h.a.Auth(), "application/json", []byte(`{}`))
		wantProblem(t, res, http.StatusTooManyRequests, "rate-limited")
		if n, err := strconv.Atoi(res.header.Get("Retry-After")); err != nil || n < 1 {
			t.Errorf("Retry-After = %q, want whole seconds >= 1", res.header.Get("Retry-After"))
		}
		h.unchanged(t, before)
		// Another principal has its own budget (the address still has some).
		wantStatus(t, h.do(t, "GET", "/api/v1/sessions", h.b.Auth(), "", nil), http.StatusOK)
		h.clock.Advance(2 * time.Second)
		wantStatus(t, h.do(t, "GET", "/api/v1/sessions", h.a.Auth(), "", nil), http.StatusOK)
	})
	t.Run("address, unauthenticated, spoofed header", func(t *testing.T) {
		h := newHarness(t, withLimits(t, p))
		for i := range 6 {
			res := h.send(t, request{method: "GET", path: "/api/v1/sessions", header: map[string]string{"X-Forwarded-For": "203.0.113." + strconv.Itoa(i)}})
			wantProblem(t, res, http.StatusUnauthorized, "unauthenticated")
		}
		res := h.send(t, request{method: "GET", path: "/api/v1/sessions", header: map[string]string{"X-Forwarded-For": "198.51.100.7"}})
		wantProblem(t, res, http.StatusTooManyRequests, "rate-limited")
		// Health checks are never limited.
		wantStatus(t, h.do(t, "GET", "/healthz", "", "", nil), http.StatusOK)
	})
	t.Run("sign-in", func(t *testing.T) {
		h := newHarness(t, withLimits(t, p))
		body := []byte(`{"tenantId":"` + h.a.ID + `","username":"admin","password":"` + h.a.Password + `"}`)
		for range 2 {
			wantStatus(t, h.do(t, "POST", "/api/v1/auth/token", "", "application/json", body), http.StatusOK)
		}
		wantProblem(t, h.do(t, "POST", "/api/v1/auth/token", "", "application/json", body), http.StatusTooManyRequests, "rate-limited")
	})
}
