package httpapi

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/idvault/idvault/internal/audit"
	"github.com/idvault/idvault/internal/session"
	"github.com/idvault/idvault/internal/store"
	"github.com/idvault/idvault/internal/workflow"
	"github.com/idvault/idvault/internal/workflow/definition"
	"github.com/idvault/idvault/internal/workflow/engine"
)

// workflowView is one stored version of a workflow definition.
type workflowView struct {
	ID        string    `json:"id"`
	Version   int       `json:"version"`
	Name      string    `json:"name"`
	Hash      string    `json:"hash"`
	Active    bool      `json:"active"`
	CreatedAt time.Time `json:"createdAt"`
}

func toWorkflowView(s engine.Stored) workflowView {
	return workflowView{ID: s.Definition.ID, Version: s.Definition.Version, Name: s.Definition.Name, Hash: s.Hash,
		Active: s.Active, CreatedAt: s.CreatedAt}
}

// definitions returns the definitions store, or 503 when the process has
// none.
func (a *API) definitions() (*engine.Definitions, error) {
	if a.d.Definitions == nil {
		return nil, problem(http.StatusServiceUnavailable, "workflows-unavailable", "Workflows unavailable",
			"This process has no workflow engine.")
	}
	return a.d.Definitions, nil
}

// definitionMediaTypes are the media types of a definition document.
var definitionMediaTypes = []string{"application/json", "application/yaml", "application/x-yaml", "text/yaml"}

// definitionProblems turns definition.Parse's problems into the 422 answer,
// one error per problem with its field path (or "(document)") and a detail
// that ends with its line and column.
func definitionProblems(err error) *Problem {
	p := problem(http.StatusUnprocessableEntity, "invalid-workflow", "Invalid workflow definition",
		"The workflow definition is invalid; each error names the field and where it is in the document.")
	for _, dp := range definition.Problems(err) {
		field := dp.Path
		if field == "" {
			field = "(document)"
		}
		detail := dp.Msg
		switch {
		case dp.Line > 0 && dp.Col > 0:
			detail += fmt.Sprintf(" (line %d, column %d)", dp.Line, dp.Col)
		case dp.Line > 0:
			detail += fmt.Sprintf(" (line %d)", dp.Line)
		}
		p.Errors = append(p.Errors, FieldError{field, detail})
	}
	return p
}

func (a *API) createWorkflow(w http.ResponseWriter, r *http.Request) error {
	if err := a.decide(r, nil); err != nil {
		return err
	}
	defs, err := a.definitions()
	if err != nil {
		return err
	}
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || !slices.Contains(definitionMediaTypes, mt) {
		return problem(http.StatusUnsupportedMediaType, "unsupported-media-type", "Unsupported media type",
			"A workflow definition is application/json or application/yaml.")
	}
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, definition.MaxBytes))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return tooLarge(definition.MaxBytes)
		}
		return badRequest("The request body could not be read.")
	}
	def, err := definition.Parse(data)
	if err != nil {
		return definitionProblems(err)
	}
	if _, builtin := workflow.Lookup(def.ID); builtin {
		p := problem(http.StatusUnprocessableEntity, "invalid-workflow", "Invalid workflow definition",
			"The workflow definition is invalid; each error names the field and where it is in the document.")
		p.Errors = []FieldError{{"id", "names a built-in workflow"}}
		return p
	}
	tenant := principalOf(r.Context()).Tenant
	r, commit := a.change(r, audit.Event{Action: "workflow.create", Outcome: audit.Success, Resource: audit.Resource{Type: "workflow"},
		Details: map[string]string{"workflow": def.ID, "version": strconv.Itoa(def.Version), "hash": def.Hash()}}, engine.DefinitionsCollection)
	st, err := defs.Create(r.Context(), tenant, data)
	switch {
	case errors.Is(err, engine.ErrVersion), errors.Is(err, store.ErrConflict):
		return problem(http.StatusConflict, "version-conflict", "Version conflict",
			"The definition's version must be the next version of its id: 1 for a new id, else the latest stored version plus one.")
	case err != nil:
		return err
	}
	if err := commit(); err != nil {
		return err
	}
	w.Header().Set("Location", "/api/v1/workflows/"+st.Definition.ID+"/versions/"+strconv.Itoa(st.Definition.Version))
	return writeJSON(w, http.StatusCreated, toWorkflowView(st))
}

func (a *API) listWorkflows(w http.ResponseWriter, r *http.Request) error {
	if err := a.decide(r, nil); err != nil {
		return err
	}
	q := r.URL.Query()
	for key := range q {
		if key != "id" || len(q[key]) > 1 {
			return badRequest("The query is invalid.", FieldError{key, "unknown or repeated query parameter"})
		}
	}
	defs, err := a.definitions()
	if err != nil {
		return err
	}
	list, err := defs.List(r.Context(), principalOf(r.Context()).Tenant, q.Get("id"))
	if err != nil {
		return err
	}
	out := struct {
		Items []workflowView `json:"items"`
	}{Items: []workflowView{}}
	for _, st := range list {
		out.Items = append(out.Items, toWorkflowView(st))
	}
	return writeJSON(w, http.StatusOK, out)
}

// storedOr404 loads the version named in the path; a malformed, absent or
// other tenant's version is 404.
func (a *API) storedOr404(r *http.Request) (engine.Stored, error) {
	if err := a.decide(r, nil); err != nil {
		return engine.Stored{}, err
	}
	defs, err := a.definitions()
	if err != nil {
		return engine.Stored{}, err
	}
	version, err := strconv.Atoi(r.PathValue("version"))
	if err != nil || version < 1 || strconv.Itoa(version) != r.PathValue("version") {
		return engine.Stored{}, notFound()
	}
	st, err := defs.Get(r.Context(), principalOf(r.Context()).Tenant, r.PathValue("id"), version)
	if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrInvalid) {
		return engine.Stored{}, notFound()
	}
	return st, err
}

func (a *API) getWorkflow(w http.ResponseWriter, r *http.Request) error {
	st, err := a.storedOr404(r)
	if err != nil {
		return err
	}
	out := struct {
		workflowView
		Definition definition.Definition `json:"definition"`
	}{toWorkflowView(st), st.Definition}
	return writeJSON(w, http.StatusOK, out)
}

func (a *API) deactivateWorkflow(w http.ResponseWriter, r *http.Request) error {
	if err := drainEmpty(w, r); err != nil {
		return err
	}
	st, err := a.storedOr404(r)
	if err != nil {
		return err
	}
	id, version := st.Definition.ID, st.Definition.Version
	r, commit := a.change(r, audit.Event{Action: "workflow.deactivate", Outcome: audit.Success,
		Resource: audit.Resource{Type: "workflow", ID: id + "@" + strconv.Itoa(version)},
		Details:  map[string]string{"workflow": id, "version": strconv.Itoa(version)}}, engine.DefinitionsCollection)
	if err := a.d.Definitions.Deactivate(r.Context(), principalOf(r.Context()).Tenant, id, version); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return notFound()
		}
		return err
	}
	if err := commit(); err != nil {
		return err
	}
	st.Active = false
	return writeJSON(w, http.StatusOK, toWorkflowView(st))
}

// startWorkflow returns the workflow a new session on id starts on: a
// built-in one (builtin), or the active version of a stored definition
// (stored); ok is false when id names neither.
func (a *API) startWorkflow(r *http.Request, id string) (stored *engine.Stored, builtin, ok bool, err error) {
	if _, ok := workflow.Lookup(id); ok {
		return nil, true, true, nil
	}
	if a.d.Definitions == nil {
		return nil, false, false, nil
	}
	st, err := a.d.Definitions.Latest(r.Context(), principalOf(r.Context()).Tenant, id)
	if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrInvalid) {
		return nil, false, false, nil
	}
	if err != nil {
		return nil, false, false, err
	}
	return &st, false, true, nil
}

// maxReviewComment bounds a verifier's comment, in bytes.
const maxReviewComment = 2000

type reviewRequest struct {
	Decision string `json:"decision"`
	Comment  string `json:"comment"`
}

// notInReview is the answer to a decision on a session that waits for none.
func notInReview() *Problem {
	return problem(http.StatusConflict, "not-in-review", "Session not in review",
		"The session is not waiting for a verifier's decision.")
}

// reviewSession records a verifier's decision. A session of a stored
// definition is decided by the engine, which records the decision and its
// comment in the session's run and audits review.decision; a session of a
// built-in workflow is decided on its record here (the comment is not
// kept).
func (a *API) reviewSession(w http.ResponseWriter, r *http.Request) error {
	repo, s, err := a.getOr404(r)
	if err != nil {
		return err
	}
	var req reviewRequest
	if err := decodeJSON(w, r, a.d.Limits.MaxJSONBytes, &req); err != nil {
		return err
	}
	var fields []FieldError
	if req.Decision != "approve" && req.Decision != "reject" {
		fields = append(fields, FieldError{"decision", "must be approve or reject"})
	}
	if len(req.Comment) > maxReviewComment || strings.ContainsFunc(req.Comment, func(c rune) bool { return c < ' ' && c != '\n' }) {
		fields = append(fields, FieldError{"comment", fmt.Sprintf("at most %d bytes, no control characters but newlines", maxReviewComment)})
	}
	if len(fields) > 0 {
		return badRequest("The review is invalid.", fields...)
	}
	approve := req.Decision == "approve"
	decision := definition.Rejected
	if approve {
		decision = definition.Approved
	}
	tenant, reviewer := principalOf(r.Context()).Tenant, principalOf(r.Context()).ID
	if _, builtin := workflow.Lookup(s.WorkflowID); builtin {
		r, commit := a.change(r, audit.Event{Action: "review.decision", Outcome: audit.Success, Resource: audit.Resource{Type: "session", ID: s.ID},
			Details: map[string]string{"decision": decision}}, session.Collection)
		s, err = repo.Update(r.Context(), s.ID, a.d.Now(), func(s *session.Session) error {
			if s.Status != session.StatusReview {
				return notInReview()
			}
			s.Status, s.Reason = session.StatusRejected, "rejected by a verifier"
			if approve {
				s.Status, s.Reason = session.StatusApproved, "approved by a verifier"
			}
			return nil
		})
		if err != nil {
			return err
		}
		if err := commit(); err != nil {
			return err
		}
		return writeJSON(w, http.StatusOK, toSessionView(s))
	}
	if a.d.Workflows == nil {
		return problem(http.StatusServiceUnavailable, "workflows-unavailable", "Workflows unavailable",
			"This process has no workflow engine.")
	}
	err = a.d.Workflows.Decide(r.Context(), tenant, s.ID, reviewer, approve, req.Comment)
	switch {
	case errors.Is(err, engine.ErrNotInReview):
		return notInReview()
	case err != nil:
		// The decision may be recorded; the workflow role finishes the
		// session from it.
		if perr := a.d.WorkflowLocal.Publish(r.Context(), a.d.Broker, tenant, s.ID); perr != nil {
			a.d.Log.Warn("workflow message not published; the scheduler will republish", "requestId", requestID(r.Context()), "err", perr)
		}
		return err
	}
	s, err = repo.Get(r.Context(), s.ID)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, toSessionView(s))
}

// runView is a session's run as reviewers read it: where it stands and
// what each step produced. It holds personal data (DocReader's fields).
type runView struct {
	WorkflowID string                       `json:"workflowId"`
	Version    int                          `json:"version"`
	Hash       string                       `json:"hash"`
	Step       string                       `json:"step,omitempty"`
	Done       bool                         `json:"done"`
	Decision   string                       `json:"decision,omitempty"`
	Reason     string                       `json:"reason,omitempty"`
	Error      string                       `json:"error,omitempty"`
	LastError  string                       `json:"lastError,omitempty"`
	Results    map[string]engine.StepResult `json:"results"`
	Attempts   map[string]int               `json:"attempts"`
	Review     *engine.Review               `json:"review,omitempty"`
	CreatedAt  time.Time                    `json:"createdAt"`
	UpdatedAt  time.Time                    `json:"updatedAt"`
}

func (a *API) getRun(w http.ResponseWriter, r *http.Request) error {
	_, s, err := a.getOr404(r)
	if err != nil {
		return err
	}
	v, err := a.view(r)
	if err != nil {
		return err
	}
	var run engine.Run
	if _, err := v.Get(r.Context(), engine.RunsCollection, s.ID, &run); errors.Is(err, store.ErrNotFound) {
		return notFound()
	} else if err != nil {
		return err
	}
	if err := a.access(r, audit.Event{Action: "session.run.read", Outcome: audit.Success, Resource: audit.Resource{Type: "session", ID: s.ID}}); err != nil {
		return err
	}
	out := runView{WorkflowID: run.DefinitionID, Version: run.Version, Hash: run.Hash, Step: run.Step, Done: run.Done,
		Decision: run.Decision, Reason: run.Reason, Error: run.Error, LastError: run.LastError, Results: run.Results,
		Attempts: run.Attempts, Review: run.Review, CreatedAt: run.CreatedAt, UpdatedAt: run.UpdatedAt}
	if out.Results == nil {
		out.Results = map[string]engine.StepResult{}
	}
	if out.Attempts == nil {
		out.Attempts = map[string]int{}
	}
	return writeJSON(w, http.StatusOK, out)
}
