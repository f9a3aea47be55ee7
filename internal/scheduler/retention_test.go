package scheduler_test

import (
	"gocloud.dev/blob"

	"bytes"
	"context"
	"errors"
	"github.com/idvault/idvault/internal/files/localfs"
	"os"
	"testing"
	"time"

	"github.com/idvault/idvault/internal/barrier"
	"github.com/idvault/idvault/internal/files"
	"github.com/idvault/idvault/internal/identity"
	"github.com/idvault/idvault/internal/keyring"
	"github.com/idvault/idvault/internal/scheduler"
	"github.com/idvault/idvault/internal/session"
	"github.com/idvault/idvault/internal/store"
	"github.com/idvault/idvault/internal/testenv"
	"github.com/idvault/idvault/internal/workflow"
)

// TestRetention checks the tenant retention job: a finished session older
// than the tenant's keepSessionsForDays is destroyed — record gone, data key
// shredded (a copy of the record no longer opens), file objects removed,
// audited — while a recent finished session, an old open one and another
// tenant's old session without retention stay.
func TestRetention(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	root, err := keyring.NewRootKey("root", testenv.RandomKey(t))
	if err != nil {
		t.Fatal(err)
	}
	kr, err := keyring.New(ctx, f.backend, []keyring.KEK{root}, f.log, func() time.Time { return now })
	if err != nil {
		t.Fatal(err)
	}
	fs := files.New(mustBucket(t, f), kr)
	a, b := f.tenant(t, "Acme"), f.tenant(t, "Globex")
	if err := f.ids.SetPolicy(ctx, a, identity.Policy{KeepSessionsForDays: 30}); err != nil {
		t.Fatal(err)
	}
	mk := func(tenant, id string, status session.Status, age time.Duration) []byte {
		t.Helper()
		v, err := store.NewView(f.backend, kr, tenant)
		if err != nil {
			t.Fatal(err)
		}
		s := &session.Session{ID: id, WorkflowID: workflow.DefaultID, Status: status,
			CreatedAt: now.Add(-age), UpdatedAt: now.Add(-age), ExpiresAt: now.Add(-age + time.Hour)}
		ref := s.FileRef(tenant, "f-"+id)
		sealed, err := fs.Put(ctx, ref, bytes.NewReader([]byte("object of "+id)), 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		s.Files = []session.File{{ID: "f-" + id, Kind: session.KindAttachment, ContentType: "application/pdf", Sealed: sealed}}
		if err := session.NewRepo(v).Create(ctx, s); err != nil {
			t.Fatal(err)
		}
		rec, err := f.backend.Get(ctx, session.Collection, tenant, id)
		if err != nil {
			t.Fatal(err)
		}
		return rec.Body
	}
	old := mk(a, "old-approved", session.StatusApproved, 31*24*time.Hour)
	mk(a, "old-rejected", session.StatusRejected, 40*24*time.Hour)
	mk(a, "recent-approved", session.StatusApproved, 29*24*time.Hour)
	mk(a, "old-pending", session.StatusPending, 31*24*time.Hour)
	mk(b, "old-approved-b", session.StatusApproved, 400*24*time.Hour)

	d := f.deps
	d.Barrier, d.Keys, d.Files, d.Now = kr, kr, fs, func() time.Time { return now }
	rep, err := scheduler.New(d).RunOnce(ctx)
	if err != nil || rep.Destroyed != 2 {
		t.Fatalf("RunOnce() = %+v, %v; want the 2 old finished sessions of Acme destroyed", rep, err)
	}
	for tenant, ids := range map[string][]string{a: {"recent-approved", "old-pending"}, b: {"old-approved-b"}} {
		for _, id := range ids {
			if _, err := f.backend.Get(ctx, session.Collection, tenant, id); err != nil {
				t.Errorf("session %s was not kept: %v", id, err)
			}
		}
	}
	for _, id := range []string{"old-approved", "old-rejected"} {
		if _, err := f.backend.Get(ctx, session.Collection, a, id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("session %s still stored: %v", id, err)
		}
		if _, err := os.Stat(f.objectPath(a, "f-"+id)); !os.IsNotExist(err) {
			t.Errorf("file object of %s still stored: %v", id, err)
		}
	}
	// A backup copy of the destroyed record no longer opens: its key is gone.
	if _, err := kr.Open(ctx, store.BodyPlace(a, session.Collection, "old-approved"), old); !errors.Is(err, barrier.ErrOpen) {
		t.Errorf("Open(backup of a destroyed session) = %v, want ErrOpen", err)
	}
	var destroyed []string
	for _, ev := range f.auditEvents(t, a) {
		if ev.Action == "session.retention_delete" {
			destroyed = append(destroyed, ev.Resource.ID)
		}
	}
	if len(destroyed) != 2 {
		t.Errorf("session.retention_delete events = %v, want one per destroyed session", destroyed)
	}
	if rep, err := scheduler.New(d).RunOnce(ctx); err != nil || rep.Destroyed != 0 {
		t.Errorf("second RunOnce() = %+v, %v; want nothing more destroyed", rep, err)
	}
}

// mustBucket opens the fixture's bucket directory again, for a files.Store
// sealing with another barrier.
func mustBucket(t *testing.T, f *fixture) *blob.Bucket {
	t.Helper()
	bucket, err := localfs.Open(context.Background(), f.bucketDir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = bucket.Close() })
	return bucket
}
