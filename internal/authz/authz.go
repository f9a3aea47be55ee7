// Package authz decides whether a principal may perform an operation. It is
// the one place where a request is authorized: deny by default, one pure
// function over the principal's roles and the route's declared permission.
//
// Permissions are "scope:operation". The tenant layer is enforced below
// this package (handlers only hold a tenant view of the principal's tenant);
// custom roles, record-level group restriction and the full permission
// catalogue build on this function.
package authz

import (
	"slices"

	"github.com/idvault/idvault/internal/identity"
)

// Permissions used by the routes.
const (
	SessionRead  = "session:read"
	SessionWrite = "session:write"
	// SessionDelete deletes a session and crypto-shreds its data.
	SessionDelete = "session:delete"
	FileRead      = "file:read"
	FileWrite     = "file:write"
	// SettingsRead lists settings, such as the names of admin-entered
	// secrets (never their values).
	SettingsRead = "settings:read"
	// SettingsWrite changes settings, such as admin-entered secrets.
	SettingsWrite = "settings:write"
)

// Built-in roles.
const (
	RoleAdmin       = "admin"
	RoleIntegration = "integration"
)

// rolePermissions maps each built-in role to the permissions it grants.
var rolePermissions = map[string][]string{
	RoleAdmin:       {SessionRead, SessionWrite, SessionDelete, FileRead, FileWrite, SettingsRead, SettingsWrite},
	RoleIntegration: {SessionRead, SessionWrite, FileRead, FileWrite},
}

// Known reports whether perm is a permission some role can grant.
func Known(perm string) bool {
	for _, perms := range rolePermissions {
		if slices.Contains(perms, perm) {
			return true
		}
	}
	return false
}

// Allowed reports whether p may exercise perm. Unknown roles grant nothing;
// an empty permission is never allowed.
func Allowed(p identity.Principal, perm string) bool {
	if perm == "" || p.Tenant == "" {
		return false
	}
	for _, r := range p.Roles {
		if slices.Contains(rolePermissions[r], perm) {
			return true
		}
	}
	return false
}
