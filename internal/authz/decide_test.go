package authz

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// The oracle's tables are written out here, not taken from the package:
// TestCatalogue and TestRolePermissions tie the package to them, and
// TestDecisionTable checks Decide against an independent reading of the rules.

// wantCatalogue is every permission, in documentation order.
var wantCatalogue = []string{
	"session:read", "session:read_all", "session:write", "session:write_all", "session:delete", "session:delete_all", "session:restrict",
	"file:read", "file:read_all", "file:write", "file:write_all", "file:delete", "file:delete_all",
	"profile:read", "profile:read_all", "profile:write", "profile:write_all", "profile:delete", "profile:delete_all", "profile:restrict",
	"workflow:read", "workflow:read_all", "workflow:write", "workflow:write_all", "workflow:delete", "workflow:delete_all", "workflow:restrict",
	"user:read", "user:write", "user:delete",
	"group:read", "group:write", "group:delete",
	"role:read", "role:write", "role:delete",
	"apikey:read", "apikey:read_all", "apikey:write", "apikey:write_all", "apikey:delete", "apikey:delete_all",
	"devicetoken:read", "devicetoken:read_all", "devicetoken:write", "devicetoken:write_all", "devicetoken:delete", "devicetoken:delete_all",
	"webhook:read", "webhook:write", "webhook:delete",
	"audit:read",
	"settings:read", "settings:write", "settings:delete",
	"key:read", "key:write", "key:delete",
}

// wantRoles is what each built-in role holds. The device role holds its
// permissions on its bound session only.
var wantRoles = map[string][]string{
	"admin":       wantCatalogue,
	"verifier":    {"session:read_all", "session:write_all", "file:read_all", "profile:read_all"},
	"auditor":     {"audit:read", "settings:read"},
	"integration": {"session:read", "session:write", "file:read", "file:write", "devicetoken:write"},
	"device":      {"session:write", "file:write"},
}

// wantOwned are the resources whose records have an owner.
var wantOwned = []string{"session", "file", "profile", "workflow", "apikey", "devicetoken"}

type restriction int

const (
	unrestricted restriction = iota
	memberRW
	memberRO
	nonMember
)

func (r restriction) String() string {
	return [...]string{"unrestricted", "member-rw", "member-ro", "non-member"}[r]
}

// combo is one state of a record relative to the subject.
type combo struct {
	sameTenant  bool
	restriction restriction
	own         bool // the subject created the record
	bound       bool // the record is the subject's bound session
}

func (c combo) String() string {
	return fmt.Sprintf("sameTenant=%v %v own=%v bound=%v", c.sameTenant, c.restriction, c.own, c.bound)
}

func combos() []combo {
	var cs []combo
	for _, t := range []bool{true, false} {
		for r := unrestricted; r <= nonMember; r++ {
			for _, own := range []bool{true, false} {
				for _, bound := range []bool{true, false} {
					cs = append(cs, combo{t, r, own, bound})
				}
			}
		}
	}
	return cs
}

const (
	tenant = "t-1"
	me     = "p-me"
)

// subjectFor is a subject of tenant with role, in groups g-rw and g-ro (the
// restricted records below give those groups rw and ro), bound to session
// "s-bound" (which grants nothing but to the device role).
func subjectFor(role string) Subject {
	return Subject{Tenant: tenant, ID: me, Roles: []string{role}, Groups: []string{"g-other", "g-rw-" + role, "g-ro-" + role}, BoundSession: "s-bound"}
}

func recordFor(role string, c combo) Record {
	r := Record{Tenant: tenant, ID: "s-other", Owner: "p-someone-else"}
	if !c.sameTenant {
		r.Tenant = "t-2"
	}
	if c.own {
		r.Owner = me
	}
	if c.bound {
		r.ID = "s-bound"
	}
	switch c.restriction {
	case memberRW:
		r.Restricted = []Grant{{"g-x", ReadOnly}, {"g-rw-" + role, ReadWrite}}
	case memberRO:
		r.Restricted = []Grant{{"g-ro-" + role, ReadOnly}, {"g-y", ReadWrite}}
	case nonMember:
		r.Restricted = []Grant{{"g-x", ReadWrite}, {"g-y", ReadOnly}}
	}
	return r
}

// oracleHolds says which forms of perm role holds: own (perm itself,
// not an _all permission), all (the _all form) and bound (on the device's
// session only).
func oracleHolds(role, perm string) (own, all, bound bool) {
	res, op, _ := strings.Cut(perm, ":")
	base, isAll := strings.CutSuffix(op, "_all")
	grants := wantRoles[role]
	if role == "device" {
		return false, false, slices.Contains(grants, perm)
	}
	return !isAll && slices.Contains(grants, perm), slices.Contains(grants, res+":"+base+"_all"), false
}

// oracle is the expected outcome of role exercising perm on a record in
// state c, straight from the rules in docs/access-control.md.
func oracle(role, perm string, c combo) Outcome {
	if !c.sameTenant {
		return NotFound
	}
	res, op, _ := strings.Cut(perm, ":")
	base, _ := strings.CutSuffix(op, "_all")
	own, all, bound := oracleHolds(role, perm)
	if !own && !all && !bound {
		return Deny
	}
	if base == "restrict" {
		return Allow
	}
	if c.restriction == nonMember {
		return NotFound
	}
	reaches := all || (own && (c.own || !slices.Contains(wantOwned, res))) || (bound && c.bound)
	if !reaches {
		return NotFound
	}
	if c.restriction == memberRO && base != "read" {
		return Deny
	}
	return Allow
}

// oracleCollection is the expected outcome of role exercising perm on the
// collection (r == nil).
func oracleCollection(role, perm string, hasTenant bool) Outcome {
	if !hasTenant {
		return NotFound
	}
	own, all, _ := oracleHolds(role, perm)
	if own || all {
		return Allow
	}
	return Deny // a device token never acts on a collection
}

func TestDecisionTable(t *testing.T) {
	cs := combos()
	for role := range wantRoles {
		for _, perm := range wantCatalogue {
			t.Run(role+"/"+perm, func(t *testing.T) {
				s := subjectFor(role)
				for _, c := range cs {
					r := recordFor(role, c)
					d := Decide(s, Permission(perm), &r)
					if want := oracle(role, perm, c); d.Outcome != want {
						t.Errorf("Decide(%s, %s, %v) = %v (%s), want %v", role, perm, c, d.Outcome, d.Reason, want)
					}
					if d.Reason == "" {
						t.Errorf("Decide(%s, %s, %v) has no reason", role, perm, c)
					}
					if v := Visible(s, Permission(perm), r); v != (d.Outcome == Allow) {
						t.Errorf("Visible(%s, %s, %v) = %v, want %v", role, perm, c, v, d.Outcome == Allow)
					}
				}
				for _, hasTenant := range []bool{true, false} {
					s := subjectFor(role)
					if !hasTenant {
						s.Tenant = ""
					}
					d := Decide(s, Permission(perm), nil)
					if want := oracleCollection(role, perm, hasTenant); d.Outcome != want {
						t.Errorf("Decide(%s with tenant %q, %s, nil) = %v (%s), want %v", role, s.Tenant, perm, d.Outcome, d.Reason, want)
					}
					own, all, bound := oracleHolds(role, perm)
					if got, want := Allowed(s, Permission(perm)), hasTenant && (own || all || bound); got != want {
						t.Errorf("Allowed(%s with tenant %q, %s) = %v, want %v", role, s.Tenant, perm, got, want)
					}
				}
			})
		}
	}
}

func TestDecide(t *testing.T) {
	admin := Subject{Tenant: tenant, ID: "u-admin", Roles: []string{RoleAdmin}, Groups: []string{"g-ops"}}
	verifier := Subject{Tenant: tenant, ID: "u-ver", Roles: []string{RoleVerifier}, Groups: []string{"g-kyc", "g-read"}}
	integ := Subject{Tenant: tenant, ID: "k-integ", Roles: []string{RoleIntegration}}
	device := Subject{Tenant: tenant, ID: "d-1", Roles: []string{RoleDevice}, BoundSession: "s-1"}
	restricted := &Record{Tenant: tenant, ID: "s-1", Owner: "k-integ", Restricted: []Grant{{"g-kyc", ReadWrite}, {"g-read", ReadOnly}}}
	readOnly := &Record{Tenant: tenant, ID: "s-2", Owner: "k-integ", Restricted: []Grant{{"g-read", ReadOnly}}}
	integSession := &Record{Tenant: tenant, ID: "s-1", Owner: "k-integ"}
	otherSession := &Record{Tenant: tenant, ID: "s-3", Owner: "k-other"}
	with := func(s Subject, f func(*Subject)) Subject {
		f(&s)
		return s
	}
	tests := []struct {
		name string
		s    Subject
		perm Permission
		r    *Record
		want Outcome
	}{
		{"admin not a member reads", admin, SessionRead, restricted, NotFound},
		{"admin not a member reads all", admin, SessionReadAll, restricted, NotFound},
		{"admin not a member writes", admin, SessionWrite, restricted, NotFound},
		{"admin not a member reads files", admin, FileRead, restricted, NotFound},
		{"admin not a member restricts", admin, SessionRestrict, restricted, Allow},
		{"admin lists restrictions", admin, WorkflowRestrict, nil, Allow},
		{"admin member reads", with(admin, func(s *Subject) { s.Groups = []string{"g-kyc"} }), SessionRead, restricted, Allow},
		{"admin unrestricted of another principal", admin, SessionDelete, otherSession, Allow},
		{"admin other tenant", with(admin, func(s *Subject) { s.Tenant = "t-2" }), SessionRead, integSession, NotFound},
		{"admin other tenant restricts", with(admin, func(s *Subject) { s.Tenant = "t-2" }), SessionRestrict, integSession, NotFound},
		{"verifier rw member decides", verifier, SessionWrite, restricted, Allow},
		{"verifier best of ro and rw groups", verifier, SessionWriteAll, restricted, Allow},
		{"verifier ro member reads", verifier, SessionRead, readOnly, Allow},
		{"verifier ro member writes", verifier, SessionWrite, readOnly, Deny},
		{"verifier ro member reads files", verifier, FileRead, readOnly, Allow},
		{"verifier cannot restrict", verifier, SessionRestrict, restricted, Deny},
		{"verifier cannot delete", verifier, SessionDelete, integSession, Deny},
		{"verifier lacking delete on an invisible record", verifier, SessionDelete, &Record{Tenant: tenant, ID: "s-9", Restricted: []Grant{{"g-x", ReadWrite}}}, Deny},
		{"verifier reads another's session", verifier, SessionRead, otherSession, Allow},
		{"verifier asks for read_all", verifier, SessionReadAll, nil, Allow},
		{"integration reads own", integ, SessionRead, integSession, Allow},
		{"integration reads another's", integ, SessionRead, otherSession, NotFound},
		{"integration writes another's", integ, FileWrite, otherSession, NotFound},
		{"integration deletes own", integ, SessionDelete, integSession, Deny},
		{"integration asks for read_all", integ, SessionReadAll, nil, Deny},
		{"integration creates", integ, SessionWrite, nil, Allow},
		{"integration lists", integ, SessionRead, nil, Allow},
		{"integration not a member of own restricted", integ, SessionRead, restricted, NotFound},
		{"ownerless record, empty subject id", with(integ, func(s *Subject) { s.ID = "" }), SessionRead, &Record{Tenant: tenant, ID: "s-4"}, NotFound},
		{"integration and verifier", with(integ, func(s *Subject) { s.Roles = []string{RoleIntegration, RoleVerifier} }), SessionRead, otherSession, Allow},
		{"device uploads to its session", device, FileWrite, integSession, Allow},
		{"device writes its session", device, SessionWrite, integSession, Allow},
		{"device outside its session", device, FileWrite, otherSession, NotFound},
		{"device outside its session, own record", device, FileWrite, &Record{Tenant: tenant, ID: "s-5", Owner: "d-1"}, NotFound},
		{"device reads its session", device, SessionRead, integSession, Deny},
		{"device creates a session", device, SessionWrite, nil, Deny},
		{"device without a bound session", with(device, func(s *Subject) { s.BoundSession = "" }), FileWrite, &Record{Tenant: tenant}, Deny},
		{"device on its restricted session, not a member", device, FileWrite, restricted, NotFound},
		{"device on its restricted session, rw member", with(device, func(s *Subject) { s.Groups = []string{"g-kyc"} }), FileWrite, restricted, Allow},
		{"device of another tenant", device, FileWrite, &Record{Tenant: "t-2", ID: "s-1"}, NotFound},
		{"unknown role", with(admin, func(s *Subject) { s.Roles = []string{"superuser"} }), SessionRead, nil, Deny},
		{"role in capitals", with(admin, func(s *Subject) { s.Roles = []string{"Admin"} }), SessionRead, nil, Deny},
		{"role with a space", with(admin, func(s *Subject) { s.Roles = []string{"admin "} }), SessionRead, nil, Deny},
		{"permission as role", with(admin, func(s *Subject) { s.Roles = []string{"session:read"} }), SessionRead, nil, Deny},
		{"wildcard role", with(admin, func(s *Subject) { s.Roles = []string{"*"} }), SessionRead, nil, Deny},
		{"no roles", with(admin, func(s *Subject) { s.Roles = nil }), SessionRead, nil, Deny},
		{"custom permission", Subject{Tenant: tenant, ID: "u-c", Custom: []string{"session:read_all"}}, SessionRead, otherSession, Allow},
		{"custom permission in capitals", Subject{Tenant: tenant, ID: "u-c", Custom: []string{"Session:Read"}}, SessionRead, nil, Deny},
		{"custom wildcard", Subject{Tenant: tenant, ID: "u-c", Custom: []string{"*", "session:*"}}, SessionRead, nil, Deny},
		{"empty tenant", with(admin, func(s *Subject) { s.Tenant = "" }), SessionRead, nil, NotFound},
		{"empty tenant, record without tenant", with(admin, func(s *Subject) { s.Tenant = "" }), SessionRead, &Record{ID: "s-1"}, NotFound},
		{"record without tenant", admin, SessionRead, &Record{ID: "s-1"}, NotFound},
		{"unknown permission", admin, "session:admin", nil, Deny},
		{"empty permission", admin, "", nil, Deny},
		{"permission with a space", admin, "session:read ", nil, Deny},
		{"restrict_all is no permission", admin, "session:restrict_all", nil, Deny},
		{"grant of unknown mode", with(admin, func(s *Subject) { s.Groups = []string{"g-1"} }), SessionRead, &Record{Tenant: tenant, Restricted: []Grant{{"g-1", "RW"}}}, NotFound},
		{"grant of empty group", with(admin, func(s *Subject) { s.Groups = []string{""} }), SessionRead, &Record{Tenant: tenant, Restricted: []Grant{{"", ReadWrite}}}, NotFound},
		{"admin lists sessions", admin, SessionRead, nil, Allow},
		{"auditor reads audit", Subject{Tenant: tenant, ID: "u-a", Roles: []string{RoleAuditor}}, AuditRead, nil, Allow},
		{"auditor reads sessions", Subject{Tenant: tenant, ID: "u-a", Roles: []string{RoleAuditor}}, SessionRead, nil, Deny},
		{"admin writes audit", admin, "audit:write", nil, Deny},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := Decide(tc.s, tc.perm, tc.r)
			if d.Outcome != tc.want {
				t.Errorf("Decide(%+v, %q, %+v) = %v (%s), want %v", tc.s, tc.perm, tc.r, d.Outcome, d.Reason, tc.want)
			}
		})
	}
}

// TestDenyRevealsNothing: a subject lacking a permission gets the same
// Deny for a visible record, an invisible one and none at all.
func TestDenyRevealsNothing(t *testing.T) {
	s := Subject{Tenant: tenant, ID: "k", Roles: []string{RoleIntegration}, Groups: []string{"g"}}
	records := []*Record{
		nil,
		{Tenant: tenant, ID: "s-1", Owner: "k"},
		{Tenant: tenant, ID: "s-2", Owner: "other"},
		{Tenant: tenant, ID: "s-3", Owner: "k", Restricted: []Grant{{"g-x", ReadWrite}}},
		{Tenant: tenant, ID: "s-4", Owner: "k", Restricted: []Grant{{"g", ReadOnly}}},
	}
	want := Decide(s, SessionDelete, nil)
	for _, r := range records {
		if got := Decide(s, SessionDelete, r); got != want {
			t.Errorf("Decide(integration, session:delete, %+v) = %+v, want %+v", r, got, want)
		}
	}
}

func TestVisible(t *testing.T) {
	s := Subject{Tenant: tenant, ID: "k", Roles: []string{RoleIntegration}, Groups: []string{"g"}}
	records := []Record{
		{Tenant: tenant, ID: "own", Owner: "k"},
		{Tenant: tenant, ID: "other", Owner: "j"},
		{Tenant: "t-2", ID: "foreign", Owner: "k"},
		{Tenant: tenant, ID: "own-member", Owner: "k", Restricted: []Grant{{"g", ReadOnly}}},
		{Tenant: tenant, ID: "own-outside", Owner: "k", Restricted: []Grant{{"h", ReadWrite}}},
	}
	var got []string
	for _, r := range records {
		if Visible(s, SessionRead, r) {
			got = append(got, r.ID)
		}
	}
	if want := []string{"own", "own-member"}; !slices.Equal(got, want) {
		t.Errorf("visible records = %v, want %v", got, want)
	}
}

func TestDecisionErr(t *testing.T) {
	tests := []struct {
		outcome Outcome
		want    error
		str     string
	}{
		{Allow, nil, "allow"},
		{Deny, ErrForbidden, "deny"},
		{NotFound, ErrNotFound, "not found"},
		{Outcome(9), ErrForbidden, "deny"},
	}
	for _, tc := range tests {
		t.Run(tc.str, func(t *testing.T) {
			if got := (Decision{Outcome: tc.outcome}).Err(); !errors.Is(got, tc.want) || (got == nil) != (tc.want == nil) {
				t.Errorf("Decision{%v}.Err() = %v, want %v", tc.outcome, got, tc.want)
			}
			if got := tc.outcome.String(); got != tc.str {
				t.Errorf("Outcome(%d).String() = %q, want %q", tc.outcome, got, tc.str)
			}
		})
	}
	var zero Decision
	if zero.Outcome != Deny {
		t.Errorf("zero Decision = %v, want deny", zero.Outcome)
	}
}

func FuzzDecide(f *testing.F) {
	f.Add("admin", "session:read", "t", "t", "s", "u", "g", "rw", "u", "s")
	f.Add("device", "file:write", "t", "t", "s", "d", "g", "ro", "x", "s")
	f.Add("integration", "session:read_all", "t", "u", "s", "k", "", "", "k", "")
	f.Fuzz(func(t *testing.T, role, perm, sTenant, rTenant, rID, sID, group, mode, owner, bound string) {
		s := Subject{Tenant: sTenant, ID: sID, Roles: []string{role}, Custom: []string{perm}, Groups: []string{group}, BoundSession: bound}
		r := &Record{Tenant: rTenant, ID: rID, Owner: owner, Restricted: []Grant{{group, Mode(mode)}}}
		d := Decide(s, Permission(perm), r)
		switch {
		case d.Reason == "":
			t.Errorf("Decide(%+v, %q, %+v) has no reason", s, perm, r)
		case d.Outcome == Allow && (sTenant == "" || sTenant != rTenant):
			t.Errorf("Decide(%+v, %q, %+v) = allow across tenants", s, perm, r)
		case d.Outcome == Allow && !Known(Permission(perm)):
			t.Errorf("Decide(%+v, %q, %+v) = allow for an unknown permission", s, perm, r)
		case d.Outcome == Allow && !Allowed(s, Permission(perm)):
			t.Errorf("Decide(%+v, %q, %+v) = allow, but Allowed = false", s, perm, r)
		case d.Outcome == Allow && !strings.HasSuffix(perm, ":restrict") && mode != "ro" && mode != "rw":
			t.Errorf("Decide(%+v, %q, %+v) = allow through a grant of mode %q", s, perm, r, mode)
		}
	})
}

func BenchmarkDecide(b *testing.B) {
	verifier := Subject{Tenant: tenant, ID: "u-ver", Roles: []string{RoleVerifier, "reviewers"}, Custom: []string{"workflow:read_all", "profile:write_all"}, Groups: []string{"g-a", "g-b", "g-kyc"}}
	integ := Subject{Tenant: tenant, ID: "k-integ", Roles: []string{RoleIntegration}}
	restricted := &Record{Tenant: tenant, ID: "s-1", Owner: "k-integ", Restricted: []Grant{{"g-x", ReadOnly}, {"g-kyc", ReadWrite}}}
	own := &Record{Tenant: tenant, ID: "s-1", Owner: "k-integ"}
	// The worst case: a subject in 32 groups, a record restricted to the
	// most groups, none shared. Group ids are UUIDv7: a shared time prefix,
	// random at the end.
	rnd := rand.New(rand.NewPCG(1, 2))
	groupID := func() string { return fmt.Sprintf("0190a1b2-c3d4-7e5f-8a9b-%012x", rnd.Uint64()>>16) }
	crowded := Subject{Tenant: tenant, ID: "u-1", Roles: []string{RoleAdmin}}
	wide := &Record{Tenant: tenant, ID: "s-1"}
	for range 32 {
		crowded.Groups = append(crowded.Groups, groupID())
	}
	for range MaxGrants {
		wide.Restricted = append(wide.Restricted, Grant{groupID(), ReadWrite})
	}
	for _, bc := range []struct {
		name string
		s    Subject
		perm Permission
		r    *Record
		want Outcome
	}{
		{"verifier restricted member", verifier, SessionWrite, restricted, Allow},
		{"integration own", integ, FileRead, own, Allow},
		{"integration collection", integ, SessionWrite, nil, Allow},
		{"32 groups, 64 grants, not a member", crowded, SessionRead, wide, NotFound},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if got := Decide(bc.s, bc.perm, bc.r).Outcome; got != bc.want {
					b.Fatalf("Decide = %v, want %v", got, bc.want)
				}
			}
		})
	}
}

// TestMembership checks the filtered membership against a plain scan, on
// many groups and grants with ids of every length.
func TestMembership(t *testing.T) {
	rnd := rand.New(rand.NewPCG(3, 4))
	id := func() string {
		return fmt.Sprintf("%016x", rnd.Uint64())[:rnd.IntN(16)+1]
	}
	naive := func(groups []string, grants []Grant) Mode {
		var best Mode
		for _, g := range grants {
			if g.Group == "" || !slices.Contains(groups, g.Group) {
				continue
			}
			switch {
			case g.Mode == ReadWrite:
				best = ReadWrite
			case g.Mode == ReadOnly && best == "":
				best = ReadOnly
			}
		}
		return best
	}
	modes := []Mode{ReadOnly, ReadWrite, "", "RO"}
	for i := range 2000 {
		groups := make([]string, rnd.IntN(40))
		for j := range groups {
			groups[j] = id()
		}
		grants := make([]Grant, rnd.IntN(MaxGrants+1))
		for j := range grants {
			g := id()
			if len(groups) > 0 && rnd.IntN(8) == 0 {
				g = groups[rnd.IntN(len(groups))]
			}
			grants[j] = Grant{g, modes[rnd.IntN(len(modes))]}
		}
		if got, want := membership(groups, grants), naive(groups, grants); got != want {
			t.Fatalf("case %d: membership(%q, %v) = %q, want %q", i, groups, grants, got, want)
		}
	}
}
