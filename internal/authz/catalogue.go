package authz

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// Permission is one entry of the catalogue, "resource:operation", for
// example "session:read" or "session:read_all". Only the strings of the
// catalogue (All) are permissions; Decide denies anything else.
type Permission string

// Sentinel errors.
var (
	// ErrUnknownPermission means a string is not in the catalogue.
	ErrUnknownPermission = errors.New("authz: unknown permission")
	// ErrForbidden is Decision.Err for Deny: the subject lacks the
	// permission (HTTP 403).
	ErrForbidden = errors.New("authz: forbidden")
	// ErrNotFound is Decision.Err for NotFound: the record does not exist
	// for the subject (HTTP 404, exactly as for an unknown id).
	ErrNotFound = errors.New("authz: not found")
	// ErrEscalation means a subject tried to grant a permission it does not
	// hold; the error is an *EscalationError naming them.
	ErrEscalation = errors.New("authz: cannot grant a permission not held")
	// ErrInvalidRole means a custom role's name or permissions are not
	// acceptable.
	ErrInvalidRole = errors.New("authz: invalid role")
	// ErrInvalidRestriction means a list of group grants is not acceptable.
	ErrInvalidRestriction = errors.New("authz: invalid restriction")
)

// Sessions. A session's files share its owner and its restriction.
const (
	// SessionRead reads sessions the subject created.
	SessionRead Permission = "session:read"
	// SessionReadAll reads every session of the tenant.
	SessionReadAll Permission = "session:read_all"
	// SessionWrite creates sessions and changes (cancels, decides) those the
	// subject created.
	SessionWrite Permission = "session:write"
	// SessionWriteAll changes every session of the tenant.
	SessionWriteAll Permission = "session:write_all"
	// SessionDelete deletes sessions the subject created and crypto-shreds
	// their data.
	SessionDelete Permission = "session:delete"
	// SessionDeleteAll deletes every session of the tenant.
	SessionDeleteAll Permission = "session:delete_all"
	// SessionRestrict sets or clears a session's group restriction, without
	// seeing its content.
	SessionRestrict Permission = "session:restrict"
)

// Files of sessions. Decide is asked with the file's session as the record.
const (
	FileRead      Permission = "file:read"
	FileReadAll   Permission = "file:read_all"
	FileWrite     Permission = "file:write"
	FileWriteAll  Permission = "file:write_all"
	FileDelete    Permission = "file:delete"
	FileDeleteAll Permission = "file:delete_all"
)

// Profiles (and profile groups, which the profile permissions govern).
const (
	ProfileRead      Permission = "profile:read"
	ProfileReadAll   Permission = "profile:read_all"
	ProfileWrite     Permission = "profile:write"
	ProfileWriteAll  Permission = "profile:write_all"
	ProfileDelete    Permission = "profile:delete"
	ProfileDeleteAll Permission = "profile:delete_all"
	ProfileRestrict  Permission = "profile:restrict"
)

// Workflows.
const (
	WorkflowRead      Permission = "workflow:read"
	WorkflowReadAll   Permission = "workflow:read_all"
	WorkflowWrite     Permission = "workflow:write"
	WorkflowWriteAll  Permission = "workflow:write_all"
	WorkflowDelete    Permission = "workflow:delete"
	WorkflowDeleteAll Permission = "workflow:delete_all"
	WorkflowRestrict  Permission = "workflow:restrict"
)

// Users, groups and custom roles of the tenant.
const (
	UserRead    Permission = "user:read"
	UserWrite   Permission = "user:write"
	UserDelete  Permission = "user:delete"
	GroupRead   Permission = "group:read"
	GroupWrite  Permission = "group:write"
	GroupDelete Permission = "group:delete"
	// RoleRead lists custom roles; RoleWrite and RoleDelete manage them.
	RoleRead   Permission = "role:read"
	RoleWrite  Permission = "role:write"
	RoleDelete Permission = "role:delete"
)

// API keys and device tokens. Own ones are those the subject issued.
const (
	APIKeyRead           Permission = "apikey:read"
	APIKeyReadAll        Permission = "apikey:read_all"
	APIKeyWrite          Permission = "apikey:write"
	APIKeyWriteAll       Permission = "apikey:write_all"
	APIKeyDelete         Permission = "apikey:delete"
	APIKeyDeleteAll      Permission = "apikey:delete_all"
	DeviceTokenRead      Permission = "devicetoken:read"
	DeviceTokenReadAll   Permission = "devicetoken:read_all"
	DeviceTokenWrite     Permission = "devicetoken:write"
	DeviceTokenWriteAll  Permission = "devicetoken:write_all"
	DeviceTokenDelete    Permission = "devicetoken:delete"
	DeviceTokenDeleteAll Permission = "devicetoken:delete_all"
)

// Webhooks, audit, settings and keys of the tenant.
const (
	WebhookRead   Permission = "webhook:read"
	WebhookWrite  Permission = "webhook:write"
	WebhookDelete Permission = "webhook:delete"
	// AuditRead reads the tenant's audit events. The audit log is
	// append-only: there is no audit:write or audit:delete.
	AuditRead Permission = "audit:read"
	// SettingsRead lists settings, such as the names of admin-entered
	// secrets (never their values).
	SettingsRead Permission = "settings:read"
	// SettingsWrite changes settings, such as admin-entered secrets.
	SettingsWrite  Permission = "settings:write"
	SettingsDelete Permission = "settings:delete"
	// KeyRead lists the tenant's key metadata (never key material);
	// KeyWrite rotates; KeyDelete destroys keys, which crypto-shreds.
	KeyRead   Permission = "key:read"
	KeyWrite  Permission = "key:write"
	KeyDelete Permission = "key:delete"
)

// Operations.
const (
	opRead     = "read"
	opWrite    = "write"
	opDelete   = "delete"
	opRestrict = "restrict"
)

// entry is one permission of the catalogue with what Decide needs of it.
type entry struct {
	op string
	// all is true for an "_all" permission.
	all bool
	// owned is true where records have an owner (the resource has "_all"
	// permissions).
	owned bool
	// bit is the permission's bit in a set, wide the bit of its "_all" form
	// (0 where there is none, and bit itself for an "_all" permission).
	bit, wide set
}

// set is a set of permissions, one bit each.
type set uint64

// catalogue lists every permission, in documentation order.
var catalogue = []Permission{
	SessionRead, SessionReadAll, SessionWrite, SessionWriteAll, SessionDelete, SessionDeleteAll, SessionRestrict,
	FileRead, FileReadAll, FileWrite, FileWriteAll, FileDelete, FileDeleteAll,
	ProfileRead, ProfileReadAll, ProfileWrite, ProfileWriteAll, ProfileDelete, ProfileDeleteAll, ProfileRestrict,
	WorkflowRead, WorkflowReadAll, WorkflowWrite, WorkflowWriteAll, WorkflowDelete, WorkflowDeleteAll, WorkflowRestrict,
	UserRead, UserWrite, UserDelete,
	GroupRead, GroupWrite, GroupDelete,
	RoleRead, RoleWrite, RoleDelete,
	APIKeyRead, APIKeyReadAll, APIKeyWrite, APIKeyWriteAll, APIKeyDelete, APIKeyDeleteAll,
	DeviceTokenRead, DeviceTokenReadAll, DeviceTokenWrite, DeviceTokenWriteAll, DeviceTokenDelete, DeviceTokenDeleteAll,
	WebhookRead, WebhookWrite, WebhookDelete,
	AuditRead,
	SettingsRead, SettingsWrite, SettingsDelete,
	KeyRead, KeyWrite, KeyDelete,
}

// entries indexes the catalogue by permission.
var entries = buildEntries(catalogue)

// buildEntries derives each permission's entry from its name. It panics on a
// malformed catalogue, a programmer error caught by every test run.
func buildEntries(perms []Permission) map[Permission]*entry {
	if len(perms) > 64 {
		panic("authz: catalogue larger than a set")
	}
	m := make(map[Permission]*entry, len(perms))
	for i, p := range perms {
		res, op, ok := strings.Cut(string(p), ":")
		if !ok || res == "" {
			panic("authz: malformed permission " + string(p))
		}
		e := &entry{bit: 1 << i}
		e.op, e.all = strings.CutSuffix(op, "_all")
		switch {
		case e.op != opRead && e.op != opWrite && e.op != opDelete && e.op != opRestrict,
			e.op == opRestrict && e.all:
			panic("authz: unknown operation in " + string(p))
		}
		if _, dup := m[p]; dup {
			panic("authz: duplicate permission " + string(p))
		}
		m[p] = e
	}
	for p, e := range m {
		res, _, _ := strings.Cut(string(p), ":")
		if m[Permission(res+":"+e.op)] == nil {
			panic("authz: " + string(p) + " lacks its own-records form")
		}
		if wide := m[Permission(res+":"+e.op+"_all")]; wide != nil {
			e.wide = wide.bit
		}
		_, e.owned = m[Permission(res+":"+opRead+"_all")]
	}
	return m
}

// Parse returns s as a Permission, or an error wrapping
// ErrUnknownPermission when s is not exactly a permission of the catalogue
// (no case folding, no trimming).
func Parse(s string) (Permission, error) {
	if _, ok := entries[Permission(s)]; !ok {
		return "", fmt.Errorf("parse %q: %w", s, ErrUnknownPermission)
	}
	return Permission(s), nil
}

// Known reports whether perm is a permission of the catalogue.
func Known(perm Permission) bool {
	_, ok := entries[perm]
	return ok
}

// All returns every permission of the catalogue, in documentation order.
// The caller owns the slice.
func All() []Permission {
	return slices.Clone(catalogue)
}

// Built-in roles. A role name of a Subject that is none of these grants
// nothing (custom roles reach Decide already resolved, as Subject.Custom).
const (
	// RoleAdmin holds every permission of the tenant. It still sees a
	// restricted record's content only as a member of one of its groups.
	RoleAdmin = "admin"
	// RoleVerifier reviews and decides every session: it reads all
	// sessions, their files and profiles and changes sessions; it deletes
	// nothing and manages nothing.
	RoleVerifier = "verifier"
	// RoleAuditor reads the audit log and the settings, nothing else.
	RoleAuditor = "auditor"
	// RoleIntegration is a backend's API key: it creates sessions, uploads
	// their files, issues device tokens for them and reads what it created.
	RoleIntegration = "integration"
	// RoleDevice is an ephemeral device token: it changes, and uploads files
	// to, the one session it is bound to (Subject.BoundSession), and nothing
	// else.
	RoleDevice = "device"
)

// builtin lists each built-in role's permissions.
var builtin = map[string][]Permission{
	RoleAdmin:       catalogue,
	RoleVerifier:    {SessionReadAll, SessionWriteAll, FileReadAll, ProfileReadAll},
	RoleAuditor:     {AuditRead, SettingsRead},
	RoleIntegration: {SessionRead, SessionWrite, FileRead, FileWrite, DeviceTokenWrite},
	RoleDevice:      {SessionWrite, FileWrite},
}

// Sets of the built-in roles, for Decide.
var (
	adminSet       = setOf(builtin[RoleAdmin])
	verifierSet    = setOf(builtin[RoleVerifier])
	auditorSet     = setOf(builtin[RoleAuditor])
	integrationSet = setOf(builtin[RoleIntegration])
	deviceSet      = setOf(builtin[RoleDevice])
)

func setOf(perms []Permission) set {
	var s set
	for _, p := range perms {
		s |= entries[p].bit
	}
	return s
}

// Roles returns the names of the built-in roles. The caller owns the slice.
func Roles() []string {
	return []string{RoleAdmin, RoleVerifier, RoleAuditor, RoleIntegration, RoleDevice}
}

// RolePermissions returns the permissions of the built-in role name, and
// false for any other name. RoleDevice's permissions hold only on its bound
// session. The caller owns the slice.
func RolePermissions(name string) ([]Permission, bool) {
	perms, ok := builtin[name]
	return slices.Clone(perms), ok
}

// roleName is the form of a custom role's name.
var roleName = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,63}$`)

// ValidateRole checks a custom role: its name is 1 to 64 lowercase letters,
// digits, '-' or '_', starting with a letter, and not a built-in role's; it
// has at least one permission, each of the catalogue and none twice. Every
// problem is reported, each wrapping ErrInvalidRole. Whether the creator may
// grant those permissions is CanGrant's question.
func ValidateRole(name string, perms []string) error {
	var errs []error
	if !roleName.MatchString(name) {
		errs = append(errs, fmt.Errorf("role name %q: want 1-64 of a-z, 0-9, '-', '_', starting with a letter: %w", name, ErrInvalidRole))
	} else if _, ok := builtin[name]; ok {
		errs = append(errs, fmt.Errorf("role name %q is a built-in role: %w", name, ErrInvalidRole))
	}
	if len(perms) == 0 {
		errs = append(errs, fmt.Errorf("role %q has no permission: %w", name, ErrInvalidRole))
	}
	seen := make(map[string]bool, len(perms))
	for _, p := range perms {
		switch {
		case !Known(Permission(p)):
			errs = append(errs, fmt.Errorf("role %q: permission %q: %w: %w", name, p, ErrUnknownPermission, ErrInvalidRole))
		case seen[p]:
			errs = append(errs, fmt.Errorf("role %q: permission %q listed twice: %w", name, p, ErrInvalidRole))
		}
		seen[p] = true
	}
	return errors.Join(errs...)
}
