package identity

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/idvault/idvault/internal/store"
)

// Console sessions: a browser signs in with POST /api/v1/auth/login and gets
// a session credential in a cookie (HttpOnly, Secure, SameSite=Strict) plus
// a CSRF token it must send back in a header on every state-changing
// request. A session ends at its absolute timeout, after IdleTimeout without
// use, on logout, or when its user signs out everywhere or is disabled.
// Only digests of the credential and of the CSRF token are stored.

// CollConsoleSessions holds console sessions.
const CollConsoleSessions = "consolesessions"

// Console session lifetimes.
const (
	// SessionAbsolute is the longest a console session lives.
	SessionAbsolute = 12 * time.Hour
	// SessionIdle ends a console session unused for this long.
	SessionIdle = 30 * time.Minute
	// sessionTouch is how stale the last-use time may get before a request
	// writes it again (so reads do not each cost a write).
	sessionTouch = time.Minute
)

type consoleSession struct {
	ID         string   `json:"id"`
	Hash       string   `json:"hash"`
	CSRFDigest string   `json:"csrf"`
	Subject    string   `json:"subject"`
	Roles      []string `json:"roles"`
	EnrolOnly  bool     `json:"enrolOnly,omitempty"`
	// AMR is how the identity provider authenticated a single sign-on.
	AMR       []string  `json:"amr,omitempty"`
	CreatedAt time.Time `json:"createdAt"`
	LastSeen  time.Time `json:"lastSeen"`
	ExpiresAt time.Time `json:"expiresAt"`
}

// ConsoleLogin is what a successful console sign-in returns: the cookie
// value, the CSRF token and when the session ends at the latest.
type ConsoleLogin struct {
	Cookie    string
	CSRF      string
	ExpiresAt time.Time
}

func randomToken() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// Login signs username in to tenant (password, TOTP code, lockout as for
// IssueToken) and opens a console session.
func (s *Service) Login(ctx context.Context, tenant, username, password, code string) (ConsoleLogin, error) {
	u, err := s.signIn(ctx, tenant, username, password, code)
	if err != nil {
		return ConsoleLogin{}, err
	}
	v, err := s.view(tenant)
	if err != nil {
		return ConsoleLogin{}, err
	}
	enrol, err := s.enrolOnly(ctx, tenant, u)
	if err != nil {
		return ConsoleLogin{}, err
	}
	return s.openConsoleSession(ctx, v, tenant, u, enrol, nil)
}

// openConsoleSession opens a console session of user u, who has just
// signed in (by password or single sign-on; amr records how, when the
// provider said so).
func (s *Service) openConsoleSession(ctx context.Context, v *store.View, tenant string, u User, enrol bool, amr []string) (ConsoleLogin, error) {
	secret, err := randomToken()
	if err != nil {
		return ConsoleLogin{}, err
	}
	csrf, err := randomToken()
	if err != nil {
		return ConsoleLogin{}, err
	}
	now := s.now().UTC()
	cs := consoleSession{ID: NewID(), Hash: digest(secret), CSRFDigest: digest(csrf), Subject: u.ID, Roles: u.Roles, EnrolOnly: enrol,
		AMR: amr, CreatedAt: now, LastSeen: now, ExpiresAt: now.Add(SessionAbsolute)}
	if _, err := v.Put(ctx, CollConsoleSessions, cs.ID, map[string]string{SubjectIndex: u.ID}, cs); err != nil {
		return ConsoleLogin{}, fmt.Errorf("open console session: %w", err)
	}
	return ConsoleLogin{Cookie: strings.Join([]string{"idvc", tenant, cs.ID, secret}, "."), CSRF: csrf, ExpiresAt: cs.ExpiresAt}, nil
}

// AuthenticateSession resolves a console session cookie to its principal.
// Every failure (unknown, expired, idle, disabled user) is
// ErrUnauthenticated; a suspended tenant is ErrTenantSuspended.
func (s *Service) AuthenticateSession(ctx context.Context, cookie string) (Principal, error) {
	parts := strings.Split(cookie, ".")
	if len(parts) != 4 || parts[0] != "idvc" || parts[1] == "" || parts[1] == store.PlatformTenant || parts[2] == "" || len(parts[3]) != 43 {
		return Principal{}, ErrUnauthenticated
	}
	tenant, id, secret := parts[1], parts[2], parts[3]
	v, err := s.view(tenant)
	if err != nil {
		return Principal{}, ErrUnauthenticated
	}
	var cs consoleSession
	rec, err := v.Get(ctx, CollConsoleSessions, id, &cs)
	if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrInvalid) {
		return Principal{}, ErrUnauthenticated
	}
	if err != nil {
		return Principal{}, fmt.Errorf("authenticate session: %w", err)
	}
	now := s.now()
	if subtle.ConstantTimeCompare([]byte(cs.Hash), []byte(digest(secret))) != 1 ||
		!now.Before(cs.ExpiresAt) || now.Sub(cs.LastSeen) > SessionIdle {
		return Principal{}, ErrUnauthenticated
	}
	var u User
	if _, err := v.Get(ctx, CollUsers, cs.Subject, &u); errors.Is(err, store.ErrNotFound) || (err == nil && u.Disabled) {
		return Principal{}, ErrUnauthenticated
	} else if err != nil {
		return Principal{}, fmt.Errorf("authenticate session: %w", err)
	}
	if err := s.checkTenant(ctx, tenant); err != nil {
		return Principal{}, err
	}
	if now.Sub(cs.LastSeen) > sessionTouch {
		cs.LastSeen = now.UTC()
		if _, err := v.Update(ctx, CollConsoleSessions, id, rec.Version, rec.Index, cs); err != nil && !errors.Is(err, store.ErrConflict) {
			return Principal{}, fmt.Errorf("authenticate session: %w", err)
		}
	}
	return Principal{Tenant: tenant, Type: "user", ID: cs.Subject, Roles: cs.Roles, Session: cs.ID, CSRFDigest: cs.CSRFDigest, EnrolOnly: cs.EnrolOnly}, nil
}

// CheckCSRF reports whether token is the CSRF token of p's console session.
func CheckCSRF(p Principal, token string) bool {
	return p.CSRFDigest != "" && subtle.ConstantTimeCompare([]byte(p.CSRFDigest), []byte(digest(token))) == 1
}

// Logout ends console session id of tenant.
func (s *Service) Logout(ctx context.Context, tenant, id string) error {
	v, err := s.view(tenant)
	if err != nil {
		return err
	}
	if err := v.Delete(ctx, CollConsoleSessions, id, 0); err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("logout: %w", err)
	}
	return nil
}

// LogoutAll ends every console session of user id in tenant ("sign out
// everywhere") and returns how many it ended.
func (s *Service) LogoutAll(ctx context.Context, tenant, user string) (int, error) {
	v, err := s.view(tenant)
	if err != nil {
		return 0, err
	}
	n := 0
	for {
		page, err := v.Query(ctx, store.Query{Collection: CollConsoleSessions, Where: []store.Cond{{Field: SubjectIndex, Op: store.Eq, Value: user}}, Limit: store.MaxLimit})
		if err != nil {
			return n, fmt.Errorf("logout everywhere: %w", err)
		}
		if len(page.Records) == 0 {
			return n, nil
		}
		for _, rec := range page.Records {
			if err := v.Delete(ctx, CollConsoleSessions, rec.ID, 0); err != nil && !errors.Is(err, store.ErrNotFound) {
				return n, fmt.Errorf("logout everywhere: %w", err)
			}
			n++
		}
	}
}

// RevokeToken ends the bearer token of an Authorization header value
// ("Bearer idvt...."), after authenticating it, and returns its principal.
func (s *Service) RevokeToken(ctx context.Context, header string) (Principal, error) {
	p, err := s.Authenticate(ctx, header)
	if err != nil {
		return Principal{}, err
	}
	if p.Type != "user" {
		return Principal{}, ErrUnauthenticated
	}
	parts := strings.Split(strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(header), "Bearer")), ".")
	v, err := s.view(p.Tenant)
	if err != nil {
		return Principal{}, err
	}
	s.creds.drop(CollTokens + "/" + p.Tenant + "/" + parts[2])
	if err := v.Delete(ctx, CollTokens, parts[2], 0); err != nil && !errors.Is(err, store.ErrNotFound) {
		return Principal{}, fmt.Errorf("revoke token: %w", err)
	}
	return p, nil
}
