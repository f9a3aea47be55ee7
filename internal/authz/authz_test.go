package authz

import (
	"testing"

	"github.com/idvault/idvault/internal/identity"
)

func TestAllowed(t *testing.T) {
	admin := identity.Principal{Tenant: "t1", Type: "apikey", ID: "k", Roles: []string{RoleAdmin}}
	integ := identity.Principal{Tenant: "t1", Type: "apikey", ID: "k", Roles: []string{RoleIntegration}}
	none := identity.Principal{Tenant: "t1", Type: "apikey", ID: "k"}
	unknown := identity.Principal{Tenant: "t1", Type: "apikey", ID: "k", Roles: []string{"superuser"}}
	noTenant := identity.Principal{Type: "apikey", ID: "k", Roles: []string{RoleAdmin}}
	tests := []struct {
		name string
		p    identity.Principal
		perm string
		want bool
	}{
		{"admin session read", admin, SessionRead, true},
		{"admin file write", admin, FileWrite, true},
		{"integration session write", integ, SessionWrite, true},
		{"integration file read", integ, FileRead, true},
		{"no roles", none, SessionRead, false},
		{"unknown role", unknown, SessionRead, false},
		{"unknown permission", admin, "audit:read", false},
		{"empty permission", admin, "", false},
		{"no tenant", noTenant, SessionRead, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Allowed(tc.p, tc.perm); got != tc.want {
				t.Errorf("Allowed(%v, %q) = %v, want %v", tc.p.Roles, tc.perm, got, tc.want)
			}
		})
	}
}
