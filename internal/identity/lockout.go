package identity

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/idvault/idvault/internal/store"
)

// Sign-in lockout. Failed sign-ins are counted per username (by its blind
// index, so unknown usernames are counted exactly like known ones and a
// lockout reveals nothing about which exist). From LockoutThreshold
// failures on, the username is locked for LockoutBase, doubling with every
// further failure up to LockoutMax. While locked, no password is checked at
// all. A successful sign-in clears the count.

// Lockout policy.
const (
	LockoutThreshold = 5
	LockoutBase      = time.Minute
	LockoutMax       = time.Hour
)

// CollSignIn holds the failed sign-in counts, keyed by username blind index.
const CollSignIn = "signin"

// LockedError means the username is locked until Until; the caller answers
// 429 with Retry-After.
type LockedError struct{ Until time.Time }

func (e *LockedError) Error() string {
	return "identity: sign-in locked until " + e.Until.UTC().Format(time.RFC3339)
}

type signInState struct {
	Failures    int       `json:"failures"`
	LockedUntil time.Time `json:"lockedUntil"`
}

func (s *Service) checkLockout(ctx context.Context, v *store.View, bi string) error {
	var st signInState
	_, err := v.Get(ctx, CollSignIn, bi, &st)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("sign-in state: %w", err)
	}
	if s.now().Before(st.LockedUntil) {
		return &LockedError{Until: st.LockedUntil}
	}
	return nil
}

// recordFailure counts a failed sign-in and returns ErrUnauthenticated, or a
// *LockedError when this failure locks the username.
func (s *Service) recordFailure(ctx context.Context, v *store.View, bi string) error {
	for {
		var st signInState
		rec, err := v.Get(ctx, CollSignIn, bi, &st)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("sign-in state: %w", err)
		}
		st.Failures++
		var lockErr error = ErrUnauthenticated
		if st.Failures >= LockoutThreshold {
			d := LockoutBase << min(st.Failures-LockoutThreshold, 16)
			st.LockedUntil = s.now().Add(min(d, LockoutMax))
			lockErr = &LockedError{Until: st.LockedUntil}
		}
		if rec.Version == 0 {
			_, err = v.Put(ctx, CollSignIn, bi, nil, st)
		} else {
			_, err = v.Update(ctx, CollSignIn, bi, rec.Version, nil, st)
		}
		if errors.Is(err, store.ErrConflict) {
			continue
		}
		if err != nil {
			return fmt.Errorf("sign-in state: %w", err)
		}
		return lockErr
	}
}

func (s *Service) resetFailures(ctx context.Context, v *store.View, bi string) error {
	err := v.Delete(ctx, CollSignIn, bi, 0)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("sign-in state: %w", err)
	}
	return nil
}
