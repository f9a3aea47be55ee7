package httpapi

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/idvault/idvault/internal/audit"
	"github.com/idvault/idvault/internal/authz"
	"github.com/idvault/idvault/internal/identity"
	"github.com/idvault/idvault/internal/store"
)

// Users of a tenant: created with built-in roles (custom roles come later)
// and a one-time password shown once; listed; disabled and enabled. No
// principal can give a user a role holding a permission it does not hold.

type userView struct {
	ID        string    `json:"id"`
	Username  string    `json:"username"`
	Roles     []string  `json:"roles"`
	Disabled  bool      `json:"disabled"`
	TOTP      bool      `json:"totp"`
	CreatedAt time.Time `json:"createdAt"`
}

func toUserView(u identity.User) userView {
	return userView{ID: u.ID, Username: u.Username.Value(), Roles: u.Roles, Disabled: u.Disabled, TOTP: u.TOTP.Enabled(), CreatedAt: u.CreatedAt}
}

func (a *API) createUser(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		Username string   `json:"username"`
		Roles    []string `json:"roles"`
	}
	if err := decodeJSON(w, r, a.d.Limits.MaxJSONBytes, &req); err != nil {
		return err
	}
	var fields []FieldError
	name := identity.NormalizeUsername(req.Username)
	if name == "" || len(name) > 254 || strings.ContainsAny(name, " \t\r\n") {
		fields = append(fields, FieldError{"username", "1 to 254 characters without spaces"})
	}
	perms, unknown, err := a.rolePermissions(r, req.Roles)
	if err != nil {
		return err
	}
	for _, role := range unknown {
		fields = append(fields, FieldError{"roles", "unknown role " + safeName(role)})
	}
	if len(req.Roles) == 0 {
		fields = append(fields, FieldError{"roles", "at least one role"})
	}
	if len(fields) > 0 {
		return badRequest("The user request is invalid.", fields...)
	}
	p := principalOf(r.Context())
	if err := authz.CanGrant(subject(p), perms); err != nil {
		a.emit(r, audit.Event{Action: "access.denied", Outcome: audit.Denied, Reason: "escalation: role " + strings.Join(req.Roles, ","),
			Resource: audit.Resource{Type: "user"}})
		return problem(http.StatusForbidden, "escalation", "Permission not held",
			"A user can only be given roles whose permissions the caller holds.")
	}
	pw := make([]byte, 18)
	if _, err := rand.Read(pw); err != nil {
		return err
	}
	password := base64.RawURLEncoding.EncodeToString(pw)
	r, commit := a.change(r, audit.Event{Action: "user.create", Outcome: audit.Success, Resource: audit.Resource{Type: "user"},
		Details: map[string]string{"roles": strings.Join(req.Roles, ",")}}, identity.CollUsers)
	u, err := a.d.Identity.CreateUser(r.Context(), p.Tenant, name, password, req.Roles)
	if errors.Is(err, identity.ErrExists) {
		return problem(http.StatusConflict, "exists", "User exists", "A user of that name exists.")
	}
	if err != nil {
		return err
	}
	if err := commit(); err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, struct {
		userView
		Password string `json:"password"`
	}{toUserView(u), password})
}

func (a *API) listUsers(w http.ResponseWriter, r *http.Request) error {
	out := []userView{}
	err := a.d.Identity.Users(r.Context(), principalOf(r.Context()).Tenant, func(u identity.User) error {
		out = append(out, toUserView(u))
		return nil
	})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, map[string]any{"items": out})
}

func (a *API) setUserDisabled(disabled bool) func(http.ResponseWriter, *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		if err := drainEmpty(w, r); err != nil {
			return err
		}
		p := principalOf(r.Context())
		id := r.PathValue("id")
		u, err := a.d.Identity.User(r.Context(), p.Tenant, id)
		if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrInvalid) {
			return notFound()
		}
		if err != nil {
			return err
		}
		if u.ID == p.ID && disabled {
			return problem(http.StatusConflict, "invalid-state", "Cannot disable yourself", "A user cannot disable its own account.")
		}
		perms, _, err := a.rolePermissions(r, u.Roles)
		if err != nil {
			return err
		}
		if err := authz.CanGrant(subject(p), perms); err != nil {
			return problem(http.StatusForbidden, "escalation", "Permission not held",
				"Only a principal holding all of a user's permissions can disable or enable it.")
		}
		action := "user.enable"
		if disabled {
			action = "user.disable"
		}
		r, commit := a.change(r, audit.Event{Action: action, Outcome: audit.Success, Resource: audit.Resource{Type: "user", ID: id}}, identity.CollUsers)
		if err := a.d.Identity.SetUserDisabledByID(r.Context(), p.Tenant, id, disabled); err != nil {
			return err
		}
		if err := commit(); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
}

// rolePermissions expands role names (built-in or custom roles of the
// caller's tenant) to permissions, and lists the names that are neither.
func (a *API) rolePermissions(r *http.Request, roles []string) (perms []authz.Permission, unknown []string, err error) {
	tenant := principalOf(r.Context()).Tenant
	for _, role := range roles {
		if rp, ok := authz.RolePermissions(role); ok && role != authz.RoleDevice {
			perms = append(perms, rp...)
			continue
		}
		custom, err := a.d.Identity.CustomPermissions(r.Context(), tenant, []string{role})
		if err != nil {
			return nil, nil, err
		}
		if len(custom) == 0 {
			unknown = append(unknown, role)
			continue
		}
		for _, c := range custom {
			if p, err := authz.Parse(c); err == nil {
				perms = append(perms, p)
			}
		}
	}
	return perms, unknown, nil
}

func (a *API) putRole(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		Permissions []string `json:"permissions"`
	}
	if err := decodeJSON(w, r, a.d.Limits.MaxJSONBytes, &req); err != nil {
		return err
	}
	name := r.PathValue("name")
	if err := authz.ValidateRole(name, req.Permissions); err != nil {
		return badRequest("The role is invalid.", FieldError{"permissions", "known permissions, each once; the name 1-64 of a-z, 0-9, '-', '_' and not a built-in role"})
	}
	perms := make([]authz.Permission, len(req.Permissions))
	for i, s := range req.Permissions {
		perms[i], _ = authz.Parse(s)
	}
	p := principalOf(r.Context())
	if err := authz.CanGrant(subject(p), perms); err != nil {
		a.emit(r, audit.Event{Action: "access.denied", Outcome: audit.Denied, Reason: "escalation: role " + name, Resource: audit.Resource{Type: "role", ID: name}})
		return problem(http.StatusForbidden, "escalation", "Permission not held", "A role can only hold permissions the caller holds.")
	}
	r, commit := a.change(r, audit.Event{Action: "role.write", Outcome: audit.Success, Resource: audit.Resource{Type: "role", ID: name},
		Details: map[string]string{"permissions": strings.Join(req.Permissions, ",")}}, identity.CollRoles)
	role, err := a.d.Identity.PutRole(r.Context(), p.Tenant, name, req.Permissions)
	if err != nil {
		return err
	}
	if err := commit(); err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, role)
}

func (a *API) listRoles(w http.ResponseWriter, r *http.Request) error {
	type roleView struct {
		Name        string   `json:"name"`
		Builtin     bool     `json:"builtin"`
		Permissions []string `json:"permissions"`
	}
	out := []roleView{}
	for _, name := range authz.Roles() {
		ps, _ := authz.RolePermissions(name)
		v := roleView{Name: name, Builtin: true, Permissions: []string{}}
		for _, p := range ps {
			v.Permissions = append(v.Permissions, string(p))
		}
		out = append(out, v)
	}
	custom, err := a.d.Identity.CustomRoles(r.Context(), principalOf(r.Context()).Tenant)
	if err != nil {
		return err
	}
	for _, c := range custom {
		out = append(out, roleView{Name: c.Name, Permissions: c.Permissions})
	}
	return writeJSON(w, http.StatusOK, map[string]any{"items": out})
}
