package identity_test

import (
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/idvault/idvault/internal/authz"
	"github.com/idvault/idvault/internal/identity"
	"github.com/idvault/idvault/internal/identity/oidctest"
	"github.com/idvault/idvault/internal/secret"
	"github.com/idvault/idvault/internal/store"
)

const (
	ssoRedirect = "https://idvault.test/api/v1/auth/oidc/corp/callback"
	ssoSecret   = "corp-client-secret-for-tests"
)

// ssoFixture is an identity service with a tenant signing in through a real
// OpenID provider ("corp"); its clock is the wall clock's time at the
// start, since the provider stamps tokens with the wall clock.
type ssoFixture struct {
	*fixture
	op     *oidctest.Provider
	tenant string
	group  string // mapped from the groups claim value "kyc"
	other  string // a group the mapping does not name
	corp   identity.OIDCProvider
	client *http.Client
}

func newSSO(t testing.TB) *ssoFixture {
	t.Helper()
	ctx := t.Context()
	f := newFixture(t)
	f.clock.Advance(time.Since(f.clock.Now()))
	s := &ssoFixture{fixture: f, tenant: f.tenant(t, "acme").ID}
	for _, g := range []*string{&s.group, &s.other} {
		created, err := f.svc.CreateGroup(ctx, s.tenant, "team")
		if err != nil {
			t.Fatalf("CreateGroup = %v", err)
		}
		*g = created.ID
	}
	if _, err := f.svc.PutRole(ctx, s.tenant, "kyc-lead", []string{string(authz.SessionReadAll)}); err != nil {
		t.Fatalf("PutRole = %v", err)
	}
	s.op = oidctest.Start(t, oidctest.Config{
		Clients: []oidctest.Client{
			{ID: "idvault", Secret: ssoSecret, RedirectURIs: []string{ssoRedirect}},
			{ID: "other-app", Secret: "other-secret", RedirectURIs: []string{ssoRedirect}},
		},
		Accounts: map[string]map[string]any{
			"alice": {"email": "alice@example.com", "email_verified": true,
				"roles": []string{"idv-review", "idv-root", "idv-ghost"}, "groups": []string{"kyc", "sales"}},
			"nobody": {"email": "nobody@example.com", "email_verified": true, "roles": []string{"idv-root", "Administrators"}},
		},
	})
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	s.client = &http.Client{Transport: tr}
	s.corp = identity.OIDCProvider{
		Name: "corp", Tenant: s.tenant, Issuer: s.op.Issuer, ClientID: "idvault", ClientSecret: secret.New([]byte(ssoSecret)),
		RedirectURL: ssoRedirect, Scopes: []string{"email", "groups"}, RolesClaim: "roles", GroupsClaim: "groups",
		Roles:  map[string]string{"idv-admin": authz.RoleAdmin, "idv-review": authz.RoleVerifier, "idv-kyc": "kyc-lead", "idv-ghost": "ghost"},
		Groups: map[string]string{"kyc": s.group},
	}
	s.configure(t, s.corp)
	return s
}

func (s *ssoFixture) configure(t testing.TB, ps ...identity.OIDCProvider) {
	t.Helper()
	if err := s.svc.ConfigureOIDC(ps, s.client); err != nil {
		t.Fatalf("ConfigureOIDC = %v", err)
	}
}

func (s *ssoFixture) setAccount(t *testing.T, id string, claims map[string]any) {
	t.Helper()
	if err := s.op.SetAccount(t.Context(), id, claims); err != nil {
		t.Fatal(err)
	}
}

// browser is a fresh browser: a cookie jar and no automatic redirects.
func browser(t testing.TB, tr http.RoundTripper) *http.Client {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Jar: jar, Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// flow is one sign-in between BeginOIDC and CompleteOIDC.
type flow struct {
	start identity.OIDCStart
	cb    identity.OIDCCallback
}

// authorize begins a sign-in with provider, lets edit change the
// authorization URL, and plays the browser at the provider as login says.
func (s *ssoFixture) authorize(t testing.TB, provider string, login oidctest.Login, edit func(url.Values)) flow {
	t.Helper()
	start, err := s.svc.BeginOIDC(t.Context(), provider, "")
	if err != nil {
		t.Fatalf("BeginOIDC(%q) = %v", provider, err)
	}
	authURL := start.AuthURL
	if edit != nil {
		u, _ := url.Parse(authURL)
		q := u.Query()
		edit(q)
		u.RawQuery = q.Encode()
		authURL = u.String()
	}
	back, err := s.op.Authorize(t.Context(), browser(t, s.client.Transport), authURL, login)
	if err != nil {
		t.Fatalf("Authorize = %v", err)
	}
	if got := back.Scheme + "://" + back.Host + back.Path; got != ssoRedirect {
		t.Fatalf("provider redirected to %s, want %s", got, ssoRedirect)
	}
	q := back.Query()
	return flow{start: start, cb: identity.OIDCCallback{Cookie: start.Cookie, State: q.Get("state"), Code: q.Get("code"), Issuer: q.Get("iss"), Error: q.Get("error")}}
}

func (s *ssoFixture) signIn(t testing.TB, account string) (identity.OIDCLogin, error) {
	t.Helper()
	fl := s.authorize(t, "corp", oidctest.Login{Account: account, AMR: []string{"pwd", "mfa"}}, nil)
	return s.svc.CompleteOIDC(t.Context(), "corp", fl.cb)
}

// wantRefused checks that err is an *identity.OIDCError of kind and reason.
func wantRefused(t *testing.T, err error, kind identity.OIDCErrorKind, reason string) {
	t.Helper()
	e, ok := errors.AsType[*identity.OIDCError](err)
	if !ok || e.Kind != kind || e.Reason != reason {
		t.Fatalf("error = %v, want an OIDCError of kind %d, reason %q", err, kind, reason)
	}
}

func (s *ssoFixture) groupHas(t *testing.T, group, user string) bool {
	t.Helper()
	g, err := s.svc.Group(t.Context(), s.tenant, group)
	if err != nil {
		t.Fatal(err)
	}
	return slices.Contains(g.Members, user)
}

// TestOIDCSignIn signs in through the real provider: the user is
// provisioned once, found again by (provider, subject), its roles are
// exactly the mapped claim values (an unmapped value or a mapping to a role
// the tenant lacks gives nothing), its managed group memberships follow the
// claim, the session works and records amr, and the tenant's MFA policy is
// left to the provider. When the claims change, the next sign-in applies
// them; when no mapped role is left, the sign-in is refused.
func TestOIDCSignIn(t *testing.T) {
	s := newSSO(t)
	ctx := t.Context()
	if err := s.svc.SetPolicy(ctx, s.tenant, identity.Policy{RequireMFA: true}); err != nil {
		t.Fatal(err)
	}

	first, err := s.signIn(t, "alice")
	if err != nil {
		t.Fatalf("CompleteOIDC(alice) = %v, want nil", err)
	}
	if !first.Provisioned || first.Tenant != s.tenant || !slices.Equal(first.AMR, []string{"pwd", "mfa"}) {
		t.Errorf("CompleteOIDC(alice) = %+v, want a provisioned user of the tenant with amr [pwd mfa]", first)
	}
	u, err := s.svc.User(ctx, s.tenant, first.User)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(u.Roles, []string{authz.RoleVerifier}) || u.Username.Value() != "corp:alice" || u.PasswordHash != "" ||
		u.SSO == nil || *u.SSO != (identity.SSOAccount{Provider: "corp", Subject: "alice"}) {
		t.Errorf("provisioned user = %+v, want roles [verifier], username corp:alice, no password, SSO corp/alice", u)
	}
	p, err := s.svc.AuthenticateSession(ctx, first.Cookie)
	if err != nil || p.ID != first.User || !slices.Equal(p.Roles, []string{authz.RoleVerifier}) || p.EnrolOnly || !identity.CheckCSRF(p, first.CSRF) {
		t.Errorf("AuthenticateSession = %+v, %v; want the user with roles [verifier], not enrol-only, with its CSRF token", p, err)
	}
	if !s.groupHas(t, s.group, first.User) || s.groupHas(t, s.other, first.User) {
		t.Errorf("groups: member of kyc = %v, of unmanaged = %v; want true, false", s.groupHas(t, s.group, first.User), s.groupHas(t, s.other, first.User))
	}

	if _, err := s.svc.SetGroupMembers(ctx, s.tenant, s.other, []string{first.User}); err != nil {
		t.Fatal(err)
	}
	again, err := s.signIn(t, "alice")
	if err != nil || again.Provisioned || again.User != first.User {
		t.Fatalf("second CompleteOIDC(alice) = %+v, %v; want the same user, not provisioned again", again, err)
	}

	s.setAccount(t, "alice", map[string]any{"roles": []string{"idv-admin", "idv-kyc"}, "groups": []string{"sales"}})
	third, err := s.signIn(t, "alice")
	if err != nil {
		t.Fatalf("CompleteOIDC(alice, new claims) = %v", err)
	}
	p, err = s.svc.AuthenticateSession(ctx, third.Cookie)
	if err != nil || !slices.Equal(p.Roles, []string{authz.RoleAdmin, "kyc-lead"}) {
		t.Errorf("session roles after new claims = %v, %v; want [admin kyc-lead]", p.Roles, err)
	}
	if s.groupHas(t, s.group, first.User) || !s.groupHas(t, s.other, first.User) {
		t.Errorf("groups after the claim dropped kyc: kyc = %v, unmanaged = %v; want false, true (unmanaged groups are left alone)",
			s.groupHas(t, s.group, first.User), s.groupHas(t, s.other, first.User))
	}

	s.setAccount(t, "alice", map[string]any{"roles": []string{"Administrators", "idv-ghost"}, "groups": []string{"kyc"}})
	_, err = s.signIn(t, "alice")
	wantRefused(t, err, identity.OIDCDenied, "no mapped role")
	if u, _ := s.svc.User(ctx, s.tenant, first.User); len(u.Roles) != 0 {
		t.Errorf("roles after a refused sign-in without mapped role = %v, want none", u.Roles)
	}

	_, err = s.signIn(t, "nobody")
	wantRefused(t, err, identity.OIDCDenied, "no mapped role")
	n := 0
	if err := s.svc.Users(ctx, s.tenant, func(identity.User) error { n++; return nil }); err != nil || n != 1 {
		t.Errorf("users = %d, %v; want 1 (a user without a mapped role is not provisioned)", n, err)
	}
}

// TestOIDCAccountTakeover: users are found by (provider, subject) only. An
// account carrying a local user's email gets a user of its own, and a
// subject that would name a local user ("corp:<subject>") is refused rather
// than merged.
func TestOIDCAccountTakeover(t *testing.T) {
	s := newSSO(t)
	ctx := t.Context()
	local, err := s.svc.CreateUser(ctx, s.tenant, "alice@example.com", "a-long-local-password-1", []string{authz.RoleAdmin})
	if err != nil {
		t.Fatal(err)
	}
	squat, err := s.svc.CreateUser(ctx, s.tenant, "corp:bob", "a-long-local-password-2", []string{authz.RoleAdmin})
	if err != nil {
		t.Fatal(err)
	}
	s.setAccount(t, "mallory", map[string]any{"email": "alice@example.com", "email_verified": true, "roles": []string{"idv-review"}})
	got, err := s.signIn(t, "mallory")
	if err != nil || got.User == local.ID {
		t.Fatalf("CompleteOIDC(mallory with alice's email) = %+v, %v; want a new user, not %s", got, err, local.ID)
	}
	p, err := s.svc.AuthenticateSession(ctx, got.Cookie)
	if err != nil || !slices.Equal(p.Roles, []string{authz.RoleVerifier}) {
		t.Errorf("session = %+v, %v; want roles [verifier], not the local admin's", p, err)
	}
	s.setAccount(t, "bob", map[string]any{"roles": []string{"idv-admin"}})
	_, err = s.signIn(t, "bob")
	wantRefused(t, err, identity.OIDCDenied, "username taken")
	if u, err := s.svc.User(ctx, s.tenant, squat.ID); err != nil || u.SSO != nil {
		t.Errorf("local user corp:bob = %+v, %v; want it untouched", u, err)
	}
}

// TestOIDCRefusals: a disabled user, a suspended tenant and an email
// outside the allowed domains are refused.
func TestOIDCRefusals(t *testing.T) {
	s := newSSO(t)
	ctx := t.Context()
	first, err := s.signIn(t, "alice")
	if err != nil {
		t.Fatal(err)
	}

	if err := s.svc.SetUserDisabledByID(ctx, s.tenant, first.User, true); err != nil {
		t.Fatal(err)
	}
	_, err = s.signIn(t, "alice")
	wantRefused(t, err, identity.OIDCDenied, "user disabled")
	if err := s.svc.SetUserDisabledByID(ctx, s.tenant, first.User, false); err != nil {
		t.Fatal(err)
	}

	fl := s.authorize(t, "corp", oidctest.Login{Account: "alice"}, nil)
	s.setStatus(t, s.tenant, identity.TenantSuspended)
	_, err = s.svc.CompleteOIDC(ctx, "corp", fl.cb)
	wantRefused(t, err, identity.OIDCDenied, "tenant suspended")
	_, err = s.svc.BeginOIDC(ctx, "corp", "")
	wantRefused(t, err, identity.OIDCDenied, "tenant suspended")
	s.setStatus(t, s.tenant, identity.TenantActive)

	strict := s.corp
	strict.AllowedDomains = []string{"example.org"}
	s.configure(t, strict)
	_, err = s.signIn(t, "alice")
	wantRefused(t, err, identity.OIDCDenied, "email domain not allowed")
	s.setAccount(t, "alice", map[string]any{"email": "alice@example.org", "email_verified": false, "roles": []string{"idv-review"}})
	_, err = s.signIn(t, "alice")
	wantRefused(t, err, identity.OIDCDenied, "email missing or not verified")
	s.setAccount(t, "alice", map[string]any{"email": "alice@example.org", "email_verified": true, "roles": []string{"idv-review"}})
	if _, err := s.signIn(t, "alice"); err != nil {
		t.Errorf("CompleteOIDC(verified email of an allowed domain) = %v, want nil", err)
	}

	if _, err := s.svc.BeginOIDC(ctx, "nope", ""); !errors.Is(err, identity.ErrOIDCUnknownProvider) {
		t.Errorf("BeginOIDC(unknown provider) = %v, want ErrOIDCUnknownProvider", err)
	}
}

// TestOIDCStateAttacks: the state cookie cannot be forged, altered, moved to
// another provider, used after its expiry, or used twice, and the state the
// provider returns must be the cookie's.
func TestOIDCStateAttacks(t *testing.T) {
	s := newSSO(t)
	ctx := t.Context()
	other := s.corp
	other.Name = "corp2"
	s.configure(t, s.corp, other)

	flip := func(c string) string {
		b, _ := base64.RawURLEncoding.DecodeString(c)
		b[len(b)/2] ^= 1
		return base64.RawURLEncoding.EncodeToString(b)
	}
	otherStart, err := s.svc.BeginOIDC(ctx, "corp2", "")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		edit   func(*identity.OIDCCallback)
		reason string
	}{
		{"no cookie", func(cb *identity.OIDCCallback) { cb.Cookie = "" }, "state cookie missing or malformed"},
		{"garbage cookie", func(cb *identity.OIDCCallback) { cb.Cookie = "not base64!" }, "state cookie missing or malformed"},
		{"altered cookie", func(cb *identity.OIDCCallback) { cb.Cookie = flip(cb.Cookie) }, "state cookie invalid"},
		{"another provider's cookie", func(cb *identity.OIDCCallback) { cb.Cookie = otherStart.Cookie }, "state cookie invalid"},
		{"altered state", func(cb *identity.OIDCCallback) { cb.State += "x" }, "state mismatch"},
		{"no state", func(cb *identity.OIDCCallback) { cb.State = "" }, "state mismatch"},
		{"issuer mix-up", func(cb *identity.OIDCCallback) { cb.Issuer = "https://evil.example" }, "issuer mismatch"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fl := s.authorize(t, "corp", oidctest.Login{Account: "alice"}, nil)
			cb := fl.cb
			tt.edit(&cb)
			_, err := s.svc.CompleteOIDC(ctx, "corp", cb)
			wantRefused(t, err, identity.OIDCFailed, tt.reason)
		})
	}

	t.Run("replayed", func(t *testing.T) {
		fl := s.authorize(t, "corp", oidctest.Login{Account: "alice"}, nil)
		if _, err := s.svc.CompleteOIDC(ctx, "corp", fl.cb); err != nil {
			t.Fatalf("first CompleteOIDC = %v, want nil", err)
		}
		_, err := s.svc.CompleteOIDC(ctx, "corp", fl.cb)
		wantRefused(t, err, identity.OIDCFailed, "state replayed")
	})

	t.Run("spent even when refused", func(t *testing.T) {
		fl := s.authorize(t, "corp", oidctest.Login{Account: "alice"}, nil)
		bad := fl.cb
		bad.Issuer = "https://evil.example"
		if _, err := s.svc.CompleteOIDC(ctx, "corp", bad); err == nil {
			t.Fatal("CompleteOIDC(wrong iss) = nil, want an error")
		}
		_, err := s.svc.CompleteOIDC(ctx, "corp", fl.cb)
		wantRefused(t, err, identity.OIDCFailed, "state replayed")
	})

	t.Run("expired", func(t *testing.T) {
		fl := s.authorize(t, "corp", oidctest.Login{Account: "alice"}, nil)
		s.clock.Advance(identity.OIDCStateTTL)
		defer s.clock.Advance(-identity.OIDCStateTTL)
		_, err := s.svc.CompleteOIDC(ctx, "corp", fl.cb)
		wantRefused(t, err, identity.OIDCFailed, "state expired")
	})

	t.Run("another tenant's key", func(t *testing.T) {
		moved := s.corp
		moved.Tenant = s.fixture.tenant(t, "globex").ID
		s.configure(t, moved)
		fl := s.authorize(t, "corp", oidctest.Login{Account: "alice"}, nil)
		s.configure(t, s.corp, other)
		_, err := s.svc.CompleteOIDC(ctx, "corp", fl.cb)
		wantRefused(t, err, identity.OIDCFailed, "state cookie invalid")
	})
}

// TestOIDCTokenAttacks: the real provider's token endpoint hands back ID
// tokens with one defect each (another audience, another issuer, expired, a
// signature by an unpublished key, no signature), codes injected into
// another sign-in, codes of another client, and tokens whose nonce is not
// this sign-in's. Every one is refused and nothing is provisioned.
func TestOIDCTokenAttacks(t *testing.T) {
	s := newSSO(t)
	ctx := t.Context()
	for _, mode := range []string{"aud", "iss", "exp", "sig", "none"} {
		s.setAccount(t, "tamper-"+mode, map[string]any{"roles": []string{"idv-admin"}, "_tamper": mode})
	}
	tests := []struct {
		name    string
		account string
		edit    func(url.Values)
		reason  string
		detail  string // in the logged error: the check that caught it
	}{
		{"another audience", "tamper-aud", nil, "id token invalid", "expected audience"},
		{"another issuer", "tamper-iss", nil, "id token invalid", "issued by a different provider"},
		{"expired", "tamper-exp", nil, "id token expired", "expired"},
		{"unpublished key", "tamper-sig", nil, "id token invalid", "signature"},
		{"alg none", "tamper-none", nil, "id token invalid", `algorithm "none"`},
		{"wrong nonce", "alice", func(q url.Values) { q.Set("nonce", "attacker-chosen-nonce") }, "nonce mismatch", ""},
		{"no nonce", "alice", func(q url.Values) { q.Del("nonce") }, "nonce mismatch", ""},
		{"code of another client", "alice", func(q url.Values) { q.Set("client_id", "other-app") }, "code exchange failed", "invalid_grant"},
		{"PKCE challenge not ours", "alice", func(q url.Values) {
			q.Set("code_challenge", "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM")
		}, "code exchange failed", "invalid_grant"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fl := s.authorize(t, "corp", oidctest.Login{Account: tt.account}, tt.edit)
			_, err := s.svc.CompleteOIDC(ctx, "corp", fl.cb)
			wantRefused(t, err, identity.OIDCFailed, tt.reason)
			if !strings.Contains(err.Error(), tt.detail) {
				t.Errorf("error = %v, want the cause %q", err, tt.detail)
			}
		})
	}

	t.Run("code injected into another sign-in", func(t *testing.T) {
		victim := s.authorize(t, "corp", oidctest.Login{Account: "alice"}, nil)
		attacker := s.authorize(t, "corp", oidctest.Login{Account: "nobody"}, nil)
		cb := victim.cb
		cb.Code = attacker.cb.Code
		_, err := s.svc.CompleteOIDC(ctx, "corp", cb)
		wantRefused(t, err, identity.OIDCFailed, "code exchange failed")
	})

	t.Run("refused at the provider", func(t *testing.T) {
		fl := s.authorize(t, "corp", oidctest.Login{Deny: true}, nil)
		_, err := s.svc.CompleteOIDC(ctx, "corp", fl.cb)
		wantRefused(t, err, identity.OIDCFailed, "provider returned an error")
	})

	n := 0
	if err := s.svc.Users(ctx, s.tenant, func(identity.User) error { n++; return nil }); err != nil || n != 0 {
		t.Errorf("users after the attacks = %d, %v; want 0", n, err)
	}
}

// TestConfigureOIDC: providers that could never sign anyone in safely are
// refused as a whole.
func TestConfigureOIDC(t *testing.T) {
	f := newFixture(t)
	good := identity.OIDCProvider{Name: "corp", Tenant: identity.NewID(), Issuer: "https://login.example.com", ClientID: "c",
		ClientSecret: secret.New([]byte("s")), RedirectURL: ssoRedirect, RolesClaim: "roles", Roles: map[string]string{"a": authz.RoleAdmin}}
	tests := []struct {
		name string
		edit func(*identity.OIDCProvider)
	}{
		{"http issuer", func(p *identity.OIDCProvider) { p.Issuer = "http://login.example.com" }},
		{"http redirect", func(p *identity.OIDCProvider) { p.RedirectURL = "http://idvault.test/cb" }},
		{"no secret", func(p *identity.OIDCProvider) { p.ClientSecret = secret.Value{} }},
		{"platform tenant", func(p *identity.OIDCProvider) { p.Tenant = store.PlatformTenant }},
		{"device role", func(p *identity.OIDCProvider) { p.Roles["phone"] = authz.RoleDevice }},
		{"no role mapping", func(p *identity.OIDCProvider) { p.Roles = nil }},
		{"groups without claim", func(p *identity.OIDCProvider) { p.Groups = map[string]string{"g": identity.NewID()} }},
	}
	if err := f.svc.ConfigureOIDC([]identity.OIDCProvider{good}, nil); err != nil {
		t.Fatalf("ConfigureOIDC(good) = %v, want nil", err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := good
			p.Roles = map[string]string{"a": authz.RoleAdmin}
			tt.edit(&p)
			if err := f.svc.ConfigureOIDC([]identity.OIDCProvider{p}, nil); err == nil || !strings.Contains(err.Error(), `"corp"`) {
				t.Errorf("ConfigureOIDC(%s) = %v, want an error naming the provider", tt.name, err)
			}
		})
	}
	if err := f.svc.ConfigureOIDC([]identity.OIDCProvider{good, good}, nil); err == nil {
		t.Errorf("ConfigureOIDC(a provider twice) = nil, want an error")
	}
	_, err := f.svc.BeginOIDC(context.Background(), "corp", "")
	wantRefused(t, err, identity.OIDCDenied, "unknown tenant") // the good configuration stayed
}

// FuzzOIDCCallback feeds arbitrary state cookies and states to the
// callback: none opens a sign-in, and each is refused as a failed
// verification before the provider is contacted (its issuer does not
// resolve).
func FuzzOIDCCallback(f *testing.F) {
	fx := newFixture(f)
	tenant := fx.tenant(f, "acme").ID
	err := fx.svc.ConfigureOIDC([]identity.OIDCProvider{{Name: "corp", Tenant: tenant, Issuer: "https://login.invalid", ClientID: "c",
		ClientSecret: secret.New([]byte("s")), RedirectURL: ssoRedirect, RolesClaim: "roles", Roles: map[string]string{"a": authz.RoleAdmin}}}, nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Add("", "")
	f.Add("AQAAAAA", "state")
	f.Add(base64.RawURLEncoding.EncodeToString(make([]byte, 64)), "")
	f.Add("eyJpZCI6IngiLCJzdGF0ZSI6InMifQ", "s")
	f.Fuzz(func(t *testing.T, cookie, state string) {
		_, err := fx.svc.CompleteOIDC(context.Background(), "corp", identity.OIDCCallback{Cookie: cookie, State: state, Code: "code"})
		if e, ok := errors.AsType[*identity.OIDCError](err); !ok || e.Kind != identity.OIDCFailed || !strings.HasPrefix(e.Reason, "state cookie") {
			t.Fatalf("CompleteOIDC(cookie %q, state %q) = %v, want a refused state cookie", cookie, state, err)
		}
	})
}

// BenchmarkOIDCSignIn measures one whole single sign-on against the real
// provider on loopback: BeginOIDC, the provider's sign-in and consent (a
// fresh browser each time), then CompleteOIDC: code exchange, ID token
// verification, user update, group mapping and console session.
func BenchmarkOIDCSignIn(b *testing.B) {
	s := newSSO(b)
	for b.Loop() {
		if _, err := s.signIn(b, "alice"); err != nil {
			b.Fatal(err)
		}
	}
}
