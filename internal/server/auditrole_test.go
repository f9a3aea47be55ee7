package server

import (
	"bufio"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/idvault/idvault/internal/audit"
	"github.com/idvault/idvault/internal/auditlog"
	"github.com/idvault/idvault/internal/config"
)

// TestAuditRole runs the audit role on a dev data directory with a file
// sink: an emitted event reaches the signed log and the sink, and the
// generated signing key is private and verifies the log.
func TestAuditRole(t *testing.T) {
	sinkPath := filepath.Join(t.TempDir(), "audit.ndjson")
	cfg := testConfig(t, "IDVAULT_AUDIT__SINKS__FILE__PATH="+sinkPath, "IDVAULT_AUDIT__CHECKPOINTINTERVAL=100ms")
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	srv, err := Open(ctx, cfg, slog.New(slog.DiscardHandler), true)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if srv.AuditKeyCreated != DevAuditKeyPath(cfg) {
		t.Fatalf("AuditKeyCreated = %q, want %q", srv.AuditKeyCreated, DevAuditKeyPath(cfg))
	}
	if fi, err := os.Stat(srv.AuditKeyCreated); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("signing key file: %v, mode %v; want 0600", err, fi.Mode().Perm())
	}
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx, []config.Role{config.RoleAudit}, nil) }()
	if err := srv.Audit.Emit(ctx, audit.Event{Tenant: "tenant-a", Actor: audit.Actor{Type: "system", ID: "test"},
		Action: "test.event", Outcome: audit.Success}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		lines := fileLines(t, sinkPath)
		rep, err := srv.AuditLog.Verify(ctx, "tenant-a", auditlog.VerifyOptions{})
		if len(lines) == 1 && err == nil && rep.Verified() && rep.Events == 1 && rep.Checkpoint != nil && rep.Checkpoint.Size == 1 {
			var l struct {
				Tenant string          `json:"tenant"`
				Event  json.RawMessage `json:"event"`
			}
			if err := json.Unmarshal([]byte(lines[0]), &l); err != nil || l.Tenant != "tenant-a" {
				t.Errorf("sink line %q: %v", lines[0], err)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 20s: sink has %d lines, log verify %+v, %v; want the event in both and a checkpoint", len(lines), rep, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run after cancel = %v, want nil", err)
	}

	// A second open reads the generated key instead of making another.
	again, err := Open(t.Context(), cfg, slog.New(slog.DiscardHandler), true)
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	if again.AuditKeyCreated != "" || again.AuditVerifierKey != srv.AuditVerifierKey {
		t.Errorf("second Open: created %q, verifier changed %v; want the same key reused", again.AuditKeyCreated, again.AuditVerifierKey != srv.AuditVerifierKey)
	}
}

func fileLines(t *testing.T, path string) []string {
	t.Helper()
	fh, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	var out []string
	sc := bufio.NewScanner(fh)
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	return out
}
