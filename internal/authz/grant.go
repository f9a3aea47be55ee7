package authz

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// EscalationError is CanGrant's error when the granter lacks some of the
// permissions it tries to grant. It matches ErrEscalation.
type EscalationError struct {
	// Missing are the permissions the granter does not hold, in the order
	// asked, each once.
	Missing []Permission
}

func (e *EscalationError) Error() string {
	names := make([]string, len(e.Missing))
	for i, p := range e.Missing {
		names[i] = string(p)
	}
	return ErrEscalation.Error() + ": " + strings.Join(names, ", ")
}

// Unwrap returns ErrEscalation.
func (e *EscalationError) Unwrap() error { return ErrEscalation }

// CanGrant reports whether granter may grant perms: to an API key it
// issues, a custom role it writes, or a user or group it gives a role (the
// caller expands roles with RolePermissions or the custom role's list). No
// subject grants what it does not hold: holding "x:read_all" allows granting
// "x:read", never the reverse, and a device token's bound permissions grant
// nothing. It returns nil, or an error wrapping ErrUnknownPermission for
// each permission outside the catalogue and an *EscalationError for those
// not held. Whether granter may write the key, role or user at all is
// Decide's question.
func CanGrant(granter Subject, perms []Permission) error {
	var held set
	if granter.Tenant != "" {
		held, _ = granter.grants()
	}
	var errs []error
	var missing []Permission
	for _, p := range perms {
		e, ok := entries[p]
		switch {
		case !ok:
			errs = append(errs, fmt.Errorf("grant %q: %w", p, ErrUnknownPermission))
		case held&(e.bit|e.wide) == 0 && !slices.Contains(missing, p):
			missing = append(missing, p)
		}
	}
	if len(missing) > 0 {
		errs = append(errs, &EscalationError{Missing: missing})
	}
	return errors.Join(errs...)
}

// MaxGrants is the most groups a record can be restricted to.
const MaxGrants = 64

// ValidateRestriction checks the grants a record is to be restricted to:
// at most MaxGrants, each with a group and mode ReadOnly or ReadWrite, no
// group twice. An empty list lifts the restriction. Every problem is
// reported, each wrapping ErrInvalidRestriction.
func ValidateRestriction(grants []Grant) error {
	var errs []error
	if len(grants) > MaxGrants {
		errs = append(errs, fmt.Errorf("%d groups, want at most %d: %w", len(grants), MaxGrants, ErrInvalidRestriction))
	}
	seen := make(map[string]bool, len(grants))
	for i, g := range grants {
		switch {
		case g.Group == "":
			errs = append(errs, fmt.Errorf("grant %d: empty group: %w", i, ErrInvalidRestriction))
		case seen[g.Group]:
			errs = append(errs, fmt.Errorf("grant %d: group %q listed twice: %w", i, g.Group, ErrInvalidRestriction))
		}
		if g.Mode != ReadOnly && g.Mode != ReadWrite {
			errs = append(errs, fmt.Errorf("grant %d: mode %q, want %q or %q: %w", i, g.Mode, ReadOnly, ReadWrite, ErrInvalidRestriction))
		}
		seen[g.Group] = true
	}
	return errors.Join(errs...)
}
