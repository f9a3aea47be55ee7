package server

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"github.com/idvault/idvault/internal/auditlog"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/idvault/idvault/internal/config"
	"github.com/idvault/idvault/internal/fernet"
	"github.com/idvault/idvault/internal/identity"
	"github.com/idvault/idvault/internal/keyring"
	"github.com/idvault/idvault/internal/secret"
	"github.com/idvault/idvault/internal/session"
	"github.com/idvault/idvault/internal/store"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func testConfig(t testing.TB, env ...string) config.Config {
	t.Helper()
	cfg, err := config.Load("", append([]string{"IDVAULT_DATADIR=" + t.TempDir(), "IDVAULT_API__LISTEN=127.0.0.1:0"}, env...))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestLoadRootKey(t *testing.T) {
	raw := make([]byte, 32)
	for i := range raw {
		raw[i] = byte(i)
	}
	dir := t.TempDir()
	write := func(name, content string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name    string
		ref     secret.Ref
		wantErr bool
	}{
		{"hex file", secret.Ref("file:" + write("hex", hex.EncodeToString(raw)+"\n", 0o600)), false},
		{"base64 file", secret.Ref("file:" + write("b64", base64.StdEncoding.EncodeToString(raw), 0o600)), false},
		{"base64url file", secret.Ref("file:" + write("b64u", base64.RawURLEncoding.EncodeToString(raw), 0o600)), false},
		{"short key", secret.Ref("file:" + write("short", hex.EncodeToString(raw[:16]), 0o600)), true},
		{"not a key", secret.Ref("file:" + write("text", "correct horse battery staple", 0o600)), true},
		{"world-readable file", secret.Ref("file:" + write("open", hex.EncodeToString(raw), 0o644)), true},
		{"missing file", secret.Ref("file:" + filepath.Join(dir, "absent")), true},
		{"unset env", secret.Ref("env:IDVAULT_TEST_NO_SUCH_ROOT_KEY"), true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			key, _, created, err := loadRootKey(tc.ref, filepath.Join(dir, "dev.key"), true)
			if tc.wantErr {
				if err == nil {
					t.Errorf("loadRootKey(%s) = nil error, want one", tc.ref)
				}
				if strings.Contains(errString(err), hex.EncodeToString(raw)) {
					t.Errorf("loadRootKey error %q contains the key", err)
				}
				return
			}
			if err != nil || created || string(key) != string(raw) {
				t.Errorf("loadRootKey(%s) = %x, created %v, %v; want the key", tc.ref, key, created, err)
			}
		})
	}
	t.Run("dev key generated once", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "keys", "root.key")
		if _, _, _, err := loadRootKey("", path, false); !errors.Is(err, ErrNoRootKey) {
			t.Fatalf("loadRootKey without generate = %v, want ErrNoRootKey", err)
		}
		k1, _, created, err := loadRootKey("", path, true)
		if err != nil || !created || len(k1) != 32 {
			t.Fatalf("loadRootKey(generate) = %d bytes, created %v, %v", len(k1), created, err)
		}
		fi, err := os.Stat(path)
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("root key file mode = %v, %v; want 0600", fi.Mode().Perm(), err)
		}
		k2, _, created, err := loadRootKey("", path, true)
		if err != nil || created || string(k1) != string(k2) {
			t.Errorf("second loadRootKey = created %v, %v, same key %v; want the same key, not regenerated", created, err, string(k1) == string(k2))
		}
		entries, _ := os.ReadDir(filepath.Dir(path))
		if len(entries) != 1 {
			t.Errorf("key directory holds %d entries, want only root.key (no temporary files)", len(entries))
		}
	})
	t.Run("empty dev key file is an error, not regenerated", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "root.key")
		if err := os.WriteFile(path, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, _, created, err := loadRootKey("", path, true); err == nil || created {
			t.Errorf("loadRootKey(empty file) = created %v, %v; want an error and no new key", created, err)
		}
	})
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func TestInit(t *testing.T) {
	ctx := t.Context()
	cfg := testConfig(t)
	srv, err := Open(ctx, cfg, slog.New(slog.DiscardHandler), true)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if srv.RootKeyCreated == "" {
		t.Error("Open on an empty data dir did not report a generated root key")
	}

	// An init that died after creating its tenant but before finishing.
	abandoned, err := srv.Identity.CreateTenant(ctx, "default")
	if err != nil {
		t.Fatal(err)
	}
	v, err := srv.initView()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Put(ctx, initCollection, initID, nil, initState{TenantID: abandoned.ID}); err != nil {
		t.Fatal(err)
	}
	if done, err := srv.Initialized(ctx); err != nil || done {
		t.Fatalf("Initialized after an interrupted init = %v, %v; want false", done, err)
	}

	res, err := srv.Init(ctx)
	if err != nil {
		t.Fatalf("Init after an interrupted init = %v", err)
	}
	if res.TenantID == abandoned.ID {
		t.Error("Init reused the tenant of the interrupted init")
	}
	if got, err := srv.Identity.Tenant(ctx, abandoned.ID); err != nil || got.Status != identity.TenantSuspended {
		t.Errorf("abandoned tenant = %+v, %v; want suspended", got, err)
	}
	p, err := srv.Identity.Authenticate(ctx, "ApiKey "+res.APIKey)
	if err != nil || p.Tenant != res.TenantID {
		t.Errorf("Authenticate(init key) = %+v, %v", p, err)
	}
	if _, _, err := srv.Identity.IssueToken(ctx, res.TenantID, res.AdminUser, res.AdminPassword, ""); err != nil {
		t.Errorf("IssueToken(admin) = %v", err)
	}
	if done, err := srv.Initialized(ctx); err != nil || !done {
		t.Errorf("Initialized = %v, %v; want true", done, err)
	}
	if _, err := srv.Init(ctx); !errors.Is(err, ErrInitialized) {
		t.Errorf("second Init = %v, want ErrInitialized", err)
	}
}

func TestRunAndShutdown(t *testing.T) {
	cfg := testConfig(t)
	ctx, cancel := context.WithCancel(t.Context())
	srv, err := Open(ctx, cfg, slog.New(slog.DiscardHandler), true)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	addrs := make(chan net.Addr, 1)
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx, config.AllRoles(), func(a net.Addr, _ string) { addrs <- a }) }()
	select {
	case a := <-addrs:
		conn, err := net.Dial("tcp", a.String())
		if err != nil {
			t.Fatalf("dial API: %v", err)
		}
		conn.Close()
	case err := <-done:
		t.Fatalf("Run = %v before the API was ready", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run after cancel = %v, want nil", err)
	}
}

func TestOpenNeedsKeyInProduction(t *testing.T) {
	cfg := testConfig(t)
	cfg.Mode = config.ModeProduction
	_, err := Open(t.Context(), cfg, slog.New(slog.DiscardHandler), true)
	if !errors.Is(err, ErrNoRootKey) {
		t.Errorf("Open(production, no key) = %v, want ErrNoRootKey", err)
	}
	if _, err := os.Stat(cfg.DevRootKeyPath()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("production Open wrote a key file: %v", err)
	}
}

// TestFernetSchemeAndMigrate runs a deployment on the Fernet scheme, then
// switches it to AES-256-GCM: old bodies stay readable, migrate re-seals
// every body and file key, and afterwards the Fernet key is no longer needed.
func TestFernetSchemeAndMigrate(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	fkey, err := fernet.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	fpath := filepath.Join(dir, "fernet.key")
	if err := os.WriteFile(fpath, []byte(fkey.Encode()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	base := []string{"IDVAULT_DATADIR=" + filepath.Join(dir, "data"), "IDVAULT_API__LISTEN=127.0.0.1:0"}
	open := func(env ...string) *Server {
		t.Helper()
		cfg, err := config.Load("", append(append([]string{}, base...), env...))
		if err != nil {
			t.Fatal(err)
		}
		srv, err := Open(ctx, cfg, slog.New(slog.DiscardHandler), true)
		if err != nil {
			t.Fatal(err)
		}
		return srv
	}
	marker := "fernet-metadata-marker"
	plain := []byte("%PDF-1.7\nfernet file body\n%%EOF\n")

	srv := open("IDVAULT_CRYPTO__SCHEME=fernet", "IDVAULT_CRYPTO__FERNETKEYS=[file:"+fpath+"]")
	res, err := srv.Init(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tenant := res.TenantID
	v, err := store.NewView(srv.Backend, srv.Barrier, tenant)
	if err != nil {
		t.Fatal(err)
	}
	repo := session.NewRepo(v)
	now := time.Now().UTC()
	sess := &session.Session{ID: identity.NewID(), WorkflowID: "document-selfie-review", Status: session.StatusPending,
		Metadata: []byte(`{"m":"` + marker + `"}`), CreatedAt: now, UpdatedAt: now, ExpiresAt: now.Add(time.Hour)}
	if err := repo.Create(ctx, sess); err != nil {
		t.Fatal(err)
	}
	fileID := identity.NewID()
	sealed, err := srv.Files.Put(ctx, sess.FileRef(tenant, fileID), bytes.NewReader(plain), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := repo.Update(ctx, sess.ID, now, func(s *session.Session) error {
		s.Files = append(s.Files, session.File{ID: fileID, Kind: session.KindAttachment, ContentType: "application/pdf", Sealed: sealed})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.AuditLog.Append(ctx, []auditlog.Entry{{Tenant: tenant, ID: "ev-1", Time: now, Data: []byte(`{"action":"session.create"}`)},
		{Tenant: tenant, ID: "ev-2", Time: now, Data: []byte(`{"action":"session.read"}`)}}); err != nil {
		t.Fatal(err)
	}
	raw, err := srv.Backend.Get(ctx, session.Collection, tenant, sess.ID)
	if err != nil || !keyring.IsFernet(raw.Body) || !keyring.IsFernet(sealed.WrappedKey) {
		t.Fatalf("under the fernet scheme the body and file key are not Fernet tokens (%v)", err)
	}
	srv.Close()

	if _, err := config.Load("", append(append([]string{}, base...), "IDVAULT_CRYPTO__SCHEME=fernet")); err == nil {
		t.Error("config with the fernet scheme and no fernetKeys loaded, want an error")
	}

	// Switch to AES-256-GCM, keeping the Fernet key to read old values.
	srv = open("IDVAULT_CRYPTO__FERNETKEYS=[file:" + fpath + "]")
	rep, err := srv.MigrateToAESGCM(ctx, nil)
	if err != nil || rep.Resealed == 0 {
		t.Fatalf("MigrateToAESGCM = %+v, %v; want values re-sealed", rep, err)
	}
	if rep, err := srv.MigrateToAESGCM(ctx, nil); err != nil || rep.Resealed != 0 {
		t.Errorf("second MigrateToAESGCM = %+v, %v; want nothing left", rep, err)
	}
	srv.Close()

	// Without the Fernet key, everything still opens.
	srv = open()
	defer srv.Close()
	v, err = store.NewView(srv.Backend, srv.Barrier, tenant)
	if err != nil {
		t.Fatal(err)
	}
	got, err := session.NewRepo(v).Get(ctx, sess.ID)
	if err != nil || !bytes.Contains(got.Metadata, []byte(marker)) || len(got.Files) != 1 {
		t.Fatalf("Get after migration = %v, %v", got, err)
	}
	if keyring.IsFernet(got.Files[0].Sealed.WrappedKey) {
		t.Error("file key still a Fernet token after migration")
	}
	data, err := srv.Files.ReadAll(ctx, got.FileRef(tenant, fileID), got.Files[0].Sealed)
	if err != nil || !bytes.Equal(data, plain) {
		t.Errorf("ReadAll after migration = %q, %v", data, err)
	}
	if _, err := srv.Identity.Authenticate(ctx, "ApiKey "+res.APIKey); err != nil {
		t.Errorf("the API key made under Fernet does not authenticate after migration: %v", err)
	}
	if rep, err := srv.AuditLog.Verify(ctx, tenant, auditlog.VerifyOptions{}); err != nil || !rep.Verified() || rep.Events != 2 {
		t.Errorf("audit log Verify after migration = %+v, %v; want its 2 events verified", rep, err)
	}
	if evs, _, err := srv.AuditLog.Events(ctx, tenant, auditlog.Filter{}, "", 0); err != nil || len(evs) != 2 {
		t.Errorf("audit log Events after migration = %d, %v; want the 2 events readable", len(evs), err)
	}
}

// TestHangupReloadsRootKeys adds a root key file while the platform runs and
// sends SIGHUP: the new key becomes usable (rotatable) without a restart.
func TestHangupReloadsRootKeys(t *testing.T) {
	cfg := testConfig(t)
	ctx, cancel := context.WithCancel(t.Context())
	srv, err := Open(ctx, cfg, slog.New(slog.DiscardHandler), true)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	addrs := make(chan net.Addr, 1)
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx, []config.Role{config.RoleAPI}, func(a net.Addr, _ string) { addrs <- a }) }()
	<-addrs
	id, err := NewDevRootKey(cfg, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if srv.Keyring.Configured(id) {
		t.Fatal("the new key is configured before SIGHUP")
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for !srv.Keyring.Configured(id) {
		if time.Now().After(deadline) {
			t.Fatal("the new root key was not loaded after SIGHUP")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := srv.Keyring.Rotate(ctx, id); err != nil {
		t.Errorf("Rotate to the reloaded key = %v", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run = %v", err)
	}
}
