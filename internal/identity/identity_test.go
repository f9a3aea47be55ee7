package identity_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/idvault/idvault/internal/barrier"
	"github.com/idvault/idvault/internal/identity"
	"github.com/idvault/idvault/internal/sqlitedb"
	"github.com/idvault/idvault/internal/store"
	"github.com/idvault/idvault/internal/store/sqlite"
	"github.com/idvault/idvault/internal/testenv/testclock"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// fixture is a Service over a real SQLite store in a temporary directory.
type fixture struct {
	dir     string
	backend *sqlite.Store
	barrier *barrier.AESGCM
	clock   *testclock.Clock
	svc     *identity.Service
}

func randomKey(tb testing.TB) []byte {
	tb.Helper()
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		tb.Fatal(err)
	}
	return k
}

func newFixture(tb testing.TB) *fixture {
	tb.Helper()
	ctx := context.Background()
	dir := tb.TempDir()
	db, err := sqlitedb.Open(ctx, filepath.Join(dir, "idvault.db"))
	if err != nil {
		tb.Fatalf("sqlitedb.Open() = %v", err)
	}
	tb.Cleanup(func() {
		if err := db.Close(); err != nil {
			tb.Errorf("db.Close() = %v", err)
		}
	})
	backend, err := sqlite.New(ctx, db)
	if err != nil {
		tb.Fatalf("sqlite.New() = %v", err)
	}
	tb.Cleanup(func() { _ = backend.Close() })
	bar, err := barrier.NewAESGCM(randomKey(tb))
	if err != nil {
		tb.Fatalf("barrier.NewAESGCM() = %v", err)
	}
	blinder, err := barrier.NewBlinder(randomKey(tb))
	if err != nil {
		tb.Fatalf("barrier.NewBlinder() = %v", err)
	}
	clk := testclock.New(time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC))
	return &fixture{
		dir:     dir,
		backend: backend,
		barrier: bar,
		clock:   clk,
		svc:     identity.NewService(backend, bar, blinder, clk.Now),
	}
}

func (f *fixture) tenant(tb testing.TB, name string) identity.Tenant {
	tb.Helper()
	tn, err := f.svc.CreateTenant(context.Background(), name)
	if err != nil {
		tb.Fatalf("CreateTenant(%q) = %v", name, err)
	}
	return tn
}

func (f *fixture) apiKey(tb testing.TB, tenant string, roles []string, expiresAt *time.Time) (id, key string) {
	tb.Helper()
	id, key, err := f.svc.CreateAPIKey(context.Background(), tenant, "ci", "creator", roles, expiresAt)
	if err != nil {
		tb.Fatalf("CreateAPIKey(%q) = %v", tenant, err)
	}
	return id, key
}

// setStatus rewrites the tenant record's status the way an operator would.
func (f *fixture) setStatus(tb testing.TB, tenant, status string) {
	tb.Helper()
	if err := f.svc.SetTenantStatus(context.Background(), tenant, status); err != nil {
		tb.Fatalf("SetTenantStatus(%s, %s) = %v", tenant, status, err)
	}
}

// dbContains reports whether any file of the database (main file, WAL,
// shared memory) holds s.
func (f *fixture) dbContains(tb testing.TB, s string) bool {
	tb.Helper()
	entries, err := os.ReadDir(f.dir)
	if err != nil {
		tb.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(f.dir, e.Name()))
		if err != nil {
			tb.Fatal(err)
		}
		if bytes.Contains(b, []byte(s)) {
			return true
		}
	}
	return false
}

// keyParts splits a credential into prefix, tenant, id and secret.
func keyParts(tb testing.TB, key string) (prefix, tenant, id, secret string) {
	tb.Helper()
	p := strings.Split(key, ".")
	if len(p) != 4 {
		tb.Fatalf("credential %q has %d dot-separated parts, want 4", key, len(p))
	}
	return p[0], p[1], p[2], p[3]
}

func TestTenants(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	var want []identity.Tenant
	for _, name := range []string{"Acme", "Globex", "Initech"} {
		tn := f.tenant(t, name)
		if tn.Name != name || tn.Status != identity.TenantActive || tn.ID == "" || !tn.CreatedAt.Equal(f.clock.Now()) {
			t.Errorf("CreateTenant(%q) = %+v, want an active tenant named %q created at %v", name, tn, name, f.clock.Now())
		}
		want = append(want, tn)
	}

	t.Run("get", func(t *testing.T) {
		for _, w := range want {
			got, err := f.svc.Tenant(ctx, w.ID)
			if err != nil || got.ID != w.ID || got.Name != w.Name || got.Status != w.Status || !got.CreatedAt.Equal(w.CreatedAt) {
				t.Errorf("Tenant(%s) = %+v, %v, want %+v", w.ID, got, err, w)
			}
		}
	})

	t.Run("unknown", func(t *testing.T) {
		if _, err := f.svc.Tenant(ctx, identity.NewID()); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Tenant(unknown) = %v, want store.ErrNotFound", err)
		}
	})

	t.Run("list in id order", func(t *testing.T) {
		var got []string
		if err := f.svc.Tenants(ctx, func(tn identity.Tenant) error {
			got = append(got, tn.ID)
			return nil
		}); err != nil {
			t.Fatalf("Tenants() = %v", err)
		}
		var ids []string
		for _, w := range want {
			ids = append(ids, w.ID)
		}
		slices.Sort(ids)
		if !slices.Equal(got, ids) {
			t.Errorf("Tenants() visited %v, want %v", got, ids)
		}
	})

	t.Run("stops at error", func(t *testing.T) {
		stop := errors.New("stop")
		calls := 0
		err := f.svc.Tenants(ctx, func(identity.Tenant) error {
			calls++
			return stop
		})
		if !errors.Is(err, stop) || calls != 1 {
			t.Errorf("Tenants(fn failing) = %v after %d calls, want %v after 1", err, calls, stop)
		}
	})
}

func TestCreateUser(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	tn := f.tenant(t, "Acme")
	other := f.tenant(t, "Globex")
	const username = "Marker.User.7f3a"

	u, err := f.svc.CreateUser(ctx, tn.ID, "  "+username+" ", password, []string{"verifier"})
	if err != nil {
		t.Fatalf("CreateUser(%q) = %v", username, err)
	}
	if u.Username.Value() != strings.ToLower(username) || u.ID == "" || !slices.Equal(u.Roles, []string{"verifier"}) {
		t.Errorf("CreateUser(%q) = %+v, want normalised name %q and roles [verifier]", username, u, strings.ToLower(username))
	}
	if !identity.VerifyPassword(u.PasswordHash, password) {
		t.Errorf("VerifyPassword(user.PasswordHash, password) = false, want true")
	}

	t.Run("duplicate", func(t *testing.T) {
		for _, name := range []string{username, strings.ToUpper(username), " " + strings.ToLower(username)} {
			if _, err := f.svc.CreateUser(ctx, tn.ID, name, password, nil); !errors.Is(err, identity.ErrExists) {
				t.Errorf("CreateUser(%q) = %v, want ErrExists", name, err)
			}
		}
	})

	t.Run("same name in another tenant", func(t *testing.T) {
		if _, err := f.svc.CreateUser(ctx, other.ID, username, password, nil); err != nil {
			t.Errorf("CreateUser(other tenant, %q) = %v, want nil", username, err)
		}
	})

	t.Run("empty name", func(t *testing.T) {
		if _, err := f.svc.CreateUser(ctx, tn.ID, "   ", password, nil); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("CreateUser(blank) = %v, want store.ErrInvalid", err)
		}
	})

	t.Run("short password", func(t *testing.T) {
		if _, err := f.svc.CreateUser(ctx, tn.ID, "bob", "short", nil); err == nil {
			t.Fatalf("CreateUser(bob, short password) = nil, want an error")
		}
		if _, _, err := f.svc.IssueToken(ctx, tn.ID, "bob", "short", ""); !errors.Is(err, identity.ErrUnauthenticated) {
			t.Errorf("IssueToken(bob) after a refused CreateUser = %v, want ErrUnauthenticated", err)
		}
	})

	t.Run("not in clear", func(t *testing.T) {
		if !f.dbContains(t, tn.ID) {
			t.Fatalf("database files do not contain the tenant id %s; the scan sees nothing", tn.ID)
		}
		for _, s := range []string{username, strings.ToLower(username), password, u.PasswordHash} {
			if f.dbContains(t, s) {
				t.Errorf("database files contain %q in clear", s)
			}
		}
	})
}

// TestCreateUserConcurrent checks that racing creations of one username
// leave exactly one user.
func TestCreateUserConcurrent(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	tn := f.tenant(t, "Acme")
	const n = 3
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			_, errs[i] = f.svc.CreateUser(ctx, tn.ID, "alice", password, nil)
		})
	}
	wg.Wait()
	created := 0
	for i, err := range errs {
		switch {
		case err == nil:
			created++
		case !errors.Is(err, identity.ErrExists):
			t.Errorf("CreateUser(alice) #%d = %v, want nil or ErrExists", i, err)
		}
	}
	if created != 1 {
		t.Errorf("%d concurrent CreateUser(alice) created %d users, want 1", n, created)
	}
}

func TestAuthenticateAPIKey(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	tn := f.tenant(t, "Acme")
	other := f.tenant(t, "Globex")
	roles := []string{"integration"}
	id, key := f.apiKey(t, tn.ID, roles, nil)
	otherID, _ := f.apiKey(t, tn.ID, roles, nil)
	prefix, _, _, secret := keyParts(t, key)
	if prefix != "idvk" || len(secret) != 43 {
		t.Fatalf("CreateAPIKey() = %q, want idvk.<tenant>.<id>.<43 characters>", key)
	}
	want := identity.Principal{Tenant: tn.ID, Type: "apikey", ID: id, Roles: roles}

	t.Run("accepted", func(t *testing.T) {
		for _, h := range []string{
			"ApiKey " + key,
			"apikey " + key,
			"APIKEY " + key,
			"  ApiKey " + key + "  ",
			"ApiKey    " + key, // RFC 9110 allows 1*SP after the scheme
		} {
			p, err := f.svc.Authenticate(ctx, h)
			if err != nil || p.Tenant != want.Tenant || p.Type != want.Type || p.ID != want.ID || !slices.Equal(p.Roles, want.Roles) {
				t.Errorf("Authenticate(%q) = %+v, %v, want %+v", h, p, err, want)
			}
		}
	})

	otherSecret := base64.RawURLEncoding.EncodeToString(randomKey(t))
	flipped := []byte(secret)
	flipped[0] ^= 1
	rejected := []struct {
		name   string
		header string
	}{
		{"empty", ""},
		{"spaces", "   "},
		{"scheme only", "ApiKey"},
		{"scheme and space", "ApiKey "},
		{"no scheme", key},
		{"basic scheme", "Basic " + key},
		{"bearer scheme", "Bearer " + key},
		{"key as token", "Bearer " + strings.Join([]string{"idvt", tn.ID, id, secret}, ".")},
		{"tab separator", "ApiKey\t" + key},
		{"wrong secret", "ApiKey " + strings.Join([]string{"idvk", tn.ID, id, otherSecret}, ".")},
		{"flipped secret", "ApiKey " + strings.Join([]string{"idvk", tn.ID, id, string(flipped)}, ".")},
		{"short secret", "ApiKey " + strings.Join([]string{"idvk", tn.ID, id, secret[:42]}, ".")},
		{"long secret", "ApiKey " + key + "A"},
		{"other tenant", "ApiKey " + strings.Join([]string{"idvk", other.ID, id, secret}, ".")},
		{"unknown tenant", "ApiKey " + strings.Join([]string{"idvk", identity.NewID(), id, secret}, ".")},
		{"empty tenant", "ApiKey " + strings.Join([]string{"idvk", "", id, secret}, ".")},
		{"swapped id", "ApiKey " + strings.Join([]string{"idvk", tn.ID, otherID, secret}, ".")},
		{"empty id", "ApiKey " + strings.Join([]string{"idvk", tn.ID, "", secret}, ".")},
		{"long id", "ApiKey " + strings.Join([]string{"idvk", tn.ID, strings.Repeat("a", 300), secret}, ".")},
		{"wrong prefix", "ApiKey " + strings.Join([]string{"idvx", tn.ID, id, secret}, ".")},
		{"three parts", "ApiKey " + strings.Join([]string{"idvk", tn.ID, secret}, ".")},
		{"five parts", "ApiKey " + key + ".x"},
		{"space inside", "ApiKey " + strings.Join([]string{"idvk", " " + tn.ID, id, secret}, ".")},
		{"trailing word", "ApiKey " + key + " extra"},
	}
	for _, tt := range rejected {
		t.Run(tt.name, func(t *testing.T) {
			if p, err := f.svc.Authenticate(ctx, tt.header); !errors.Is(err, identity.ErrUnauthenticated) {
				t.Errorf("Authenticate(%q) = %+v, %v, want ErrUnauthenticated", tt.header, p, err)
			}
		})
	}

	t.Run("platform tenant", func(t *testing.T) {
		_, pkey := f.apiKey(t, store.PlatformTenant, []string{"admin"}, nil)
		if p, err := f.svc.Authenticate(ctx, "ApiKey "+pkey); !errors.Is(err, identity.ErrUnauthenticated) {
			t.Errorf("Authenticate(platform key) = %+v, %v, want ErrUnauthenticated", p, err)
		}
	})

	t.Run("expiry", func(t *testing.T) {
		exp := f.clock.Now().Add(time.Hour)
		_, ekey := f.apiKey(t, tn.ID, roles, &exp)
		h := "ApiKey " + ekey
		if _, err := f.svc.Authenticate(ctx, h); err != nil {
			t.Fatalf("Authenticate(key expiring in 1h) = %v, want nil", err)
		}
		f.clock.Advance(time.Hour - time.Nanosecond)
		if _, err := f.svc.Authenticate(ctx, h); err != nil {
			t.Errorf("Authenticate(key) 1ns before expiry = %v, want nil", err)
		}
		f.clock.Advance(time.Nanosecond)
		if _, err := f.svc.Authenticate(ctx, h); !errors.Is(err, identity.ErrUnauthenticated) {
			t.Errorf("Authenticate(key) at expiry = %v, want ErrUnauthenticated", err)
		}
		if _, err := f.svc.Authenticate(ctx, "ApiKey "+key); err != nil {
			t.Errorf("Authenticate(key without expiry) = %v, want nil", err)
		}
	})

	t.Run("suspended tenant", func(t *testing.T) {
		f.setStatus(t, tn.ID, identity.TenantSuspended)
		if _, err := f.svc.Authenticate(ctx, "ApiKey "+key); !errors.Is(err, identity.ErrTenantSuspended) {
			t.Errorf("Authenticate(key of suspended tenant) = %v, want ErrTenantSuspended", err)
		}
		bad := "ApiKey " + strings.Join([]string{"idvk", tn.ID, id, otherSecret}, ".")
		if _, err := f.svc.Authenticate(ctx, bad); !errors.Is(err, identity.ErrUnauthenticated) {
			t.Errorf("Authenticate(wrong secret, suspended tenant) = %v, want ErrUnauthenticated", err)
		}
		f.setStatus(t, tn.ID, identity.TenantActive)
		if _, err := f.svc.Authenticate(ctx, "ApiKey "+key); err != nil {
			t.Errorf("Authenticate(key) after reactivation = %v, want nil", err)
		}
	})

	t.Run("secret not in clear", func(t *testing.T) {
		if !f.dbContains(t, id) {
			t.Fatalf("database files do not contain the key id %s; the scan sees nothing", id)
		}
		if f.dbContains(t, secret) {
			t.Errorf("database files contain the API key secret in clear")
		}
	})
}

func TestIssueToken(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	tn := f.tenant(t, "Acme")
	roles := []string{"verifier", "auditor"}
	u, err := f.svc.CreateUser(ctx, tn.ID, "alice", password, roles)
	if err != nil {
		t.Fatalf("CreateUser(alice) = %v", err)
	}

	issued := f.clock.Now()
	tok, exp, err := f.svc.IssueToken(ctx, tn.ID, " Alice ", password, "")
	if err != nil {
		t.Fatalf("IssueToken(Alice, right password) = %v, want nil", err)
	}
	if want := issued.Add(identity.TokenTTL); !exp.Equal(want) {
		t.Errorf("IssueToken() expiry = %v, want %v", exp, want)
	}
	prefix, tenant, _, secret := keyParts(t, tok)
	if prefix != "idvt" || tenant != tn.ID || len(secret) != 43 {
		t.Errorf("IssueToken() = %q, want idvt.%s.<id>.<43 characters>", tok, tn.ID)
	}

	t.Run("authenticates as user", func(t *testing.T) {
		p, err := f.svc.Authenticate(ctx, "Bearer "+tok)
		want := identity.Principal{Tenant: tn.ID, Type: "user", ID: u.ID, Roles: roles}
		if err != nil || p.Tenant != want.Tenant || p.Type != want.Type || p.ID != want.ID || !slices.Equal(p.Roles, want.Roles) {
			t.Errorf("Authenticate(Bearer token) = %+v, %v, want %+v", p, err, want)
		}
		if p, err := f.svc.Authenticate(ctx, "ApiKey "+tok); !errors.Is(err, identity.ErrUnauthenticated) {
			t.Errorf("Authenticate(ApiKey token) = %+v, %v, want ErrUnauthenticated", p, err)
		}
	})

	t.Run("refused", func(t *testing.T) {
		tests := []struct {
			name, tenant, username, password string
		}{
			{"wrong password", tn.ID, "alice", "twelve-charz"},
			{"empty password", tn.ID, "alice", ""},
			{"unknown user", tn.ID, "mallory", password},
			{"unknown tenant", identity.NewID(), "alice", password},
			{"platform tenant", store.PlatformTenant, "alice", password},
			{"empty tenant", "", "alice", password},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				if tok, _, err := f.svc.IssueToken(ctx, tt.tenant, tt.username, tt.password, ""); !errors.Is(err, identity.ErrUnauthenticated) {
					t.Errorf("IssueToken(%q, %q, %q) = %q, %v, want ErrUnauthenticated", tt.tenant, tt.username, tt.password, tok, err)
				}
			})
		}
	})

	t.Run("suspended tenant", func(t *testing.T) {
		f.setStatus(t, tn.ID, identity.TenantSuspended)
		defer f.setStatus(t, tn.ID, identity.TenantActive)
		if _, _, err := f.svc.IssueToken(ctx, tn.ID, "alice", "twelve-charz", ""); !errors.Is(err, identity.ErrUnauthenticated) {
			t.Errorf("IssueToken(suspended tenant, wrong password) = %v, want ErrUnauthenticated", err)
		}
		if _, _, err := f.svc.IssueToken(ctx, tn.ID, "alice", password, ""); !errors.Is(err, identity.ErrTenantSuspended) {
			t.Errorf("IssueToken(suspended tenant, right password) = %v, want ErrTenantSuspended", err)
		}
		if _, err := f.svc.Authenticate(ctx, "Bearer "+tok); !errors.Is(err, identity.ErrTenantSuspended) {
			t.Errorf("Authenticate(token of suspended tenant) = %v, want ErrTenantSuspended", err)
		}
	})

	t.Run("secret not in clear", func(t *testing.T) {
		if f.dbContains(t, secret) {
			t.Errorf("database files contain the token secret in clear")
		}
	})

	t.Run("expiry", func(t *testing.T) {
		f.clock.Advance(identity.TokenTTL - time.Nanosecond)
		if _, err := f.svc.Authenticate(ctx, "Bearer "+tok); err != nil {
			t.Errorf("Authenticate(token) 1ns before TokenTTL = %v, want nil", err)
		}
		f.clock.Advance(time.Nanosecond)
		if _, err := f.svc.Authenticate(ctx, "Bearer "+tok); !errors.Is(err, identity.ErrUnauthenticated) {
			t.Errorf("Authenticate(token) after TokenTTL = %v, want ErrUnauthenticated", err)
		}
	})
}

// FuzzAuthenticate checks that no header panics, that every failure is
// ErrUnauthenticated, and that only the one real key authenticates.
func FuzzAuthenticate(f *testing.F) {
	fx := newFixture(f)
	tn := fx.tenant(f, "Acme")
	id, key := fx.apiKey(f, tn.ID, []string{"integration"}, nil)
	_, _, _, secret := keyParts(f, key)
	for _, h := range []string{
		"ApiKey " + key,
		"Bearer " + strings.Replace(key, "idvk", "idvt", 1),
		"apikey idvk." + tn.ID + "." + id + "." + strings.Repeat("A", len(secret)),
		"ApiKey idvk._platform." + id + "." + secret,
		"ApiKey idvk...." + secret,
		"ApiKey " + key + ".",
		"",
		"Bearer",
		"Basic dXNlcjpwYXNz",
	} {
		f.Add(h)
	}
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, header string) {
		p, err := fx.svc.Authenticate(ctx, header)
		if err != nil {
			if !errors.Is(err, identity.ErrUnauthenticated) {
				t.Fatalf("Authenticate(%q) = %v, want ErrUnauthenticated", header, err)
			}
			return
		}
		scheme, cred, _ := strings.Cut(strings.TrimSpace(header), " ")
		if !strings.EqualFold(scheme, "apikey") || strings.TrimSpace(cred) != key {
			t.Fatalf("Authenticate(%q) = %+v, nil, want ErrUnauthenticated for anything but the issued key", header, p)
		}
		if p.Tenant != tn.ID || p.Type != "apikey" || p.ID != id {
			t.Fatalf("Authenticate(%q) = %+v, want the issued key's principal", header, p)
		}
	})
}

// BenchmarkAuthenticate measures the per-request cost of an API key: one
// record read, one SHA-256 and one tenant read.
func BenchmarkAuthenticate(b *testing.B) {
	f := newFixture(b)
	tn := f.tenant(b, "Acme")
	_, key := f.apiKey(b, tn.ID, []string{"integration"}, nil)
	ctx := context.Background()
	h := "ApiKey " + key
	for b.Loop() {
		if _, err := f.svc.Authenticate(ctx, h); err != nil {
			b.Fatalf("Authenticate() = %v", err)
		}
	}
}

// BenchmarkSignIn measures one sign-in (argon2id dominates) for a right
// password, a wrong password and an unknown user. The last two must cost
// the same, so that timing does not tell whether a username exists; the
// lockout is reset between runs so it never short-cuts a failure.
func BenchmarkSignIn(b *testing.B) {
	f := newFixture(b)
	ctx := context.Background()
	tn := f.tenant(b, "Acme")
	const pw = "correct horse battery staple"
	if _, err := f.svc.CreateUser(ctx, tn.ID, "alice", pw, []string{"admin"}); err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct{ name, user, pw string }{
		{"right_password", "alice", pw},
		{"wrong_password", "alice", "wrong password guess"},
		{"unknown_user", "mallory", "wrong password guess"},
	} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				_, _, err := f.svc.IssueToken(ctx, tn.ID, c.user, c.pw, "")
				if c.user == "alice" && c.pw == pw && err != nil {
					b.Fatal(err)
				}
				f.clock.Advance(2 * identity.LockoutMax)
			}
		})
	}
}

// TestChangesFromAnotherProcess checks what RecentTTL promises: a revocation
// or suspension made by another process (another Service over the same
// store) takes effect within RecentTTL, and one made through this Service at
// once.
func TestChangesFromAnotherProcess(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	blinder, err := barrier.NewBlinder(randomKey(t))
	if err != nil {
		t.Fatal(err)
	}
	other := identity.NewService(f.backend, f.barrier, blinder, f.clock.Now)
	tn := f.tenant(t, "Acme")
	id, key := f.apiKey(t, tn.ID, []string{"integration"}, nil)
	h := "ApiKey " + key
	if _, err := f.svc.Authenticate(ctx, h); err != nil {
		t.Fatalf("Authenticate(key) = %v, want nil", err)
	}

	if err := other.RevokeAPIKey(ctx, tn.ID, id); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(identity.RecentTTL)
	if _, err := f.svc.Authenticate(ctx, h); !errors.Is(err, identity.ErrUnauthenticated) {
		t.Errorf("Authenticate(key revoked by another process) RecentTTL later = %v, want ErrUnauthenticated", err)
	}

	_, key2 := f.apiKey(t, tn.ID, []string{"integration"}, nil)
	h2 := "ApiKey " + key2
	if _, err := f.svc.Authenticate(ctx, h2); err != nil {
		t.Fatalf("Authenticate(key2) = %v, want nil", err)
	}
	if err := other.SetTenantStatus(ctx, tn.ID, identity.TenantSuspended); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(identity.RecentTTL)
	if _, err := f.svc.Authenticate(ctx, h2); !errors.Is(err, identity.ErrTenantSuspended) {
		t.Errorf("Authenticate(key of a tenant another process suspended) RecentTTL later = %v, want ErrTenantSuspended", err)
	}
	if err := f.svc.SetTenantStatus(ctx, tn.ID, identity.TenantActive); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Authenticate(ctx, h2); err != nil {
		t.Errorf("Authenticate(key2) right after this process resumed the tenant = %v, want nil", err)
	}
	if err := f.svc.SetTenantStatus(ctx, tn.ID, identity.TenantSuspended); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Authenticate(ctx, h2); !errors.Is(err, identity.ErrTenantSuspended) {
		t.Errorf("Authenticate(key2) right after this process suspended the tenant = %v, want ErrTenantSuspended", err)
	}
}
