package identity

import (
	"context"
	"errors"
	"time"

	"github.com/idvault/idvault/internal/authz"
	"github.com/idvault/idvault/internal/store"
)

// Custom roles: a tenant's named sets of permissions, beside the built-in
// roles. A user holding a custom role gets its permissions, resolved at
// every request, so a changed role takes effect at once.

// CollRoles holds a tenant's custom roles, keyed by name.
const CollRoles = "roles"

// Role is a custom role.
type Role struct {
	Name        string    `json:"name"`
	Permissions []string  `json:"permissions"`
	CreatedAt   time.Time `json:"createdAt"`
}

// PutRole creates or replaces tenant's custom role name (validated by
// authz.ValidateRole; the caller has checked the permissions are its own).
func (s *Service) PutRole(ctx context.Context, tenant, name string, perms []string) (Role, error) {
	if err := authz.ValidateRole(name, perms); err != nil {
		return Role{}, err
	}
	v, err := s.view(tenant)
	if err != nil {
		return Role{}, err
	}
	r := Role{Name: name, Permissions: perms, CreatedAt: s.now().UTC()}
	for {
		var cur Role
		rec, err := v.Get(ctx, CollRoles, name, &cur)
		switch {
		case errors.Is(err, store.ErrNotFound):
			_, err = v.Put(ctx, CollRoles, name, nil, r)
		case err != nil:
			return Role{}, err
		default:
			r.CreatedAt = cur.CreatedAt
			_, err = v.Update(ctx, CollRoles, name, rec.Version, nil, r)
		}
		if errors.Is(err, store.ErrConflict) {
			continue
		}
		return r, err
	}
}

// CustomRoles lists tenant's custom roles.
func (s *Service) CustomRoles(ctx context.Context, tenant string) ([]Role, error) {
	v, err := s.view(tenant)
	if err != nil {
		return nil, err
	}
	out := []Role{}
	err = each(ctx, v, CollRoles, func(r Role) error {
		out = append(out, r)
		return nil
	})
	return out, err
}

// CustomPermissions returns the permissions of the custom roles among
// roles (built-in roles are decided by authz itself). An unknown role name
// grants nothing.
func (s *Service) CustomPermissions(ctx context.Context, tenant string, roles []string) ([]string, error) {
	var out []string
	var v *store.View
	for _, name := range roles {
		if _, builtin := authz.RolePermissions(name); builtin {
			continue
		}
		if v == nil {
			var err error
			if v, err = s.view(tenant); err != nil {
				return nil, err
			}
		}
		var r Role
		if _, err := v.Get(ctx, CollRoles, name, &r); errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrInvalid) {
			continue
		} else if err != nil {
			return nil, err
		}
		out = append(out, r.Permissions...)
	}
	return out, nil
}
