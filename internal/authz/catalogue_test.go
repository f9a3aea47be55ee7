package authz

import (
	"errors"
	"os"
	"slices"
	"strings"
	"testing"
)

func TestCatalogue(t *testing.T) {
	got := All()
	if len(got) != len(wantCatalogue) {
		t.Fatalf("len(All()) = %d, want %d", len(got), len(wantCatalogue))
	}
	for i, p := range got {
		if string(p) != wantCatalogue[i] {
			t.Errorf("All()[%d] = %q, want %q", i, p, wantCatalogue[i])
		}
		if !Known(p) {
			t.Errorf("Known(%q) = false, want true", p)
		}
	}
	got[0] = "mutated"
	if All()[0] != SessionRead {
		t.Error("All() shares its slice with the catalogue")
	}
}

func TestRolePermissions(t *testing.T) {
	if got, want := Roles(), []string{"admin", "verifier", "auditor", "integration", "device"}; !slices.Equal(got, want) {
		t.Errorf("Roles() = %v, want %v", got, want)
	}
	for role, want := range wantRoles {
		t.Run(role, func(t *testing.T) {
			perms, ok := RolePermissions(role)
			if !ok {
				t.Fatalf("RolePermissions(%q) = _, false, want true", role)
			}
			got := make([]string, len(perms))
			for i, p := range perms {
				got[i] = string(p)
			}
			if !slices.Equal(slices.Sorted(slices.Values(got)), slices.Sorted(slices.Values(want))) {
				t.Errorf("RolePermissions(%q) = %v, want %v", role, got, want)
			}
		})
	}
	for _, name := range []string{"", "Admin", "admin ", "superuser", "session:read"} {
		if perms, ok := RolePermissions(name); ok || perms != nil {
			t.Errorf("RolePermissions(%q) = %v, %v, want nil, false", name, perms, ok)
		}
	}
	perms, _ := RolePermissions(RoleAdmin)
	perms[0] = "mutated"
	if again, _ := RolePermissions(RoleAdmin); again[0] != SessionRead {
		t.Error("RolePermissions shares its slice with the role table")
	}
}

func TestParse(t *testing.T) {
	tests := []struct {
		in string
		ok bool
	}{
		{"session:read", true},
		{"session:read_all", true},
		{"session:restrict", true},
		{"audit:read", true},
		{"key:delete", true},
		{"", false},
		{"session", false},
		{"session:", false},
		{":read", false},
		{"Session:Read", false},
		{" session:read", false},
		{"session:read ", false},
		{"session:*", false},
		{"*", false},
		{"session:restrict_all", false},
		{"audit:write", false},
		{"audit:read_all", false},
		{"user:read_all", false},
		{"session:read:all", false},
		{"session:read\x00", false},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			p, err := Parse(tc.in)
			if tc.ok {
				if err != nil || string(p) != tc.in {
					t.Errorf("Parse(%q) = %q, %v, want %q, nil", tc.in, p, err, tc.in)
				}
				return
			}
			if !errors.Is(err, ErrUnknownPermission) || p != "" {
				t.Errorf("Parse(%q) = %q, %v, want \"\", ErrUnknownPermission", tc.in, p, err)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	for _, p := range wantCatalogue {
		f.Add(p)
	}
	for _, s := range []string{"", ":", "session:read_all_all", "SESSION:READ", "session:read\n", "é:read"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := Parse(s)
		if (err == nil) != slices.Contains(wantCatalogue, s) {
			t.Fatalf("Parse(%q) = %q, %v, want ok %v", s, p, err, slices.Contains(wantCatalogue, s))
		}
		if err == nil && (string(p) != s || !Known(p)) {
			t.Errorf("Parse(%q) = %q, want %q and known", s, p, s)
		}
		if err != nil && (p != "" || !errors.Is(err, ErrUnknownPermission) || Known(Permission(s))) {
			t.Errorf("Parse(%q) = %q, %v, want \"\", ErrUnknownPermission and unknown", s, p, err)
		}
	})
}

func TestValidateRole(t *testing.T) {
	tests := []struct {
		name  string
		role  string
		perms []string
		// problems is how many errors the joined error holds (0: valid).
		problems int
	}{
		{"valid", "reviewer", []string{"session:read_all", "file:read_all"}, 0},
		{"digits dashes underscores", "kyc-team_2", []string{"session:read"}, 0},
		{"64 characters", "a" + strings.Repeat("b", 63), []string{"audit:read"}, 0},
		{"restrict permission", "restricter", []string{"session:restrict"}, 0},
		{"65 characters", "a" + strings.Repeat("b", 64), []string{"audit:read"}, 1},
		{"empty name", "", []string{"audit:read"}, 1},
		{"capitals", "Reviewer", []string{"audit:read"}, 1},
		{"leading digit", "1st", []string{"audit:read"}, 1},
		{"colon", "session:read", []string{"audit:read"}, 1},
		{"space", "kyc team", []string{"audit:read"}, 1},
		{"wildcard", "*", []string{"audit:read"}, 1},
		{"built-in admin", "admin", []string{"audit:read"}, 1},
		{"built-in device", "device", []string{"audit:read"}, 1},
		{"no permissions", "empty", nil, 1},
		{"unknown permission", "x", []string{"session:admin"}, 1},
		{"permission in capitals", "x", []string{"Session:Read"}, 1},
		{"permission twice", "x", []string{"audit:read", "audit:read"}, 1},
		{"every problem", "Admin", []string{"nope", "audit:read", "audit:read", "*"}, 4},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := ValidateRole(tc.role, tc.perms)
			if tc.problems == 0 {
				if err != nil {
					t.Errorf("ValidateRole(%q, %q) = %v, want nil", tc.role, tc.perms, err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidRole) {
				t.Fatalf("ValidateRole(%q, %q) = %v, want ErrInvalidRole", tc.role, tc.perms, err)
			}
			if got := len(err.(interface{ Unwrap() []error }).Unwrap()); got != tc.problems {
				t.Errorf("ValidateRole(%q, %q) = %d problems (%v), want %d", tc.role, tc.perms, got, err, tc.problems)
			}
		})
	}
}

func TestCanGrant(t *testing.T) {
	admin := Subject{Tenant: tenant, ID: "u-admin", Roles: []string{RoleAdmin}}
	verifier := Subject{Tenant: tenant, ID: "u-ver", Roles: []string{RoleVerifier}}
	integ := Subject{Tenant: tenant, ID: "k", Roles: []string{RoleIntegration}}
	device := Subject{Tenant: tenant, ID: "d", Roles: []string{RoleDevice}, BoundSession: "s-1"}
	custom := Subject{Tenant: tenant, ID: "u-c", Custom: []string{"webhook:read", "webhook:write"}}
	adminPerms, _ := RolePermissions(RoleAdmin)
	integPerms, _ := RolePermissions(RoleIntegration)
	verifierMissing := slices.DeleteFunc(slices.Clone(adminPerms), func(p Permission) bool {
		return slices.Contains([]Permission{
			SessionRead, SessionReadAll, SessionWrite, SessionWriteAll,
			FileRead, FileReadAll, ProfileRead, ProfileReadAll,
		}, p)
	})
	tests := []struct {
		name    string
		granter Subject
		perms   []Permission
		missing []Permission
		unknown bool
	}{
		{"admin grants everything", admin, adminPerms, nil, false},
		{"admin grants nothing", admin, nil, nil, false},
		{"integration grants its own", integ, integPerms, nil, false},
		{"integration asks for read_all", integ, []Permission{SessionRead, SessionReadAll}, []Permission{SessionReadAll}, false},
		{"integration asks for delete", integ, []Permission{SessionDelete}, []Permission{SessionDelete}, false},
		{"verifier grants admin", verifier, adminPerms, verifierMissing, false},
		{"verifier grants the own form of what it holds for all", verifier, []Permission{SessionRead, FileRead}, nil, false},
		{"verifier grants restrict", verifier, []Permission{SessionRestrict}, []Permission{SessionRestrict}, false},
		{"device grants its bound permissions", device, []Permission{FileWrite}, []Permission{FileWrite}, false},
		{"custom permissions", custom, []Permission{WebhookRead, WebhookWrite}, nil, false},
		{"custom permissions, one more", custom, []Permission{WebhookRead, WebhookDelete}, []Permission{WebhookDelete}, false},
		{"missing once", integ, []Permission{KeyRead, KeyRead}, []Permission{KeyRead}, false},
		{"no tenant", Subject{ID: "u", Roles: []string{RoleAdmin}}, []Permission{AuditRead}, []Permission{AuditRead}, false},
		{"unknown permission", admin, []Permission{"session:*"}, nil, true},
		{"unknown and missing", integ, []Permission{"x", AuditRead}, []Permission{AuditRead}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := CanGrant(tc.granter, tc.perms)
			if tc.missing == nil && !tc.unknown {
				if err != nil {
					t.Errorf("CanGrant(%v, %v) = %v, want nil", tc.granter.Roles, tc.perms, err)
				}
				return
			}
			if got := errors.Is(err, ErrUnknownPermission); got != tc.unknown {
				t.Errorf("CanGrant(%v, %v) = %v, want ErrUnknownPermission %v", tc.granter.Roles, tc.perms, err, tc.unknown)
			}
			var esc *EscalationError
			if !errors.As(err, &esc) {
				if tc.missing != nil {
					t.Errorf("CanGrant(%v, %v) = %v, want an *EscalationError", tc.granter.Roles, tc.perms, err)
				}
				return
			}
			if !errors.Is(err, ErrEscalation) || !slices.Equal(esc.Missing, tc.missing) {
				t.Errorf("CanGrant(%v, %v) = %v, want ErrEscalation missing %v", tc.granter.Roles, tc.perms, err, tc.missing)
			}
		})
	}
}

func TestEscalationErrorMessage(t *testing.T) {
	err := CanGrant(Subject{Tenant: tenant, Roles: []string{RoleIntegration}}, []Permission{SessionReadAll, AuditRead})
	if got, want := err.Error(), "authz: cannot grant a permission not held: session:read_all, audit:read"; got != want {
		t.Errorf("CanGrant(...).Error() = %q, want %q", got, want)
	}
}

func TestValidateRestriction(t *testing.T) {
	many := make([]Grant, MaxGrants+1)
	for i := range many {
		many[i] = Grant{Group: "g" + strings.Repeat("x", i), Mode: ReadOnly}
	}
	tests := []struct {
		name     string
		grants   []Grant
		problems int
	}{
		{"none lifts the restriction", nil, 0},
		{"ro and rw", []Grant{{"g1", ReadOnly}, {"g2", ReadWrite}}, 0},
		{"most groups", many[:MaxGrants], 0},
		{"too many groups", many, 1},
		{"empty group", []Grant{{"", ReadWrite}}, 1},
		{"unknown mode", []Grant{{"g", "RW"}}, 1},
		{"empty mode", []Grant{{"g", ""}}, 1},
		{"group twice", []Grant{{"g", ReadOnly}, {"g", ReadWrite}}, 1},
		{"every problem", []Grant{{"", "x"}, {"g", ReadOnly}, {"g", ReadOnly}}, 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := ValidateRestriction(tc.grants)
			if tc.problems == 0 {
				if err != nil {
					t.Errorf("ValidateRestriction(%v) = %v, want nil", tc.grants, err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidRestriction) {
				t.Fatalf("ValidateRestriction(%v) = %v, want ErrInvalidRestriction", tc.grants, err)
			}
			if got := len(err.(interface{ Unwrap() []error }).Unwrap()); got != tc.problems {
				t.Errorf("ValidateRestriction(%v) = %d problems (%v), want %d", tc.grants, got, err, tc.problems)
			}
		})
	}
}

// TestReferenceDoc keeps docs/access-control.md in step with the catalogue
// and the roles: every permission has a row, every role a row listing
// exactly its permissions.
func TestReferenceDoc(t *testing.T) {
	b, err := os.ReadFile("../../docs/access-control.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	for _, p := range wantCatalogue {
		if !strings.Contains(doc, "\n| `"+p+"` |") {
			t.Errorf("docs/access-control.md has no row for %s", p)
		}
	}
	for role, perms := range wantRoles {
		_, rest, ok := strings.Cut(doc, "\n| `"+role+"` |")
		if !ok {
			t.Errorf("docs/access-control.md has no row for role %s", role)
			continue
		}
		row, _, _ := strings.Cut(rest, "\n")
		cells := strings.Split(row, "|")
		if role == "admin" {
			continue // "every permission"
		}
		var got []string
		for _, f := range strings.Split(cells[0], "`") {
			if strings.Contains(f, ":") {
				got = append(got, f)
			}
		}
		if !slices.Equal(slices.Sorted(slices.Values(got)), slices.Sorted(slices.Values(perms))) {
			t.Errorf("docs/access-control.md role %s lists %v, want %v", role, got, perms)
		}
	}
}
