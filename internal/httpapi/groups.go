package httpapi

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/idvault/idvault/internal/audit"
	"github.com/idvault/idvault/internal/authz"
	"github.com/idvault/idvault/internal/identity"
	"github.com/idvault/idvault/internal/session"
	"github.com/idvault/idvault/internal/store"
)

// Groups and record restriction (layer 3): a session restricted to groups
// is invisible (404) to everyone outside them, admins included; ro members
// may read it, not change it. session:restrict changes a restriction
// without membership and answers with the restriction only, never content.

func (a *API) createGroup(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		Name string `json:"name"`
	}
	if err := decodeJSON(w, r, a.d.Limits.MaxJSONBytes, &req); err != nil {
		return err
	}
	r, commit := a.change(r, audit.Event{Action: "group.create", Outcome: audit.Success, Resource: audit.Resource{Type: "group"}}, identity.CollGroups)
	g, err := a.d.Identity.CreateGroup(r.Context(), principalOf(r.Context()).Tenant, req.Name)
	if errors.Is(err, identity.ErrGroup) {
		return badRequest("The group is invalid.", FieldError{"name", "1 to 128 characters"})
	}
	if err != nil {
		return err
	}
	if err := commit(); err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, g)
}

func (a *API) listGroups(w http.ResponseWriter, r *http.Request) error {
	out := []identity.Group{}
	if err := a.d.Identity.Groups(r.Context(), principalOf(r.Context()).Tenant, func(g identity.Group) error {
		out = append(out, g)
		return nil
	}); err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, map[string]any{"items": out})
}

func (a *API) setGroupMembers(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		Members []string `json:"members"`
	}
	if err := decodeJSON(w, r, a.d.Limits.MaxJSONBytes, &req); err != nil {
		return err
	}
	r, commit := a.change(r, audit.Event{Action: "group.members", Outcome: audit.Success, Resource: audit.Resource{Type: "group", ID: r.PathValue("id")},
		Details: map[string]string{"members": strconv.Itoa(len(req.Members))}}, identity.CollGroups)
	g, err := a.d.Identity.SetGroupMembers(r.Context(), principalOf(r.Context()).Tenant, r.PathValue("id"), req.Members)
	switch {
	case errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrInvalid):
		return notFound()
	case errors.Is(err, identity.ErrGroup):
		return badRequest("The members are invalid: "+err.Error()+".", FieldError{"members", "user ids of this tenant"})
	case err != nil:
		return err
	}
	if err := commit(); err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, g)
}

func (a *API) restrictSession(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		Groups []authz.Grant `json:"groups"`
	}
	if err := decodeJSON(w, r, a.d.Limits.MaxJSONBytes, &req); err != nil {
		return err
	}
	if err := authz.ValidateRestriction(req.Groups); err != nil {
		return badRequest("The restriction is invalid.", FieldError{"groups", "up to 64 distinct groups, each with mode ro or rw"})
	}
	tenant := principalOf(r.Context()).Tenant
	for _, g := range req.Groups {
		if _, err := a.d.Identity.Group(r.Context(), tenant, g.Group); err != nil {
			if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrInvalid) {
				return badRequest("The restriction is invalid.", FieldError{"groups", "unknown group"})
			}
			return err
		}
	}
	repo, s, err := a.getOr404(r)
	if err != nil {
		return err
	}
	r, commit := a.change(r, audit.Event{Action: "session.restrict", Outcome: audit.Success, Resource: audit.Resource{Type: "session", ID: s.ID},
		Details: map[string]string{"groups": strconv.Itoa(len(req.Groups))}}, session.Collection)
	s, err = repo.Update(r.Context(), s.ID, a.d.Now(), func(x *session.Session) error {
		x.Restricted = req.Groups
		return nil
	})
	if err != nil {
		return err
	}
	if err := commit(); err != nil {
		return err
	}
	restricted := s.Restricted
	if restricted == nil {
		restricted = []authz.Grant{}
	}
	return writeJSON(w, http.StatusOK, map[string]any{"id": s.ID, "restricted": restricted})
}
