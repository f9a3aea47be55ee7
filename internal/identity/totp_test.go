package identity_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/idvault/idvault/internal/identity"
)

func code(t *testing.T, secret string, at time.Time) string {
	t.Helper()
	c, err := totp.GenerateCodeCustom(secret, at, totp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestTOTP enrols a user in TOTP and attacks the sign-in: no code, a wrong
// code, a replayed code and an old code all fail; the current code works
// once; a reset removes the factor.
func TestTOTP(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	tn, err := f.svc.CreateTenant(ctx, "Acme")
	if err != nil {
		t.Fatal(err)
	}
	const pw = "correct horse battery staple"
	u, err := f.svc.CreateUser(ctx, tn.ID, "alice", pw, []string{"admin"})
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := f.svc.ConfirmTOTP(ctx, tn.ID, u.ID, "123456"); !errors.Is(err, identity.ErrTOTPNotPending) || ok {
		t.Errorf("ConfirmTOTP without enrolment = %v, %v; want ErrTOTPNotPending", ok, err)
	}
	url, secret, err := f.svc.BeginTOTP(ctx, tn.ID, u.ID)
	if err != nil || !strings.HasPrefix(url, "otpauth://totp/idvault:alice?") || !strings.Contains(url, "secret="+secret) {
		t.Fatalf("BeginTOTP = %q, %v", url, err)
	}
	// Pending enrolment does not change sign-in.
	if _, _, err := f.svc.IssueToken(ctx, tn.ID, "alice", pw, ""); err != nil {
		t.Fatalf("IssueToken during enrolment = %v", err)
	}
	if ok, err := f.svc.ConfirmTOTP(ctx, tn.ID, u.ID, "000000"); ok || err != nil {
		t.Errorf("ConfirmTOTP(wrong code) = %v, %v; want false", ok, err)
	}
	now := f.clock.Now()
	if ok, err := f.svc.ConfirmTOTP(ctx, tn.ID, u.ID, code(t, secret, now)); !ok || err != nil {
		t.Fatalf("ConfirmTOTP(right code) = %v, %v", ok, err)
	}
	for _, bad := range []struct{ name, code string }{
		{"no code", ""},
		{"wrong code", "000000"},
		{"code of the confirmation, replayed", code(t, secret, now)},
		{"code from five minutes ago", code(t, secret, now.Add(-5*time.Minute))},
	} {
		if _, _, err := f.svc.IssueToken(ctx, tn.ID, "alice", pw, bad.code); !errors.Is(err, identity.ErrUnauthenticated) {
			t.Errorf("IssueToken(%s) = %v, want ErrUnauthenticated", bad.name, err)
		}
	}
	f.clock.Advance(30 * time.Second)
	c := code(t, secret, f.clock.Now())
	if _, _, err := f.svc.IssueToken(ctx, tn.ID, "alice", pw, c); err != nil {
		t.Fatalf("IssueToken(current code) = %v", err)
	}
	if _, _, err := f.svc.IssueToken(ctx, tn.ID, "alice", pw, c); !errors.Is(err, identity.ErrUnauthenticated) {
		t.Errorf("IssueToken(the same code again) = %v, want ErrUnauthenticated", err)
	}
	if _, _, err := f.svc.IssueToken(ctx, tn.ID, "alice", "wrong password", code(t, secret, f.clock.Now().Add(30*time.Second))); err == nil {
		t.Error("a right code with a wrong password signed in")
	}
	// The secret is sealed with the user record.
	raw, err := os.ReadFile(filepath.Join(f.dir, "idvault.db"))
	if err == nil && strings.Contains(string(raw), secret) {
		t.Error("the TOTP secret is in the database file in clear")
	}
	if err := f.svc.ResetTOTP(ctx, tn.ID, "ALICE"); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(identity.LockoutMax)
	if _, _, err := f.svc.IssueToken(ctx, tn.ID, "alice", pw, ""); err != nil {
		t.Errorf("IssueToken after ResetTOTP = %v", err)
	}
}

func TestCheckPassword(t *testing.T) {
	for _, tc := range []struct {
		name, user, pw string
		ok             bool
	}{
		{"good", "alice", "correct horse battery staple", true},
		{"short", "alice", "short pw 1!", false},
		{"one character", "alice", "aaaaaaaaaaaaaaaa", false},
		{"few characters", "alice", "abababababababab", false},
		{"contains username", "alice", "my-ALICE-password-2026", false},
		{"too long", "alice", strings.Repeat("abcdefghij", 103), false},
		{"unicode counts characters", "bob", "пароль-ёжик-лес", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := identity.CheckPassword(tc.user, tc.pw)
			if (err == nil) != tc.ok || (err != nil && !errors.Is(err, identity.ErrWeakPassword)) {
				t.Errorf("CheckPassword(%q, %q) = %v, want ok %v", tc.user, tc.pw, err, tc.ok)
			}
		})
	}
}
