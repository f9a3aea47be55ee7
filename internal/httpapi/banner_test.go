package httpapi_test

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/idvault/idvault/internal/httpapi"
	"github.com/idvault/idvault/internal/store"
)

// TestBannerAndScanMode requires the sign-in banner and tries to get around
// it: no acknowledgement or a stale one is refused; the scanner's banner-less
// sign-in works only while scan mode is on, before its expiry and from its
// ranges, and every use is audited.
func TestBannerAndScanMode(t *testing.T) {
	const text = "Authorised use only. Activity is recorded."
	h := newHarness(t, func(d *httpapi.Deps) { d.Banner = text })
	res := h.do(t, "GET", "/api/v1/auth/banner", "", "", nil)
	wantStatus(t, res, http.StatusOK)
	var b struct {
		Required bool
		ID, Text string
	}
	if err := json.Unmarshal(res.body, &b); err != nil || !b.Required || b.Text != text || b.ID != httpapi.BannerID(text) {
		t.Fatalf("banner = %s, %v", res.body, err)
	}
	signIn := func(path, ack string) response {
		return h.do(t, "POST", path, "", "application/json", []byte(`{"tenantId":"`+h.a.ID+`","username":"admin","password":"`+h.a.Password+`","bannerAck":"`+ack+`"}`))
	}
	for _, path := range []string{"/api/v1/auth/login", "/api/v1/auth/token"} {
		wantProblem(t, signIn(path, ""), http.StatusBadRequest, "invalid-request")
		wantProblem(t, signIn(path, httpapi.BannerID("an older banner")), http.StatusBadRequest, "invalid-request")
		wantStatus(t, signIn(path, b.ID), http.StatusOK)
	}

	// Scan mode is off by default.
	res = signIn("/api/v1/auth/login/scan", "")
	wantProblem(t, res, http.StatusForbidden, "scan-mode-off")
	h.auditEvent(t, store.PlatformTenant, res.header.Get("X-Request-Id"), "auth.scan_login")

	set := func(body string, status int) {
		t.Helper()
		wantStatus(t, h.do(t, "PUT", "/api/v1/settings/scan-mode", h.a.Auth(), "application/json", []byte(body)), status)
	}
	exp := h.clock.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	set(`{"enabled":true}`, http.StatusBadRequest)                                                      // no expiry
	set(`{"enabled":true,"expiresAt":"`+h.clock.Now().Add(48*time.Hour).Format(time.RFC3339)+`"}`, 400) // too long
	set(`{"enabled":true,"expiresAt":"`+exp+`","sourceRanges":["not-a-cidr"]}`, http.StatusBadRequest)
	// On, but only for a range the test client is not in.
	set(`{"enabled":true,"expiresAt":"`+exp+`","sourceRanges":["192.0.2.0/24"]}`, http.StatusOK)
	wantProblem(t, signIn("/api/v1/auth/login/scan", ""), http.StatusForbidden, "scan-mode-off")
	// On for loopback: the scanner signs in without the banner.
	set(`{"enabled":true,"expiresAt":"`+exp+`","sourceRanges":["127.0.0.0/8","::1/128"]}`, http.StatusOK)
	res = signIn("/api/v1/auth/login/scan", "")
	wantStatus(t, res, http.StatusOK)
	h.auditEvent(t, h.a.ID, res.header.Get("X-Request-Id"), "auth.scan_login")
	// Another tenant's scan mode is its own.
	wantProblem(t, h.do(t, "POST", "/api/v1/auth/login/scan", "", "application/json",
		[]byte(`{"tenantId":"`+h.b.ID+`","username":"admin","password":"`+h.b.Password+`"}`)), http.StatusForbidden, "scan-mode-off")
	// Expired.
	h.clock.Advance(time.Hour + time.Second)
	wantProblem(t, signIn("/api/v1/auth/login/scan", ""), http.StatusForbidden, "scan-mode-off")
	// Only settings:write may switch it.
	wantProblem(t, h.do(t, "PUT", "/api/v1/settings/scan-mode", h.b.Auth()[:len(h.b.Auth())-2]+"xx", "application/json", []byte(`{"enabled":false}`)), http.StatusUnauthorized, "unauthenticated")
}
