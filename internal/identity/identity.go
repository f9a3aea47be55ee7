// Package identity holds tenants, users, API keys and bearer tokens, and
// turns an Authorization header into a Principal. It is the one place where a
// request is authenticated.
//
// Threat model: a thief of the database learns no credential. Passwords are
// stored as argon2id hashes (OWASP parameters: 19 MiB, 2 passes, 1 lane);
// API keys and bearer tokens are 256-bit random secrets stored as SHA-256
// digests, compared in constant time. Usernames are found through a blind
// index, never stored in clear. Every credential names its tenant, so a lookup
// never reads across tenants, and a credential presented for a tenant it was
// not issued in is simply not found.
//
// Credential format: "idvk.<tenant>.<key id>.<secret>" for API keys and
// "idvt.<tenant>.<token id>.<secret>" for bearer tokens; the secret is 32
// random bytes in unpadded base64url.
package identity

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/idvault/idvault/internal/pii"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/idvault/idvault/internal/authz"
	"github.com/idvault/idvault/internal/barrier"
	"github.com/idvault/idvault/internal/store"
)

// Collections of identity records.
const (
	CollTenants = "tenants"
	CollUsers   = "users"
	CollAPIKeys = "apikeys"
	CollTokens  = "tokens"
	// CollDeviceTokens holds ephemeral device tokens.
	CollDeviceTokens = "devicetokens"
	// CollUsernames holds one claim per username, keyed by its blind index.
	CollUsernames = "usernames"
)

// usernameClaim reserves a username for one user.
type usernameClaim struct {
	User string `json:"user"`
}

// Sentinel errors.
var (
	// ErrUnauthenticated means no valid credential was presented. It never
	// says which part was wrong.
	ErrUnauthenticated = errors.New("identity: not authenticated")
	// ErrTenantSuspended means the credential is valid but its tenant is not
	// active.
	ErrTenantSuspended = errors.New("identity: tenant suspended")
	// ErrExists means a tenant or user of that name already exists.
	ErrExists = errors.New("identity: already exists")
)

// TokenTTL is the lifetime of a bearer token.
const TokenTTL = 15 * time.Minute

// Tenant is one customer of the platform.
type Tenant struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Status    string    `json:"status"`
	CreatedAt time.Time `json:"createdAt"`
}

// Tenant statuses.
const (
	TenantActive    = "active"
	TenantSuspended = "suspended"
)

// User is a person who signs in to a tenant.
type User struct {
	ID           string     `json:"id"`
	Username     pii.String `json:"username"`
	PasswordHash string     `json:"passwordHash"`
	Roles        []string   `json:"roles"`
	CreatedAt    time.Time  `json:"createdAt"`
	// Disabled users cannot sign in, and their bearer tokens stop working.
	Disabled bool `json:"disabled,omitempty"`
	// TOTP is the user's second factor, if enrolled (see totp.go);
	// PendingTOTP an enrolment not yet confirmed.
	TOTP        *TOTP `json:"totp,omitempty"`
	PendingTOTP *TOTP `json:"pendingTotp,omitempty"`
	// SSO is the provider account of a user provisioned by single sign-on
	// (see oidc.go); such a user has no password.
	SSO *SSOAccount `json:"sso,omitempty"`
}

// LogValue shows only the user's id, roles and state, never the username or
// credentials, so that logging a user cannot leak them.
func (u User) LogValue() slog.Value {
	return slog.GroupValue(slog.String("id", u.ID), slog.Any("roles", u.Roles), slog.Bool("disabled", u.Disabled))
}

type credential struct {
	ID      string `json:"id"`
	Name    string `json:"name,omitempty"`
	Hash    string `json:"hash"`
	Subject string `json:"subject"`
	// Session binds a device token to the one session it may submit to.
	Session   string     `json:"session,omitempty"`
	Roles     []string   `json:"roles"`
	CreatedAt time.Time  `json:"createdAt"`
	ExpiresAt *time.Time `json:"expiresAt,omitempty"`
	// Permissions scope an API key to a subset of its creator's
	// permissions (in place of roles).
	Permissions []string `json:"permissions,omitempty"`
	// EnrolOnly limits a user's credential to enrolling a second factor
	// (the tenant requires one and the user had none at sign-in).
	EnrolOnly bool `json:"enrolOnly,omitempty"`
}

// CollAPIKeyUse records each API key's last use (time, to the minute, and
// client address), apart from the key record, which a use never rewrites.
const CollAPIKeyUse = "apikeyuse"

// SubjectIndex is the clear index field of console-session and bearer-token
// records that names their user (an id, not personal data): the sign-in's
// audit event takes its actor from it, and sign-out everywhere finds a
// user's sessions by it.
const SubjectIndex = "subject"

type keyUse struct {
	At   time.Time `json:"at"`
	From string    `json:"from"`
}

// APIKeyInfo describes an API key without its secret.
type APIKeyInfo struct {
	ID           string     `json:"id"`
	Name         string     `json:"name"`
	CreatedBy    string     `json:"createdBy"`
	Roles        []string   `json:"roles,omitempty"`
	Permissions  []string   `json:"permissions,omitempty"`
	CreatedAt    time.Time  `json:"createdAt"`
	ExpiresAt    *time.Time `json:"expiresAt,omitempty"`
	LastUsedAt   *time.Time `json:"lastUsedAt,omitempty"`
	LastUsedFrom string     `json:"lastUsedFrom,omitempty"`
}

// Principal is an authenticated caller.
type Principal struct {
	Tenant string
	// Type is "apikey" or "user".
	Type string
	// ID is the API key id or the user id.
	ID    string
	Roles []string
	// Session is the console session id when the principal signed in
	// through the console (a cookie), and CSRFDigest the SHA-256 of that
	// session's CSRF token, which every state-changing request must carry.
	Session    string
	CSRFDigest string
	// BoundSession is the one session a device token may submit to.
	BoundSession string
	// Permissions are the scope of an API key created with explicit
	// permissions (it has no roles then).
	Permissions []string
	// Groups are the ids of the groups a user belongs to (filled in by the
	// API for record restriction).
	Groups []string
	// EnrolOnly means the tenant requires a second factor the user does not
	// have yet: the credential may only enrol one.
	EnrolOnly bool
}

// Service manages identity records. It is safe for concurrent use.
type Service struct {
	backend  store.Backend
	barrier  barrier.Barrier
	blinders Blinders
	now      func() time.Time
	// used remembers, per API key id, the last use this process recorded,
	// so a request reads the use record only when it may need rewriting.
	used sync.Map // string -> keyUse
	// oidc holds the configured OIDC providers (see oidc.go).
	oidc atomic.Pointer[oidcSet]
	// Records read on every request, reused for RecentTTL (recent.go).
	creds    recent[credential]
	statuses recent[string]
	policies recent[Policy]
}

// NewService returns a Service over backend, sealing with b and indexing
// usernames with blinders. now is the clock (time.Now when nil).
func NewService(backend store.Backend, b barrier.Barrier, blinders Blinders, now func() time.Time) *Service {
	if now == nil {
		now = time.Now
	}
	return &Service{backend: backend, barrier: b, blinders: blinders, now: now}
}

func (s *Service) view(tenant string) (*store.View, error) {
	return store.NewView(s.backend, s.barrier, tenant)
}

// Blinders gives each tenant's blind indexer (keyring.Keyring does; a
// single *barrier.Blinder serves every tenant).
type Blinders interface {
	Blinder(ctx context.Context, tenant string) (*barrier.Blinder, error)
}

func (s *Service) usernameIndex(ctx context.Context, tenant, name string) (string, error) {
	b, err := s.blinders.Blinder(ctx, tenant)
	if err != nil {
		return "", fmt.Errorf("username index: %w", err)
	}
	return b.Index(tenant, "username", name), nil
}

// NewID returns a new random, time-ordered id (UUIDv7).
func NewID() string {
	return uuid.Must(uuid.NewV7()).String()
}

// CreateTenant creates an active tenant.
func (s *Service) CreateTenant(ctx context.Context, name string) (Tenant, error) {
	v, err := s.view(store.PlatformTenant)
	if err != nil {
		return Tenant{}, err
	}
	t := Tenant{ID: NewID(), Name: name, Status: TenantActive, CreatedAt: s.now().UTC()}
	if _, err := v.Put(ctx, CollTenants, t.ID, map[string]string{"status": t.Status}, t); err != nil {
		return Tenant{}, fmt.Errorf("create tenant: %w", err)
	}
	return t, nil
}

// Tenant returns the tenant with id, or store.ErrNotFound.
func (s *Service) Tenant(ctx context.Context, id string) (Tenant, error) {
	v, err := s.view(store.PlatformTenant)
	if err != nil {
		return Tenant{}, err
	}
	var t Tenant
	if _, err := v.Get(ctx, CollTenants, id, &t); err != nil {
		return Tenant{}, err
	}
	return t, nil
}

// SetTenantStatus sets the status of tenant id (TenantActive or
// TenantSuspended). A suspended tenant's credentials stop working at once in
// this process, and within RecentTTL in the others.
func (s *Service) SetTenantStatus(ctx context.Context, id, status string) error {
	if status != TenantActive && status != TenantSuspended {
		return fmt.Errorf("set tenant status %q: %w", status, store.ErrInvalid)
	}
	defer s.statuses.drop(id)
	v, err := s.view(store.PlatformTenant)
	if err != nil {
		return err
	}
	for {
		var t Tenant
		rec, err := v.Get(ctx, CollTenants, id, &t)
		if err != nil {
			return err
		}
		t.Status = status
		_, err = v.Update(ctx, CollTenants, id, rec.Version, map[string]string{"status": status}, t)
		if !errors.Is(err, store.ErrConflict) {
			return err
		}
	}
}

// Tenants calls fn for every tenant, in id order, until fn returns an error.
func (s *Service) Tenants(ctx context.Context, fn func(Tenant) error) error {
	v, err := s.view(store.PlatformTenant)
	if err != nil {
		return err
	}
	return each(ctx, v, CollTenants, fn)
}

// each decodes every record of collection in the view into a T and calls
// fn with it, until fn returns an error.
func each[T any](ctx context.Context, v *store.View, collection string, fn func(T) error) error {
	return v.Each(ctx, store.Query{Collection: collection, Limit: store.MaxLimit}, func(rec store.Record) error {
		var x T
		if err := v.Decode(ctx, rec, &x); err != nil {
			return err
		}
		return fn(x)
	})
}

// NormalizeUsername is the form in which usernames are compared.
func NormalizeUsername(name string) string {
	return strings.ToLower(strings.TrimSpace(name))
}

// CreateUser creates a user of tenant with the given password and roles.
func (s *Service) CreateUser(ctx context.Context, tenant, username, password string, roles []string) (User, error) {
	v, err := s.view(tenant)
	if err != nil {
		return User{}, err
	}
	name := NormalizeUsername(username)
	if name == "" {
		return User{}, fmt.Errorf("create user: empty username: %w", store.ErrInvalid)
	}
	bi, err := s.usernameIndex(ctx, tenant, name)
	if err != nil {
		return User{}, err
	}
	page, err := v.Query(ctx, store.Query{Collection: CollUsers, Where: []store.Cond{{Field: "username_bi", Op: store.Eq, Value: bi}}, Limit: 1})
	if err != nil {
		return User{}, fmt.Errorf("create user: %w", err)
	}
	if len(page.Records) > 0 {
		return User{}, ErrExists
	}
	if err := CheckPassword(name, password); err != nil {
		return User{}, err
	}
	hash, err := HashPassword(password)
	if err != nil {
		return User{}, err
	}
	u := User{ID: NewID(), Username: pii.String(name), PasswordHash: hash, Roles: roles, CreatedAt: s.now().UTC()}
	// The claim, keyed by the blind index, makes the name unique: of two
	// racing creations only one Put of it succeeds.
	if _, err := v.Put(ctx, CollUsernames, bi, nil, usernameClaim{User: u.ID}); errors.Is(err, store.ErrConflict) {
		return User{}, ErrExists
	} else if err != nil {
		return User{}, fmt.Errorf("create user: %w", err)
	}
	if _, err := v.Put(ctx, CollUsers, u.ID, map[string]string{"username_bi": bi}, u); err != nil {
		_ = v.Delete(context.WithoutCancel(ctx), CollUsernames, bi, 0)
		return User{}, fmt.Errorf("create user: %w", err)
	}
	return u, nil
}

// CreateAPIKey creates an API key of tenant with roles, issued by subject,
// expiring at expiresAt (never when nil). It returns the key's id and the
// full key, which is shown once and never stored.
func (s *Service) CreateAPIKey(ctx context.Context, tenant, name, subject string, roles []string, expiresAt *time.Time) (id, key string, err error) {
	return s.createCredential(ctx, CollAPIKeys, "idvk", tenant, credential{Name: name, Subject: subject, Roles: roles, ExpiresAt: expiresAt})
}

// CreateScopedAPIKey creates an API key of tenant holding exactly perms
// (the caller has checked that its creator holds them), issued by subject,
// expiring at expiresAt (never when nil). It returns the key's id and the
// full key, shown once.
func (s *Service) CreateScopedAPIKey(ctx context.Context, tenant, name, subject string, perms []string, expiresAt *time.Time) (id, key string, err error) {
	return s.createCredential(ctx, CollAPIKeys, "idvk", tenant, credential{Name: name, Subject: subject, Roles: []string{}, Permissions: perms, ExpiresAt: expiresAt})
}

// APIKeys lists tenant's API keys, without secrets.
func (s *Service) APIKeys(ctx context.Context, tenant string) ([]APIKeyInfo, error) {
	v, err := s.view(tenant)
	if err != nil {
		return nil, err
	}
	out := []APIKeyInfo{}
	err = each(ctx, v, CollAPIKeys, func(c credential) error {
		info := APIKeyInfo{ID: c.ID, Name: c.Name, CreatedBy: c.Subject, Roles: c.Roles, Permissions: c.Permissions,
			CreatedAt: c.CreatedAt, ExpiresAt: c.ExpiresAt}
		var u keyUse
		if _, err := v.Get(ctx, CollAPIKeyUse, c.ID, &u); err == nil {
			info.LastUsedAt, info.LastUsedFrom = &u.At, u.From
		} else if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		out = append(out, info)
		return nil
	})
	return out, err
}

// APIKey returns tenant's API key id, without its secret, or
// store.ErrNotFound.
func (s *Service) APIKey(ctx context.Context, tenant, id string) (APIKeyInfo, error) {
	v, err := s.view(tenant)
	if err != nil {
		return APIKeyInfo{}, err
	}
	var c credential
	if _, err := v.Get(ctx, CollAPIKeys, id, &c); err != nil {
		return APIKeyInfo{}, err
	}
	return APIKeyInfo{ID: c.ID, Name: c.Name, CreatedBy: c.Subject, Roles: c.Roles, Permissions: c.Permissions,
		CreatedAt: c.CreatedAt, ExpiresAt: c.ExpiresAt}, nil
}

// RevokeAPIKey deletes tenant's API key id: it stops working at once. An
// unknown id is store.ErrNotFound.
func (s *Service) RevokeAPIKey(ctx context.Context, tenant, id string) error {
	v, err := s.view(tenant)
	if err != nil {
		return err
	}
	s.creds.drop(CollAPIKeys + "/" + tenant + "/" + id)
	if err := v.Delete(ctx, CollAPIKeys, id, 0); err != nil {
		return err
	}
	s.used.Delete(id)
	if err := v.Delete(ctx, CollAPIKeyUse, id, 0); err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	return nil
}

// keyTouch is how stale an API key's last-use time may get before a
// request writes it again.
const keyTouch = time.Minute

// recordUse notes the use of API key id from addr, at most once a minute
// per address.
func (s *Service) recordUse(ctx context.Context, v *store.View, id, addr string) error {
	if last, ok := s.used.Load(id); ok {
		if u := last.(keyUse); s.now().Sub(u.At) <= keyTouch && u.From == addr {
			return nil
		}
	}
	var u keyUse
	rec, err := v.Get(ctx, CollAPIKeyUse, id, &u)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("authenticate: key use: %w", err)
	}
	if err == nil && s.now().Sub(u.At) <= keyTouch && u.From == addr {
		s.used.Store(id, u)
		return nil
	}
	next := keyUse{At: s.now().UTC(), From: addr}
	if rec.Version == 0 {
		_, err = v.Put(ctx, CollAPIKeyUse, id, nil, next)
	} else {
		_, err = v.Update(ctx, CollAPIKeyUse, id, rec.Version, nil, next)
	}
	if err != nil && !errors.Is(err, store.ErrConflict) {
		return fmt.Errorf("authenticate: record key use: %w", err)
	}
	s.used.Store(id, next)
	return nil
}

// MaxDeviceTokenTTL is the longest a device token may live.
const MaxDeviceTokenTTL = 24 * time.Hour

// CreateDeviceToken issues an ephemeral device token of tenant, bound to
// session sessionID and valid for ttl (at most MaxDeviceTokenTTL), on
// behalf of subject (the issuing principal). The token carries only the
// device role: it may submit data to that one session and read nothing.
// It is shown once, as "idvd.<tenant>.<id>.<secret>" (a bearer token).
func (s *Service) CreateDeviceToken(ctx context.Context, tenant, sessionID, subject string, ttl time.Duration) (string, time.Time, error) {
	if ttl <= 0 || ttl > MaxDeviceTokenTTL || sessionID == "" {
		return "", time.Time{}, fmt.Errorf("device token: ttl must be in (0, %s]: %w", MaxDeviceTokenTTL, store.ErrInvalid)
	}
	exp := s.now().UTC().Add(ttl)
	_, tok, err := s.createCredential(ctx, CollDeviceTokens, "idvd", tenant,
		credential{Subject: subject, Session: sessionID, Roles: []string{authz.RoleDevice}, ExpiresAt: &exp})
	return tok, exp, err
}

// IssueToken checks username, password and, for a user enrolled in TOTP,
// the one-time code in tenant, and returns a bearer token valid for
// TokenTTL, with its expiry. Any failure is ErrUnauthenticated (a missing or
// wrong code too, so a guesser learns nothing about the password) and counts
// toward the lockout (a *LockedError).
func (s *Service) IssueToken(ctx context.Context, tenant, username, password, code string) (string, time.Time, error) {
	u, err := s.signIn(ctx, tenant, username, password, code)
	if err != nil {
		return "", time.Time{}, err
	}
	exp := s.now().UTC().Add(TokenTTL)
	enrol, err := s.enrolOnly(ctx, tenant, u)
	if err != nil {
		return "", time.Time{}, err
	}
	_, tok, err := s.createCredential(ctx, CollTokens, "idvt", tenant, credential{Subject: u.ID, Roles: u.Roles, ExpiresAt: &exp, EnrolOnly: enrol})
	return tok, exp, err
}

// signIn checks username, password and (when enrolled) the TOTP code in
// tenant, with the lockout, and returns the user.
func (s *Service) signIn(ctx context.Context, tenant, username, password, code string) (User, error) {
	v, err := s.view(tenant)
	if err != nil || tenant == store.PlatformTenant {
		VerifyPassword("", password)
		return User{}, ErrUnauthenticated
	}
	// An unknown tenant fails like a wrong password (same argon2id cost), and
	// before anything is created for it (its blind-index key).
	if _, err := s.Tenant(ctx, tenant); errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrInvalid) {
		VerifyPassword("", password)
		return User{}, ErrUnauthenticated
	} else if err != nil {
		return User{}, fmt.Errorf("sign in: %w", err)
	}
	bi, err := s.usernameIndex(ctx, tenant, NormalizeUsername(username))
	if err != nil {
		return User{}, err
	}
	if err := s.checkLockout(ctx, v, bi); err != nil {
		return User{}, err
	}
	page, err := v.Query(ctx, store.Query{Collection: CollUsers, Where: []store.Cond{{Field: "username_bi", Op: store.Eq, Value: bi}}, Limit: 1})
	if err != nil {
		return User{}, fmt.Errorf("sign in: %w", err)
	}
	var u User
	if len(page.Records) == 1 {
		if err := v.Decode(ctx, page.Records[0], &u); err != nil {
			return User{}, fmt.Errorf("sign in: %w", err)
		}
	}
	if !VerifyPassword(u.PasswordHash, password) || u.ID == "" || u.Disabled {
		return User{}, s.recordFailure(ctx, v, bi)
	}
	if u.TOTP.Enabled() {
		ok, err := s.useTOTPCode(ctx, v, u.ID, code)
		if err != nil {
			return User{}, err
		}
		if !ok {
			return User{}, s.recordFailure(ctx, v, bi)
		}
	}
	if err := s.resetFailures(ctx, v, bi); err != nil {
		return User{}, err
	}
	if err := s.checkTenant(ctx, tenant); err != nil {
		return User{}, err
	}
	return u, nil
}

func (s *Service) createCredential(ctx context.Context, coll, prefix, tenant string, c credential) (string, string, error) {
	v, err := s.view(tenant)
	if err != nil {
		return "", "", err
	}
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return "", "", fmt.Errorf("credential secret: %w", err)
	}
	enc := base64.RawURLEncoding.EncodeToString(secret)
	c.ID = NewID()
	c.Hash = digest(enc)
	c.CreatedAt = s.now().UTC()
	index := map[string]string{}
	if coll == CollTokens {
		index[SubjectIndex] = c.Subject // the user a sign-in issued the token to, for its audit event
	}
	if c.ExpiresAt != nil {
		index["expiresAt"] = c.ExpiresAt.UTC().Format(store.TimeFormat)
	}
	if _, err := v.Put(ctx, coll, c.ID, index, c); err != nil {
		return "", "", fmt.Errorf("create %s: %w", coll, err)
	}
	return c.ID, strings.Join([]string{prefix, tenant, c.ID, enc}, "."), nil
}

func digest(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// Authenticate resolves an Authorization header value ("ApiKey <key>" or
// "Bearer <token>") to its principal. Every failure other than a suspended
// tenant or a store outage is ErrUnauthenticated.
func (s *Service) Authenticate(ctx context.Context, header string) (Principal, error) {
	return s.AuthenticateFrom(ctx, header, "")
}

// AuthenticateFrom is Authenticate for a request from client address addr:
// an API key's last use (time, to the minute, and address) is recorded.
func (s *Service) AuthenticateFrom(ctx context.Context, header, addr string) (Principal, error) {
	scheme, cred, ok := strings.Cut(strings.TrimSpace(header), " ")
	if !ok {
		return Principal{}, ErrUnauthenticated
	}
	var coll, prefix, typ string
	switch strings.ToLower(scheme) {
	case "apikey":
		coll, prefix, typ = CollAPIKeys, "idvk", "apikey"
	case "bearer":
		coll, prefix, typ = CollTokens, "idvt", "user"
		if strings.HasPrefix(strings.TrimSpace(cred), "idvd.") {
			coll, prefix, typ = CollDeviceTokens, "idvd", "device"
		}
	default:
		return Principal{}, ErrUnauthenticated
	}
	parts := strings.Split(strings.TrimSpace(cred), ".")
	if len(parts) != 4 || parts[0] != prefix || parts[1] == "" || parts[2] == "" || len(parts[3]) != 43 {
		return Principal{}, ErrUnauthenticated
	}
	tenant, id, secret := parts[1], parts[2], parts[3]
	if tenant == store.PlatformTenant {
		return Principal{}, ErrUnauthenticated
	}
	v, err := s.view(tenant)
	if err != nil {
		return Principal{}, ErrUnauthenticated
	}
	ckey := coll + "/" + tenant + "/" + id
	c, ok := s.creds.get(ckey, s.now())
	if !ok {
		if _, err := v.Get(ctx, coll, id, &c); err != nil {
			if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrInvalid) {
				return Principal{}, ErrUnauthenticated
			}
			return Principal{}, fmt.Errorf("authenticate: %w", err)
		}
		s.creds.put(ckey, c, s.now())
	}
	if subtle.ConstantTimeCompare([]byte(c.Hash), []byte(digest(secret))) != 1 {
		return Principal{}, ErrUnauthenticated
	}
	if c.ExpiresAt != nil && !s.now().Before(*c.ExpiresAt) {
		return Principal{}, ErrUnauthenticated
	}
	if err := s.checkTenant(ctx, tenant); err != nil {
		return Principal{}, err
	}
	p := Principal{Tenant: tenant, Type: typ, ID: c.ID, Roles: c.Roles, BoundSession: c.Session, Permissions: c.Permissions, EnrolOnly: c.EnrolOnly}
	if typ == "apikey" && addr != "" {
		if err := s.recordUse(ctx, v, id, addr); err != nil {
			return Principal{}, err
		}
	}
	if typ == "user" {
		p.ID = c.Subject
		var u User
		if _, err := v.Get(ctx, CollUsers, c.Subject, &u); errors.Is(err, store.ErrNotFound) || (err == nil && u.Disabled) {
			return Principal{}, ErrUnauthenticated
		} else if err != nil {
			return Principal{}, fmt.Errorf("authenticate: %w", err)
		}
	}
	return p, nil
}

func (s *Service) checkTenant(ctx context.Context, tenant string) error {
	status, ok := s.statuses.get(tenant, s.now())
	if !ok {
		t, err := s.Tenant(ctx, tenant)
		switch {
		case errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrInvalid):
			return ErrUnauthenticated
		case err != nil:
			return fmt.Errorf("load tenant: %w", err)
		}
		status = t.Status
		s.statuses.put(tenant, status, s.now())
	}
	if status != TenantActive {
		return ErrTenantSuspended
	}
	return nil
}

// Users calls fn for every user of tenant, in id order, until fn returns an
// error.
func (s *Service) Users(ctx context.Context, tenant string, fn func(User) error) error {
	v, err := s.view(tenant)
	if err != nil {
		return err
	}
	return each(ctx, v, CollUsers, fn)
}

// userID returns the id of tenant's user named username, or
// store.ErrNotFound.
func (s *Service) userID(ctx context.Context, v *store.View, tenant, username string) (string, error) {
	bi, err := s.usernameIndex(ctx, tenant, NormalizeUsername(username))
	if err != nil {
		return "", err
	}
	page, err := v.Query(ctx, store.Query{Collection: CollUsers, Where: []store.Cond{{Field: "username_bi", Op: store.Eq, Value: bi}}, Limit: 1})
	if err != nil {
		return "", fmt.Errorf("find user: %w", err)
	}
	if len(page.Records) == 0 {
		return "", store.ErrNotFound
	}
	return page.Records[0].ID, nil
}

// SetUserDisabled disables (or re-enables) the user of tenant named
// username. A disabled user cannot sign in and its bearer tokens stop
// working at once. It returns store.ErrNotFound for an unknown user.
func (s *Service) SetUserDisabled(ctx context.Context, tenant, username string, disabled bool) error {
	return s.updateUserNamed(ctx, tenant, username, func(u *User) error {
		u.Disabled = disabled
		return nil
	})
}

// updateUserNamed applies fn to tenant's user named username with
// compare-and-swap; an unknown user is store.ErrNotFound.
func (s *Service) updateUserNamed(ctx context.Context, tenant, username string, fn func(*User) error) error {
	v, err := s.view(tenant)
	if err != nil {
		return err
	}
	id, err := s.userID(ctx, v, tenant, username)
	if err != nil {
		return err
	}
	return s.updateUser(ctx, v, id, fn)
}

// User returns tenant's user id, or store.ErrNotFound.
func (s *Service) User(ctx context.Context, tenant, id string) (User, error) {
	v, err := s.view(tenant)
	if err != nil {
		return User{}, err
	}
	var u User
	_, err = v.Get(ctx, CollUsers, id, &u)
	return u, err
}

// SetUserDisabledByID is SetUserDisabled for the user with id.
func (s *Service) SetUserDisabledByID(ctx context.Context, tenant, id string, disabled bool) error {
	v, err := s.view(tenant)
	if err != nil {
		return err
	}
	return s.updateUser(ctx, v, id, func(u *User) error {
		u.Disabled = disabled
		return nil
	})
}
