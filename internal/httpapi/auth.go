package httpapi

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/idvault/idvault/internal/audit"
	"github.com/idvault/idvault/internal/identity"
)

type signInRequest struct {
	TenantID string `json:"tenantId"`
	Username string `json:"username"`
	Password string `json:"password"`
	// Code is the TOTP code of a user enrolled in the second factor.
	Code string `json:"code"`
	// BannerAck is the id of the sign-in banner the user acknowledged.
	BannerAck string `json:"bannerAck"`
}

// signInProblem maps a failed sign-in to its problem, auditing it.
func (a *API) signInProblem(r *http.Request, resource string, err error) error {
	if locked, ok := errors.AsType[*identity.LockedError](err); ok {
		a.emit(r, audit.Event{Action: "auth.lockout", Outcome: audit.Denied, Reason: "too many failed sign-ins",
			Resource: audit.Resource{Type: resource}})
		retry := max(int64(locked.Until.Sub(a.d.Now())/time.Second)+1, 1)
		p := problem(http.StatusTooManyRequests, "signin-locked", "Too many failed sign-ins",
			"Sign-in for this username is locked for a while after repeated failures.")
		p.header = http.Header{"Retry-After": {strconv.FormatInt(retry, 10)}}
		return p
	}
	if errors.Is(err, identity.ErrUnauthenticated) || errors.Is(err, identity.ErrTenantSuspended) {
		a.emit(r, audit.Event{Action: "auth.failure", Outcome: audit.Denied, Reason: "bad username, password or code",
			Resource: audit.Resource{Type: resource}})
		return problem(http.StatusUnauthorized, "invalid-credentials", "Invalid credentials", "The username, password or code is wrong.")
	}
	return err
}

func (a *API) decodeSignIn(w http.ResponseWriter, r *http.Request) (signInRequest, error) {
	var req signInRequest
	if err := decodeJSON(w, r, a.d.Limits.MaxJSONBytes, &req); err != nil {
		return req, err
	}
	if req.TenantID == "" || req.Username == "" || req.Password == "" {
		return req, badRequest("tenantId, username and password are required.")
	}
	return req, nil
}

func (a *API) issueToken(w http.ResponseWriter, r *http.Request) error {
	req, err := a.decodeSignIn(w, r)
	if err != nil {
		return err
	}
	if err := a.checkBanner(req.BannerAck); err != nil {
		return err
	}
	r, commit := a.signIn(r, audit.Event{Tenant: req.TenantID, Action: "auth.token", Outcome: audit.Success,
		Resource: audit.Resource{Type: "token"}}, identity.CollTokens)
	tok, exp, err := a.d.Identity.IssueToken(r.Context(), req.TenantID, req.Username, req.Password, req.Code)
	if err != nil {
		return a.signInProblem(r, "token", err)
	}
	if err := commit(); err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, map[string]any{
		"accessToken": tok, "tokenType": "Bearer", "expiresIn": int(exp.Sub(a.d.Now()).Seconds()), "expiresAt": exp,
	})
}

// login opens a console session: the credential goes into an HttpOnly,
// Secure, SameSite=Strict cookie the page's scripts cannot read, and the
// CSRF token into the body, for the page to send back in X-CSRF-Token.
func (a *API) login(w http.ResponseWriter, r *http.Request) error {
	req, err := a.decodeSignIn(w, r)
	if err != nil {
		return err
	}
	if err := a.checkBanner(req.BannerAck); err != nil {
		return err
	}
	return a.openSession(w, r, req, "auth.login")
}

// openSession signs req in and opens a console session, auditing it as
// action (with the banner acknowledged, if any).
func (a *API) openSession(w http.ResponseWriter, r *http.Request, req signInRequest, action string) error {
	// The tenant is verified by the sign-in, so the event goes to its log;
	// it commits with the console session record.
	details := map[string]string{}
	if id := BannerID(a.d.Banner); id != "" && req.BannerAck == id {
		details["bannerAcknowledged"] = id
	}
	r, commit := a.signIn(r, audit.Event{Tenant: req.TenantID, Action: action, Outcome: audit.Success,
		Resource: audit.Resource{Type: "console-session"}, Details: details}, identity.CollConsoleSessions)
	s, err := a.d.Identity.Login(r.Context(), req.TenantID, req.Username, req.Password, req.Code)
	if err != nil {
		return a.signInProblem(r, "console-session", err)
	}
	if err := commit(); err != nil {
		return err
	}
	http.SetCookie(w, consoleSessionCookie(s, a.d.Now()))
	return writeJSON(w, http.StatusOK, map[string]any{"csrfToken": s.CSRF, "expiresAt": s.ExpiresAt,
		"idleTimeout": int(identity.SessionIdle / time.Second)})
}

// logout revokes the bearer token of the Authorization header, or ends the
// console session of the cookie (or, with {"everywhere":true}, every
// console session of its user) and clears the cookie. It needs the session's CSRF token, so another site cannot sign a
// user out.
func (a *API) logout(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		Everywhere bool `json:"everywhere"`
	}
	if r.ContentLength != 0 {
		if err := decodeJSON(w, r, a.d.Limits.MaxJSONBytes, &req); err != nil {
			return err
		}
	}
	if h := r.Header.Get("Authorization"); h != "" {
		// A bearer token signs itself out: it is revoked at once.
		p, err := a.d.Identity.RevokeToken(r.Context(), h)
		if errors.Is(err, identity.ErrUnauthenticated) || errors.Is(err, identity.ErrTenantSuspended) {
			return unauthenticated()
		}
		if err != nil {
			return err
		}
		r = r.WithContext(withPrincipal(r.Context(), p))
		if err := a.emitErr(r, audit.Event{Action: "auth.logout", Outcome: audit.Success, Resource: audit.Resource{Type: "token"}}); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	c, err := r.Cookie(SessionCookie)
	if err != nil {
		return unauthenticated()
	}
	p, err := a.d.Identity.AuthenticateSession(r.Context(), c.Value)
	if err != nil {
		clearSessionCookie(w)
		return unauthenticated()
	}
	if !identity.CheckCSRF(p, r.Header.Get(CSRFHeader)) {
		return problem(http.StatusForbidden, "csrf", "CSRF token required",
			"A state-changing request of a console session must carry its CSRF token in "+CSRFHeader+".")
	}
	n := 1
	if req.Everywhere {
		n, err = a.d.Identity.LogoutAll(r.Context(), p.Tenant, p.ID)
	} else {
		err = a.d.Identity.Logout(r.Context(), p.Tenant, p.Session)
	}
	if err != nil {
		return err
	}
	clearSessionCookie(w)
	r = r.WithContext(withPrincipal(r.Context(), p))
	if err := a.emitErr(r, audit.Event{Action: "auth.logout", Outcome: audit.Success, Resource: audit.Resource{Type: "console-session"},
		Details: map[string]string{"sessions": strconv.Itoa(n)}}); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func clearSessionCookie(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{Name: SessionCookie, Value: "", Path: "/", HttpOnly: true, Secure: true,
		SameSite: http.SameSiteStrictMode, MaxAge: -1})
}

// beginTOTP starts the caller's TOTP enrolment: the secret and otpauth URL
// (for a QR code) are returned once; nothing changes at sign-in until
// confirmTOTP.
func (a *API) beginTOTP(w http.ResponseWriter, r *http.Request) error {
	if err := drainEmpty(w, r); err != nil {
		return err
	}
	p := principalOf(r.Context())
	url, secret, err := a.d.Identity.BeginTOTP(r.Context(), p.Tenant, p.ID)
	if err != nil {
		return err
	}
	if err := a.emitErr(r, audit.Event{Action: "auth.totp_enrol", Outcome: audit.Success, Resource: audit.Resource{Type: "user", ID: p.ID}}); err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, map[string]string{"otpauthUrl": url, "secret": secret})
}

// confirmTOTP enables the pending second factor with a first valid code.
func (a *API) confirmTOTP(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		Code string `json:"code"`
	}
	if err := decodeJSON(w, r, a.d.Limits.MaxJSONBytes, &req); err != nil {
		return err
	}
	p := principalOf(r.Context())
	ok, err := a.d.Identity.ConfirmTOTP(r.Context(), p.Tenant, p.ID, req.Code)
	if errors.Is(err, identity.ErrTOTPNotPending) {
		return problem(http.StatusConflict, "invalid-state", "No enrolment", "Start the enrolment with POST /api/v1/auth/totp first.")
	}
	if err != nil {
		return err
	}
	if !ok {
		a.emit(r, audit.Event{Action: "auth.totp_confirm", Outcome: audit.Denied, Reason: "wrong code", Resource: audit.Resource{Type: "user", ID: p.ID}})
		return badRequest("The code is wrong.", FieldError{"code", "not the current code of the new secret"})
	}
	if err := a.emitErr(r, audit.Event{Action: "auth.totp_confirm", Outcome: audit.Success, Resource: audit.Resource{Type: "user", ID: p.ID}}); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
