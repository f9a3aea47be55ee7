package httpapi

import (
	"errors"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/idvault/idvault/internal/audit"
	"github.com/idvault/idvault/internal/identity"
)

// Single sign-on to the console with OpenID Connect (identity/oidc.go does
// the protocol). GET /api/v1/auth/oidc/{provider}/login checks the sign-in
// banner as password sign-in does (bannerAck in the query), sets the sealed
// state cookie (HttpOnly, Secure, SameSite=Lax so that it comes back with
// the provider's top-level redirect, scoped to the provider's path, gone
// after identity.OIDCStateTTL) and redirects to the provider. The callback
// spends that state, verifies the provider's answer and opens a console
// session exactly as POST /api/v1/auth/login does: the same cookie and the
// same JSON body with the CSRF token. Both routes have the sign-in rate
// limit; every sign-in, allowed or refused, is audited as auth.oidc_login.

// OIDCStateCookie is the cookie that binds an OIDC sign-in's state, nonce
// and PKCE verifier to the browser that began it.
const OIDCStateCookie = "idvault_oidc"

func oidcCookiePath(provider string) string {
	return "/api/v1/auth/oidc/" + provider + "/"
}

// consoleSessionCookie is the console session cookie of a sign-in.
func consoleSessionCookie(s identity.ConsoleLogin, now time.Time) *http.Cookie {
	return &http.Cookie{Name: SessionCookie, Value: s.Cookie, Path: "/", HttpOnly: true, Secure: true,
		SameSite: http.SameSiteStrictMode, Expires: s.ExpiresAt, MaxAge: int(s.ExpiresAt.Sub(now).Seconds())}
}

func (a *API) oidcLogin(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("provider")
	ack := r.URL.Query().Get("bannerAck")
	if err := a.checkBanner(ack); err != nil {
		return err
	}
	start, err := a.d.Identity.BeginOIDC(r.Context(), name, ack)
	if errors.Is(err, identity.ErrOIDCUnknownProvider) {
		return notFound()
	}
	if err != nil {
		return a.oidcProblem(r, name, err)
	}
	http.SetCookie(w, &http.Cookie{Name: OIDCStateCookie, Value: start.Cookie, Path: oidcCookiePath(name), HttpOnly: true, Secure: true,
		SameSite: http.SameSiteLaxMode, Expires: start.ExpiresAt, MaxAge: int(start.ExpiresAt.Sub(a.d.Now()).Seconds())})
	http.Redirect(w, r, start.AuthURL, http.StatusFound)
	return nil
}

func (a *API) oidcCallback(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("provider")
	q := r.URL.Query()
	cb := identity.OIDCCallback{State: q.Get("state"), Code: q.Get("code"), Issuer: q.Get("iss"), Error: q.Get("error")}
	if c, err := r.Cookie(OIDCStateCookie); err == nil {
		cb.Cookie = c.Value
	}
	// The state is spent whatever happens next.
	http.SetCookie(w, &http.Cookie{Name: OIDCStateCookie, Value: "", Path: oidcCookiePath(name), HttpOnly: true, Secure: true,
		SameSite: http.SameSiteLaxMode, MaxAge: -1})
	login, err := a.d.Identity.CompleteOIDC(r.Context(), name, cb)
	if errors.Is(err, identity.ErrOIDCUnknownProvider) {
		a.emit(r, audit.Event{Action: "auth.oidc_login", Outcome: audit.Denied, Reason: "unknown provider",
			Resource: audit.Resource{Type: "console-session"}})
		return notFound()
	}
	if err != nil {
		return a.oidcProblem(r, name, err)
	}
	details := map[string]string{"provider": name, "provisioned": boolString(login.Provisioned)}
	if amr := auditAMR(login.AMR); amr != "" {
		details["amr"] = amr
	}
	if id := BannerID(a.d.Banner); id != "" && login.BannerAck == id {
		details["bannerAcknowledged"] = id
	}
	r = r.WithContext(withPrincipal(r.Context(), identity.Principal{Tenant: login.Tenant, Type: "user", ID: login.User}))
	// Fail-closed: no event, no session cookie (the unused session expires).
	if err := a.emitErr(r, audit.Event{Tenant: login.Tenant, Action: "auth.oidc_login", Outcome: audit.Success,
		Resource: audit.Resource{Type: "console-session"}, Details: details}); err != nil {
		return err
	}
	http.SetCookie(w, consoleSessionCookie(login.ConsoleLogin, a.d.Now()))
	return writeJSON(w, http.StatusOK, map[string]any{"csrfToken": login.CSRF, "expiresAt": login.ExpiresAt,
		"idleTimeout": int(identity.SessionIdle / time.Second)})
}

// amrValue is the form of an authentication method reference (RFC 8176
// names them: pwd, mfa, otp, hwk, ...); anything else stays out of the
// audit record.
var amrValue = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,32}$`)

func auditAMR(amr []string) string {
	var out []string
	for _, m := range amr {
		if amrValue.MatchString(m) && len(out) < 8 {
			out = append(out, m)
		}
	}
	return strings.Join(out, " ")
}

// oidcProblem audits a refused OIDC sign-in (to the provider's tenant) and
// maps it to its problem; the cause goes to the log only.
func (a *API) oidcProblem(r *http.Request, provider string, err error) error {
	e, ok := errors.AsType[*identity.OIDCError](err)
	if !ok {
		return err
	}
	a.d.Log.Info("oidc sign-in refused", "provider", provider, "reason", e.Reason, "err", e.Err, "requestId", requestID(r.Context()))
	a.emit(r, audit.Event{Tenant: e.Tenant, Action: "auth.oidc_login", Outcome: audit.Denied, Reason: e.Reason,
		Resource: audit.Resource{Type: "console-session"}, Details: map[string]string{"provider": provider}})
	switch e.Kind {
	case identity.OIDCDenied:
		return problem(http.StatusForbidden, "sso-denied", "Single sign-on refused",
			"The identity provider's account may not sign in to this tenant.")
	case identity.OIDCUnavailable:
		return problem(http.StatusBadGateway, "sso-unavailable", "Identity provider unavailable",
			"The identity provider could not be reached; try again later.")
	}
	return problem(http.StatusUnauthorized, "sso-failed", "Single sign-on failed",
		"The identity provider's answer could not be verified; start the sign-in again.")
}
