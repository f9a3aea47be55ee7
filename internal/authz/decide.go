package authz

import "slices"

// Subject is the caller as Decide sees it: an authenticated principal with
// its roles and groups already resolved. Building it is identity's job;
// Decide trusts every field.
type Subject struct {
	// Tenant is the principal's one tenant. An empty tenant sees nothing.
	Tenant string
	// ID identifies the principal (a user id, an API key id or a device
	// token id) and is compared with Record.Owner. It MUST be unique within
	// the tenant across principal types (identity's ids are UUIDv7).
	ID string
	// Roles are role names; only the built-in ones (Roles()) grant anything,
	// and unknown names grant nothing.
	Roles []string
	// Custom are the permissions of the principal's custom roles, already
	// resolved; strings outside the catalogue grant nothing. Custom
	// permissions are never bound to a session.
	Custom []string
	// Groups are the ids of the groups the principal is a member of.
	Groups []string
	// BoundSession is the session a device token is bound to. RoleDevice
	// grants nothing without it.
	BoundSession string
}

// Mode is a group's access to a restricted record.
type Mode string

// Modes of a Grant.
const (
	// ReadOnly members may read the record and nothing more.
	ReadOnly Mode = "ro"
	// ReadWrite members may do whatever their permissions allow.
	ReadWrite Mode = "rw"
)

// Grant gives one group access to a restricted record.
type Grant struct {
	Group string `json:"group"`
	Mode  Mode   `json:"mode"`
}

// Record is what Decide needs to know of the record a request acts on.
// For a file, it is the file's session: files share their session's owner
// and restriction.
type Record struct {
	Tenant string
	ID     string
	// Owner is the Subject.ID of the principal that created the record;
	// empty means owned by nobody (only "_all" permissions reach it).
	Owner string
	// Restricted, when not empty, limits the record to the members of these
	// groups: everyone else gets NotFound. A grant with an empty group or an
	// unknown mode admits nobody.
	Restricted []Grant
}

// Outcome is the verdict of a Decision.
type Outcome uint8

// Outcomes. The zero Outcome is Deny.
const (
	// Deny: the subject lacks the permission (HTTP 403). A Deny never
	// depends on a record the subject cannot see.
	Deny Outcome = iota
	// Allow: go ahead.
	Allow
	// NotFound: the record does not exist for the subject (HTTP 404,
	// answered exactly as for an unknown id, and dropped from lists and
	// counts).
	NotFound
)

// String returns "deny", "allow" or "not found".
func (o Outcome) String() string {
	switch o {
	case Allow:
		return "allow"
	case NotFound:
		return "not found"
	default:
		return "deny"
	}
}

// Decision is Decide's verdict with the reason, for the audit log. The
// reason is never shown to the caller: it may say that a record exists.
type Decision struct {
	Outcome Outcome
	Reason  string
}

// Err returns nil for Allow, ErrForbidden for Deny and ErrNotFound for
// NotFound.
func (d Decision) Err() error {
	switch d.Outcome {
	case Allow:
		return nil
	case NotFound:
		return ErrNotFound
	default:
		return ErrForbidden
	}
}

// Reasons of decisions.
const (
	reasonAllowed           = "allowed"
	reasonRestrict          = "allowed to manage the restriction, without its content"
	reasonUnknownPermission = "unknown permission"
	reasonNoTenant          = "subject has no tenant"
	reasonOtherTenant       = "record of another tenant"
	reasonLacksPermission   = "subject lacks the permission"
	reasonNotMember         = "record restricted to groups the subject is not in"
	reasonNotOwner          = "record of another principal, and the subject lacks the _all permission"
	reasonNotBound          = "device token acts only on its bound session"
	reasonReadOnly          = "subject's groups have read-only access to the record"
)

// Decide decides whether s may exercise perm on r; r == nil asks about the
// collection (list or create). It is the one authorization decision of
// idvault: pure, deny by default, safe for concurrent use, and it retains
// nothing. The rules, in order:
//
//  1. perm outside the catalogue: Deny.
//  2. s without a tenant, or r of another tenant: NotFound.
//  3. s holds neither perm nor its "_all" form (nor, for a device token,
//     its bound form): Deny.
//  4. perm is "<resource>:restrict": Allow, whatever r's owner and groups.
//     The caller MUST NOT return r's content on this Allow.
//  5. r restricted and s in none of its groups: NotFound.
//  6. s holds only the own form and r is another principal's, or only the
//     bound form and r is not its session: NotFound (Deny for r == nil,
//     which a device token never acts on).
//  7. s reaches r only through ReadOnly groups and perm is not a read: Deny.
//  8. Allow.
func Decide(s Subject, perm Permission, r *Record) Decision {
	e, ok := entries[perm]
	switch {
	case !ok:
		return Decision{Deny, reasonUnknownPermission}
	case s.Tenant == "":
		return Decision{NotFound, reasonNoTenant}
	case r != nil && r.Tenant != s.Tenant:
		return Decision{NotFound, reasonOtherTenant}
	}
	held, bound := s.grants()
	// own: perm in the own-records form; wide: in the "_all" form (for an
	// "_all" perm, only that counts); bnd: bound to the device's session.
	var own, wide bool
	if e.all {
		wide = held&e.bit != 0
	} else {
		own, wide = held&e.bit != 0, held&e.wide != 0
	}
	bnd := bound&e.bit != 0
	switch {
	case !own && !wide && !bnd:
		return Decision{Deny, reasonLacksPermission}
	case e.op == opRestrict:
		return Decision{Allow, reasonRestrict}
	}
	var mode Mode
	if r != nil && len(r.Restricted) > 0 {
		if mode = membership(s.Groups, r.Restricted); mode == "" {
			return Decision{NotFound, reasonNotMember}
		}
	}
	switch {
	case wide,
		own && (r == nil || !e.owned || (r.Owner != "" && r.Owner == s.ID)),
		bnd && r != nil && r.ID == s.BoundSession:
	case r == nil:
		return Decision{Deny, reasonNotBound}
	case bnd && !own:
		return Decision{NotFound, reasonNotBound}
	default:
		return Decision{NotFound, reasonNotOwner}
	}
	if mode == ReadOnly && e.op != opRead {
		return Decision{Deny, reasonReadOnly}
	}
	return Decision{Allow, reasonAllowed}
}

// Allowed reports whether s holds perm in any form: itself, its "_all"
// form or, for a device token, bound to its session. It is the route gate:
// a request whose route's permission s does not hold is refused (403) before
// any record is loaded, so the refusal says nothing about what exists; the
// handler then calls Decide on the record. Routes declare the own form
// ("session:read"), never "_all".
func Allowed(s Subject, perm Permission) bool {
	e, ok := entries[perm]
	if !ok || s.Tenant == "" {
		return false
	}
	held, bound := s.grants()
	return (held|bound)&(e.bit|e.wide) != 0
}

// Visible reports whether Decide allows s perm on r. Lists MUST drop the
// records that are not visible, and counts MUST NOT include them.
func Visible(s Subject, perm Permission, r Record) bool {
	return Decide(s, perm, &r).Outcome == Allow
}

// grants returns the permissions s holds everywhere in its tenant (held) and
// only on its bound session (bound).
func (s *Subject) grants() (held, bound set) {
	for _, r := range s.Roles {
		switch r {
		case RoleAdmin:
			held |= adminSet
		case RoleVerifier:
			held |= verifierSet
		case RoleAuditor:
			held |= auditorSet
		case RoleIntegration:
			held |= integrationSet
		case RoleDevice:
			if s.BoundSession != "" {
				bound |= deviceSet
			}
		}
	}
	for _, c := range s.Custom {
		if e, ok := entries[Permission(c)]; ok {
			held |= e.bit
		}
	}
	return held, bound
}

// membership returns the best mode the groups give on a record restricted
// by grants, or "" when they give none. A filter of hashes of the groups'
// ids skips nearly every grant the subject is not in without comparing
// strings, which keeps the cost linear in groups plus grants.
func membership(groups []string, grants []Grant) Mode {
	var filter [filterBits / 64]uint64
	for _, x := range groups {
		h := tailHash(x)
		filter[h/64] |= 1 << (h % 64)
	}
	var m Mode
	for _, g := range grants {
		h := tailHash(g.Group)
		if filter[h/64]&(1<<(h%64)) == 0 || g.Group == "" ||
			(g.Mode != ReadOnly && g.Mode != ReadWrite) || !slices.Contains(groups, g.Group) {
			continue
		}
		if g.Mode == ReadWrite {
			return ReadWrite
		}
		m = ReadOnly
	}
	return m
}

// membership's filter has filterBits bits.
const (
	filterShift = 12
	filterBits  = 1 << filterShift
)

// tailHash hashes the last 8 bytes of s (where group ids, UUIDv7, are
// random) into [0, filterBits) by Fibonacci hashing.
func tailHash(s string) uint {
	var x uint64
	if n := len(s); n >= 8 {
		t := s[n-8:]
		x = uint64(t[0]) | uint64(t[1])<<8 | uint64(t[2])<<16 | uint64(t[3])<<24 |
			uint64(t[4])<<32 | uint64(t[5])<<40 | uint64(t[6])<<48 | uint64(t[7])<<56
	} else {
		for i := range n {
			x = x<<8 | uint64(s[i])
		}
	}
	return uint((x * 0x9e3779b97f4a7c15) >> (64 - filterShift))
}
