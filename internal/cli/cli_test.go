package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/idvault/idvault/internal/auditlog"
	"github.com/idvault/idvault/internal/config"
	"github.com/idvault/idvault/internal/identity"
	"github.com/idvault/idvault/internal/server"
)

func run(t *testing.T, env []string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = Run(context.Background(), args, &out, &errb, env)
	return code, out.String(), errb.String()
}

func TestHelp(t *testing.T) {
	for _, args := range [][]string{
		{"--help"}, {"serve", "--help"}, {"init", "--help"}, {"config", "check", "--help"}, {"config", "--help"}, {"version", "--help"},
		{"keys", "--help"}, {"tenant", "--help"}, {"user", "--help"}, {"keys", "status", "--help"}, {"tenant", "create", "--help"}, {"user", "list", "--help"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			code, out, _ := run(t, nil, args...)
			if code != 0 || !strings.Contains(out, "Usage") {
				t.Errorf("Run(%q) = %d, %q; want 0 and a usage text", args, code, out)
			}
		})
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{{}, {"frobnicate"}, {"serve", "--no-such-flag"}, {"serve", "extra"}, {"config"}, {"version", "x"}} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			if code, _, _ := run(t, nil, args...); code != 2 {
				t.Errorf("Run(%q) = %d, want 2", args, code)
			}
		})
	}
}

func TestVersion(t *testing.T) {
	code, out, _ := run(t, nil, "version")
	if code != 0 || !strings.HasPrefix(out, "idvault ") {
		t.Errorf("version = %d, %q", code, out)
	}
}

func TestInitJSON(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	code, out, errOut := run(t, nil, "init", "--json", "--data-dir", dir, "--listen", "127.0.0.1:9443")
	if code != 0 {
		t.Fatalf("init = %d, stderr %s", code, errOut)
	}
	dec := json.NewDecoder(strings.NewReader(out))
	dec.DisallowUnknownFields()
	var res struct{ TenantID, AdminUser, AdminPassword, APIKey, URL string }
	if err := dec.Decode(&res); err != nil {
		t.Fatalf("init --json printed %q: %v", out, err)
	}
	if dec.More() {
		t.Errorf("init --json printed more than one JSON value: %q", out)
	}
	if res.TenantID == "" || res.AdminUser != "admin" || len(res.AdminPassword) < 20 || !strings.HasPrefix(res.APIKey, "idvk."+res.TenantID+".") || res.URL != "https://127.0.0.1:9443" {
		t.Errorf("init --json = %+v", res)
	}
	if !strings.Contains(errOut, "LOSING THIS KEY LOSES ALL DATA") {
		t.Errorf("init did not warn about the root key on stderr: %q", errOut)
	}
	fi, err := os.Stat(filepath.Join(dir, "keys", "root.key"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("root key file: %v, mode %v; want 0600", err, fi.Mode().Perm())
	}
	if code, _, errOut := run(t, nil, "init", "--data-dir", dir); code == 0 || !strings.Contains(errOut, "already initialised") {
		t.Errorf("second init = %d, %q; want failure saying already initialised", code, errOut)
	}
}

func TestConfigCheck(t *testing.T) {
	dir := t.TempDir()
	t.Run("valid", func(t *testing.T) {
		code, out, errOut := run(t, []string{"IDVAULT_QUEUE__MAXATTEMPTS=7"}, "config", "check", "--data-dir", dir)
		if code != 0 || !strings.Contains(out, "maxAttempts: 7") {
			t.Errorf("config check = %d, %q, %q", code, out, errOut)
		}
	})
	t.Run("flag beats environment", func(t *testing.T) {
		code, out, _ := run(t, []string{"IDVAULT_API__LISTEN=127.0.0.1:1"}, "config", "check", "--listen", "127.0.0.1:2")
		if code != 0 || !strings.Contains(out, "127.0.0.1:2") || strings.Contains(out, "127.0.0.1:1\n") {
			t.Errorf("config check = %d, %q", code, out)
		}
	})
	t.Run("production problems all at once", func(t *testing.T) {
		env := []string{"IDVAULT_MODE=production", "IDVAULT_CRYPTO__ROOTKEY=literal-root-key-material"}
		code, out, errOut := run(t, env, "config", "check")
		if code != 1 {
			t.Fatalf("config check = %d, want 1", code)
		}
		for _, want := range []string{"api.tls.certFile", "crypto.rootKey"} {
			if !strings.Contains(errOut, want) {
				t.Errorf("config check error %q does not name %s", errOut, want)
			}
		}
		if strings.Contains(out+errOut, "literal-root-key-material") {
			t.Error("config check printed the literal secret")
		}
	})
	t.Run("unknown key", func(t *testing.T) {
		file := filepath.Join(dir, "c.yaml")
		if err := os.WriteFile(file, []byte("api:\n  listne: 1.2.3.4:5\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		code, _, errOut := run(t, nil, "config", "check", "--config", file)
		if code != 1 || !strings.Contains(errOut, "listne") {
			t.Errorf("config check = %d, %q; want failure naming listne", code, errOut)
		}
	})
}

func TestServeRefusesUnknownRole(t *testing.T) {
	code, _, errOut := run(t, nil, "serve", "--data-dir", t.TempDir(), "--roles", "api,bogus")
	if code != 1 || !strings.Contains(errOut, "bogus") {
		t.Errorf("serve --roles api,bogus = %d, %q", code, errOut)
	}
}

func TestServeProductionNeedsInit(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "root.key")
	if err := os.WriteFile(key, []byte(strings.Repeat("ab", 32)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	signing := filepath.Join(dir, "audit-signing.key")
	skey, _, err := auditlog.GenerateKey("test/audit")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(signing, []byte(skey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := []string{"IDVAULT_MODE=production", "IDVAULT_CRYPTO__ROOTKEY=file:" + key, "IDVAULT_AUDIT__SIGNINGKEY=file:" + signing,
		"IDVAULT_API__TLS__CERTFILE=" + filepath.Join(dir, "none.pem"), "IDVAULT_API__TLS__KEYFILE=" + filepath.Join(dir, "none.key")}
	code, _, errOut := run(t, env, "serve", "--data-dir", filepath.Join(dir, "data"))
	if code != 1 || !strings.Contains(errOut, "idvault init") {
		t.Errorf("serve in production on an empty data dir = %d, %q; want a refusal asking for init", code, errOut)
	}
}

// TestKeysLifecycle runs the dev-mode rotation of the README: status,
// rotate (a new root key file), rewrap, retire, and the data still opens
// with only the new key.
func TestKeysLifecycle(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	if code, _, errOut := run(t, nil, "init", "--json", "--data-dir", dir); code != 0 {
		t.Fatalf("init = %d: %s", code, errOut)
	}
	status := func() []struct {
		ID, State string
		DataKeys  int
	} {
		t.Helper()
		code, out, errOut := run(t, nil, "keys", "status", "--json", "--data-dir", dir)
		if code != 0 {
			t.Fatalf("keys status = %d: %s", code, errOut)
		}
		var st []struct {
			ID, State string
			DataKeys  int
		}
		if err := json.Unmarshal([]byte(out), &st); err != nil {
			t.Fatalf("keys status --json = %q: %v", out, err)
		}
		return st
	}
	st := status()
	if len(st) != 1 || st[0].ID != "root" || st[0].State != "primary" || st[0].DataKeys == 0 {
		t.Fatalf("status after init = %+v", st)
	}
	code, out, errOut := run(t, nil, "keys", "rotate", "--data-dir", dir)
	if code != 0 || !strings.Contains(out, "LOSING THIS KEY") {
		t.Fatalf("keys rotate = %d, %q, %q", code, out, errOut)
	}
	if code, _, errOut := run(t, nil, "keys", "retire", "--id", "root", "--data-dir", dir); code == 0 || !strings.Contains(errOut, "still in use") {
		t.Errorf("retire before rewrap = %d, %q; want a refusal", code, errOut)
	}
	if code, out, _ := run(t, nil, "keys", "rewrap", "--data-dir", dir); code != 0 || !strings.Contains(out, "re-wrapped") {
		t.Fatalf("keys rewrap = %d, %q", code, out)
	}
	if code, _, errOut := run(t, nil, "keys", "retire", "--id", "root", "--data-dir", dir); code != 0 {
		t.Fatalf("keys retire = %d: %s", code, errOut)
	}
	if code, _, errOut := run(t, nil, "keys", "status", "--data-dir", dir); code == 0 || !strings.Contains(errOut, "retired") {
		t.Errorf("status with the retired key file still present = %d, %q; want a refusal naming it", code, errOut)
	}
	if err := os.Remove(filepath.Join(dir, "keys", "root.key")); err != nil {
		t.Fatal(err)
	}
	for _, r := range status() {
		if r.ID == "root" && (r.State != "retired" || r.DataKeys != 0) {
			t.Errorf("root after retire = %+v", r)
		}
	}
	for _, args := range [][]string{{"keys"}, {"keys", "bogus"}, {"keys", "migrate", "--to", "fernet"}} {
		if code, _, _ := run(t, nil, append(args, "--data-dir", dir)...); code == 0 {
			t.Errorf("Run(%q) = 0, want failure", args)
		}
	}
}

// TestTenantAndUserAdmin runs the operator commands: a second tenant with
// its own admin, listing, suspending (its key stops working), users created,
// listed and disabled (sign-in refused).
func TestTenantAndUserAdmin(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "data")
	if code, _, errOut := run(t, nil, "init", "--json", "--data-dir", dir); code != 0 {
		t.Fatalf("init = %d: %s", code, errOut)
	}
	code, out, errOut := run(t, nil, "tenant", "create", "--name", "Bolt Bank", "--json", "--data-dir", dir)
	if code != 0 {
		t.Fatalf("tenant create = %d: %s", code, errOut)
	}
	var created struct{ TenantID, AdminPassword, APIKey string }
	if err := json.Unmarshal([]byte(out), &created); err != nil || created.TenantID == "" || created.APIKey == "" {
		t.Fatalf("tenant create --json = %q: %v", out, err)
	}
	code, out, _ = run(t, nil, "tenant", "list", "--data-dir", dir)
	if code != 0 || !strings.Contains(out, "Bolt Bank") || !strings.Contains(out, created.TenantID) {
		t.Errorf("tenant list = %d, %q", code, out)
	}
	code, out, errOut = run(t, nil, "user", "create", "--tenant", created.TenantID, "--username", "Alice@Bolt.example", "--role", "integration", "--json", "--data-dir", dir)
	if code != 0 {
		t.Fatalf("user create = %d: %s", code, errOut)
	}
	var user struct{ Password string }
	if err := json.Unmarshal([]byte(out), &user); err != nil || len(user.Password) < 20 {
		t.Fatalf("user create --json = %q", out)
	}
	if code, _, errOut := run(t, nil, "user", "create", "--tenant", created.TenantID, "--username", "alice@bolt.example", "--role", "integration", "--data-dir", dir); code == 0 || !strings.Contains(errOut, "exists") {
		t.Errorf("duplicate user create = %d, %q", code, errOut)
	}
	if code, _, _ := run(t, nil, "user", "create", "--tenant", created.TenantID, "--username", "bob", "--role", "superuser", "--data-dir", dir); code == 0 {
		t.Error("user create with an unknown role succeeded")
	}
	code, out, _ = run(t, nil, "user", "list", "--tenant", created.TenantID, "--data-dir", dir)
	if code != 0 || !strings.Contains(out, "alice@bolt.example") || !strings.Contains(out, "admin") {
		t.Errorf("user list = %d, %q", code, out)
	}
	if code, out, errOut := run(t, nil, "user", "reset-mfa", "--tenant", created.TenantID, "--username", "alice@bolt.example", "--data-dir", dir); code != 0 || !strings.Contains(out, "enrol again") {
		t.Errorf("user reset-mfa = %d, %q, %q", code, out, errOut)
	}
	if code, _, _ := run(t, nil, "user", "reset-mfa", "--tenant", created.TenantID, "--username", "nobody", "--data-dir", dir); code == 0 {
		t.Error("user reset-mfa of an unknown user succeeded")
	}
	if code, _, errOut := run(t, nil, "user", "disable", "--tenant", created.TenantID, "--username", "alice@bolt.example", "--data-dir", dir); code != 0 {
		t.Fatalf("user disable = %d: %s", code, errOut)
	}
	if code, _, errOut := run(t, nil, "tenant", "suspend", "--id", created.TenantID, "--data-dir", dir); code != 0 {
		t.Fatalf("tenant suspend = %d: %s", code, errOut)
	}
	if code, _, _ := run(t, nil, "tenant", "suspend", "--id", "no-such-tenant", "--data-dir", dir); code == 0 {
		t.Error("suspending an unknown tenant succeeded")
	}

	cfg, err := config.Load("", []string{"IDVAULT_DATADIR=" + dir})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.Open(ctx, cfg, slog.New(slog.DiscardHandler), false)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if _, err := srv.Identity.Authenticate(ctx, "ApiKey "+created.APIKey); !errors.Is(err, identity.ErrTenantSuspended) {
		t.Errorf("Authenticate(key of a suspended tenant) = %v, want ErrTenantSuspended", err)
	}
	if err := srv.Identity.SetTenantStatus(ctx, created.TenantID, identity.TenantActive); err != nil {
		t.Fatal(err)
	}
	if _, _, err := srv.Identity.IssueToken(ctx, created.TenantID, "alice@bolt.example", user.Password, ""); !errors.Is(err, identity.ErrUnauthenticated) {
		t.Errorf("IssueToken(disabled user) = %v, want ErrUnauthenticated", err)
	}
	if _, _, err := srv.Identity.IssueToken(ctx, created.TenantID, "admin", created.AdminPassword, ""); err != nil {
		t.Errorf("IssueToken(the new tenant's admin) = %v", err)
	}
}

// TestTuneGC checks that serve raises the collector's target unless GOGC
// is set, in which case the operator's choice stands.
func TestTuneGC(t *testing.T) {
	prev := debug.SetGCPercent(100)
	defer debug.SetGCPercent(prev)
	tuneGC([]string{"HOME=/root"})
	if got := debug.SetGCPercent(100); got != serveGCPercent {
		t.Errorf("GC percent without GOGC = %d, want %d", got, serveGCPercent)
	}
	tuneGC([]string{"GOGC=50"})
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("GC percent with GOGC set = %d, want it left alone (100)", got)
	}
}
