package engine_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/idvault/idvault/internal/regula/regulatest"
	"github.com/idvault/idvault/internal/session"
	"github.com/idvault/idvault/internal/store"
	"github.com/idvault/idvault/internal/workflow/definition"
	"github.com/idvault/idvault/internal/workflow/engine"
)

var docAndSelfie = []session.FileKind{session.KindDocumentFront, session.KindSelfie}

// handleUntilDone handles the message as the queue would redeliver it
// until it is acknowledged, and returns the errors of the failed
// deliveries.
func handleUntilDone(t *testing.T, e *engine.Engine, id string) []error {
	t.Helper()
	var failed []error
	for range 10 {
		err := e.Handle(context.Background(), message(id))
		if err == nil {
			return failed
		}
		failed = append(failed, err)
	}
	t.Fatalf("Handle(%s) still fails after 10 deliveries: %v", id, failed)
	return nil
}

func actions(evs []string) string { return strings.Join(evs, ",") }

func summary(f *fixture, t *testing.T, id string) string {
	var out []string
	for _, ev := range f.eventsOf(t, id) {
		out = append(out, ev.Action+"="+ev.Details["status"])
	}
	return actions(out)
}

func TestEndToEndApproved(t *testing.T) {
	f := newFixture(t)
	st := f.define(t, kycYAML)
	id := f.newSession(t, "kyc", nil, docAndSelfie...)
	if err := f.eng.Handle(context.Background(), message(id)); err != nil {
		t.Fatalf("Handle() = %v", err)
	}
	s := f.session(t, id)
	if s.Status != session.StatusApproved || s.Reason != "identity verified" || s.Advance {
		t.Fatalf("session = %s %q advance %t, want approved %q", s.Status, s.Reason, s.Advance, "identity verified")
	}
	r := f.run(t, id)
	if r.DefinitionID != "kyc" || r.Version != 1 || r.Hash != st.Hash || !r.Done || r.Step != "" || r.Decision != definition.Approved {
		t.Errorf("run = %+v, want kyc@1 done approved", r)
	}
	if n := f.notifier.events(); len(n) != 1 || n[0] != (notification{tenant, "session.completed", id, session.StatusApproved}) {
		t.Errorf("notifications = %+v, want one session.completed, approved", n)
	}
	dr := r.Results["docreader"]
	if dr.Status != definition.StepPassed || dr.OverallStatus == nil || *dr.OverallStatus != 1 || dr.DocumentType != regulatest.SpecimenDocumentName || len(dr.Fields) == 0 {
		t.Errorf("docreader result = %+v", dr)
	}
	fm := r.Results["face-match"]
	if fm.Status != definition.StepPassed || fm.Similarity == nil || *fm.Similarity < 0.9 {
		t.Errorf("face-match result = %+v", fm)
	}
	if r.PortraitFile == nil || r.PortraitID == "" {
		t.Errorf("run has no stored portrait")
	}
	if got, want := summary(f, t, id), "session.advance=in_progress,session.decision=approved"; got != want {
		t.Errorf("audit events = %s, want %s", got, want)
	}
	if f.dr.Requests() != 1 || f.fa.Requests() != 1 {
		t.Errorf("requests = docreader %d, faceapi %d, want 1, 1", f.dr.Requests(), f.fa.Requests())
	}
	if rej := append(f.dr.Rejections(), f.fa.Rejections()...); len(rej) != 0 {
		t.Errorf("stand-ins rejected requests: %v", rej)
	}

	// A redelivered message changes nothing and calls nothing.
	if err := f.eng.Handle(context.Background(), message(id)); err != nil {
		t.Fatalf("second Handle() = %v", err)
	}
	if f.dr.Requests() != 1 || f.fa.Requests() != 1 || len(f.eventsOf(t, id)) != 2 {
		t.Errorf("after redelivery: requests %d, %d, events %d, want 1, 1, 2", f.dr.Requests(), f.fa.Requests(), len(f.eventsOf(t, id)))
	}
}

func TestWaitsForFiles(t *testing.T) {
	f := newFixture(t)
	f.define(t, kycYAML)
	id := f.newSession(t, "kyc", nil)
	if err := f.eng.Handle(context.Background(), message(id)); err != nil {
		t.Fatal(err)
	}
	if s, r := f.session(t, id), f.run(t, id); s.Status != session.StatusPending || r.Step != "document" {
		t.Fatalf("without files: session %s at %q, want pending at document", s.Status, r.Step)
	}
	f.addFiles(t, id, session.KindDocumentFront)
	if err := f.eng.Handle(context.Background(), message(id)); err != nil {
		t.Fatal(err)
	}
	if s, r := f.session(t, id), f.run(t, id); s.Status != session.StatusInProgress || r.Step != "selfie" || s.Advance {
		t.Fatalf("with the document: session %s at %q advance %t, want in_progress at selfie", s.Status, r.Step, s.Advance)
	}
	if f.dr.Requests() != 0 {
		t.Errorf("docreader called before the selfie step completed")
	}
	f.addFiles(t, id, session.KindSelfie)
	handleUntilDone(t, f.eng, id)
	if s := f.session(t, id); s.Status != session.StatusApproved {
		t.Fatalf("session = %s, want approved", s.Status)
	}
}

func TestOnFail(t *testing.T) {
	for _, tc := range []struct {
		name   string
		setup  func(f *fixture)
		step   string
		detail string
		want   session.Status
	}{
		{"face not detected", func(f *fixture) { f.fa.Inject(regulatest.NoFace()) }, "face-match", "face not detected", session.StatusReview},
		{"low similarity", func(f *fixture) { f.fa.SetSimilarity(0.5) }, "face-match", "", session.StatusReview},
		{"similarity under the rule's bar", func(f *fixture) { f.fa.SetSimilarity(0.85) }, "checks", "", session.StatusReview},
		{"bad document", func(f *fixture) { f.dr.Inject(regulatest.BadDocument()) }, "docreader", "document checks failed", session.StatusRejected},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			f.define(t, kycYAML)
			tc.setup(f)
			id := f.newSession(t, "kyc", nil, docAndSelfie...)
			handleUntilDone(t, f.eng, id)
			s, r := f.session(t, id), f.run(t, id)
			if s.Status != tc.want {
				t.Fatalf("session = %s, want %s", s.Status, tc.want)
			}
			res := r.Results[tc.step]
			wantStatus := definition.StepFailed
			if tc.step == "checks" {
				wantStatus = definition.StepCompleted
			}
			if res.Status != wantStatus || res.Detail != tc.detail {
				t.Errorf("result of %s = %+v, want %s %q", tc.step, res, wantStatus, tc.detail)
			}
			if tc.want == session.StatusReview {
				// The definition's webhook step and the review step both
				// announce review.required; the webhook service keeps one
				// delivery per (session, event type).
				n := f.notifier.events()
				if len(n) != 2 || n[0] != (notification{tenant, definition.EventReviewRequired, id, session.StatusInProgress}) ||
					n[1] != (notification{tenant, definition.EventReviewRequired, id, session.StatusReview}) {
					t.Errorf("notifications = %+v, want review.required from the webhook step, then from the review step", n)
				}
				if r.Step != "review" {
					t.Errorf("run at %q, want review", r.Step)
				}
			}
		})
	}
}

func TestRetries(t *testing.T) {
	t.Run("5xx then success", func(t *testing.T) {
		f := newFixture(t)
		f.define(t, kycYAML)
		f.dr.Inject(regulatest.Status(502))
		f.fa.Inject(regulatest.Status(500), regulatest.MalformedJSON())
		id := f.newSession(t, "kyc", nil, docAndSelfie...)
		failed := handleUntilDone(t, f.eng, id)
		if len(failed) != 3 {
			t.Errorf("failed deliveries = %v, want 3", failed)
		}
		if s := f.session(t, id); s.Status != session.StatusApproved {
			t.Fatalf("session = %s %q, want approved", s.Status, s.Reason)
		}
		r := f.run(t, id)
		if r.Attempts["docreader"] != 2 || r.Attempts["face-match"] != 3 {
			t.Errorf("attempts = %v, want docreader 2, face-match 3", r.Attempts)
		}
		if f.dr.Requests() != 2 || f.fa.Requests() != 3 {
			t.Errorf("requests = %d, %d, want 2, 3", f.dr.Requests(), f.fa.Requests())
		}
	})
	t.Run("persistent failure", func(t *testing.T) {
		f := newFixture(t)
		f.define(t, kycYAML)
		f.dr.SetFault(regulatest.Status(503))
		id := f.newSession(t, "kyc", nil, docAndSelfie...)
		failed := handleUntilDone(t, f.eng, id)
		if len(failed) != 2 {
			t.Errorf("failed deliveries = %v, want 2 (retries: 2, the third failure ends the run)", failed)
		}
		s := f.session(t, id)
		if s.Status != session.StatusError || !strings.Contains(s.Reason, "step docreader failed after 3 attempts") || !strings.Contains(s.Reason, "status 503") {
			t.Fatalf("session = %s %q, want error naming the step and the status", s.Status, s.Reason)
		}
		if got, want := summary(f, t, id), "session.advance=in_progress,session.advance=error"; got != want {
			t.Errorf("audit events = %s, want %s", got, want)
		}
		n := f.dr.Requests()
		if err := f.eng.Handle(context.Background(), message(id)); err != nil || f.dr.Requests() != n {
			t.Errorf("redelivery after error: Handle() = %v, requests %d -> %d", err, n, f.dr.Requests())
		}
	})
	t.Run("timeout", func(t *testing.T) {
		f := newFixture(t)
		f.define(t, kycYAML)
		f.dr.Inject(regulatest.Delay(5 * time.Second))
		id := f.newSession(t, "kyc", nil, docAndSelfie...)
		failed := handleUntilDone(t, f.eng, id)
		if len(failed) != 1 || !errors.Is(failed[0], context.DeadlineExceeded) {
			t.Fatalf("failed deliveries = %v, want one deadline exceeded", failed)
		}
		if s := f.session(t, id); s.Status != session.StatusApproved {
			t.Fatalf("session = %s %q, want approved", s.Status, s.Reason)
		}
	})
	t.Run("webhook failure", func(t *testing.T) {
		f := newFixture(t)
		f.define(t, kycYAML)
		f.fa.SetSimilarity(0.5)
		f.notifier.fails = 1
		id := f.newSession(t, "kyc", nil, docAndSelfie...)
		failed := handleUntilDone(t, f.eng, id)
		s := f.session(t, id)
		if s.Status != session.StatusError || !strings.Contains(s.Reason, "step notify-review failed after 1 attempts") || len(failed) != 0 {
			t.Fatalf("session = %s %q (failed %v), want error after the webhook's only attempt", s.Status, s.Reason, failed)
		}
	})
	t.Run("permanent failure", func(t *testing.T) {
		f := newFixture(t)
		f.define(t, kycYAML)
		f.dr.Inject(regulatest.Status(400))
		id := f.newSession(t, "kyc", nil, docAndSelfie...)
		handleUntilDone(t, f.eng, id)
		if s := f.session(t, id); s.Status != session.StatusError || !strings.Contains(s.Reason, "after 1 attempts") {
			t.Fatalf("session = %s %q, want error after one attempt", s.Status, s.Reason)
		}
	})
}

func TestReview(t *testing.T) {
	for _, approve := range []bool{true, false} {
		t.Run(fmt.Sprint("approve=", approve), func(t *testing.T) {
			f := newFixture(t)
			f.define(t, kycYAML)
			f.fa.SetSimilarity(0.5)
			ctx := context.Background()
			id := f.newSession(t, "kyc", nil, docAndSelfie...)
			if err := f.eng.Decide(ctx, tenant, id, "verifier-1", approve, "early"); !errors.Is(err, engine.ErrNotInReview) {
				t.Fatalf("Decide() before review = %v, want ErrNotInReview", err)
			}
			handleUntilDone(t, f.eng, id)
			if s := f.session(t, id); s.Status != session.StatusReview {
				t.Fatalf("session = %s, want review", s.Status)
			}
			if err := f.eng.Decide(ctx, tenant, id, "verifier-1", approve, "portrait matches"); err != nil {
				t.Fatalf("Decide() = %v", err)
			}
			want, reason := session.StatusRejected, "rejected by a verifier"
			if approve {
				want, reason = session.StatusApproved, "verified"
			}
			if s := f.session(t, id); s.Status != want || s.Reason != reason {
				t.Fatalf("session = %s %q, want %s %q", s.Status, s.Reason, want, reason)
			}
			r := f.run(t, id)
			if r.Review == nil || r.Review.Reviewer != "verifier-1" || r.Review.Approved != approve || r.Review.Comment != "portrait matches" || r.Review.Step != "review" {
				t.Errorf("run review = %+v", r.Review)
			}
			var decision *string
			for _, ev := range f.eventsOf(t, id) {
				if ev.Action == "review.decision" {
					d := ev.Details["decision"]
					decision = &d
					if ev.Actor.ID != "verifier-1" || strings.Contains(fmt.Sprint(ev.Details), "portrait matches") {
						t.Errorf("review.decision event = %+v, want actor verifier-1 and no comment", ev)
					}
				}
			}
			if decision == nil || *decision != string(want) {
				t.Errorf("review.decision event decision = %v, want %s", decision, want)
			}
			if got := summary(f, t, id); !strings.HasSuffix(got, "review.decision=,session.decision="+string(want)) {
				t.Errorf("audit events = %s", got)
			}
			if err := f.eng.Decide(ctx, tenant, id, "verifier-2", !approve, ""); !errors.Is(err, engine.ErrNotInReview) {
				t.Errorf("second Decide() = %v, want ErrNotInReview", err)
			}
		})
	}
	t.Run("concurrent decisions", func(t *testing.T) {
		f := newFixture(t)
		f.define(t, kycYAML)
		f.fa.SetSimilarity(0.5)
		id := f.newSession(t, "kyc", nil, docAndSelfie...)
		handleUntilDone(t, f.eng, id)
		other := f.engine(t)
		errs := make([]error, 2)
		var wg sync.WaitGroup
		for i, e := range []*engine.Engine{f.eng, other} {
			wg.Go(func() { errs[i] = e.Decide(context.Background(), tenant, id, fmt.Sprint("verifier-", i), i == 0, "") })
		}
		wg.Wait()
		ok := 0
		for _, err := range errs {
			switch {
			case err == nil:
				ok++
			case !errors.Is(err, engine.ErrNotInReview):
				t.Errorf("Decide() = %v", err)
			}
		}
		n := 0
		for _, ev := range f.eventsOf(t, id) {
			if ev.Action == "review.decision" {
				n++
			}
		}
		if ok != 1 || n != 1 {
			t.Errorf("%d decisions succeeded and %d were audited, want 1 and 1", ok, n)
		}
	})
}

func TestConcurrentEngines(t *testing.T) {
	f := newFixture(t)
	f.define(t, kycYAML)
	// Slow answers make the two engines overlap on each step.
	f.dr.Inject(regulatest.Delay(100 * time.Millisecond))
	f.fa.Inject(regulatest.Delay(100 * time.Millisecond))
	id := f.newSession(t, "kyc", nil, docAndSelfie...)
	engines := []*engine.Engine{f.eng, f.engine(t)}
	var wg sync.WaitGroup
	errs := make([]error, len(engines))
	for i, e := range engines {
		wg.Go(func() { errs[i] = e.Handle(context.Background(), message(id)) })
	}
	wg.Wait()
	t.Logf("concurrent deliveries: %v", errs)
	for _, err := range errs {
		if err != nil && !errors.Is(err, engine.ErrInProgress) {
			t.Errorf("Handle() = %v, want nil or ErrInProgress", err)
		}
	}
	for _, e := range engines {
		handleUntilDone(t, e, id)
	}
	if s := f.session(t, id); s.Status != session.StatusApproved {
		t.Fatalf("session = %s %q, want approved", s.Status, s.Reason)
	}
	if f.dr.Requests() != 1 || f.fa.Requests() != 1 {
		t.Errorf("requests = docreader %d, faceapi %d, want 1, 1", f.dr.Requests(), f.fa.Requests())
	}
	if r := f.run(t, id); r.Attempts["docreader"] != 1 || r.Attempts["face-match"] != 1 {
		t.Errorf("attempts = %v, want one each", r.Attempts)
	}
	if got, want := summary(f, t, id), "session.advance=in_progress,session.decision=approved"; got != want {
		t.Errorf("audit events = %s, want %s", got, want)
	}
}

const livenessYAML = `
id: live
version: 1
name: Liveness
start: liveness
steps:
  - id: liveness
    type: liveness
    next: decide
    on_fail: rejected
  - id: decide
    type: rule
    cases:
      - when: liveness.passed && session.metadata.channel == "app"
        decision: approved
    default:
      decision: rejected
      reason: not from the app
  - id: rejected
    type: decision
    decision: rejected
    reason: liveness not confirmed
`

func TestLiveness(t *testing.T) {
	for _, tc := range []struct {
		name     string
		status   int
		meta     map[string]any
		want     session.Status
		reason   string
		requests int
	}{
		{"confirmed", 0, map[string]any{engine.LivenessTransactionKey: "0b7f8f0e-7d2c-4c2a-9a51-0c6e6f3b1d10", "channel": "app"}, session.StatusApproved, "", 1},
		{"rule default", 0, map[string]any{engine.LivenessTransactionKey: "0b7f8f0e-7d2c-4c2a-9a51-0c6e6f3b1d10", "channel": "web"}, session.StatusRejected, "not from the app", 1},
		{"not confirmed", 1, map[string]any{engine.LivenessTransactionKey: "0b7f8f0e-7d2c-4c2a-9a51-0c6e6f3b1d10"}, session.StatusRejected, "liveness not confirmed", 1},
		{"no transaction id", 0, map[string]any{}, session.StatusError, "step liveness failed after 1 attempts: session metadata has no livenessTransactionId: permanent failure", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			f.define(t, livenessYAML)
			f.fa.SetLiveness(tc.status)
			id := f.newSession(t, "live", tc.meta)
			handleUntilDone(t, f.eng, id)
			if s := f.session(t, id); s.Status != tc.want || s.Reason != tc.reason {
				t.Errorf("session = %s %q, want %s %q", s.Status, s.Reason, tc.want, tc.reason)
			}
			if f.fa.Requests() != tc.requests {
				t.Errorf("faceapi requests = %d, want %d", f.fa.Requests(), tc.requests)
			}
		})
	}
}

func TestUnknownWorkflow(t *testing.T) {
	f := newFixture(t)
	id := f.newSession(t, "missing", nil, docAndSelfie...)
	if err := f.eng.Handle(context.Background(), message(id)); err != nil {
		t.Fatal(err)
	}
	if s := f.session(t, id); s.Status != session.StatusError || s.Reason == "" {
		t.Errorf("session = %s %q, want error with a reason", s.Status, s.Reason)
	}
	if err := f.eng.Handle(context.Background(), []byte(`{"tenant":""}`)); !errors.Is(err, engine.ErrMalformed) {
		t.Errorf("Handle(malformed) = %v, want ErrMalformed", err)
	}
	if err := f.eng.Handle(context.Background(), message("no-such-session")); err != nil {
		t.Errorf("Handle(missing session) = %v, want nil", err)
	}
}

func TestCancelledSessionIsNotRun(t *testing.T) {
	f := newFixture(t)
	f.define(t, kycYAML)
	id := f.newSession(t, "kyc", nil, docAndSelfie...)
	if _, err := f.repo(t).Update(context.Background(), id, time.Now(), func(s *session.Session) error {
		s.Status = session.StatusCancelled
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := f.eng.Handle(context.Background(), message(id)); err != nil {
		t.Fatal(err)
	}
	if s := f.session(t, id); s.Status != session.StatusCancelled || f.dr.Requests() != 0 {
		t.Errorf("session = %s, docreader requests %d, want cancelled and none", s.Status, f.dr.Requests())
	}
}

// setRun changes the stored run of session id with fn, as a process that
// died at that point would have left it.
func (f *fixture) setRun(t *testing.T, id string, fn func(*engine.Run)) {
	t.Helper()
	ctx := context.Background()
	v, err := store.NewView(f.env.Backend, f.env.Barrier, tenant)
	if err != nil {
		t.Fatal(err)
	}
	var r engine.Run
	rec, err := v.Get(ctx, engine.RunsCollection, id, &r)
	if err != nil {
		t.Fatal(err)
	}
	fn(&r)
	if _, err := v.Update(ctx, engine.RunsCollection, id, rec.Version, rec.Index, &r); err != nil {
		t.Fatal(err)
	}
}

func TestCrashRecovery(t *testing.T) {
	f := newFixture(t)
	f.define(t, kycYAML)
	ctx := context.Background()
	id := f.newSession(t, "kyc", nil)
	if err := f.eng.Handle(ctx, message(id)); err != nil {
		t.Fatal(err)
	}
	f.addFiles(t, id, docAndSelfie...)
	// A process took the docreader step and died during the call.
	started := time.Now().UTC()
	f.setRun(t, id, func(r *engine.Run) {
		r.Step = "docreader"
		r.Attempts["docreader"] = 1
		r.Attempt = &engine.Attempt{ID: "dead-process", Step: "docreader", Number: 1, Started: started, Deadline: started.Add(31 * time.Second)}
	})
	if err := f.eng.Handle(ctx, message(id)); !errors.Is(err, engine.ErrInProgress) {
		t.Fatalf("Handle() before the attempt's deadline = %v, want ErrInProgress", err)
	}
	if f.dr.Requests() != 0 {
		t.Fatalf("docreader called while another attempt was in flight")
	}
	later, err := engine.New(engine.Config{Backend: f.env.Backend, Barrier: f.env.Barrier, Definitions: f.defs, Audit: f.emitter,
		DocReader: f.drc, FaceAPI: f.fac, Files: f.files, Notifier: f.notifier, Now: func() time.Time { return time.Now().Add(time.Minute) }})
	if err != nil {
		t.Fatal(err)
	}
	handleUntilDone(t, later, id)
	r := f.run(t, id)
	if s := f.session(t, id); s.Status != session.StatusApproved || r.Attempts["docreader"] != 2 || r.Results["docreader"].AttemptID == "dead-process" {
		t.Fatalf("after takeover: session %s, attempts %v, docreader result of %q", s.Status, r.Attempts, r.Results["docreader"].AttemptID)
	}
	// A process died after marking the run done and before writing the
	// decision to the session: the next delivery writes it, with its event.
	if _, err := f.repo(t).Update(ctx, id, time.Now(), func(s *session.Session) error {
		s.Status, s.Reason = session.StatusInProgress, ""
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	events := len(f.eventsOf(t, id))
	handleUntilDone(t, f.eng, id)
	evs := f.eventsOf(t, id)
	if s := f.session(t, id); s.Status != session.StatusApproved || len(evs) != events+1 || evs[len(evs)-1].Action != "session.decision" {
		t.Errorf("after repair: session %s, %d events (last %s), want approved and one more session.decision", s.Status, len(evs), evs[len(evs)-1].Action)
	}
	if f.dr.Requests() != 1 || f.fa.Requests() != 1 {
		t.Errorf("repair repeated external calls: %d, %d", f.dr.Requests(), f.fa.Requests())
	}
}

func TestTamperedFileIsNotSent(t *testing.T) {
	f := newFixture(t)
	f.define(t, kycYAML)
	id := f.newSession(t, "kyc", nil, docAndSelfie...)
	front := f.session(t, id).Files[0]
	key, err := f.session(t, id).FileRef(tenant, front.ID).Key()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(f.bucketDir, filepath.FromSlash(key))
	stored, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	stored[len(stored)/2] ^= 1
	if err := os.WriteFile(path, stored, 0o600); err != nil {
		t.Fatal(err)
	}
	handleUntilDone(t, f.eng, id)
	s := f.session(t, id)
	if s.Status != session.StatusError || !strings.Contains(s.Reason, "a session file failed verification") {
		t.Errorf("session = %s %q, want error: file failed verification", s.Status, s.Reason)
	}
	if f.dr.Requests() != 0 {
		t.Errorf("a tampered document was sent to DocReader")
	}
}

func TestRuleEvaluationFailure(t *testing.T) {
	f := newFixture(t)
	f.define(t, `
id: strict
version: 1
name: Strict
start: document
steps:
  - id: document
    type: document
    pages: [{side: front}]
    next: docreader
  - id: docreader
    type: docreader
    scenario: Mrz
    next: rule
  - id: rule
    type: rule
    cases:
      - when: docreader.fields["No such field"] == "x"
        decision: approved
    default:
      decision: rejected
`)
	id := f.newSession(t, "strict", nil, session.KindDocumentFront)
	handleUntilDone(t, f.eng, id)
	if s := f.session(t, id); s.Status != session.StatusError || s.Reason != "step rule: rule evaluation failed" {
		t.Errorf("session = %s %q, want error: rule evaluation failed", s.Status, s.Reason)
	}
}

// TestPlatformMatchThreshold: a face_match step without a threshold of its
// own takes the engine's (regula.faceAPI.matchThreshold), and the result
// records the threshold applied; a step's own threshold wins over it.
func TestPlatformMatchThreshold(t *testing.T) {
	noThreshold := strings.Replace(kycYAML, "    threshold: 0.8\n", "", 1)
	for _, tc := range []struct {
		name      string
		doc       string
		platform  float64
		want      float64
		wantState string
	}{
		{"platform threshold passes", noThreshold, 0.6, 0.6, definition.StepPassed},
		{"platform threshold fails", noThreshold, 0.7, 0.7, definition.StepFailed},
		{"default platform threshold fails", noThreshold, 0, engine.DefaultMatchThreshold, definition.StepFailed},
		{"the step's own threshold wins", kycYAML, 0.6, 0.8, definition.StepFailed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			f.define(t, tc.doc)
			f.fa.SetSimilarity(0.65)
			eng, err := engine.New(engine.Config{Backend: f.env.Backend, Barrier: f.env.Barrier, Definitions: f.defs, Audit: f.emitter,
				DocReader: f.drc, FaceAPI: f.fac, Files: f.files, Notifier: f.notifier, MatchThreshold: tc.platform})
			if err != nil {
				t.Fatal(err)
			}
			id := f.newSession(t, "kyc", nil, docAndSelfie...)
			handleUntilDone(t, eng, id)
			fm := f.run(t, id).Results["face-match"]
			if fm.Status != tc.wantState || fm.Threshold == nil || *fm.Threshold != tc.want || fm.Similarity == nil || *fm.Similarity != 0.65 {
				t.Errorf("face-match result = %+v (threshold %v), want %s at threshold %v", fm, fm.Threshold, tc.wantState, tc.want)
			}
		})
	}
	f := newFixture(t)
	for _, bad := range []float64{-0.1, 1.5} {
		if _, err := engine.New(engine.Config{Backend: f.env.Backend, Barrier: f.env.Barrier, Definitions: f.defs, Audit: f.emitter,
			DocReader: f.drc, FaceAPI: f.fac, Files: f.files, Notifier: f.notifier, MatchThreshold: bad}); err == nil {
			t.Errorf("engine.New(MatchThreshold %v) = nil error, want refused", bad)
		}
	}
}
