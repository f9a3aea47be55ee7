package keyring

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"gocloud.dev/secrets/localsecrets"

	"github.com/idvault/idvault/internal/barrier"
	"github.com/idvault/idvault/internal/sqlitedb"
	"github.com/idvault/idvault/internal/store"
	"github.com/idvault/idvault/internal/store/sqlite"
	"github.com/idvault/idvault/internal/testenv/testclock"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

var discard = slog.New(slog.DiscardHandler)

// testStore is the real SQLite backend over a database file.
type testStore struct {
	*sqlite.Store
	path string
	db   *sqlitedb.DB
}

// openStore opens the SQLite database at path as a store, closed when tb
// ends.
func openStore(tb testing.TB, path string) *testStore {
	tb.Helper()
	ctx := context.Background()
	db, err := sqlitedb.Open(ctx, path)
	if err != nil {
		tb.Fatalf("sqlitedb.Open(%s) = %v, want nil", path, err)
	}
	s, err := sqlite.New(ctx, db)
	if err != nil {
		_ = db.Close()
		tb.Fatalf("sqlite.New() = %v, want nil", err)
	}
	tb.Cleanup(func() {
		if err := errors.Join(s.Close(), db.Close()); err != nil {
			tb.Errorf("close store: %v", err)
		}
	})
	return &testStore{Store: s, path: path, db: db}
}

func newStore(tb testing.TB) *testStore {
	tb.Helper()
	return openStore(tb, filepath.Join(tb.TempDir(), "idvault.db"))
}

func randomKey(tb testing.TB) []byte {
	tb.Helper()
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		tb.Fatal(err)
	}
	return k
}

func newRootKey(tb testing.TB, id string) KEK {
	tb.Helper()
	k, err := NewRootKey(id, randomKey(tb))
	if err != nil {
		tb.Fatalf("NewRootKey(%q) = %v, want nil", id, err)
	}
	return k
}

// newKMSKey returns a KEK over a real Go Cloud local keeper (NaCl
// secretbox under a random key).
func newKMSKey(tb testing.TB, id string) KEK {
	tb.Helper()
	sk, err := localsecrets.NewRandomKey()
	if err != nil {
		tb.Fatal(err)
	}
	keeper := localsecrets.NewKeeper(sk)
	tb.Cleanup(func() {
		if err := keeper.Close(); err != nil {
			tb.Errorf("keeper.Close() = %v", err)
		}
	})
	k, err := NewKMSKey(id, keeper)
	if err != nil {
		tb.Fatalf("NewKMSKey(%q) = %v, want nil", id, err)
	}
	return k
}

// kekKinds are the root key kinds that every KEK-dependent test runs over.
var kekKinds = []struct {
	name string
	new  func(testing.TB, string) KEK
}{
	{"root key", newRootKey},
	{"kms", newKMSKey},
}

func newKeyring(tb testing.TB, backend store.Backend, roots ...KEK) *Keyring {
	tb.Helper()
	return newKeyringAt(tb, backend, nil, roots...)
}

func newKeyringAt(tb testing.TB, backend store.Backend, now func() time.Time, roots ...KEK) *Keyring {
	tb.Helper()
	k, err := New(context.Background(), backend, roots, discard, now)
	if err != nil {
		tb.Fatalf("New() = %v, want nil", err)
	}
	return k
}

// lister lists the platform tenant and tenants.
func lister(tenants ...string) TenantLister {
	return func(_ context.Context, fn func(string) error) error {
		for _, t := range append([]string{store.PlatformTenant}, tenants...) {
			if err := fn(t); err != nil {
				return err
			}
		}
		return nil
	}
}

func sessionPlace(tenant, session string) barrier.Place {
	return store.BodyPlace(tenant, "sessions", session)
}

func userPlace(tenant, id string) barrier.Place {
	return store.BodyPlace(tenant, "users", id)
}

func mustSeal(tb testing.TB, k *Keyring, p barrier.Place, plain string) []byte {
	tb.Helper()
	sealed, err := k.Seal(context.Background(), p, []byte(plain))
	if err != nil {
		tb.Fatalf("Seal(%v) = %v, want nil", p, err)
	}
	return sealed
}

func mustOpen(tb testing.TB, k *Keyring, p barrier.Place, sealed []byte, want string) {
	tb.Helper()
	got, err := k.Open(context.Background(), p, sealed)
	if err != nil || string(got) != want {
		tb.Fatalf("Open(%v) = %q, %v, want %q, nil", p, got, err, want)
	}
}

func wantErrOpen(tb testing.TB, k *Keyring, p barrier.Place, sealed []byte) {
	tb.Helper()
	if got, err := k.Open(context.Background(), p, sealed); !errors.Is(err, barrier.ErrOpen) {
		tb.Errorf("Open(%v) = %q, %v, want barrier.ErrOpen", p, got, err)
	}
}

// states returns the persisted state of every root key.
func states(tb testing.TB, k *Keyring) map[string]string {
	tb.Helper()
	roots, err := k.Roots(context.Background())
	if err != nil {
		tb.Fatalf("Roots() = %v, want nil", err)
	}
	out := map[string]string{}
	for _, r := range roots {
		out[r.ID] = r.State
	}
	return out
}

// usage returns the number of data keys each root key wraps.
func usage(tb testing.TB, k *Keyring, tenants TenantLister) map[string]int {
	tb.Helper()
	st, err := k.Status(context.Background(), tenants)
	if err != nil {
		tb.Fatalf("Status() = %v, want nil", err)
	}
	out := map[string]int{}
	for _, u := range st {
		out[u.ID] = u.DataKeys
	}
	return out
}

func equalMaps[V comparable](a, b map[string]V) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// keyRecordOf reads the stored key record (tenant, id).
func keyRecordOf(tb testing.TB, s store.Backend, tenant, id string) keyRecord {
	tb.Helper()
	rec, err := s.Get(context.Background(), Collection, tenant, id)
	if err != nil {
		tb.Fatalf("Get(%s/%s) = %v, want nil", tenant, id, err)
	}
	var kr keyRecord
	if err := json.Unmarshal(rec.Body, &kr); err != nil {
		tb.Fatal(err)
	}
	return kr
}

// clock is an injected clock that only moves when told.
func TestNewFirstKeyPrimary(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	r1, r2 := newRootKey(t, "r1"), newRootKey(t, "r2")
	k := newKeyring(t, s, r1, r2)
	want := map[string]string{"r1": StatePrimary, "r2": StateActive}
	if got := states(t, k); !equalMaps(got, want) {
		t.Errorf("Roots() = %v, want %v", got, want)
	}
	if _, err := s.Get(ctx, Collection, store.PlatformTenant, keyringID); err != nil {
		t.Fatalf("persisted keyring: Get() = %v, want nil", err)
	}
	first, err := k.Roots(ctx)
	if err != nil {
		t.Fatal(err)
	}
	again, err := newKeyring(t, s, r1, r2).Roots(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(again) != fmt.Sprint(first) {
		t.Errorf("Roots() after a second New = %v, want %v", again, first)
	}
	for _, k := range []string{"r1", "r2"} {
		if !newKeyring(t, s, r1, r2).Configured(k) {
			t.Errorf("Configured(%q) = false, want true", k)
		}
	}
	if k.Configured("r3") {
		t.Error(`Configured("r3") = true, want false`)
	}
}

func TestNewKeepsPersistedPrimary(t *testing.T) {
	s := newStore(t)
	r1, r2, r3 := newRootKey(t, "r1"), newRootKey(t, "r2"), newRootKey(t, "r3")
	newKeyring(t, s, r1)
	k := newKeyring(t, s, r3, r2, r1)
	want := map[string]string{"r1": StatePrimary, "r2": StateActive, "r3": StateActive}
	if got := states(t, k); !equalMaps(got, want) {
		t.Errorf("Roots() = %v, want %v", got, want)
	}
	mustSeal(t, k, userPlace("t1", "u1"), "v")
	if kr := keyRecordOf(t, s, "t1", "tenant"); kr.Root != "r1" {
		t.Errorf("new data key wrapped by %q, want r1", kr.Root)
	}
}

func TestNewPrimaryNotConfigured(t *testing.T) {
	s := newStore(t)
	newKeyring(t, s, newRootKey(t, "r1"))
	_, err := New(context.Background(), s, []KEK{newRootKey(t, "r2")}, discard, nil)
	if !errors.Is(err, ErrUnknownKey) {
		t.Errorf("New(without the primary) error = %v, want ErrUnknownKey", err)
	}
}

func TestNewRetiredKeyConfigured(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	r1, r2 := newRootKey(t, "r1"), newRootKey(t, "r2")
	k := newKeyring(t, s, r1, r2)
	if err := k.Retire(ctx, "r2", lister()); err != nil {
		t.Fatalf("Retire(r2) = %v, want nil", err)
	}
	if _, err := New(ctx, s, []KEK{r1, r2}, discard, nil); err == nil {
		t.Error("New(with a retired key) = nil, want error")
	}
	if got := states(t, newKeyring(t, s, r1)); got["r2"] != StateRetired {
		t.Errorf("state of r2 = %q, want %q", got["r2"], StateRetired)
	}
}

func TestNewRejects(t *testing.T) {
	s := newStore(t)
	r1 := newRootKey(t, "r1")
	tests := []struct {
		name  string
		roots []KEK
	}{
		{"no root key", nil},
		{"duplicate id", []KEK{r1, newRootKey(t, "r1")}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := New(context.Background(), s, tc.roots, discard, nil); err == nil {
				t.Errorf("New(%s) = nil, want error", tc.name)
			}
		})
	}
	t.Run("bad root keys", func(t *testing.T) {
		if _, err := NewRootKey("", randomKey(t)); err == nil {
			t.Error(`NewRootKey("") = nil, want error`)
		}
		if _, err := NewRootKey("r", make([]byte, 16)); err == nil {
			t.Error("NewRootKey(16 bytes) = nil, want error")
		}
		if _, err := NewKMSKey("", nil); err == nil {
			t.Error(`NewKMSKey("") = nil, want error`)
		}
	})
}

func TestSealOpen(t *testing.T) {
	for _, kind := range kekKinds {
		t.Run(kind.name, func(t *testing.T) {
			s := newStore(t)
			root := kind.new(t, "r1")
			k := newKeyring(t, s, root)
			places := []struct {
				name  string
				p     barrier.Place
				keyID string
			}{
				{"tenant scope", userPlace("t1", "u1"), "tenant"},
				{"session scope", sessionPlace("t1", "s1"), "session:s1"},
			}
			for _, tc := range places {
				t.Run(tc.name, func(t *testing.T) {
					sealed := mustSeal(t, k, tc.p, "PERSONAL-MARKER")
					if v, _, ok := barrier.Header(sealed); v != barrier.VersionData || !ok {
						t.Errorf("Header() = %#x, %v, want %#x, true", v, ok, barrier.VersionData)
					}
					if kr := keyRecordOf(t, s, tc.p.Tenant, tc.keyID); kr.Root != root.ID() {
						t.Errorf("key record %s wrapped by %q, want %q", tc.keyID, kr.Root, root.ID())
					}
					mustOpen(t, k, tc.p, sealed, "PERSONAL-MARKER")
					mustOpen(t, newKeyring(t, s, root), tc.p, sealed, "PERSONAL-MARKER")
				})
			}
		})
	}
}

func TestOpenRejects(t *testing.T) {
	s := newStore(t)
	k := newKeyring(t, s, newRootKey(t, "r1"))
	tenantValue := mustSeal(t, k, userPlace("A", "u1"), "tenant value")
	sessionValue := mustSeal(t, k, sessionPlace("A", "s1"), "session value")
	mustSeal(t, k, userPlace("B", "u1"), "makes B's tenant key")
	mustSeal(t, k, sessionPlace("B", "s1"), "makes B's s1 key")
	mustSeal(t, k, sessionPlace("A", "s2"), "makes A's s2 key")
	rootSealed, err := barrier.NewAESGCM(randomKey(t))
	if err != nil {
		t.Fatal(err)
	}
	rootValue, err := rootSealed.Seal(context.Background(), userPlace("A", "u1"), []byte("v"))
	if err != nil {
		t.Fatal(err)
	}
	flipped := bytes.Clone(tenantValue)
	flipped[len(flipped)-1] ^= 1
	tests := []struct {
		name   string
		p      barrier.Place
		sealed []byte
	}{
		{"tenant A's value as tenant B's", userPlace("B", "u1"), tenantValue},
		{"tenant A's value in a tenant without keys", userPlace("C", "u1"), tenantValue},
		{"tenant value as another record", userPlace("A", "u2"), tenantValue},
		{"tenant value under a session scope", barrier.Place{Tenant: "A", Collection: "users", ID: "u1", Field: store.BodyField, Scope: "s1"}, tenantValue},
		{"session A/s1 as session B/s1", sessionPlace("B", "s1"), sessionValue},
		{"session s1 as session s2", barrier.Place{Tenant: "A", Collection: "sessions", ID: "s1", Field: store.BodyField, Scope: "s2"}, sessionValue},
		{"session value under the tenant scope", barrier.Place{Tenant: "A", Collection: "sessions", ID: "s1", Field: store.BodyField}, sessionValue},
		{"session value under an unknown scope", barrier.Place{Tenant: "A", Collection: "sessions", ID: "s1", Field: store.BodyField, Scope: "s9"}, sessionValue},
		{"VersionRoot value", userPlace("A", "u1"), rootValue},
		{"flipped tag", userPlace("A", "u1"), flipped},
		{"truncated", userPlace("A", "u1"), tenantValue[:barrier.Overhead-1]},
		{"empty", userPlace("A", "u1"), nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			wantErrOpen(t, k, tc.p, tc.sealed)
		})
	}
	mustOpen(t, k, userPlace("A", "u1"), tenantValue, "tenant value")
	mustOpen(t, k, sessionPlace("A", "s1"), sessionValue, "session value")
}

// TestRawStoreHoldsNoSecrets seals through a store view and scans the raw
// database files for the plaintext and for every data key, raw or in the
// encodings a body might carry it in.
func TestRawStoreHoldsNoSecrets(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	rootRaw := randomKey(t)
	root, err := NewRootKey("r1", rootRaw)
	if err != nil {
		t.Fatal(err)
	}
	k := newKeyring(t, s, root)
	const marker = "PERSONAL-MARKER-7f3a"
	v, err := store.NewView(s, k, "t1")
	if err != nil {
		t.Fatal(err)
	}
	body := map[string]string{"name": marker}
	for _, c := range []string{"users", "sessions"} {
		if _, err := v.Put(ctx, c, "r1", map[string]string{"status": "open"}, body); err != nil {
			t.Fatalf("Put(%s) = %v, want nil", c, err)
		}
	}
	if _, err := k.Blinder(ctx, "t1"); err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{"users", "sessions"} {
		var got map[string]string
		if _, err := v.Get(ctx, c, "r1", &got); err != nil || got["name"] != marker {
			t.Fatalf("Get(%s) = %v, %v, want %q", c, got, err, marker)
		}
	}
	secrets := map[string][]byte{"plaintext": []byte(marker), "root key": rootRaw}
	k.mu.Lock()
	for ck, c := range k.cache {
		secrets["data key "+ck.id] = bytes.Clone(c.raw)
	}
	k.mu.Unlock()
	if len(secrets) != 5 {
		t.Fatalf("found %d secrets, want the plaintext, the root key and 3 data keys", len(secrets))
	}
	files, err := filepath.Glob(s.path + "*")
	if err != nil {
		t.Fatal(err)
	}
	var raw []byte
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		raw = append(raw, b...)
	}
	for name, secret := range secrets {
		for _, enc := range [][]byte{secret, []byte(base64.StdEncoding.EncodeToString(secret)), []byte(hex.EncodeToString(secret))} {
			if bytes.Contains(raw, enc) {
				t.Errorf("database files %v contain the %s", files, name)
			}
		}
	}
}

// moveRecord copies the stored key record from (tenant, id) to (toTenant,
// toID), as someone who can write the database could.
func moveRecord(tb testing.TB, s store.Backend, tenant, id, toTenant, toID string) {
	tb.Helper()
	ctx := context.Background()
	rec, err := s.Get(ctx, Collection, tenant, id)
	if err != nil {
		tb.Fatal(err)
	}
	rec.Tenant, rec.ID = toTenant, toID
	if _, err := s.Put(ctx, rec); err != nil {
		tb.Fatalf("Put(moved key record) = %v, want nil", err)
	}
}

func TestMovedKeyRecordFails(t *testing.T) {
	for _, kind := range kekKinds {
		t.Run(kind.name, func(t *testing.T) {
			ctx := context.Background()
			s := newStore(t)
			root := kind.new(t, "r1")
			k := newKeyring(t, s, root)
			tenantValue := mustSeal(t, k, userPlace("A", "u1"), "tenant value")
			sessionValue := mustSeal(t, k, sessionPlace("A", "s1"), "session value")
			tests := []struct {
				name         string
				fromID       string
				toTenant     string
				toID         string
				value        []byte
				to           barrier.Place
				wantSealFail bool
			}{
				{"session key to another tenant", "session:s1", "B", "session:s1", sessionValue, sessionPlace("B", "s1"), true},
				{"session key to another session", "session:s1", "A", "session:s2", sessionValue, sessionPlace("A", "s2"), true},
				{"tenant key to another tenant", "tenant", "C", "tenant", tenantValue, userPlace("C", "u1"), true},
				{"session key as a tenant key", "session:s1", "D", "tenant", sessionValue, userPlace("D", "u1"), true},
				{"tenant key as the blind-index key", "tenant", "A", blindID, nil, barrier.Place{}, false},
			}
			for _, tc := range tests {
				t.Run(tc.name, func(t *testing.T) {
					moveRecord(t, s, "A", tc.fromID, tc.toTenant, tc.toID)
					fresh := newKeyring(t, s, root)
					if _, err := fresh.dataKey(ctx, tc.toTenant, tc.toID, false); !errors.Is(err, barrier.ErrOpen) {
						t.Errorf("dataKey(%s/%s) error = %v, want barrier.ErrOpen", tc.toTenant, tc.toID, err)
					}
					if tc.value != nil {
						wantErrOpen(t, fresh, tc.to, tc.value)
					}
					if tc.wantSealFail {
						if _, err := fresh.Seal(ctx, tc.to, []byte("x")); err == nil {
							t.Errorf("Seal(%v) under a moved key record = nil, want error", tc.to)
						}
					}
					if tc.toID == blindID {
						if _, err := fresh.Blinder(ctx, tc.toTenant); err == nil {
							t.Error("Blinder() over a moved key record = nil, want error")
						}
					}
				})
			}
			fresh := newKeyring(t, s, root)
			mustOpen(t, fresh, userPlace("A", "u1"), tenantValue, "tenant value")
			mustOpen(t, fresh, sessionPlace("A", "s1"), sessionValue, "session value")
		})
	}
}

func TestTamperedKeyRecordFails(t *testing.T) {
	for _, kind := range kekKinds {
		t.Run(kind.name, func(t *testing.T) {
			ctx := context.Background()
			s := newStore(t)
			root := kind.new(t, "r1")
			c := testclock.New(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
			k := newKeyringAt(t, s, c.Now, root)
			sealed := mustSeal(t, k, userPlace("A", "u1"), "v")
			rec, err := s.Get(ctx, Collection, "A", "tenant")
			if err != nil {
				t.Fatal(err)
			}
			var kr keyRecord
			if err := json.Unmarshal(rec.Body, &kr); err != nil {
				t.Fatal(err)
			}
			for i := range kr.Wrapped {
				tampered := kr
				tampered.Wrapped = bytes.Clone(kr.Wrapped)
				tampered.Wrapped[i] ^= 0x80
				if rec.Body, err = json.Marshal(tampered); err != nil {
					t.Fatal(err)
				}
				if rec, err = s.Update(ctx, rec); err != nil {
					t.Fatal(err)
				}
				c.Advance(CacheTTL)
				if got, err := k.Open(ctx, userPlace("A", "u1"), sealed); err == nil {
					t.Fatalf("Open() with wrapped byte %d flipped = %q, nil, want error", i, got)
				}
			}
		})
	}
}

func TestShred(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	root := newRootKey(t, "r1")
	k := newKeyring(t, s, root)
	s1 := mustSeal(t, k, sessionPlace("t1", "s1"), "session one")
	s2 := mustSeal(t, k, sessionPlace("t1", "s2"), "session two")
	other := mustSeal(t, k, sessionPlace("t2", "s1"), "other tenant's s1")
	tv := mustSeal(t, k, userPlace("t1", "u1"), "tenant value")
	mustOpen(t, k, sessionPlace("t1", "s1"), s1, "session one")

	if err := k.Shred(ctx, "t1", "s1"); err != nil {
		t.Fatalf("Shred(t1, s1) = %v, want nil", err)
	}
	if _, err := s.Get(ctx, Collection, "t1", "session:s1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get(shredded key record) error = %v, want store.ErrNotFound", err)
	}
	for name, kr := range map[string]*Keyring{"same keyring (cached key)": k, "new keyring": newKeyring(t, s, root)} {
		t.Run(name, func(t *testing.T) {
			wantErrOpen(t, kr, sessionPlace("t1", "s1"), s1)
			mustOpen(t, kr, sessionPlace("t1", "s2"), s2, "session two")
			mustOpen(t, kr, sessionPlace("t2", "s1"), other, "other tenant's s1")
			mustOpen(t, kr, userPlace("t1", "u1"), tv, "tenant value")
		})
	}
	t.Run("shredded again", func(t *testing.T) {
		if err := k.Shred(ctx, "t1", "s1"); err != nil {
			t.Errorf("Shred(absent key) = %v, want nil", err)
		}
	})
	t.Run("tenant scope", func(t *testing.T) {
		if err := k.Shred(ctx, "t1", ""); !errors.Is(err, store.ErrInvalid) {
			t.Errorf(`Shred(t1, "") error = %v, want store.ErrInvalid`, err)
		}
		mustOpen(t, k, userPlace("t1", "u1"), tv, "tenant value")
	})
	t.Run("new key after shred", func(t *testing.T) {
		fresh := mustSeal(t, k, sessionPlace("t1", "s1"), "new life")
		mustOpen(t, k, sessionPlace("t1", "s1"), fresh, "new life")
		wantErrOpen(t, k, sessionPlace("t1", "s1"), s1)
	})
}

func copyFile(tb testing.TB, from, to string) {
	tb.Helper()
	in, err := os.Open(from)
	if err != nil {
		tb.Fatal(err)
	}
	defer func() { _ = in.Close() }()
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		tb.Fatal(err)
	}
	if err := out.Close(); err != nil {
		tb.Fatal(err)
	}
}

// TestShredSurvivesRestoredRecord takes a file backup of the database,
// shreds and deletes a session, then restores the session's record (its
// sealed body) from the backup into the live store: it stays unreadable,
// since the backup of the record does not bring back the data key.
func TestShredSurvivesRestoredRecord(t *testing.T) {
	ctx := context.Background()
	live := newStore(t)
	root := newRootKey(t, "r1")
	k := newKeyring(t, live, root)
	v, err := store.NewView(live, k, "t1")
	if err != nil {
		t.Fatal(err)
	}
	const marker = "PERSONAL-MARKER"
	type body struct{ Name string }
	if _, err := v.Put(ctx, "sessions", "s1", map[string]string{"status": "done"}, body{marker}); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Put(ctx, "users", "u1", nil, body{"user"}); err != nil {
		t.Fatal(err)
	}
	if _, err := live.db.ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		t.Fatalf("wal_checkpoint = %v", err)
	}
	backupPath := filepath.Join(t.TempDir(), "backup.db")
	copyFile(t, live.path, backupPath)

	if err := k.Shred(ctx, "t1", "s1"); err != nil {
		t.Fatal(err)
	}
	if err := v.Delete(ctx, "sessions", "s1", 0); err != nil {
		t.Fatal(err)
	}

	backup := openStore(t, backupPath)
	old, err := backup.Get(ctx, "sessions", "t1", "s1")
	if err != nil {
		t.Fatalf("backup: Get(sessions/s1) = %v, want nil", err)
	}
	// The backup is whole: with its own copy of the key record it opens,
	// so the failure below comes from the shred and not from the copy.
	var got body
	bv, err := store.NewView(backup, newKeyring(t, backup, root), "t1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bv.Get(ctx, "sessions", "s1", &got); err != nil || got.Name != marker {
		t.Fatalf("backup: Get(sessions/s1) = %v, %v, want %q", got, err, marker)
	}

	if _, err := live.Put(ctx, store.Record{Collection: "sessions", Tenant: "t1", ID: "s1", Index: old.Index, Body: old.Body}); err != nil {
		t.Fatalf("restore record: Put() = %v, want nil", err)
	}
	freshView, err := store.NewView(live, newKeyring(t, live, root), "t1")
	if err != nil {
		t.Fatal(err)
	}
	for name, view := range map[string]*store.View{"same keyring": v, "new keyring": freshView} {
		t.Run(name, func(t *testing.T) {
			var got body
			if _, err := view.Get(ctx, "sessions", "s1", &got); !errors.Is(err, barrier.ErrOpen) {
				t.Errorf("Get(restored sessions/s1) = %v, %v, want barrier.ErrOpen", got, err)
			}
			if _, err := view.Get(ctx, "users", "u1", &got); err != nil {
				t.Errorf("Get(users/u1) = %v, want nil", err)
			}
		})
	}
}

// TestConcurrentFirstSeal has 8 goroutines seal the first values of one new
// session at once: exactly one data key is stored, and every value opens.
func TestConcurrentFirstSeal(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	root := newRootKey(t, "r1")
	k := newKeyring(t, s, root)
	const n = 8
	place := func(i int) barrier.Place {
		return barrier.Place{Tenant: "t1", Collection: "files", ID: fmt.Sprint(i), Field: "key", Scope: "s1"}
	}
	sealed := make([][]byte, n)
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			sealed[i], errs[i] = k.Seal(ctx, place(i), []byte(fmt.Sprint("value ", i)))
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("Seal(%d) = %v, want nil", i, err)
		}
	}
	page, err := s.Query(ctx, store.Query{Collection: Collection, Tenant: "t1"})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Records) != 1 || page.Records[0].ID != "session:s1" {
		ids := []string{}
		for _, r := range page.Records {
			ids = append(ids, r.ID)
		}
		t.Fatalf("key records of t1 = %v, want [session:s1]", ids)
	}
	fresh := newKeyring(t, s, root)
	for i := range n {
		mustOpen(t, fresh, place(i), sealed[i], fmt.Sprint("value ", i))
	}
}

// TestCacheTTL checks the documented cache bound: a data key shredded by
// another keyring stays usable here until CacheTTL has passed, not longer.
func TestCacheTTL(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	root := newRootKey(t, "r1")
	c := testclock.New(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	k := newKeyringAt(t, s, c.Now, root)
	sealed := mustSeal(t, k, sessionPlace("t1", "s1"), "v")
	if err := newKeyring(t, s, root).Shred(ctx, "t1", "s1"); err != nil {
		t.Fatal(err)
	}
	c.Advance(CacheTTL - time.Nanosecond)
	mustOpen(t, k, sessionPlace("t1", "s1"), sealed, "v")
	c.Advance(time.Nanosecond)
	wantErrOpen(t, k, sessionPlace("t1", "s1"), sealed)
}

func TestBlinder(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	r1, r2 := newRootKey(t, "r1"), newKMSKey(t, "r2")
	index := func(k *Keyring, tenant string) string {
		t.Helper()
		b, err := k.Blinder(ctx, tenant)
		if err != nil {
			t.Fatalf("Blinder(%s) = %v, want nil", tenant, err)
		}
		return b.Index("A", "username", "alice")
	}
	k := newKeyring(t, s, r1, r2)
	want := index(k, "A")
	if got := index(k, "A"); got != want {
		t.Errorf("Index() twice = %s, %s, want equal", got, want)
	}
	if got := index(newKeyring(t, s, r1, r2), "A"); got != want {
		t.Errorf("Index() after restart = %s, want %s", got, want)
	}
	if got := index(k, "B"); got == want {
		t.Errorf("Index() under tenant B's key = %s, want it to differ from tenant A's", got)
	}
	if err := k.Rotate(ctx, "r2"); err != nil {
		t.Fatal(err)
	}
	if n, err := k.Rewrap(ctx, lister("A", "B"), nil); err != nil || n != 2 {
		t.Fatalf("Rewrap() = %d, %v, want 2, nil", n, err)
	}
	if got := index(newKeyring(t, s, r2), "A"); got != want {
		t.Errorf("Index() after rotation and rewrap = %s, want %s", got, want)
	}
}

// hookedStore is the real store with a hook run after each Get, to place a
// concurrent call at an exact point of another without sleeps.
type hookedStore struct {
	store.Backend
	afterGet func(collection, tenant, id string)
}

func (h *hookedStore) Get(ctx context.Context, collection, tenant, id string) (store.Record, error) {
	rec, err := h.Backend.Get(ctx, collection, tenant, id)
	if h.afterGet != nil {
		h.afterGet(collection, tenant, id)
	}
	return rec, err
}

// TestShredDuringKeyLookup shreds a session while an Open of it has read
// the key record but not yet cached the key. That Open may still succeed
// (it began before the shred), but no later Open in this process may.
func TestShredDuringKeyLookup(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	root := newRootKey(t, "r1")
	sealed := mustSeal(t, newKeyring(t, s, root), sessionPlace("t1", "s1"), "v")
	hs := &hookedStore{Backend: s}
	k := newKeyring(t, hs, root)
	shredded := false
	hs.afterGet = func(collection, tenant, id string) {
		if collection == Collection && id == "session:s1" && !shredded {
			shredded = true
			if err := k.Shred(ctx, tenant, "s1"); err != nil {
				t.Errorf("Shred() = %v, want nil", err)
			}
		}
	}
	if _, err := k.Open(ctx, sessionPlace("t1", "s1"), sealed); err != nil && !errors.Is(err, barrier.ErrOpen) {
		t.Fatalf("Open() during Shred error = %v, want nil or barrier.ErrOpen", err)
	}
	if !shredded {
		t.Fatal("the hook did not run")
	}
	wantErrOpen(t, k, sessionPlace("t1", "s1"), sealed)
}

// TestNewScope: a key made by NewScope seals and opens only through its
// context until its record commits; committed, it opens everywhere (this
// keyring's cache, another keyring reading the record). Not committed, the
// scope has no key: what was sealed under it stays unreadable, and the next
// Seal makes another key. A scope that has a key already makes the write
// fail.
func TestNewScope(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	root := newRootKey(t, "r1")
	k := newKeyring(t, s, root)
	p := sessionPlace("t1", "s1")

	sctx, writes, committed, err := k.NewScope(ctx, "t1", "s1")
	if err != nil || len(writes) != 1 {
		t.Fatalf("NewScope() = %d writes, %v; want one", len(writes), err)
	}
	sealed, err := k.Seal(sctx, p, []byte("session one"))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := k.Open(sctx, p, sealed); err != nil || string(got) != "session one" {
		t.Fatalf("Open(pending key's ctx) = %q, %v", got, err)
	}
	if _, err := s.Get(ctx, Collection, "t1", "session:s1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("key record before the commit: %v, want none stored", err)
	}
	if got, err := k.Open(ctx, p, sealed); err == nil {
		t.Fatalf("Open() without the pending key = %q, want an error", got)
	}
	if _, err := s.Apply(ctx, writes); err != nil {
		t.Fatalf("Apply(key record) = %v", err)
	}
	committed()
	mustOpen(t, k, p, sealed, "session one")
	mustOpen(t, newKeyring(t, s, root), p, sealed, "session one")
	if kr := keyRecordOf(t, s, "t1", "session:s1"); kr.Root != "r1" {
		t.Errorf("key record wrapped by %q, want r1", kr.Root)
	}

	// Never committed: the scope has no key, and its value never opens.
	lctx, _, _, err := k.NewScope(ctx, "t1", "lost")
	if err != nil {
		t.Fatal(err)
	}
	lost, err := k.Seal(lctx, sessionPlace("t1", "lost"), []byte("lost"))
	if err != nil {
		t.Fatal(err)
	}
	fresh := mustSeal(t, k, sessionPlace("t1", "lost"), "second key")
	mustOpen(t, k, sessionPlace("t1", "lost"), fresh, "second key")
	wantErrOpen(t, k, sessionPlace("t1", "lost"), lost)
	wantErrOpen(t, newKeyring(t, s, root), sessionPlace("t1", "lost"), lost)

	// A scope with a key: the new record conflicts.
	_, again, _, err := k.NewScope(ctx, "t1", "s1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Apply(ctx, again); !errors.Is(err, store.ErrConflict) {
		t.Errorf("Apply(second key record of s1) = %v, want store.ErrConflict", err)
	}
	mustOpen(t, newKeyring(t, s, root), p, sealed, "session one")

	if _, _, _, err := k.NewScope(ctx, "t1", ""); !errors.Is(err, store.ErrInvalid) {
		t.Errorf(`NewScope(t1, "") = %v, want store.ErrInvalid`, err)
	}
}
