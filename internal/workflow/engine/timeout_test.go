package engine_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/idvault/idvault/internal/session"
	"github.com/idvault/idvault/internal/store"
	"github.com/idvault/idvault/internal/testenv/testclock"
	"github.com/idvault/idvault/internal/workflow/definition"
	"github.com/idvault/idvault/internal/workflow/engine"
)

// timedYAML is kycYAML with timeouts on the steps that wait: 10 minutes
// for the document, 5 for the selfie, an hour for the review.
var timedYAML = strings.NewReplacer(
	"    pages: [{side: front}]\n    next: selfie", "    pages: [{side: front}]\n    timeout: 10m\n    next: selfie",
	"    type: selfie\n    next: docreader", "    type: selfie\n    timeout: 5m\n    next: docreader",
	"    type: review\n", "    type: review\n    timeout: 1h\n",
).Replace(kycYAML)

// timedEngine returns an engine of f on clock c.
func timedEngine(t *testing.T, f *fixture, c *testclock.Clock) *engine.Engine {
	t.Helper()
	e, err := engine.New(engine.Config{Backend: f.env.Backend, Barrier: f.env.Barrier, Definitions: f.defs, Audit: f.emitter,
		DocReader: f.drc, FaceAPI: f.fac, Files: f.files, Notifier: f.notifier, Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// expiredBy checks that session id expired because step timed out: its
// status and reason, the session.expired notification and the audit
// event naming the step.
// timedSession starts a session of timedYAML holding files on an engine
// whose clock starts at t0 and runs it as far as it goes. similarity, when
// not 0, is what the FaceAPI stand-in answers.
func timedSession(t *testing.T, t0 time.Time, similarity float64, files ...session.FileKind) (*fixture, *testclock.Clock, *engine.Engine, string) {
	t.Helper()
	f := newFixture(t)
	f.define(t, timedYAML)
	if similarity != 0 {
		f.fa.SetSimilarity(similarity)
	}
	c := testclock.New(t0)
	e := timedEngine(t, f, c)
	id := f.newSession(t, "kyc", nil, files...)
	handleUntilDone(t, e, id)
	return f, c, e, id
}

func expiredBy(t *testing.T, f *fixture, id, step string) {
	t.Helper()
	s := f.session(t, id)
	if s.Status != session.StatusExpired || s.Reason != "step "+step+" timed out" || s.Advance || !s.StepDeadline.IsZero() {
		t.Fatalf("session = %s %q advance %t deadline %v, want expired by step %s", s.Status, s.Reason, s.Advance, s.StepDeadline, step)
	}
	if r := f.run(t, id); !r.Done || !r.Expired || r.Step != "" || r.WaitStep != step || r.Reason != "step "+step+" timed out" {
		t.Errorf("run = done %t expired %t step %q wait step %q reason %q, want ended by the timeout of %s", r.Done, r.Expired, r.Step, r.WaitStep, r.Reason, step)
	}
	var expired []notification
	for _, n := range f.notifier.events() {
		if n.Event == "session.expired" {
			expired = append(expired, n)
		}
	}
	if len(expired) != 1 || expired[0] != (notification{tenant, "session.expired", id, session.StatusExpired}) {
		t.Errorf("session.expired notifications = %+v, want one", expired)
	}
	var found bool
	for _, ev := range f.eventsOf(t, id) {
		if ev.Action == "session.expire" {
			found = ev.Details["step"] == step && ev.Details["reason"] == "step_timeout" && ev.Details["status"] == "expired"
		}
	}
	if !found {
		t.Errorf("no session.expire event naming step %s", step)
	}
}

// TestWaitingStepTimeouts: a step that waits for the person or a verifier
// and has a timeout sets the session's step deadline when the session
// reaches it; once it has passed, the next round expires the session
// (reason, session.expired, audit event), a late decision is refused,
// and a session that moved on in time loses the deadline.
func TestWaitingStepTimeouts(t *testing.T) {
	ctx := context.Background()
	t0 := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

	t.Run("document", func(t *testing.T) {
		f, c, e, id := timedSession(t, t0, 0)
		if s := f.session(t, id); s.Status != session.StatusPending || !s.StepDeadline.Equal(t0.Add(10*time.Minute)) {
			t.Fatalf("waiting session = %s deadline %v, want pending until %v", s.Status, s.StepDeadline, t0.Add(10*time.Minute))
		}
		c.Advance(9 * time.Minute)
		handleUntilDone(t, e, id)
		if s := f.session(t, id); s.Status != session.StatusPending {
			t.Fatalf("session before its deadline = %s, want pending", s.Status)
		}
		c.Advance(time.Minute)
		handleUntilDone(t, e, id)
		expiredBy(t, f, id, "document")
		// A file arriving after the expiry changes nothing.
		f.addFiles(t, id, docAndSelfie...)
		handleUntilDone(t, e, id)
		if s := f.session(t, id); s.Status != session.StatusExpired {
			t.Errorf("session after a late upload = %s, want expired", s.Status)
		}
	})

	t.Run("document pinned by Start at create", func(t *testing.T) {
		f := newFixture(t)
		st := f.define(t, timedYAML)
		c := testclock.New(t0)
		e := timedEngine(t, f, c)
		v, err := store.NewView(f.env.Backend, f.env.Barrier, tenant)
		if err != nil {
			t.Fatal(err)
		}
		s := &session.Session{ID: "started", WorkflowID: "kyc", Status: session.StatusPending, CreatedBy: "test",
			CreatedAt: t0, UpdatedAt: t0, ExpiresAt: t0.Add(time.Hour), Files: []session.File{}}
		actx, waits, err := engine.Start(ctx, v, st, s, t0)
		if err != nil || !waits {
			t.Fatalf("Start() = %t, %v; want a session waiting for its document", waits, err)
		}
		if err := f.repo(t).Create(actx, s); err != nil {
			t.Fatal(err)
		}
		if r := f.run(t, s.ID); r.Version != 1 || r.Hash != st.Hash || r.Step != "document" || !r.WaitSince.Equal(t0) {
			t.Fatalf("run after create = %+v, want pinned at the document step since %v", r, t0)
		}
		if got := f.session(t, s.ID); !got.StepDeadline.Equal(t0.Add(10 * time.Minute)) {
			t.Fatalf("session deadline = %v, want %v", got.StepDeadline, t0.Add(10*time.Minute))
		}
		c.Advance(10 * time.Minute)
		handleUntilDone(t, e, s.ID)
		expiredBy(t, f, s.ID, "document")
	})

	t.Run("crash between the run's end and the session's expiry", func(t *testing.T) {
		f, _, e, id := timedSession(t, t0, 0)
		// What a process that died right after ending the run left.
		f.setRun(t, id, func(r *engine.Run) {
			r.Step, r.Done, r.Expired, r.Reason = "", true, true, "step document timed out"
		})
		if s := f.session(t, id); s.Status != session.StatusPending {
			t.Fatalf("session = %s, want still pending", s.Status)
		}
		handleUntilDone(t, e, id)
		expiredBy(t, f, id, "document")
		if err := e.Decide(ctx, tenant, id, "verifier-1", true, "late"); !errors.Is(err, engine.ErrNotInReview) {
			t.Errorf("Decide on the expired session = %v, want ErrNotInReview", err)
		}
	})

	t.Run("selfie timeout runs from the selfie step", func(t *testing.T) {
		f, c, e, id := timedSession(t, t0, 0)
		c.Advance(8 * time.Minute)
		f.addFiles(t, id, session.KindDocumentFront)
		handleUntilDone(t, e, id)
		if s := f.session(t, id); s.Status != session.StatusInProgress || !s.StepDeadline.Equal(t0.Add(13*time.Minute)) {
			t.Fatalf("session at the selfie step = %s deadline %v, want in_progress until %v", s.Status, s.StepDeadline, t0.Add(13*time.Minute))
		}
		c.Advance(5 * time.Minute)
		handleUntilDone(t, e, id)
		expiredBy(t, f, id, "selfie")
	})

	t.Run("in time: the deadline goes when the session moves on", func(t *testing.T) {
		f, _, _, id := timedSession(t, t0, 0, docAndSelfie...)
		s := f.session(t, id)
		if s.Status != session.StatusApproved || !s.StepDeadline.IsZero() {
			t.Fatalf("session = %s deadline %v, want approved without deadline", s.Status, s.StepDeadline)
		}
		for _, n := range f.notifier.events() {
			if n.Event == "session.expired" {
				t.Errorf("an approved session was announced expired")
			}
		}
	})

	t.Run("review", func(t *testing.T) {
		f, c, e, id := timedSession(t, t0, 0.5, docAndSelfie...)
		if s := f.session(t, id); s.Status != session.StatusReview || !s.StepDeadline.Equal(t0.Add(time.Hour)) {
			t.Fatalf("session = %s deadline %v, want review until %v", s.Status, s.StepDeadline, t0.Add(time.Hour))
		}
		c.Advance(time.Hour)
		if err := e.Decide(ctx, tenant, id, "verifier-1", true, "late"); !errors.Is(err, engine.ErrNotInReview) {
			t.Fatalf("Decide after the review timed out = %v, want ErrNotInReview", err)
		}
		expiredBy(t, f, id, "review")
		if r := f.run(t, id); r.Review != nil {
			t.Errorf("the late decision was recorded: %+v", r.Review)
		}
	})

	t.Run("review decided in time", func(t *testing.T) {
		f, c, e, id := timedSession(t, t0, 0.5, docAndSelfie...)
		c.Advance(59 * time.Minute)
		if err := e.Decide(ctx, tenant, id, "verifier-1", true, "ok"); err != nil {
			t.Fatalf("Decide in time = %v", err)
		}
		if s := f.session(t, id); s.Status != session.StatusApproved || !s.StepDeadline.IsZero() {
			t.Errorf("session = %s deadline %v, want approved without deadline", s.Status, s.StepDeadline)
		}
		if r := f.run(t, id); r.Results["review"].Status != definition.StepCompleted {
			t.Errorf("review result = %+v", r.Results["review"])
		}
	})
}
