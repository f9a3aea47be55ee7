package identity

import (
	"context"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/idvault/idvault/internal/pii"
	"maps"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/idvault/idvault/internal/authz"
	"github.com/idvault/idvault/internal/barrier"
	"github.com/idvault/idvault/internal/secret"
	"github.com/idvault/idvault/internal/store"
)

// OpenID Connect single sign-on to the console (authorization code flow
// with PKCE). BeginOIDC sends the browser to the provider with a fresh
// state, nonce and PKCE verifier, sealed by the barrier (under the tenant's
// key, bound to the provider) into a short-lived cookie; CompleteOIDC opens
// that cookie, requires the state the provider returned to match it, spends
// the state once (a second use is refused), exchanges the code with the
// verifier, and verifies the ID token with go-oidc: signature by a key the
// issuer publishes (never alg none), issuer, audience (and azp when there
// are several), expiry, then the nonce and the access-token hash.
//
// Users are found by (provider, subject) through a blind-indexed link,
// never by email or name, and provisioned at their first sign-in as
// "<provider>:<subject>" without a password. At every sign-in the user's
// roles become exactly the configured mapping of the roles claim's values
// (unmapped values give nothing; no mapped role is a refusal), and the
// memberships of the groups the mapping names follow the groups claim.
// Disabled users and suspended tenants are refused. The tenant's MFA policy
// is taken as met by the provider; its amr claim is recorded in the console
// session and returned for the audit record.

// Collections of single sign-on records.
const (
	// CollSSOLinks maps a blind index of (provider, subject) to a user.
	CollSSOLinks = "ssolinks"
	// CollOIDCStates records spent sign-in states until they expire.
	CollOIDCStates = "oidcstates"
)

// OIDCStateTTL is how long a sign-in may take at the provider.
const OIDCStateTTL = 10 * time.Minute

// OIDCProvider configures one OpenID provider of one tenant.
type OIDCProvider struct {
	// Name names the provider in its routes.
	Name string
	// Tenant is the tenant whose users sign in through it.
	Tenant string
	// Issuer is the issuer URL, exactly as the provider states it.
	Issuer string
	// ClientID and ClientSecret are this platform's client credentials
	// at the provider.
	ClientID     string
	ClientSecret secret.Value
	// RedirectURL is the callback URL registered at the provider.
	RedirectURL string
	// Scopes are requested besides openid.
	Scopes []string
	// RolesClaim and GroupsClaim name the claims whose values Roles and
	// Groups map to roles and to group ids.
	RolesClaim  string
	GroupsClaim string
	Roles       map[string]string
	Groups      map[string]string
	// AllowedDomains, when set, admit only verified emails of these
	// domains.
	AllowedDomains []string
}

// SSOAccount names the provider account of a user provisioned by single
// sign-on.
type SSOAccount struct {
	Provider string `json:"provider"`
	Subject  string `json:"subject"`
}

// ErrOIDCUnknownProvider means no provider of that name is configured.
var ErrOIDCUnknownProvider = errors.New("identity: unknown OIDC provider")

// OIDCErrorKind classifies a failed OIDC sign-in.
type OIDCErrorKind int

// Kinds of OIDC failure.
const (
	// OIDCFailed means the response did not verify: state, code or token.
	OIDCFailed OIDCErrorKind = iota + 1
	// OIDCDenied means the account verified but may not sign in here.
	OIDCDenied
	// OIDCUnavailable means the provider could not be reached.
	OIDCUnavailable
)

// OIDCError is a failed OIDC sign-in. Reason is a short fixed phrase for the
// audit record (never personal data); Err, when set, is detail for the log.
type OIDCError struct {
	Kind   OIDCErrorKind
	Reason string
	// Tenant is the provider's tenant.
	Tenant string
	Err    error
}

func (e *OIDCError) Error() string {
	if e.Err != nil {
		return "oidc sign-in: " + e.Reason + ": " + e.Err.Error()
	}
	return "oidc sign-in: " + e.Reason
}

// Unwrap returns the underlying error.
func (e *OIDCError) Unwrap() error { return e.Err }

// OIDCStart is where BeginOIDC sends the browser, and the state cookie
// value to set until ExpiresAt.
type OIDCStart struct {
	AuthURL   string
	Cookie    string
	ExpiresAt time.Time
}

// OIDCCallback is what the provider's redirect brought back: the query
// parameters code, state, iss (RFC 9207) and error, and the state cookie.
type OIDCCallback struct {
	Cookie string
	State  string
	Code   string
	Issuer string
	Error  string
}

// OIDCLogin is a completed OIDC sign-in: the console session, whose user
// signed in, and what the audit record needs.
type OIDCLogin struct {
	ConsoleLogin
	Tenant string
	User   string
	// Provisioned is true when this sign-in created the user.
	Provisioned bool
	// AMR is the ID token's amr claim (how the provider authenticated).
	AMR []string
	// BannerAck is the sign-in banner id acknowledged when the sign-in
	// began.
	BannerAck string
}

type oidcSet struct {
	byName map[string]*oidcProvider
	client *http.Client
}

type oidcProvider struct {
	cfg OIDCProvider
	// mu guards the discovered provider, filled at first use.
	mu       sync.Mutex
	verifier *oidc.IDTokenVerifier
	oauth    *oauth2.Config
}

// oidcPending is the sealed content of the state cookie.
type oidcPending struct {
	ID        string    `json:"id"`
	State     string    `json:"state"`
	Nonce     string    `json:"nonce"`
	Verifier  string    `json:"verifier"`
	ExpiresAt time.Time `json:"exp"`
	BannerAck string    `json:"banner,omitempty"`
}

type ssoLink struct {
	User string `json:"user"`
}

// ConfigureOIDC replaces the OIDC providers the service signs users in
// with; client talks to them (a client with a 10-second timeout when nil).
// It does no I/O: each provider's discovery document is fetched at its
// first use. It is safe to call while sign-ins run.
func (s *Service) ConfigureOIDC(providers []OIDCProvider, client *http.Client) error {
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	set := &oidcSet{byName: map[string]*oidcProvider{}, client: client}
	var errs []error
	for _, p := range providers {
		if err := checkOIDCProvider(p); err != nil {
			errs = append(errs, fmt.Errorf("oidc provider %q: %w", p.Name, err))
			continue
		}
		if _, dup := set.byName[p.Name]; dup {
			errs = append(errs, fmt.Errorf("oidc provider %q: configured twice", p.Name))
		}
		set.byName[p.Name] = &oidcProvider{cfg: p}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	s.oidc.Store(set)
	return nil
}

func checkOIDCProvider(p OIDCProvider) error {
	var errs []error
	if p.Name == "" || p.Tenant == "" || p.Tenant == store.PlatformTenant || p.ClientID == "" || p.ClientSecret.IsZero() {
		errs = append(errs, errors.New("name, tenant, client id and client secret are required"))
	}
	if u, err := url.Parse(p.Issuer); err != nil || !(u.Scheme == "https" || u.Scheme == "http" && isLoopbackHost(u.Hostname())) {
		errs = append(errs, fmt.Errorf("issuer %q: want https (or http on a loopback host)", p.Issuer))
	}
	if u, err := url.Parse(p.RedirectURL); err != nil || u.Scheme != "https" || u.Host == "" {
		errs = append(errs, fmt.Errorf("redirect URL %q: want an absolute https URL", p.RedirectURL))
	}
	if len(p.Roles) == 0 || p.RolesClaim == "" {
		errs = append(errs, errors.New("a roles claim and at least one role mapping are required"))
	}
	for _, role := range p.Roles {
		if role == authz.RoleDevice {
			errs = append(errs, errors.New("the device role cannot be mapped to a user"))
		}
	}
	if len(p.Groups) > 0 && p.GroupsClaim == "" {
		errs = append(errs, errors.New("a groups claim is required with group mappings"))
	}
	return errors.Join(errs...)
}

func isLoopbackHost(host string) bool {
	ip := net.ParseIP(host)
	return host == "localhost" || ip != nil && ip.IsLoopback()
}

func (s *Service) oidcProvider(name string) (*oidcProvider, *http.Client, error) {
	set := s.oidc.Load()
	if set == nil {
		return nil, nil, ErrOIDCUnknownProvider
	}
	p, ok := set.byName[name]
	if !ok {
		return nil, nil, ErrOIDCUnknownProvider
	}
	return p, set.client, nil
}

// discover fetches the provider's discovery document once; a failure is
// not remembered, so the next sign-in tries again.
func (s *Service) discover(ctx context.Context, p *oidcProvider, client *http.Client) (*oidc.IDTokenVerifier, *oauth2.Config, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.verifier != nil {
		return p.verifier, p.oauth, nil
	}
	disc, err := oidc.NewProvider(oidc.ClientContext(ctx, client), p.cfg.Issuer)
	if err != nil {
		return nil, nil, fmt.Errorf("oidc discovery: %w", err)
	}
	scopes := []string{oidc.ScopeOpenID}
	for _, sc := range p.cfg.Scopes {
		if !slices.Contains(scopes, sc) {
			scopes = append(scopes, sc)
		}
	}
	p.verifier = disc.Verifier(&oidc.Config{ClientID: p.cfg.ClientID, Now: s.now})
	p.oauth = &oauth2.Config{ClientID: p.cfg.ClientID, ClientSecret: string(p.cfg.ClientSecret.Bytes()),
		Endpoint: disc.Endpoint(), RedirectURL: p.cfg.RedirectURL, Scopes: scopes}
	return p.verifier, p.oauth, nil
}

func statePlace(p *oidcProvider) barrier.Place {
	return barrier.Place{Tenant: p.cfg.Tenant, Collection: CollOIDCStates, ID: p.cfg.Name, Field: "cookie"}
}

// tenantProblem turns a tenant check failure into a refusal.
func tenantProblem(tenant string, err error) error {
	switch {
	case errors.Is(err, ErrTenantSuspended):
		return &OIDCError{Kind: OIDCDenied, Reason: "tenant suspended", Tenant: tenant}
	case errors.Is(err, ErrUnauthenticated):
		return &OIDCError{Kind: OIDCDenied, Reason: "unknown tenant", Tenant: tenant}
	}
	return err
}

// BeginOIDC starts a sign-in with provider name: it returns the provider's
// authorization URL (with state, nonce and an S256 PKCE challenge) and the
// sealed state cookie, valid for OIDCStateTTL. bannerAck is the sign-in
// banner id the caller acknowledged, carried to the audit record. An unknown
// provider is ErrOIDCUnknownProvider; a suspended tenant or an unreachable
// provider is an *OIDCError.
func (s *Service) BeginOIDC(ctx context.Context, name, bannerAck string) (OIDCStart, error) {
	p, client, err := s.oidcProvider(name)
	if err != nil {
		return OIDCStart{}, err
	}
	tenant := p.cfg.Tenant
	if err := s.checkTenant(ctx, tenant); err != nil {
		return OIDCStart{}, tenantProblem(tenant, err)
	}
	_, oauth, err := s.discover(ctx, p, client)
	if err != nil {
		return OIDCStart{}, &OIDCError{Kind: OIDCUnavailable, Reason: "provider unavailable", Tenant: tenant, Err: err}
	}
	pend := oidcPending{ID: NewID(), Verifier: oauth2.GenerateVerifier(), ExpiresAt: s.now().UTC().Add(OIDCStateTTL), BannerAck: bannerAck}
	if pend.State, err = randomToken(); err != nil {
		return OIDCStart{}, fmt.Errorf("oidc state: %w", err)
	}
	if pend.Nonce, err = randomToken(); err != nil {
		return OIDCStart{}, fmt.Errorf("oidc nonce: %w", err)
	}
	plain, err := json.Marshal(pend)
	if err != nil {
		return OIDCStart{}, fmt.Errorf("oidc state: %w", err)
	}
	sealed, err := s.barrier.Seal(ctx, statePlace(p), plain)
	if err != nil {
		return OIDCStart{}, fmt.Errorf("oidc state: %w", err)
	}
	return OIDCStart{
		AuthURL:   oauth.AuthCodeURL(pend.State, oidc.Nonce(pend.Nonce), oauth2.S256ChallengeOption(pend.Verifier)),
		Cookie:    base64.RawURLEncoding.EncodeToString(sealed),
		ExpiresAt: pend.ExpiresAt,
	}, nil
}

// openState opens and checks the state cookie against the returned state,
// then spends it: a state is good for one callback.
func (s *Service) openState(ctx context.Context, v *store.View, p *oidcProvider, cb OIDCCallback) (oidcPending, error) {
	fail := func(reason string, err error) (oidcPending, error) {
		return oidcPending{}, &OIDCError{Kind: OIDCFailed, Reason: reason, Tenant: p.cfg.Tenant, Err: err}
	}
	sealed, err := base64.RawURLEncoding.DecodeString(cb.Cookie)
	if err != nil || cb.Cookie == "" {
		return fail("state cookie missing or malformed", nil)
	}
	plain, err := s.barrier.Open(ctx, statePlace(p), sealed)
	if err != nil {
		return fail("state cookie invalid", err)
	}
	var pend oidcPending
	if err := json.Unmarshal(plain, &pend); err != nil || pend.ID == "" || pend.State == "" {
		return fail("state cookie invalid", err)
	}
	now := s.now()
	if !now.Before(pend.ExpiresAt) {
		return fail("state expired", nil)
	}
	if subtle.ConstantTimeCompare([]byte(cb.State), []byte(pend.State)) != 1 {
		return fail("state mismatch", nil)
	}
	index := map[string]string{"expiresAt": pend.ExpiresAt.UTC().Format(store.TimeFormat)}
	if _, err := v.Put(ctx, CollOIDCStates, pend.ID, index, struct {
		At time.Time `json:"at"`
	}{now.UTC()}); errors.Is(err, store.ErrConflict) {
		return fail("state replayed", nil)
	} else if err != nil {
		return oidcPending{}, fmt.Errorf("spend oidc state: %w", err)
	}
	return pend, s.sweepStates(ctx, v, now)
}

// sweepStates deletes a few spent states past their expiry, so that the
// collection stays as small as the sign-ins of the last OIDCStateTTL.
func (s *Service) sweepStates(ctx context.Context, v *store.View, now time.Time) error {
	page, err := v.Query(ctx, store.Query{Collection: CollOIDCStates, OrderBy: "expiresAt", Limit: 16,
		Where: []store.Cond{{Field: "expiresAt", Op: store.Lt, Value: now.UTC().Format(store.TimeFormat)}}})
	if err != nil {
		return fmt.Errorf("sweep oidc states: %w", err)
	}
	for _, rec := range page.Records {
		if err := v.Delete(ctx, CollOIDCStates, rec.ID, rec.Version); err != nil && !errors.Is(err, store.ErrNotFound) && !errors.Is(err, store.ErrConflict) {
			return fmt.Errorf("sweep oidc states: %w", err)
		}
	}
	return nil
}

// CompleteOIDC finishes a sign-in with provider name from the provider's
// redirect (see the file comment for every check) and opens a console
// session exactly as Login does, without the second-factor enrolment
// restriction (the provider is trusted for the tenant's MFA policy). An
// unknown provider is ErrOIDCUnknownProvider; every refusal is an
// *OIDCError whose Reason names the failed check.
func (s *Service) CompleteOIDC(ctx context.Context, name string, cb OIDCCallback) (OIDCLogin, error) {
	p, client, err := s.oidcProvider(name)
	if err != nil {
		return OIDCLogin{}, err
	}
	tenant := p.cfg.Tenant
	fail := func(kind OIDCErrorKind, reason string, err error) (OIDCLogin, error) {
		return OIDCLogin{}, &OIDCError{Kind: kind, Reason: reason, Tenant: tenant, Err: err}
	}
	v, err := s.view(tenant)
	if err != nil {
		return OIDCLogin{}, err
	}
	pend, err := s.openState(ctx, v, p, cb)
	if err != nil {
		return OIDCLogin{}, err
	}
	if cb.Error != "" {
		return fail(OIDCFailed, "provider returned an error", fmt.Errorf("error %.64q", cb.Error))
	}
	verifier, oauth, err := s.discover(ctx, p, client)
	if err != nil {
		return fail(OIDCUnavailable, "provider unavailable", err)
	}
	if cb.Issuer != "" && cb.Issuer != p.cfg.Issuer {
		return fail(OIDCFailed, "issuer mismatch", nil)
	}
	if cb.Code == "" {
		return fail(OIDCFailed, "no code", nil)
	}
	tok, err := oauth.Exchange(oidc.ClientContext(ctx, client), cb.Code, oauth2.VerifierOption(pend.Verifier))
	if err != nil {
		return fail(OIDCFailed, "code exchange failed", err)
	}
	raw, ok := tok.Extra("id_token").(string)
	if !ok || raw == "" {
		return fail(OIDCFailed, "no id token", nil)
	}
	idt, err := verifier.Verify(ctx, raw)
	if _, expired := errors.AsType[*oidc.TokenExpiredError](err); expired {
		return fail(OIDCFailed, "id token expired", err)
	} else if err != nil {
		return fail(OIDCFailed, "id token invalid", err)
	}
	if subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(pend.Nonce)) != 1 {
		return fail(OIDCFailed, "nonce mismatch", nil)
	}
	var claims map[string]any
	if err := idt.Claims(&claims); err != nil {
		return fail(OIDCFailed, "id token invalid", err)
	}
	if azp, _ := claims["azp"].(string); (len(idt.Audience) > 1 || azp != "") && azp != p.cfg.ClientID {
		return fail(OIDCFailed, "id token invalid", errors.New("azp is not this client"))
	}
	if idt.AccessTokenHash != "" {
		if err := idt.VerifyAccessToken(tok.AccessToken); err != nil {
			return fail(OIDCFailed, "id token invalid", err)
		}
	}
	if idt.Subject == "" {
		return fail(OIDCFailed, "id token invalid", errors.New("no subject"))
	}
	if reason := checkDomain(p.cfg.AllowedDomains, claims); reason != "" {
		return fail(OIDCDenied, reason, nil)
	}
	if err := s.checkTenant(ctx, tenant); err != nil {
		return OIDCLogin{}, tenantProblem(tenant, err)
	}
	roles, err := s.grantableRoles(ctx, v, mapClaim(claims[p.cfg.RolesClaim], p.cfg.Roles))
	if err != nil {
		return OIDCLogin{}, err
	}
	u, provisioned, err := s.ssoUser(ctx, v, p, idt.Subject, roles)
	if err != nil {
		return OIDCLogin{}, err
	}
	member := map[string]bool{}
	if p.cfg.GroupsClaim != "" {
		for _, g := range mapClaim(claims[p.cfg.GroupsClaim], p.cfg.Groups) {
			member[g] = true
		}
	}
	if err := s.applySSOGroups(ctx, v, u.ID, slices.Sorted(maps.Values(p.cfg.Groups)), member); err != nil {
		return OIDCLogin{}, err
	}
	if len(roles) == 0 {
		return fail(OIDCDenied, "no mapped role", nil)
	}
	amr := stringList(claims["amr"])
	cl, err := s.openConsoleSession(ctx, v, tenant, u, false, amr)
	if err != nil {
		return OIDCLogin{}, err
	}
	return OIDCLogin{ConsoleLogin: cl, Tenant: tenant, User: u.ID, Provisioned: provisioned, AMR: amr, BannerAck: pend.BannerAck}, nil
}

// checkDomain returns why the token's email is refused, or "".
func checkDomain(allowed []string, claims map[string]any) string {
	if len(allowed) == 0 {
		return ""
	}
	email, _ := claims["email"].(string)
	verified, _ := claims["email_verified"].(bool)
	if s, ok := claims["email_verified"].(string); ok {
		verified = s == "true"
	}
	at := strings.LastIndexByte(email, '@')
	if !verified || at < 1 {
		return "email missing or not verified"
	}
	if !slices.Contains(allowed, strings.ToLower(email[at+1:])) {
		return "email domain not allowed"
	}
	return ""
}

// stringList reads a claim that is a string or a list of strings; other
// values are ignored.
func stringList(v any) []string {
	switch x := v.(type) {
	case string:
		return []string{x}
	case []any:
		out := make([]string, 0, len(x))
		for _, e := range x {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

// mapClaim maps a claim's values through m, sorted and without repeats;
// unmapped values give nothing.
func mapClaim(v any, m map[string]string) []string {
	var out []string
	for _, s := range stringList(v) {
		if to, ok := m[s]; ok && !slices.Contains(out, to) {
			out = append(out, to)
		}
	}
	slices.Sort(out)
	return out
}

// grantableRoles keeps the roles a user of the tenant can hold: built-in
// roles other than device, and custom roles the tenant has defined.
func (s *Service) grantableRoles(ctx context.Context, v *store.View, roles []string) ([]string, error) {
	out := []string{}
	for _, r := range roles {
		if _, builtin := authz.RolePermissions(r); builtin {
			if r != authz.RoleDevice {
				out = append(out, r)
			}
			continue
		}
		var role Role
		if _, err := v.Get(ctx, CollRoles, r, &role); errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrInvalid) {
			continue
		} else if err != nil {
			return nil, fmt.Errorf("oidc roles: %w", err)
		}
		out = append(out, r)
	}
	return out, nil
}

// ssoUser finds the user linked to (provider, subject), provisioning it at
// its first sign-in when it has a role, and sets its roles. A disabled user
// is refused.
func (s *Service) ssoUser(ctx context.Context, v *store.View, p *oidcProvider, subject string, roles []string) (User, bool, error) {
	tenant := p.cfg.Tenant
	b, err := s.blinders.Blinder(ctx, tenant)
	if err != nil {
		return User{}, false, fmt.Errorf("sso link index: %w", err)
	}
	linkID := b.Index(tenant, "sso/"+p.cfg.Name, subject)
	var link ssoLink
	_, err = v.Get(ctx, CollSSOLinks, linkID, &link)
	if errors.Is(err, store.ErrNotFound) {
		if len(roles) == 0 {
			return User{}, false, &OIDCError{Kind: OIDCDenied, Reason: "no mapped role", Tenant: tenant}
		}
		link = ssoLink{User: NewID()}
		if _, err = v.Put(ctx, CollSSOLinks, linkID, nil, link); errors.Is(err, store.ErrConflict) {
			_, err = v.Get(ctx, CollSSOLinks, linkID, &link)
		}
	}
	if err != nil {
		return User{}, false, fmt.Errorf("sso link: %w", err)
	}
	provisioned := false
	var u User
	if _, err := v.Get(ctx, CollUsers, link.User, &u); errors.Is(err, store.ErrNotFound) {
		if len(roles) == 0 {
			return User{}, false, &OIDCError{Kind: OIDCDenied, Reason: "no mapped role", Tenant: tenant}
		}
		if err := s.provisionSSOUser(ctx, v, p, link.User, subject, roles); err != nil {
			return User{}, false, err
		}
		provisioned = true
	} else if err != nil {
		return User{}, false, fmt.Errorf("sso user: %w", err)
	}
	errDisabled := &OIDCError{Kind: OIDCDenied, Reason: "user disabled", Tenant: tenant}
	err = s.updateUser(ctx, v, link.User, func(x *User) error {
		if x.Disabled {
			return errDisabled
		}
		x.Roles = roles
		u = *x
		return nil
	})
	return u, provisioned, err
}

// provisionSSOUser creates the user id for (provider, subject), named
// "<provider>:<subject>", with no password (it cannot sign in with one).
// The name is claimed like any username, so a local user cannot share it.
func (s *Service) provisionSSOUser(ctx context.Context, v *store.View, p *oidcProvider, id, subject string, roles []string) error {
	tenant := p.cfg.Tenant
	name := NormalizeUsername(p.cfg.Name + ":" + subject)
	bi, err := s.usernameIndex(ctx, tenant, name)
	if err != nil {
		return err
	}
	if _, err := v.Put(ctx, CollUsernames, bi, nil, usernameClaim{User: id}); errors.Is(err, store.ErrConflict) {
		var c usernameClaim
		if _, err := v.Get(ctx, CollUsernames, bi, &c); err != nil {
			return fmt.Errorf("provision sso user: %w", err)
		}
		if c.User != id {
			return &OIDCError{Kind: OIDCDenied, Reason: "username taken", Tenant: tenant}
		}
	} else if err != nil {
		return fmt.Errorf("provision sso user: %w", err)
	}
	u := User{ID: id, Username: pii.String(name), Roles: roles, CreatedAt: s.now().UTC(), SSO: &SSOAccount{Provider: p.cfg.Name, Subject: subject}}
	if _, err := v.Put(ctx, CollUsers, id, map[string]string{"username_bi": bi}, u); err != nil && !errors.Is(err, store.ErrConflict) {
		return fmt.Errorf("provision sso user: %w", err)
	}
	return nil
}

// applySSOGroups makes user a member of exactly those of the managed
// groups that member holds. Managed groups the tenant does not have are
// skipped, and so is joining a full group.
func (s *Service) applySSOGroups(ctx context.Context, v *store.View, user string, managed []string, member map[string]bool) error {
	for _, id := range slices.Compact(managed) {
		for {
			var g Group
			rec, err := v.Get(ctx, CollGroups, id, &g)
			if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrInvalid) {
				break
			} else if err != nil {
				return fmt.Errorf("sso groups: %w", err)
			}
			has := slices.Contains(g.Members, user)
			if has == member[id] || !has && len(g.Members) >= MaxGroupMembers {
				break
			}
			if has {
				g.Members = slices.DeleteFunc(g.Members, func(m string) bool { return m == user })
			} else {
				g.Members = append(g.Members, user)
				slices.Sort(g.Members)
			}
			_, err = v.Update(ctx, CollGroups, id, rec.Version, rec.Index, g)
			if errors.Is(err, store.ErrConflict) {
				continue
			}
			if err != nil {
				return fmt.Errorf("sso groups: %w", err)
			}
			break
		}
	}
	return nil
}
