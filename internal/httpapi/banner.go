package httpapi

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/idvault/idvault/internal/audit"
	"github.com/idvault/idvault/internal/identity"
)

// The sign-in banner: when api.banner is set, every sign-in must
// acknowledge it by sending its id (a digest of its text, so a changed
// banner needs a new acknowledgement) as bannerAck. Scan mode lets an
// approved scanner sign in without it (POST /api/v1/auth/login/scan), only
// while a tenant admin has switched scan mode on, until its expiry and from
// its address ranges; every use, allowed or not, is audited.

// BannerID returns the id of a banner text.
func BannerID(text string) string {
	if text == "" {
		return ""
	}
	sum := sha256.Sum256([]byte(text))
	return hex.EncodeToString(sum[:8])
}

func (a *API) banner(w http.ResponseWriter, _ *http.Request) error {
	return writeJSON(w, http.StatusOK, map[string]any{
		"required": a.d.Banner != "", "id": BannerID(a.d.Banner), "text": a.d.Banner,
	})
}

// checkBanner enforces the banner on a sign-in request.
func (a *API) checkBanner(ack string) error {
	if a.d.Banner == "" || ack == BannerID(a.d.Banner) {
		return nil
	}
	return badRequest("The sign-in banner must be acknowledged: send its id from GET /api/v1/auth/banner as bannerAck.",
		FieldError{"bannerAck", "missing or not the current banner's id"})
}

// loginScan is the scanner's sign-in: a console login without the banner,
// allowed only in scan mode.
func (a *API) loginScan(w http.ResponseWriter, r *http.Request) error {
	req, err := a.decodeSignIn(w, r)
	if err != nil {
		return err
	}
	mode, err := a.d.Identity.ScanMode(r.Context(), req.TenantID)
	if err != nil {
		mode = identity.ScanMode{} // an unknown tenant has scan mode off
	}
	ip := a.clientIP(r)
	if !mode.Allows(ip, a.d.Now()) {
		a.emit(r, audit.Event{Action: "auth.scan_login", Outcome: audit.Denied, Reason: "scan mode off, expired or source not allowed",
			Resource: audit.Resource{Type: "console-session"}})
		return problem(http.StatusForbidden, "scan-mode-off", "Scan mode is off",
			"Sign-in without the banner is allowed only while scan mode is on for this tenant and this address.")
	}
	return a.openSession(w, r, req, "auth.scan_login")
}

type scanModeRequest struct {
	Enabled      *bool      `json:"enabled"`
	ExpiresAt    *time.Time `json:"expiresAt"`
	SourceRanges []string   `json:"sourceRanges"`
}

func (a *API) getScanMode(w http.ResponseWriter, r *http.Request) error {
	m, err := a.d.Identity.ScanMode(r.Context(), principalOf(r.Context()).Tenant)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, m)
}

func (a *API) putScanMode(w http.ResponseWriter, r *http.Request) error {
	var req scanModeRequest
	if err := decodeJSON(w, r, a.d.Limits.MaxJSONBytes, &req); err != nil {
		return err
	}
	if req.Enabled == nil {
		return badRequest("The scan-mode setting is invalid.", FieldError{"enabled", "required"})
	}
	m := identity.ScanMode{Enabled: *req.Enabled, Sources: req.SourceRanges}
	if req.ExpiresAt != nil {
		m.ExpiresAt = *req.ExpiresAt
	}
	expires := "default"
	if req.ExpiresAt != nil {
		expires = req.ExpiresAt.UTC().Format(time.RFC3339)
	}
	r, commit := a.change(r, audit.Event{Action: "settings.scan_mode", Outcome: audit.Success, Resource: audit.Resource{Type: "settings", ID: "scan-mode"},
		Details: map[string]string{"enabled": boolString(m.Enabled), "expiresAt": expires, "sourceRanges": strconv.Itoa(len(m.Sources))}}, identity.CollSettings)
	p := principalOf(r.Context())
	m, err := a.d.Identity.SetScanMode(r.Context(), p.Tenant, m, p.Type+"/"+p.ID)
	if errors.Is(err, identity.ErrScanMode) {
		return badRequest("The scan-mode setting is invalid: " + err.Error() + ".")
	}
	if err != nil {
		return err
	}
	if err := commit(); err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, m)
}

func boolString(b bool) string {
	if b {
		return "true"
	}
	return "false"
}

func (a *API) getPolicy(w http.ResponseWriter, r *http.Request) error {
	p, err := a.d.Identity.Policy(r.Context(), principalOf(r.Context()).Tenant)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, p)
}

func (a *API) putPolicy(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		RequireMFA          *bool `json:"requireMFA"`
		RequirePurpose      bool  `json:"requirePurpose"`
		KeepSessionsForDays int   `json:"keepSessionsForDays"`
	}
	if err := decodeJSON(w, r, a.d.Limits.MaxJSONBytes, &req); err != nil {
		return err
	}
	if req.RequireMFA == nil {
		return badRequest("The policy is invalid.", FieldError{"requireMFA", "required"})
	}
	if req.KeepSessionsForDays < 0 || req.KeepSessionsForDays > identity.MaxKeepSessionsForDays {
		return badRequest("The policy is invalid.", FieldError{"keepSessionsForDays", fmt.Sprintf("0 (keep) to %d days", identity.MaxKeepSessionsForDays)})
	}
	p := identity.Policy{RequireMFA: *req.RequireMFA, RequirePurpose: req.RequirePurpose, KeepSessionsForDays: req.KeepSessionsForDays}
	r, commit := a.change(r, audit.Event{Action: "settings.policy", Outcome: audit.Success, Resource: audit.Resource{Type: "settings", ID: "policy"},
		Details: map[string]string{"requireMFA": boolString(p.RequireMFA), "requirePurpose": boolString(p.RequirePurpose),
			"keepSessionsForDays": strconv.Itoa(p.KeepSessionsForDays)}}, identity.CollSettings)
	if err := a.d.Identity.SetPolicy(r.Context(), principalOf(r.Context()).Tenant, p); err != nil {
		return err
	}
	if err := commit(); err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, p)
}
