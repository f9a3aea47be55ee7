package httpapi_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/idvault/idvault/internal/audit"
	"github.com/idvault/idvault/internal/authz"
	"github.com/idvault/idvault/internal/httpapi"
	"github.com/idvault/idvault/internal/queue"
	"github.com/idvault/idvault/internal/regula/docreader"
	"github.com/idvault/idvault/internal/regula/faceapi"
	"github.com/idvault/idvault/internal/regula/httpx"
	"github.com/idvault/idvault/internal/regula/regulatest"
	"github.com/idvault/idvault/internal/server"
	"github.com/idvault/idvault/internal/workflow"
	"github.com/idvault/idvault/internal/workflow/engine"
)

// probeWorkflow is the smallest stored definition: the cross-tenant probe
// uses its id and version.
const probeWorkflow = `
id: probe-wf
version: 1
name: Probe
start: document
steps:
  - id: document
    type: document
    pages: [{side: front}]
    next: done
  - id: done
    type: decision
    decision: approved
`

// kycWorkflow collects a document and a selfie, reads the document with
// DocReader, matches the faces and sends every session to a verifier.
const kycWorkflow = `id: kyc
version: 1
name: KYC with review
start: document
steps:
  - id: document
    type: document
    pages: [{side: front}]
    next: selfie
  - id: selfie
    type: selfie
    next: docreader
  - id: docreader
    type: docreader
    scenario: FullProcess
    required_status: ok
    next: face-match
    on_fail: rejected
  - id: face-match
    type: face_match
    threshold: 0.8
    next: checks
    on_fail: rejected
  - id: checks
    type: rule
    cases:
      - when: face_match.similarity < 0.5
        decision: rejected
        reason: faces differ
    default:
      next: review
  - id: review
    type: review
    on_approve: approved
    on_reject: rejected
  - id: approved
    type: decision
    decision: approved
  - id: rejected
    type: decision
    decision: rejected
`

// workflowHarness is the API harness with a real engine whose Document
// Reader and Face API clients call regulatest stand-ins, and the workflow
// role that runs it.
type workflowHarness struct {
	*harness
	dr   *regulatest.DocReader
	fa   *regulatest.FaceAPI
	role *workflow.Role
}

func newWorkflowHarness(t *testing.T) *workflowHarness {
	t.Helper()
	w := &workflowHarness{dr: regulatest.NewDocReader(t, regulatest.Options{}), fa: regulatest.NewFaceAPI(t, regulatest.Options{})}
	cfg := func(url string) httpx.Config {
		return httpx.Config{URL: url, AllowLoopbackHTTP: true, Timeout: 10 * time.Second}
	}
	drc, err := docreader.New(cfg(w.dr.URL()), httpx.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(drc.Close)
	fac, err := faceapi.New(cfg(w.fa.URL()), httpx.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fac.Close)
	var eng *engine.Engine
	w.harness = newHarness(t, func(d *httpapi.Deps) {
		eng, err = engine.New(engine.Config{Backend: d.Backend, Barrier: d.Barrier, Definitions: d.Definitions, Audit: d.Audit,
			DocReader: drc, FaceAPI: fac, Files: d.Files, Notifier: server.Notifier{Webhooks: d.Webhooks}})
		if err != nil {
			t.Fatal(err)
		}
		d.Workflows = eng
	})
	w.role = workflow.NewRole(w.broker, w.backend, w.barrier, audit.NewEmitter(w.backend, w.barrier, w.clock.Now),
		slog.New(slog.DiscardHandler), w.clock.Now, 1).WithRunner(eng)
	return w
}

// handle runs the workflow role on a message about session id of tn, as
// the queue would deliver it.
func (w *workflowHarness) handle(t *testing.T, tn tenant, id string) {
	t.Helper()
	body, err := json.Marshal(workflow.Message{Tenant: tn.ID, Session: id})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.role.Handle(context.Background(), body); err != nil {
		t.Fatalf("workflow role Handle = %v, want nil", err)
	}
}

func (w *workflowHarness) status(t *testing.T, tn tenant, id string) string {
	t.Helper()
	res := w.do(t, "GET", "/api/v1/sessions/"+id, tn.Auth(), "", nil)
	wantStatus(t, res, http.StatusOK)
	return decodeJSON[sessionDoc](t, res).Status
}

type workflowDoc struct {
	ID         string          `json:"id"`
	Version    int             `json:"version"`
	Name       string          `json:"name"`
	Hash       string          `json:"hash"`
	Active     bool            `json:"active"`
	CreatedAt  time.Time       `json:"createdAt"`
	Definition json.RawMessage `json:"definition"`
}

type runDoc struct {
	WorkflowID string `json:"workflowId"`
	Version    int    `json:"version"`
	Step       string `json:"step"`
	Done       bool   `json:"done"`
	Decision   string `json:"decision"`
	Results    map[string]struct {
		Status        string            `json:"status"`
		OverallStatus *int              `json:"overallStatus"`
		DocumentType  string            `json:"documentType"`
		Fields        map[string]string `json:"fields"`
		Similarity    *float64          `json:"similarity"`
	} `json:"results"`
	Review *struct {
		Reviewer string `json:"reviewer"`
		Approved bool   `json:"approved"`
		Comment  string `json:"comment"`
	} `json:"review"`
}

// TestWorkflowEndToEnd defines a workflow through the API, runs a session
// on it against the DocReader and Face API stand-ins through the real
// clients and the workflow role, reads the run as a verifier and approves
// it; an integration key may not decide.
func TestWorkflowEndToEnd(t *testing.T) {
	w := newWorkflowHarness(t)
	res := w.do(t, "POST", "/api/v1/workflows", w.a.Auth(), "application/yaml", []byte(kycWorkflow))
	wantStatus(t, res, http.StatusCreated)
	def := decodeJSON[workflowDoc](t, res)
	if def.ID != "kyc" || def.Version != 1 || len(def.Hash) != 64 || !def.Active {
		t.Fatalf("created workflow = %+v, want kyc version 1, active, with a hash", def)
	}
	if loc := res.header.Get("Location"); loc != "/api/v1/workflows/kyc/versions/1" {
		t.Errorf("Location = %q, want /api/v1/workflows/kyc/versions/1", loc)
	}
	wantProblem(t, w.do(t, "POST", "/api/v1/workflows", w.a.Auth(), "application/yaml", []byte(kycWorkflow)), http.StatusConflict, "version-conflict")

	res = w.do(t, "GET", "/api/v1/workflows/kyc/versions/1", w.a.Auth(), "", nil)
	wantStatus(t, res, http.StatusOK)
	got := decodeJSON[workflowDoc](t, res)
	if got.Hash != def.Hash || !strings.Contains(string(got.Definition), `"face_match"`) {
		t.Errorf("GET version = %+v, want the canonical definition with hash %s", got, def.Hash)
	}

	_, integKey := w.newKey(t, w.a.ID, []string{authz.RoleIntegration}, nil)
	_, verifierKey := w.newKey(t, w.a.ID, []string{authz.RoleVerifier}, nil)
	integT := tenant{ID: w.a.ID, Key: integKey}
	integ, verifier := integT.Auth(), "ApiKey "+verifierKey
	s := w.createSession(t, integT, `{"workflowId":"kyc"}`)
	if s.WorkflowID != "kyc" || s.Status != "pending" {
		t.Fatalf("session = %+v, want a pending kyc session", s)
	}
	w.handle(t, w.a, s.ID)
	w.upload(t, integT, s.ID, "document_front", "image/jpeg", testJPEG(t, 64, 80))
	w.handle(t, w.a, s.ID)
	if st := w.status(t, w.a, s.ID); st != "in_progress" {
		t.Fatalf("status after the document = %s, want in_progress (waiting for the selfie)", st)
	}
	w.upload(t, integT, s.ID, "selfie", "image/jpeg", testJPEG(t, 48, 48))
	w.handle(t, w.a, s.ID)
	if st := w.status(t, w.a, s.ID); st != "review" {
		t.Fatalf("status after the selfie = %s, want review", st)
	}
	if w.dr.Requests() != 1 || w.fa.Requests() != 1 {
		t.Errorf("stand-in requests = DocReader %d, Face API %d; want 1 each", w.dr.Requests(), w.fa.Requests())
	}

	res = w.do(t, "GET", "/api/v1/sessions/"+s.ID+"/run", verifier, "", nil)
	wantStatus(t, res, http.StatusOK)
	run := decodeJSON[runDoc](t, res)
	dr, fm := run.Results["docreader"], run.Results["face-match"]
	if run.WorkflowID != "kyc" || run.Version != 1 || run.Step != "review" || run.Done {
		t.Errorf("run = %+v, want kyc version 1 at step review", run)
	}
	if dr.Status != "passed" || dr.OverallStatus == nil || dr.DocumentType == "" || len(dr.Fields) == 0 {
		t.Errorf("docreader result = %+v, want passed with status, document type and fields", dr)
	}
	if fm.Status != "passed" || fm.Similarity == nil || *fm.Similarity < 0.8 {
		t.Errorf("face-match result = %+v, want passed with a similarity of at least 0.8", fm)
	}
	if ev := w.auditEvent(t, w.a.ID, res.header.Get("X-Request-Id"), "session.run.read"); ev.Resource.ID != s.ID {
		t.Errorf("session.run.read event resource = %+v, want session %s", ev.Resource, s.ID)
	}

	review := func(auth, body string) response {
		return w.do(t, "POST", "/api/v1/sessions/"+s.ID+"/review", auth, "application/json", []byte(body))
	}
	wantProblem(t, review(integ, `{"decision":"approve"}`), http.StatusForbidden, "forbidden")
	wantField(t, wantProblem(t, review(verifier, `{"decision":"maybe"}`), http.StatusBadRequest, "invalid-request"), "decision")
	res = review(verifier, `{"decision":"approve","comment":"document and face checked"}`)
	wantStatus(t, res, http.StatusOK)
	if st := decodeJSON[sessionDoc](t, res).Status; st != "approved" {
		t.Fatalf("status after approval = %s, want approved", st)
	}
	wantProblem(t, review(verifier, `{"decision":"reject"}`), http.StatusConflict, "not-in-review")
	run = decodeJSON[runDoc](t, w.do(t, "GET", "/api/v1/sessions/"+s.ID+"/run", verifier, "", nil))
	if !run.Done || run.Decision != "approved" || run.Review == nil || !run.Review.Approved || run.Review.Comment != "document and face checked" {
		t.Errorf("run after approval = %+v, want done, approved, with the review", run)
	}
	// The integration reads the sessions it created, their run included.
	wantStatus(t, w.do(t, "GET", "/api/v1/sessions/"+s.ID+"/run", integ, "", nil), http.StatusOK)

	// A deactivated version starts no session.
	wantStatus(t, w.do(t, "POST", "/api/v1/workflows/kyc/versions/1/deactivate", w.a.Auth(), "", nil), http.StatusOK)
	res = w.do(t, "POST", "/api/v1/sessions", w.a.Auth(), "application/json", []byte(`{"workflowId":"kyc"}`))
	wantField(t, wantProblem(t, res, http.StatusBadRequest, "invalid-request"), "workflowId")
	list := decodeJSON[struct{ Items []workflowDoc }](t, w.do(t, "GET", "/api/v1/workflows", w.a.Auth(), "", nil))
	if len(list.Items) != 1 || list.Items[0].Active {
		t.Errorf("workflows = %+v, want kyc version 1, inactive", list.Items)
	}
}

// TestWorkflowInvalidDefinition: a definition with mistakes is refused
// with 422 invalid-workflow, each error naming the field and its line.
func TestWorkflowInvalidDefinition(t *testing.T) {
	h := newHarness(t)
	bad := strings.Replace(kycWorkflow, "threshold: 0.8", "threshold: 7", 1)
	res := h.do(t, "POST", "/api/v1/workflows", h.a.Auth(), "application/yaml", []byte(bad))
	p := wantProblem(t, res, http.StatusUnprocessableEntity, "invalid-workflow")
	wantField(t, p, "steps[3].threshold")
	for _, e := range p.Errors {
		if e.Field == "steps[3].threshold" && !strings.Contains(e.Detail, "(line 21, column") {
			t.Errorf("threshold error detail = %q, want its position (line 21)", e.Detail)
		}
	}
	res = h.do(t, "POST", "/api/v1/workflows", h.a.Auth(), "application/yaml", []byte(strings.Replace(probeWorkflow, "probe-wf", "document-selfie-review", 1)))
	wantField(t, wantProblem(t, res, http.StatusUnprocessableEntity, "invalid-workflow"), "id")
	wantProblem(t, h.do(t, "POST", "/api/v1/workflows", h.a.Auth(), "text/plain", []byte(probeWorkflow)), http.StatusUnsupportedMediaType, "unsupported-media-type")
	wantProblem(t, h.do(t, "GET", "/api/v1/workflows/probe-wf/versions/01", h.a.Auth(), "", nil), http.StatusNotFound, "not-found")
	// An auditor may not define workflows.
	_, key := h.newKey(t, h.a.ID, []string{authz.RoleAuditor}, nil)
	wantProblem(t, h.do(t, "POST", "/api/v1/workflows", "ApiKey "+key, "application/yaml", []byte(probeWorkflow)), http.StatusForbidden, "forbidden")
	res = h.do(t, "POST", "/api/v1/sessions", h.a.Auth(), "application/json", []byte(`{"workflowId":"probe-wf"}`))
	wantField(t, wantProblem(t, res, http.StatusBadRequest, "invalid-request"), "workflowId")
}

// TestReviewBuiltin: a session of the built-in workflow in review is
// decided on its record; the decision is audited.
func TestReviewBuiltin(t *testing.T) {
	h := newHarness(t)
	s := h.createSession(t, h.a, `{}`)
	_, key := h.newKey(t, h.a.ID, []string{authz.RoleVerifier}, nil)
	verifier := "ApiKey " + key
	path := "/api/v1/sessions/" + s.ID + "/review"
	wantProblem(t, h.do(t, "POST", path, verifier, "application/json", []byte(`{"decision":"reject"}`)), http.StatusConflict, "not-in-review")
	wantProblem(t, h.do(t, "GET", "/api/v1/sessions/"+s.ID+"/run", verifier, "", nil), http.StatusNotFound, "not-found")
	h.setStatus(t, h.a, s.ID, "review")
	res := h.do(t, "POST", path, verifier, "application/json", []byte(`{"decision":"reject","comment":"blurred"}`))
	wantStatus(t, res, http.StatusOK)
	if st := decodeJSON[sessionDoc](t, res).Status; st != "rejected" {
		t.Fatalf("status = %s, want rejected", st)
	}
	ev := h.auditEvent(t, h.a.ID, res.header.Get("X-Request-Id"), "review.decision")
	if ev.Details["decision"] != "rejected" || ev.Resource.ID != s.ID {
		t.Errorf("review.decision event = %+v, want decision rejected on the session", ev)
	}
}

// TestWorkflowPinnedAtCreate: a session of a stored definition holds its
// run, pinned to the active version, from its create on; one that starts
// by waiting for the person's files is handed to the workflow role only by
// the upload that completes its collecting steps (the uploads before it
// move the run themselves), one that starts with an automated step at
// once. A version stored afterwards does not move it.
func TestWorkflowPinnedAtCreate(t *testing.T) {
	w := newWorkflowHarness(t)
	queued := func() int {
		t.Helper()
		var n int
		if err := w.db.QueryRow(`SELECT COUNT(*) FROM queue_messages WHERE topic = ?`, queue.TopicWorkflow).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	wantStatus(t, w.do(t, "POST", "/api/v1/workflows", w.a.Auth(), "application/yaml", []byte(kycWorkflow)), http.StatusCreated)
	before := queued()
	s := w.createSession(t, w.a, `{"workflowId":"kyc"}`)
	if n := queued(); n != before {
		t.Errorf("workflow messages after creating a session waiting for its document = %d, want %d (none published)", n, before)
	}
	run := decodeJSON[runDoc](t, w.do(t, "GET", "/api/v1/sessions/"+s.ID+"/run", w.a.Auth(), "", nil))
	if run.WorkflowID != "kyc" || run.Version != 1 || run.Step != "document" || run.Done {
		t.Fatalf("run right after create = %+v, want kyc version 1 at step document", run)
	}

	// Version 2 is stored: the session stays on version 1.
	wantStatus(t, w.do(t, "POST", "/api/v1/workflows", w.a.Auth(), "application/yaml",
		[]byte(strings.Replace(kycWorkflow, "version: 1", "version: 2", 1))), http.StatusCreated)
	// The document's upload completes the document step itself and leaves
	// the session waiting for the selfie: no message for the workflow role,
	// the session in_progress, audited as the engine would.
	res := w.do(t, "POST", "/api/v1/sessions/"+s.ID+"/files?kind=document_front", w.a.Auth(), "image/jpeg", testJPEG(t, 64, 80))
	wantStatus(t, res, http.StatusCreated)
	if n := queued(); n != before {
		t.Errorf("workflow messages after the document = %d, want %d (none published)", n, before)
	}
	if run := decodeJSON[runDoc](t, w.do(t, "GET", "/api/v1/sessions/"+s.ID+"/run", w.a.Auth(), "", nil)); run.Version != 1 || run.Step != "selfie" {
		t.Errorf("run after the document = %+v, want version 1 at step selfie", run)
	}
	if st := w.status(t, w.a, s.ID); st != "in_progress" {
		t.Errorf("status after the document = %s, want in_progress", st)
	}
	ev := w.auditEvent(t, w.a.ID, res.header.Get("X-Request-Id"), "session.advance")
	if ev.Actor.ID != "workflow" || ev.Resource.ID != s.ID || ev.Details["status"] != "in_progress" {
		t.Errorf("session.advance event = %+v, want the workflow's, in_progress", ev)
	}
	// The selfie completes the last collecting step: the session goes to
	// the workflow role for DocReader.
	w.upload(t, w.a, s.ID, "selfie", "image/jpeg", testJPEG(t, 64, 80))
	if n := queued(); n != before+1 {
		t.Errorf("workflow messages after the selfie = %d, want %d", n, before+1)
	}
	if run := decodeJSON[runDoc](t, w.do(t, "GET", "/api/v1/sessions/"+s.ID+"/run", w.a.Auth(), "", nil)); run.Version != 1 || run.Step != "docreader" {
		t.Errorf("run after the selfie = %+v, want version 1 at step docreader", run)
	}
	w.handle(t, w.a, s.ID)
	if st := w.status(t, w.a, s.ID); st != "review" {
		t.Errorf("status after the workflow role = %s, want review", st)
	}

	// A definition that starts with an automated step is handed over at
	// once.
	livenessFirst := `id: live
version: 1
name: Liveness first
start: liveness
steps:
  - id: liveness
    type: liveness
    next: approved
    on_fail: rejected
  - id: approved
    type: decision
    decision: approved
  - id: rejected
    type: decision
    decision: rejected
`
	wantStatus(t, w.do(t, "POST", "/api/v1/workflows", w.a.Auth(), "application/yaml", []byte(livenessFirst)), http.StatusCreated)
	before = queued()
	w.createSession(t, w.a, `{"workflowId":"live"}`)
	if n := queued(); n != before+1 {
		t.Errorf("workflow messages after creating a session starting with liveness = %d, want %d", n, before+1)
	}
}
