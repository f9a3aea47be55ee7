package engine_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/idvault/idvault/internal/files"
	"github.com/idvault/idvault/internal/regula/regulatest"
	"github.com/idvault/idvault/internal/session"
	"github.com/idvault/idvault/internal/store"
	"github.com/idvault/idvault/internal/testenv/testclock"
	"github.com/idvault/idvault/internal/workflow/definition"
	"github.com/idvault/idvault/internal/workflow/engine"
)

// startSession creates a pending session of stored definition st at now,
// pinned as the API pins it (engine.Start), and returns its id.
func startSession(t *testing.T, f *fixture, st engine.Stored, now time.Time) string {
	t.Helper()
	v, err := store.NewView(f.env.Backend, f.env.Barrier, tenant)
	if err != nil {
		t.Fatal(err)
	}
	s := &session.Session{ID: uuid.NewString(), WorkflowID: st.Definition.ID, Status: session.StatusPending, CreatedBy: "test",
		CreatedAt: now, UpdatedAt: now, ExpiresAt: now.Add(time.Hour), Files: []session.File{}}
	ctx, waits, err := engine.Start(context.Background(), v, st, s, now)
	if err != nil || !waits {
		t.Fatalf("Start() = waits %t, %v; want a run waiting for files", waits, err)
	}
	if err := session.NewRepo(v).Create(ctx, s); err != nil {
		t.Fatal(err)
	}
	return s.ID
}

// collectUpload stores a JPEG of kind as a file of session id and writes it
// as the API's upload does: engine.Collect on the session about to be
// written, the run's update committed with it. between, when set, runs
// after each Collect, before the write. It returns what the last Collect
// made of the upload and how many times it ran.
func collectUpload(t *testing.T, f *fixture, id string, kind session.FileKind, now time.Time, between func()) (engine.Collected, int) {
	t.Helper()
	ctx := context.Background()
	v, err := store.NewView(f.env.Backend, f.env.Barrier, tenant)
	if err != nil {
		t.Fatal(err)
	}
	fileID := uuid.NewString()
	sealed, err := f.files.Put(ctx, files.Ref{Tenant: tenant, Location: files.Sessions, ID: fileID, Scope: id},
		bytes.NewReader(regulatest.JPEG(64, 80)), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	var c engine.Collected
	calls := 0
	ctx, _ = store.Attach(ctx, session.Collection, func(store.Write) ([]store.Write, error) { return c.Writes, nil })
	_, err = session.NewRepo(v).Update(ctx, id, now, func(s *session.Session) error {
		s.Files = append(s.Files, session.File{ID: fileID, Kind: kind, ContentType: "image/jpeg", CreatedAt: now, Sealed: sealed})
		s.Advance = true
		var err error
		c, err = engine.Collect(ctx, v, f.defs, s, now)
		calls++
		if between != nil {
			between()
		}
		return err
	})
	if err != nil {
		t.Fatalf("upload %s: %v", kind, err)
	}
	return c, calls
}

// TestCollectAtUpload: an upload completes the collecting steps whose
// files the session now holds, in the upload's own write. One that leaves
// the session waiting for more files records the wait (run, status, step
// deadline, Advance cleared) and needs no workflow message; a file no step
// needs changes nothing; the upload that reaches an automated step records
// the completed steps and leaves the session to the workflow role, which
// runs it on from there to its decision.
func TestCollectAtUpload(t *testing.T) {
	f := newFixture(t)
	st := f.define(t, timedYAML)
	t0 := time.Date(2031, 3, 14, 15, 9, 26, 0, time.UTC)
	id := startSession(t, f, st, t0)
	if s := f.session(t, id); !s.StepDeadline.Equal(t0.Add(10 * time.Minute)) {
		t.Fatalf("step deadline after create = %v, want the document step's, %v", s.StepDeadline, t0.Add(10*time.Minute))
	}

	t1 := t0.Add(time.Minute)
	c, _ := collectUpload(t, f, id, session.KindDocumentFront, t1, nil)
	if !c.Waits || !c.Advanced || c.Step != "" || len(c.Writes) != 1 {
		t.Fatalf("document upload = %+v, want waiting, advanced, one run write", c)
	}
	s := f.session(t, id)
	if s.Status != session.StatusInProgress || s.Advance || !s.StepDeadline.Equal(t1.Add(5*time.Minute)) {
		t.Fatalf("session after the document = %s advance %t deadline %v, want in_progress waiting for the selfie until %v",
			s.Status, s.Advance, s.StepDeadline, t1.Add(5*time.Minute))
	}
	r := f.run(t, id)
	if r.Step != "selfie" || r.WaitStep != "selfie" || !r.WaitSince.Equal(t1) || r.Results["document"].Status != definition.StepCompleted {
		t.Fatalf("run after the document = step %q waiting at %q since %v, results %+v; want waiting at selfie since %v",
			r.Step, r.WaitStep, r.WaitSince, r.Results, t1)
	}

	c, _ = collectUpload(t, f, id, session.KindDocumentBack, t1.Add(time.Second), nil)
	if !c.Waits || c.Advanced || len(c.Writes) != 0 {
		t.Fatalf("upload of a page no step needs = %+v, want waiting with nothing written", c)
	}
	if s := f.session(t, id); s.Advance || s.Status != session.StatusInProgress {
		t.Fatalf("session after the extra page = %s advance %t, want in_progress with nothing for the workflow role", s.Status, s.Advance)
	}
	if r2 := f.run(t, id); r2.Step != "selfie" || !r2.UpdatedAt.Equal(r.UpdatedAt) {
		t.Fatalf("run after the extra page = step %q updated %v, want unchanged", r2.Step, r2.UpdatedAt)
	}

	t2 := t1.Add(2 * time.Minute)
	c, _ = collectUpload(t, f, id, session.KindSelfie, t2, nil)
	if c.Waits || c.Advanced || c.Step != "docreader" || len(c.Writes) != 1 {
		t.Fatalf("selfie upload = %+v, want handed over at docreader", c)
	}
	s = f.session(t, id)
	if s.Status != session.StatusInProgress || !s.Advance || !s.StepDeadline.IsZero() {
		t.Fatalf("session after the selfie = %s advance %t deadline %v, want in_progress for the workflow role without a deadline",
			s.Status, s.Advance, s.StepDeadline)
	}
	if r := f.run(t, id); r.Step != "docreader" || r.Results["selfie"].Status != definition.StepCompleted {
		t.Fatalf("run after the selfie = step %q, results %+v; want at docreader with the selfie completed", r.Step, r.Results)
	}

	e := timedEngine(t, f, testclock.New(t2))
	handleUntilDone(t, e, id)
	if s := f.session(t, id); s.Status != session.StatusApproved || s.Advance {
		t.Fatalf("session after the workflow role = %s advance %t, want approved", s.Status, s.Advance)
	}
	// The upload's own write carries the session.advance event (the API
	// attaches it, as Collected.Advanced says); the engine records only the
	// decision.
	if got := summary(f, t, id); got != "session.decision=approved" {
		t.Errorf("engine's audit events = %s, want the decision only", got)
	}
}

// TestCollectLeavesOverdueStep: an upload that leaves the session waiting
// at a step whose deadline has passed moves nothing; the workflow role
// expires the session as it would have without Collect.
func TestCollectLeavesOverdueStep(t *testing.T) {
	f := newFixture(t)
	st := f.define(t, timedYAML)
	t0 := time.Date(2031, 3, 14, 15, 9, 26, 0, time.UTC)
	id := startSession(t, f, st, t0)
	collectUpload(t, f, id, session.KindDocumentFront, t0.Add(time.Minute), nil)
	late := t0.Add(7 * time.Minute) // the selfie step's 5m ran out at t0+6m
	c, _ := collectUpload(t, f, id, session.KindDocumentBack, late, nil)
	if c.Waits || len(c.Writes) != 0 {
		t.Fatalf("upload after the selfie's deadline = %+v, want nothing collected", c)
	}
	if s := f.session(t, id); !s.Advance {
		t.Fatal("session after the late upload lost its Advance flag; the workflow role would never hear of it")
	}
	handleUntilDone(t, timedEngine(t, f, testclock.New(late)), id)
	expiredBy(t, f, id, "selfie")
}

// TestCollectConflict: a run changed between Collect's read and the
// upload's write fails the write, run and session both, and the upload
// collects again from what is stored.
func TestCollectConflict(t *testing.T) {
	f := newFixture(t)
	st := f.define(t, kycYAML)
	now := time.Now().UTC()
	id := startSession(t, f, st, now)
	v, err := store.NewView(f.env.Backend, f.env.Barrier, tenant)
	if err != nil {
		t.Fatal(err)
	}
	changed := false
	touchRun := func() {
		if changed {
			return
		}
		changed = true
		var r engine.Run
		rec, err := v.Get(context.Background(), engine.RunsCollection, id, &r)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := v.Update(context.Background(), engine.RunsCollection, id, rec.Version, rec.Index, &r); err != nil {
			t.Fatal(err)
		}
	}
	before := f.session(t, id)
	c, calls := collectUpload(t, f, id, session.KindDocumentFront, now, touchRun)
	if calls != 2 || !c.Waits {
		t.Fatalf("upload = %+v after %d Collect calls, want waiting after 2 (one conflict)", c, calls)
	}
	s := f.session(t, id)
	if len(s.Files) != len(before.Files)+1 || s.Status != session.StatusInProgress {
		t.Fatalf("session = %d files, %s; want the one file, in_progress", len(s.Files), s.Status)
	}
	if r := f.run(t, id); r.Step != "selfie" {
		t.Fatalf("run step = %q, want selfie", r.Step)
	}
}

// TestCollectNotForEngine: a session without a run, or whose run is not at
// a collecting step, is left to the workflow role untouched.
func TestCollectNotForEngine(t *testing.T) {
	f := newFixture(t)
	f.define(t, kycYAML)
	id := f.newSession(t, "kyc", nil)
	c, _ := collectUpload(t, f, id, session.KindDocumentFront, time.Now().UTC(), nil)
	if c.Waits || c.Advanced || len(c.Writes) != 0 {
		t.Fatalf("session without a run: %+v, want nothing collected", c)
	}
	collectUpload(t, f, id, session.KindSelfie, time.Now().UTC(), nil)
	if s := f.session(t, id); !s.Advance || s.Status != session.StatusPending {
		t.Fatalf("session without a run = %s advance %t, want pending for the workflow role", s.Status, s.Advance)
	}
	handleUntilDone(t, f.eng, id)
	if s := f.session(t, id); s.Status != session.StatusApproved {
		t.Fatalf("status = %s, want approved", s.Status)
	}
	c, _ = collectUpload(t, f, id, session.KindAttachment, time.Now().UTC(), nil)
	if c.Waits || len(c.Writes) != 0 {
		t.Fatalf("closed session: %+v, want nothing collected", c)
	}
}
