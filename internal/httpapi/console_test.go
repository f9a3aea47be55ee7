package httpapi_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/idvault/idvault/internal/identity"
)

type consoleLogin struct {
	cookie, csrf string
	raw          *http.Cookie
}

func (h *harness) login(t *testing.T, tn tenant) consoleLogin {
	t.Helper()
	res := h.do(t, "POST", "/api/v1/auth/login", "", "application/json",
		[]byte(`{"tenantId":"`+tn.ID+`","username":"`+tn.Username+`","password":"`+tn.Password+`"}`))
	wantStatus(t, res, http.StatusOK)
	var body struct {
		CSRFToken string `json:"csrfToken"`
	}
	if err := json.Unmarshal(res.body, &body); err != nil || body.CSRFToken == "" {
		t.Fatalf("login body = %s, %v", res.body, err)
	}
	resp := http.Response{Header: res.header}
	for _, c := range resp.Cookies() {
		if c.Name == "idvault_session" {
			return consoleLogin{cookie: c.Value, csrf: body.CSRFToken, raw: c}
		}
	}
	t.Fatalf("login set no session cookie: %v", res.header)
	return consoleLogin{}
}

func (h *harness) withCookie(t *testing.T, method, path, cookie, csrf string, body []byte) response {
	t.Helper()
	hdr := map[string]string{"Cookie": "idvault_session=" + cookie}
	if csrf != "" {
		hdr["X-CSRF-Token"] = csrf
	}
	ct := ""
	if body != nil {
		ct = "application/json"
	}
	return h.send(t, request{method: method, path: path, contentType: ct, body: body, header: hdr})
}

// TestConsoleSessions signs in through the console and attacks the session:
// the cookie is HttpOnly, Secure and SameSite=Strict; a state-changing
// request without the CSRF token is refused and audited; forged, idle,
// expired and logged-out sessions are refused; sign-out everywhere ends
// every session of the user; a disabled user's session stops at once.
func TestConsoleSessions(t *testing.T) {
	h := newHarness(t)
	s := h.login(t, h.a)
	if !s.raw.HttpOnly || !s.raw.Secure || s.raw.SameSite != http.SameSiteStrictMode || s.raw.Path != "/" {
		t.Errorf("session cookie = %+v; want HttpOnly, Secure, SameSite=Strict, Path=/", s.raw)
	}
	wantStatus(t, h.withCookie(t, "GET", "/api/v1/sessions", s.cookie, "", nil), http.StatusOK)

	before := h.snapshot(t)
	res := h.withCookie(t, "POST", "/api/v1/sessions", s.cookie, "", []byte(`{}`))
	wantProblem(t, res, http.StatusForbidden, "csrf")
	h.auditEvent(t, h.a.ID, res.header.Get("X-Request-Id"), "auth.csrf_failure")
	wantProblem(t, h.withCookie(t, "POST", "/api/v1/sessions", s.cookie, "wrong-token", []byte(`{}`)), http.StatusForbidden, "csrf")
	h.unchanged(t, before)
	wantStatus(t, h.withCookie(t, "POST", "/api/v1/sessions", s.cookie, s.csrf, []byte(`{}`)), http.StatusCreated)

	last := "A" // a different last character, whatever the cookie ends in
	if strings.HasSuffix(s.cookie, last) {
		last = "B"
	}
	forged := []string{
		s.cookie[:len(s.cookie)-1] + last,
		strings.Replace(s.cookie, h.a.ID, h.b.ID, 1),
		"idvc." + h.a.ID,
		"",
		h.a.Key,
	}
	for _, c := range forged {
		wantProblem(t, h.withCookie(t, "GET", "/api/v1/sessions", c, "", nil), http.StatusUnauthorized, "unauthenticated")
	}

	// Idle timeout.
	h.clock.Advance(identity.SessionIdle + time.Second)
	wantProblem(t, h.withCookie(t, "GET", "/api/v1/sessions", s.cookie, "", nil), http.StatusUnauthorized, "unauthenticated")

	// Activity keeps a session alive until its absolute timeout.
	s = h.login(t, h.a)
	for elapsed := time.Duration(0); elapsed < identity.SessionAbsolute-identity.SessionIdle; elapsed += identity.SessionIdle / 2 {
		h.clock.Advance(identity.SessionIdle / 2)
		wantStatus(t, h.withCookie(t, "GET", "/api/v1/sessions", s.cookie, "", nil), http.StatusOK)
	}
	h.clock.Advance(identity.SessionIdle)
	wantProblem(t, h.withCookie(t, "GET", "/api/v1/sessions", s.cookie, "", nil), http.StatusUnauthorized, "unauthenticated")

	// Logout needs the CSRF token, then ends the session.
	s = h.login(t, h.a)
	wantProblem(t, h.withCookie(t, "POST", "/api/v1/auth/logout", s.cookie, "", nil), http.StatusForbidden, "csrf")
	wantStatus(t, h.withCookie(t, "POST", "/api/v1/auth/logout", s.cookie, s.csrf, nil), http.StatusNoContent)
	wantProblem(t, h.withCookie(t, "GET", "/api/v1/sessions", s.cookie, "", nil), http.StatusUnauthorized, "unauthenticated")

	// Sign out everywhere.
	s1, s2 := h.login(t, h.a), h.login(t, h.a)
	wantStatus(t, h.withCookie(t, "POST", "/api/v1/auth/logout", s1.cookie, s1.csrf, []byte(`{"everywhere":true}`)), http.StatusNoContent)
	wantProblem(t, h.withCookie(t, "GET", "/api/v1/sessions", s2.cookie, "", nil), http.StatusUnauthorized, "unauthenticated")

	// A disabled user's session stops at once.
	s = h.login(t, h.a)
	if err := h.identity.SetUserDisabled(t.Context(), h.a.ID, h.a.Username, true); err != nil {
		t.Fatal(err)
	}
	wantProblem(t, h.withCookie(t, "GET", "/api/v1/sessions", s.cookie, "", nil), http.StatusUnauthorized, "unauthenticated")
}

// TestBearerLogout revokes a bearer token: it stops at once; an API key
// cannot be "logged out" this way.
func TestBearerLogout(t *testing.T) {
	h := newHarness(t)
	res := h.do(t, "POST", "/api/v1/auth/token", "", "application/json",
		[]byte(`{"tenantId":"`+h.a.ID+`","username":"admin","password":"`+h.a.Password+`"}`))
	wantStatus(t, res, http.StatusOK)
	var tok struct{ AccessToken string }
	_ = json.Unmarshal(res.body, &tok)
	bearer := "Bearer " + tok.AccessToken
	wantStatus(t, h.do(t, "GET", "/api/v1/sessions", bearer, "", nil), http.StatusOK)
	wantProblem(t, h.do(t, "POST", "/api/v1/auth/logout", h.a.Auth(), "", nil), http.StatusUnauthorized, "unauthenticated")
	wantStatus(t, h.do(t, "POST", "/api/v1/auth/logout", bearer, "", nil), http.StatusNoContent)
	wantProblem(t, h.do(t, "GET", "/api/v1/sessions", bearer, "", nil), http.StatusUnauthorized, "unauthenticated")
	wantProblem(t, h.do(t, "POST", "/api/v1/auth/logout", bearer, "", nil), http.StatusUnauthorized, "unauthenticated")
	wantStatus(t, h.do(t, "GET", "/api/v1/sessions", h.a.Auth(), "", nil), http.StatusOK)
}
