package server

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/idvault/idvault/internal/config"
)

// definitionFile is a definition a deployment keeps as a file.
const definitionFile = `id: files-kyc
version: 1
name: KYC from a file
start: document
steps:
  - id: document
    type: document
    pages: [{side: front}]
    next: approved
  - id: approved
    type: decision
    decision: approved
`

// TestSchedulerLoadsDefinitionFiles: with workflows.dir set, the scheduler
// role stores the definitions it finds there for their tenants, as the
// active version.
func TestSchedulerLoadsDefinitionFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "workflows")
	cfg := testConfig(t, "IDVAULT_WORKFLOWS__DIR="+dir, "IDVAULT_WORKFLOWS__RELOADINTERVAL=1h")
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	srv, err := Open(ctx, cfg, slog.New(slog.DiscardHandler), true)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	res, err := srv.Init(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, res.TenantID), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, res.TenantID, "files-kyc.yaml"), []byte(definitionFile), 0o600); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx, []config.Role{config.RoleScheduler}, nil) }()

	parts, err := srv.workflows()
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, err := parts.definitions.Latest(ctx, res.TenantID, "files-kyc")
		if err == nil {
			if st.Definition.Version != 1 || !st.Active {
				t.Errorf("stored definition = version %d active %t, want version 1 active", st.Definition.Version, st.Active)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the definition file was not loaded: Latest() = %v", err)
		}
		select {
		case err := <-done:
			t.Fatalf("Run = %v before the definition was loaded", err)
		case <-time.After(20 * time.Millisecond):
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run after cancel = %v, want nil", err)
	}
}
