package httpapi

import (
	"errors"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/idvault/idvault/internal/audit"
	"github.com/idvault/idvault/internal/authz"
	"github.com/idvault/idvault/internal/identity"
	"github.com/idvault/idvault/internal/store"
)

// API keys are shown once, stored as a digest, scoped to a subset of their
// creator's own permissions (no principal can grant what it does not
// hold), optionally expiring, revocable, and record their last use.

var keyName = regexp.MustCompile(`^[\pL\pN ._-]{1,64}$`)

type createAPIKeyRequest struct {
	Name        string     `json:"name"`
	Permissions []string   `json:"permissions"`
	ExpiresAt   *time.Time `json:"expiresAt"`
}

func (a *API) createAPIKey(w http.ResponseWriter, r *http.Request) error {
	if err := a.decide(r, nil); err != nil {
		return err
	}
	var req createAPIKeyRequest
	if err := decodeJSON(w, r, a.d.Limits.MaxJSONBytes, &req); err != nil {
		return err
	}
	var fields []FieldError
	if !keyName.MatchString(req.Name) {
		fields = append(fields, FieldError{"name", "1 to 64 letters, digits, spaces, '.', '_' or '-'"})
	}
	perms := make([]authz.Permission, 0, len(req.Permissions))
	for _, s := range req.Permissions {
		p, err := authz.Parse(s)
		if err != nil {
			fields = append(fields, FieldError{"permissions", "unknown permission " + safeName(s)})
			continue
		}
		perms = append(perms, p)
	}
	if len(req.Permissions) == 0 || len(req.Permissions) > authz.MaxGrants {
		fields = append(fields, FieldError{"permissions", "1 to 64 permissions"})
	}
	if req.ExpiresAt != nil && !req.ExpiresAt.After(a.d.Now()) {
		fields = append(fields, FieldError{"expiresAt", "must be in the future"})
	}
	if len(fields) > 0 {
		return badRequest("The API key request is invalid.", fields...)
	}
	p := principalOf(r.Context())
	if err := authz.CanGrant(subject(p), perms); err != nil {
		reason := "escalation"
		if esc, ok := errors.AsType[*authz.EscalationError](err); ok {
			missing := make([]string, len(esc.Missing))
			for i, m := range esc.Missing {
				missing[i] = string(m)
			}
			reason = "escalation: " + strings.Join(missing, ",")
		}
		a.emit(r, audit.Event{Action: "access.denied", Outcome: audit.Denied, Reason: reason, Resource: audit.Resource{Type: "apikey"}})
		return problem(http.StatusForbidden, "escalation", "Permission not held",
			"An API key can only hold permissions its creator holds.")
	}
	r, commit := a.change(r, audit.Event{Action: "apikey.create", Outcome: audit.Success, Resource: audit.Resource{Type: "apikey"},
		Details: map[string]string{"permissions": strings.Join(req.Permissions, ",")}}, identity.CollAPIKeys)
	id, key, err := a.d.Identity.CreateScopedAPIKey(r.Context(), p.Tenant, req.Name, p.ID, req.Permissions, req.ExpiresAt)
	if err != nil {
		return err
	}
	if err := commit(); err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, map[string]any{"id": id, "key": key, "name": req.Name,
		"permissions": req.Permissions, "expiresAt": req.ExpiresAt})
}

var permShape = regexp.MustCompile(`^[a-z_:]{1,64}$`)

// safeName echoes a caller's value only if it looks like a permission.
func safeName(s string) string {
	if permShape.MatchString(s) {
		return s
	}
	return "(not shown)"
}

func keyRecord(tenant string, k identity.APIKeyInfo) authz.Record {
	return authz.Record{Tenant: tenant, ID: k.ID, Owner: k.CreatedBy}
}

func (a *API) listAPIKeys(w http.ResponseWriter, r *http.Request) error {
	if err := a.decide(r, nil); err != nil {
		return err
	}
	tenant := principalOf(r.Context()).Tenant
	all, err := a.d.Identity.APIKeys(r.Context(), tenant)
	if err != nil {
		return err
	}
	out := []identity.APIKeyInfo{}
	for _, k := range all {
		if visible(r, keyRecord(tenant, k)) {
			out = append(out, k)
		}
	}
	return writeJSON(w, http.StatusOK, map[string]any{"items": out})
}

func (a *API) revokeAPIKey(w http.ResponseWriter, r *http.Request) error {
	if err := drainEmpty(w, r); err != nil {
		return err
	}
	tenant := principalOf(r.Context()).Tenant
	k, err := a.d.Identity.APIKey(r.Context(), tenant, r.PathValue("id"))
	if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrInvalid) {
		return notFound()
	}
	if err != nil {
		return err
	}
	rec := keyRecord(tenant, k)
	if err := a.decide(r, &rec); err != nil {
		return err
	}
	r, commit := a.change(r, audit.Event{Action: "apikey.revoke", Outcome: audit.Success, Resource: audit.Resource{Type: "apikey", ID: k.ID}}, identity.CollAPIKeys)
	if err := a.d.Identity.RevokeAPIKey(r.Context(), tenant, k.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	if err := commit(); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
