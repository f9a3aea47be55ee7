package identity

import (
	"context"
	"errors"

	"github.com/idvault/idvault/internal/store"
)

// Policy is a tenant's sign-in and access policy.
type Policy struct {
	// RequireMFA makes TOTP mandatory: a user without it who signs in gets
	// a credential that can only enrol a second factor.
	RequireMFA bool `json:"requireMFA"`
	// RequirePurpose makes every read of personal data or files state its
	// purpose (X-Access-Purpose), which the read's audit event records.
	RequirePurpose bool `json:"requirePurpose"`
	// KeepSessionsForDays is the tenant's retention: the scheduler destroys
	// a finished session (approved, rejected, expired, error, cancelled) this
	// many days after its last change — record, files and data key. 0 keeps
	// sessions until they are deleted.
	KeepSessionsForDays int `json:"keepSessionsForDays"`
}

// MaxKeepSessionsForDays bounds Policy.KeepSessionsForDays (ten years).
const MaxKeepSessionsForDays = 3650

// Policy returns tenant's sign-in policy (the zero Policy when never set).
func (s *Service) Policy(ctx context.Context, tenant string) (Policy, error) {
	if p, ok := s.policies.get(tenant, s.now()); ok {
		return p, nil
	}
	v, err := s.view(tenant)
	if err != nil {
		return Policy{}, err
	}
	var p Policy
	if _, err := v.Get(ctx, CollSettings, "policy", &p); err != nil && !errors.Is(err, store.ErrNotFound) {
		return Policy{}, err
	}
	s.policies.put(tenant, p, s.now())
	return p, nil
}

// SetPolicy replaces tenant's sign-in policy.
func (s *Service) SetPolicy(ctx context.Context, tenant string, p Policy) error {
	defer s.policies.drop(tenant)
	v, err := s.view(tenant)
	if err != nil {
		return err
	}
	for {
		var cur Policy
		rec, err := v.Get(ctx, CollSettings, "policy", &cur)
		switch {
		case errors.Is(err, store.ErrNotFound):
			_, err = v.Put(ctx, CollSettings, "policy", nil, p)
		case err != nil:
			return err
		default:
			_, err = v.Update(ctx, CollSettings, "policy", rec.Version, nil, p)
		}
		if !errors.Is(err, store.ErrConflict) {
			return err
		}
	}
}

// enrolOnly reports whether a user who just signed in may only enrol a
// second factor: the tenant requires one and the user has none.
func (s *Service) enrolOnly(ctx context.Context, tenant string, u User) (bool, error) {
	if u.TOTP.Enabled() {
		return false, nil
	}
	p, err := s.Policy(ctx, tenant)
	return p.RequireMFA, err
}
