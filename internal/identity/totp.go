package identity

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/idvault/idvault/internal/store"
)

// TOTP second factor (RFC 6238: HMAC-SHA1, 6 digits, 30-second steps, one
// step of clock skew either way), with github.com/pquerna/otp. The secret is
// kept inside the user's sealed record. A code is accepted once: the step
// it was used in is recorded and no code of that step or an earlier one
// opens a second sign-in (replay protection). Enrolment is two steps:
// BeginTOTP returns the secret and otpauth URL (for a QR code) without
// enabling anything; ConfirmTOTP enables it once the user proves the
// authenticator app works.

// TOTP is a user's second-factor state.
type TOTP struct {
	Secret    string    `json:"secret"`
	Confirmed bool      `json:"confirmed"`
	LastStep  int64     `json:"lastStep,omitempty"`
	CreatedAt time.Time `json:"createdAt"`
}

// Enabled reports whether sign-in needs a code.
func (t *TOTP) Enabled() bool { return t != nil && t.Confirmed }

const totpPeriod = 30

var totpOpts = totp.ValidateOpts{Period: totpPeriod, Skew: 1, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1}

// ErrTOTPNotPending means ConfirmTOTP was called without BeginTOTP.
var ErrTOTPNotPending = errors.New("identity: no TOTP enrolment in progress")

// updateUser applies fn to the user with id in tenant with compare-and-swap.
func (s *Service) updateUser(ctx context.Context, v *store.View, id string, fn func(*User) error) error {
	for {
		var u User
		rec, err := v.Get(ctx, CollUsers, id, &u)
		if err != nil {
			return err
		}
		if err := fn(&u); err != nil {
			return err
		}
		_, err = v.Update(ctx, CollUsers, id, rec.Version, rec.Index, u)
		if errors.Is(err, store.ErrConflict) {
			continue
		}
		return err
	}
}

// BeginTOTP starts (or restarts) TOTP enrolment of user id: it stores a new
// pending secret, not required at sign-in, and returns the otpauth URL and
// the secret to show the user once. An enabled second factor stays as it is
// until ConfirmTOTP replaces it.
func (s *Service) BeginTOTP(ctx context.Context, tenant, id string) (url, secret string, err error) {
	v, err := s.view(tenant)
	if err != nil {
		return "", "", err
	}
	err = s.updateUser(ctx, v, id, func(u *User) error {
		key, err := totp.Generate(totp.GenerateOpts{Issuer: "idvault", AccountName: u.Username.Value(), Period: totpPeriod,
			SecretSize: 20, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
		if err != nil {
			return fmt.Errorf("generate TOTP secret: %w", err)
		}
		url, secret = key.URL(), key.Secret()
		u.PendingTOTP = &TOTP{Secret: secret, CreatedAt: s.now().UTC()}
		return nil
	})
	return url, secret, err
}

// ConfirmTOTP enables the pending secret of user id if code is a valid code
// for it, and reports whether it was.
func (s *Service) ConfirmTOTP(ctx context.Context, tenant, id, code string) (bool, error) {
	v, err := s.view(tenant)
	if err != nil {
		return false, err
	}
	err = s.updateUser(ctx, v, id, func(u *User) error {
		if u.PendingTOTP == nil {
			return ErrTOTPNotPending
		}
		step, valid := validCode(u.PendingTOTP.Secret, code, s.now())
		if !valid {
			return errInvalidCode
		}
		u.TOTP = &TOTP{Secret: u.PendingTOTP.Secret, Confirmed: true, LastStep: step, CreatedAt: u.PendingTOTP.CreatedAt}
		u.PendingTOTP = nil
		return nil
	})
	if errors.Is(err, errInvalidCode) {
		return false, nil
	}
	return err == nil, err
}

var errInvalidCode = errors.New("identity: invalid TOTP code")

// ResetTOTP removes user username's second factor (an administrator's
// recovery for a lost device; the user must enrol again).
func (s *Service) ResetTOTP(ctx context.Context, tenant, username string) error {
	return s.updateUserNamed(ctx, tenant, username, func(u *User) error {
		u.TOTP, u.PendingTOTP = nil, nil
		return nil
	})
}

// useTOTPCode checks code against user id's enabled secret and, when it is
// valid and of a later step than any code used before, records its step.
func (s *Service) useTOTPCode(ctx context.Context, v *store.View, id, code string) (bool, error) {
	ok := false
	err := s.updateUser(ctx, v, id, func(u *User) error {
		ok = false
		if !u.TOTP.Enabled() {
			return errInvalidCode
		}
		step, valid := validCode(u.TOTP.Secret, code, s.now())
		if !valid || step <= u.TOTP.LastStep {
			return errInvalidCode
		}
		u.TOTP.LastStep, ok = step, true
		return nil
	})
	if errors.Is(err, errInvalidCode) {
		return false, nil
	}
	return ok, err
}

// validCode reports whether code is valid for secret at now, within one
// step of skew, and the step it belongs to.
func validCode(secret, code string, now time.Time) (int64, bool) {
	if len(code) != 6 {
		return 0, false
	}
	step := now.Unix() / totpPeriod
	for _, d := range []int64{0, -1, 1} {
		t := time.Unix((step+d)*totpPeriod, 0)
		want, err := totp.GenerateCodeCustom(secret, t, totpOpts)
		if err == nil && subtle.ConstantTimeCompare([]byte(want), []byte(code)) == 1 {
			return step + d, true
		}
	}
	return 0, false
}
