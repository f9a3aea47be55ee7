package scheduler_test

import (
	"context"
	"errors"
	"github.com/idvault/idvault/internal/testenv"
	"testing"
	"time"

	"github.com/idvault/idvault/internal/barrier"
	"github.com/idvault/idvault/internal/keyring"
	"github.com/idvault/idvault/internal/scheduler"
	"github.com/idvault/idvault/internal/session"
	"github.com/idvault/idvault/internal/store"
	"github.com/idvault/idvault/internal/workflow"
)

// TestKeyJobs checks the scheduler's key work: it shreds the data key of a
// session whose record is gone (a process died between deleting the record
// and shredding the key), never a young key whose session may be being
// created, and re-wraps data keys after a root-key rotation.
func TestKeyJobs(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	k1, err := keyring.NewRootKey("k1", testenv.RandomKey(t))
	if err != nil {
		t.Fatal(err)
	}
	keyTime := now.Add(-2 * time.Hour)
	kr, err := keyring.New(ctx, f.backend, []keyring.KEK{k1}, f.log, func() time.Time { return keyTime })
	if err != nil {
		t.Fatal(err)
	}
	tenant := f.tenant(t, "Acme")
	v, err := store.NewView(f.backend, kr, tenant)
	if err != nil {
		t.Fatal(err)
	}
	repo := session.NewRepo(v)
	live := &session.Session{ID: "live", WorkflowID: workflow.DefaultID, Status: session.StatusPending,
		CreatedAt: now, UpdatedAt: now, ExpiresAt: now.Add(time.Hour)}
	if err := repo.Create(ctx, live); err != nil {
		t.Fatal(err)
	}
	seal := func(scope string) []byte {
		t.Helper()
		out, err := kr.Seal(ctx, barrier.Place{Tenant: tenant, Collection: "sessions", ID: scope, Field: "body", Scope: scope}, []byte("x"))
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	orphan := seal("deleted")
	keyTime = now // a key made just now: its session may be on its way
	young := seal("young")

	d := f.deps
	d.Barrier, d.Keys, d.Now = kr, kr, func() time.Time { return now }
	sch := scheduler.New(d)
	if _, err := sch.RunOnce(ctx); err != nil {
		t.Fatalf("RunOnce = %v", err)
	}
	open := func(scope string, sealed []byte) error {
		_, err := kr.Open(ctx, barrier.Place{Tenant: tenant, Collection: "sessions", ID: scope, Field: "body", Scope: scope}, sealed)
		return err
	}
	if err := open("deleted", orphan); !errors.Is(err, barrier.ErrOpen) {
		t.Errorf("the orphan session key was not shredded: Open = %v", err)
	}
	if err := open("young", young); err != nil {
		t.Errorf("a young session key was shredded: Open = %v", err)
	}
	if _, err := repo.Get(ctx, "live"); err != nil {
		t.Errorf("the live session no longer opens: %v", err)
	}

	// Rotation: the scheduler re-wraps every data key under the new primary.
	k2, err := keyring.NewRootKey("k2", testenv.RandomKey(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := kr.Reload(ctx, []keyring.KEK{k1, k2}); err != nil {
		t.Fatal(err)
	}
	if err := kr.Rotate(ctx, "k2"); err != nil {
		t.Fatal(err)
	}
	rep, err := sch.RunOnce(ctx)
	if err != nil || rep.Rewrapped == 0 {
		t.Fatalf("RunOnce after rotation = %+v, %v; want data keys re-wrapped", rep, err)
	}
	tenants := func(ctx context.Context, fn func(string) error) error {
		if err := fn(store.PlatformTenant); err != nil {
			return err
		}
		return fn(tenant)
	}
	st, err := kr.Status(ctx, tenants)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range st {
		if r.ID == "k1" && r.DataKeys != 0 {
			t.Errorf("k1 still wraps %d data keys after the scheduler's rewrap", r.DataKeys)
		}
	}
	// A fresh keyring (no cached keys) with k2 alone opens everything.
	kr2, err := keyring.New(ctx, f.backend, []keyring.KEK{k2}, f.log, nil)
	if err != nil {
		t.Fatalf("keyring.New(k2 alone) = %v", err)
	}
	v2, err := store.NewView(f.backend, kr2, tenant)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := session.NewRepo(v2).Get(ctx, "live"); err != nil {
		t.Errorf("the live session does not open under k2 alone: %v", err)
	}
}
