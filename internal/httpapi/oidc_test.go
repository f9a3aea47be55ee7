package httpapi_test

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/idvault/idvault/internal/audit"
	"github.com/idvault/idvault/internal/authz"
	"github.com/idvault/idvault/internal/httpapi"
	"github.com/idvault/idvault/internal/identity"
	"github.com/idvault/idvault/internal/identity/oidctest"
	"github.com/idvault/idvault/internal/ratelimit"
	"github.com/idvault/idvault/internal/secret"
)

// ssoHarness is the API harness with tenant a signing in through a real
// OpenID provider named "corp" (oidc-provider on loopback HTTP). The
// harness clock is set to the wall clock, which stamps the provider's
// tokens.
type ssoHarness struct {
	*harness
	op       *oidctest.Provider
	tr       *http.Transport // the browsers': trusts the API's certificate
	redirect string
	group    string // mapped from the groups claim value "kyc"
}

const ssoClientSecret = "idvault-client-secret-for-tests"

func newSSOHarness(t *testing.T, opts ...func(*httpapi.Deps)) *ssoHarness {
	t.Helper()
	h := newHarness(t, opts...)
	h.clock.Advance(time.Since(h.clock.Now()))
	s := &ssoHarness{harness: h, redirect: h.srv.URL + "/api/v1/auth/oidc/corp/callback"}
	s.op = oidctest.Start(t, oidctest.Config{
		Clients: []oidctest.Client{{ID: "idvault", Secret: ssoClientSecret, RedirectURIs: []string{s.redirect}}},
		Accounts: map[string]map[string]any{
			"alice": {"email": "alice@example.com", "email_verified": true, "roles": []string{"idv-review", "idv-root"}, "groups": []string{"kyc"}},
			"eve":   {"email": "eve@example.com", "email_verified": true, "roles": []string{"Administrators", "idv-root"}},
			"forge": {"roles": []string{"idv-admin"}, "_tamper": "aud"},
		},
	})
	g, err := h.identity.CreateGroup(t.Context(), h.a.ID, "kyc")
	if err != nil {
		t.Fatal(err)
	}
	s.group = g.ID
	idpTransport := &http.Transport{}
	s.tr = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: h.roots, ServerName: "localhost", MinVersion: tls.VersionTLS12}}
	t.Cleanup(func() {
		idpTransport.CloseIdleConnections()
		s.tr.CloseIdleConnections()
	})
	err = h.identity.ConfigureOIDC([]identity.OIDCProvider{{
		Name: "corp", Tenant: h.a.ID, Issuer: s.op.Issuer, ClientID: "idvault", ClientSecret: secret.New([]byte(ssoClientSecret)),
		RedirectURL: s.redirect, Scopes: []string{"email", "groups"}, RolesClaim: "roles", GroupsClaim: "groups",
		Roles:  map[string]string{"idv-review": authz.RoleVerifier, "idv-admin": authz.RoleAdmin},
		Groups: map[string]string{"kyc": g.ID},
	}}, &http.Client{Transport: idpTransport})
	if err != nil {
		t.Fatalf("ConfigureOIDC = %v", err)
	}
	return s
}

// browser is a fresh browser: it keeps cookies and does not follow
// redirects by itself.
func (s *ssoHarness) browser(t *testing.T) *http.Client {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Jar: jar, Transport: s.tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// get sends GET target from browser b, with extra headers.
func (s *ssoHarness) get(t *testing.T, b *http.Client, target string, header map[string]string) response {
	t.Helper()
	return s.call(t, b, "GET", target, header)
}

func (s *ssoHarness) call(t *testing.T, b *http.Client, method, target string, header map[string]string) response {
	t.Helper()
	if strings.HasPrefix(target, "/") {
		target = s.srv.URL + target
	}
	req, err := http.NewRequestWithContext(t.Context(), method, target, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	res, err := b.Do(req)
	if err != nil {
		t.Fatalf("%s %s = %v", method, target, err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{status: res.StatusCode, proto: res.Proto, header: res.Header, body: body}
}

func cookieOf(res response, name string) *http.Cookie {
	for _, c := range (&http.Response{Header: res.header}).Cookies() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// ssoFlow is one sign-in: the login redirect, the state cookie it set, and
// the callback URL the provider sent the browser back to.
type ssoFlow struct {
	login    response
	state    *http.Cookie
	callback string
}

// begin starts a sign-in in browser b (query appended to the login route)
// and plays the browser at the provider as account.
func (s *ssoHarness) begin(t *testing.T, b *http.Client, query, account string) ssoFlow {
	t.Helper()
	res := s.get(t, b, "/api/v1/auth/oidc/corp/login"+query, nil)
	wantStatus(t, res, http.StatusFound)
	fl := ssoFlow{login: res, state: cookieOf(res, httpapi.OIDCStateCookie)}
	if fl.state == nil {
		t.Fatalf("login set no %s cookie: %v", httpapi.OIDCStateCookie, res.header)
	}
	back, err := s.op.Authorize(t.Context(), b, res.header.Get("Location"), oidctest.Login{Account: account, AMR: []string{"pwd", "otp"}})
	if err != nil {
		t.Fatalf("Authorize = %v", err)
	}
	fl.callback = back.String()
	if !strings.HasPrefix(fl.callback, s.redirect+"?") {
		t.Fatalf("provider redirected to %s, want %s", fl.callback, s.redirect)
	}
	return fl
}

// signIn signs account in with a fresh browser and returns it, with the
// callback's answer.
func (s *ssoHarness) signIn(t *testing.T, account string) (*http.Client, response) {
	t.Helper()
	b := s.browser(t)
	fl := s.begin(t, b, "", account)
	return b, s.get(t, b, fl.callback, nil)
}

// TestOIDCConsoleSignIn drives single sign-on as a browser would: login
// redirect, the real provider's sign-in and consent, callback; then the
// console session works like a password sign-in's: the same cookie, CSRF
// required, roles from the claim mapping only, sign-out. The state cookie is
// HttpOnly, Secure, SameSite=Lax, short-lived and cleared by the callback,
// and the sign-in is audited without personal data.
func TestOIDCConsoleSignIn(t *testing.T) {
	s := newSSOHarness(t)
	b := s.browser(t)
	fl := s.begin(t, b, "", "alice")
	st := fl.state
	if !st.HttpOnly || !st.Secure || st.SameSite != http.SameSiteLaxMode || st.Path != "/api/v1/auth/oidc/corp/" ||
		st.MaxAge != int(identity.OIDCStateTTL/time.Second) {
		t.Errorf("state cookie = %+v; want HttpOnly, Secure, SameSite=Lax, Path=/api/v1/auth/oidc/corp/, Max-Age=%d", st, int(identity.OIDCStateTTL/time.Second))
	}
	auth, _ := url.Parse(fl.login.header.Get("Location"))
	q := auth.Query()
	if !strings.HasPrefix(auth.String(), s.op.Issuer+"/") || q.Get("redirect_uri") != s.redirect || q.Get("code_challenge_method") != "S256" ||
		q.Get("state") == "" || q.Get("nonce") == "" || q.Get("client_id") != "idvault" || !slices.Contains(strings.Fields(q.Get("scope")), "openid") {
		t.Errorf("authorization URL = %s; want the provider's, with the exact redirect URI, S256 PKCE, state, nonce and scope openid", auth)
	}

	res := s.get(t, b, fl.callback, nil)
	wantStatus(t, res, http.StatusOK)
	var body struct {
		CSRFToken   string    `json:"csrfToken"`
		ExpiresAt   time.Time `json:"expiresAt"`
		IdleTimeout int       `json:"idleTimeout"`
	}
	if err := json.Unmarshal(res.body, &body); err != nil || body.CSRFToken == "" || body.IdleTimeout != int(identity.SessionIdle/time.Second) {
		t.Fatalf("callback body = %s, %v; want a CSRF token and the idle timeout", res.body, err)
	}
	if c := cookieOf(res, httpapi.OIDCStateCookie); c == nil || c.MaxAge >= 0 {
		t.Errorf("callback state cookie = %+v, want it cleared", c)
	}
	got := cookieOf(res, httpapi.SessionCookie)
	want := s.login(t, s.a).raw
	if got == nil || got.HttpOnly != want.HttpOnly || got.Secure != want.Secure || got.SameSite != want.SameSite ||
		got.Path != want.Path || got.MaxAge != want.MaxAge || !strings.HasPrefix(got.Value, "idvc."+s.a.ID+".") {
		t.Fatalf("session cookie = %+v, want the attributes of a password sign-in's %+v", got, want)
	}
	ev := s.auditEvent(t, s.a.ID, res.header.Get("X-Request-Id"), "auth.oidc_login")
	if ev.Outcome != audit.Success || ev.Actor.Type != "user" || ev.Details["provider"] != "corp" || ev.Details["amr"] != "pwd otp" ||
		ev.Details["provisioned"] != "true" {
		t.Errorf("audit event = %+v; want success by the user, provider corp, amr \"pwd otp\", provisioned", ev)
	}
	raw, _ := json.Marshal(ev.Details)
	if bytes.Contains(raw, []byte("alice")) || bytes.Contains(raw, []byte("example.com")) {
		t.Errorf("audit details = %s, want no subject or email", raw)
	}

	wantStatus(t, s.get(t, b, "/api/v1/sessions", nil), http.StatusOK)
	before := s.snapshot(t)
	res = s.call(t, b, "POST", "/api/v1/groups", map[string]string{httpapi.CSRFHeader: body.CSRFToken})
	wantProblem(t, res, http.StatusForbidden, "forbidden") // a verifier, by the mapping: idv-root gave nothing
	res = s.call(t, b, "POST", "/api/v1/auth/logout", nil)
	wantProblem(t, res, http.StatusForbidden, "csrf")
	s.unchanged(t, before)
	wantStatus(t, s.call(t, b, "POST", "/api/v1/auth/logout", map[string]string{httpapi.CSRFHeader: body.CSRFToken}), http.StatusNoContent)
	wantProblem(t, s.get(t, b, "/api/v1/sessions", nil), http.StatusUnauthorized, "unauthenticated")

	users := decodeJSON[struct {
		Items []struct {
			ID       string   `json:"id"`
			Username string   `json:"username"`
			Roles    []string `json:"roles"`
		} `json:"items"`
	}](t, s.do(t, "GET", "/api/v1/users", s.a.Auth(), "", nil))
	found := false
	for _, u := range users.Items {
		if u.Username == "corp:alice" {
			found = slices.Equal(u.Roles, []string{authz.RoleVerifier})
			g, err := s.identity.Group(t.Context(), s.a.ID, s.group)
			if err != nil || !slices.Contains(g.Members, u.ID) {
				t.Errorf("group kyc = %+v, %v; want the user a member", g, err)
			}
		}
	}
	if !found {
		t.Errorf("users = %+v, want corp:alice with roles [verifier]", users.Items)
	}
}

// TestOIDCBanner: with a sign-in banner, single sign-on begins only with
// its acknowledgement, which the audit record keeps.
func TestOIDCBanner(t *testing.T) {
	const text = "Authorised use only."
	s := newSSOHarness(t, func(d *httpapi.Deps) { d.Banner = text })
	b := s.browser(t)
	wantProblem(t, s.get(t, b, "/api/v1/auth/oidc/corp/login", nil), http.StatusBadRequest, "invalid-request")
	wantProblem(t, s.get(t, b, "/api/v1/auth/oidc/corp/login?bannerAck="+httpapi.BannerID("an older banner"), nil), http.StatusBadRequest, "invalid-request")
	fl := s.begin(t, b, "?bannerAck="+httpapi.BannerID(text), "alice")
	res := s.get(t, b, fl.callback, nil)
	wantStatus(t, res, http.StatusOK)
	if ev := s.auditEvent(t, s.a.ID, res.header.Get("X-Request-Id"), "auth.oidc_login"); ev.Details["bannerAcknowledged"] != httpapi.BannerID(text) {
		t.Errorf("audit details = %v, want the banner acknowledged", ev.Details)
	}
}

// TestOIDCConsoleAttacks attacks the routes: a forged or altered state, a
// callback replayed, a callback link opened in another browser (login
// CSRF), an ID token for another audience, claims that map to no role, a
// disabled user, a suspended tenant, an unknown provider and a flood. Each
// is refused with problem+json, audited in the tenant's log with its
// reason, and opens no session.
func TestOIDCConsoleAttacks(t *testing.T) {
	s := newSSOHarness(t)
	refused := func(t *testing.T, res response, status int, slug, reason string) {
		t.Helper()
		wantProblem(t, res, status, slug)
		if cookieOf(res, httpapi.SessionCookie) != nil {
			t.Errorf("a refused sign-in set a session cookie")
		}
		ev := s.auditEvent(t, s.a.ID, res.header.Get("X-Request-Id"), "auth.oidc_login")
		if ev.Outcome != audit.Denied || ev.Reason != reason {
			t.Errorf("audit event = %+v, want denied with reason %q", ev, reason)
		}
	}
	withState := func(fl ssoFlow, edit func(url.Values)) string {
		u, _ := url.Parse(fl.callback)
		q := u.Query()
		edit(q)
		u.RawQuery = q.Encode()
		return u.String()
	}

	t.Run("altered state", func(t *testing.T) {
		b := s.browser(t)
		fl := s.begin(t, b, "", "alice")
		res := s.get(t, b, withState(fl, func(q url.Values) { q.Set("state", q.Get("state")+"A") }), nil)
		refused(t, res, http.StatusUnauthorized, "sso-failed", "state mismatch")
	})
	t.Run("forged state cookie", func(t *testing.T) {
		b := s.browser(t)
		fl := s.begin(t, b, "", "alice")
		forged := fl.state.Value[:len(fl.state.Value)-2] + "AA"
		res := s.get(t, s.browser(t), fl.callback, map[string]string{"Cookie": httpapi.OIDCStateCookie + "=" + forged})
		refused(t, res, http.StatusUnauthorized, "sso-failed", "state cookie invalid")
	})
	t.Run("replayed callback", func(t *testing.T) {
		b := s.browser(t)
		fl := s.begin(t, b, "", "alice")
		cookie := map[string]string{"Cookie": httpapi.OIDCStateCookie + "=" + fl.state.Value}
		wantStatus(t, s.get(t, s.browser(t), fl.callback, cookie), http.StatusOK)
		res := s.get(t, s.browser(t), fl.callback, cookie)
		refused(t, res, http.StatusUnauthorized, "sso-failed", "state replayed")
	})
	t.Run("callback link in another browser", func(t *testing.T) {
		fl := s.begin(t, s.browser(t), "", "eve")
		res := s.get(t, s.browser(t), fl.callback, nil)
		refused(t, res, http.StatusUnauthorized, "sso-failed", "state cookie missing or malformed")
	})
	t.Run("token for another audience", func(t *testing.T) {
		_, res := s.signIn(t, "forge")
		refused(t, res, http.StatusUnauthorized, "sso-failed", "id token invalid")
	})
	t.Run("no mapped role", func(t *testing.T) {
		_, res := s.signIn(t, "eve")
		refused(t, res, http.StatusForbidden, "sso-denied", "no mapped role")
	})
	t.Run("disabled user", func(t *testing.T) {
		_, res := s.signIn(t, "alice")
		wantStatus(t, res, http.StatusOK)
		ev := s.auditEvent(t, s.a.ID, res.header.Get("X-Request-Id"), "auth.oidc_login")
		wantStatus(t, s.do(t, "POST", "/api/v1/users/"+ev.Actor.ID+"/disable", s.a.Auth(), "", nil), http.StatusNoContent)
		_, res = s.signIn(t, "alice")
		refused(t, res, http.StatusForbidden, "sso-denied", "user disabled")
		wantStatus(t, s.do(t, "POST", "/api/v1/users/"+ev.Actor.ID+"/enable", s.a.Auth(), "", nil), http.StatusNoContent)
	})
	t.Run("suspended tenant", func(t *testing.T) {
		b := s.browser(t)
		fl := s.begin(t, b, "", "alice")
		if err := s.identity.SetTenantStatus(t.Context(), s.a.ID, identity.TenantSuspended); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = s.identity.SetTenantStatus(t.Context(), s.a.ID, identity.TenantActive) }()
		refused(t, s.get(t, b, fl.callback, nil), http.StatusForbidden, "sso-denied", "tenant suspended")
		refused(t, s.get(t, b, "/api/v1/auth/oidc/corp/login", nil), http.StatusForbidden, "sso-denied", "tenant suspended")
	})
	t.Run("unknown provider", func(t *testing.T) {
		b := s.browser(t)
		wantProblem(t, s.get(t, b, "/api/v1/auth/oidc/nope/login", nil), http.StatusNotFound, "not-found")
		wantProblem(t, s.get(t, b, "/api/v1/auth/oidc/nope/callback?state=x&code=y", nil), http.StatusNotFound, "not-found")
	})
}

// TestOIDCRateLimit: both routes take from the per-address sign-in budget,
// as password sign-in does.
func TestOIDCRateLimit(t *testing.T) {
	s := newSSOHarness(t, withLimits(t, ratelimit.Profile{Name: "test", MaxBuckets: 1024,
		Address: ratelimit.Limit{Rate: 100, Burst: 100}, Principal: ratelimit.Limit{Rate: 100, Burst: 100},
		SignIn: ratelimit.Limit{Rate: 0.01, Burst: 3}}))
	b := s.browser(t)
	fl := s.begin(t, b, "", "alice")
	wantStatus(t, s.get(t, b, fl.callback, nil), http.StatusOK)
	wantStatus(t, s.get(t, b, "/api/v1/auth/oidc/corp/login", nil), http.StatusFound)
	res := s.get(t, b, "/api/v1/auth/oidc/corp/login", nil)
	wantProblem(t, res, http.StatusTooManyRequests, "rate-limited")
	wantProblem(t, s.get(t, b, "/api/v1/auth/oidc/corp/callback", nil), http.StatusTooManyRequests, "rate-limited")
	body := []byte(`{"tenantId":"` + s.a.ID + `","username":"admin","password":"` + s.a.Password + `"}`)
	wantProblem(t, s.do(t, "POST", "/api/v1/auth/login", "", "application/json", body), http.StatusTooManyRequests, "rate-limited")
}
