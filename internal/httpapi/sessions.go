package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"time"

	"github.com/idvault/idvault/internal/audit"
	"github.com/idvault/idvault/internal/authz"
	"github.com/idvault/idvault/internal/identity"
	"github.com/idvault/idvault/internal/media"
	"github.com/idvault/idvault/internal/pii"
	"github.com/idvault/idvault/internal/session"
	"github.com/idvault/idvault/internal/store"
	"github.com/idvault/idvault/internal/webhook"
	"github.com/idvault/idvault/internal/workflow"
	"github.com/idvault/idvault/internal/workflow/engine"
)

// maxMetadataBytes bounds the metadata object of a session.
const maxMetadataBytes = 16 << 10

var localePattern = regexp.MustCompile(`^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8}){0,3}$`)

type createSessionRequest struct {
	WorkflowID *string         `json:"workflowId"`
	Metadata   json.RawMessage `json:"metadata"`
	Locale     *string         `json:"locale"`
	TTL        *int64          `json:"ttl"`
}

type fileView struct {
	ID          string          `json:"id"`
	Kind        string          `json:"kind"`
	Size        int64           `json:"size"`
	SHA256      string          `json:"sha256"`
	ContentType string          `json:"contentType"`
	Width       int             `json:"width,omitempty"`
	Height      int             `json:"height,omitempty"`
	CreatedAt   time.Time       `json:"createdAt"`
	Quarantined *quarantineView `json:"quarantined,omitempty"`
}

// quarantineView says when and why a file was quarantined; who found it
// stays in the audit log.
type quarantineView struct {
	At     time.Time `json:"at"`
	Reason string    `json:"reason"`
}

type sessionView struct {
	ID         string          `json:"id"`
	WorkflowID string          `json:"workflowId"`
	Status     string          `json:"status"`
	Locale     string          `json:"locale,omitempty"`
	Metadata   json.RawMessage `json:"metadata,omitempty"`
	CreatedAt  time.Time       `json:"createdAt"`
	UpdatedAt  time.Time       `json:"updatedAt"`
	ExpiresAt  time.Time       `json:"expiresAt"`
	// StepDeadline is when the workflow step the session waits at times
	// out, if it has a timeout.
	StepDeadline *time.Time `json:"stepDeadline,omitempty"`
	Reason       string     `json:"reason,omitempty"`
	Files        []fileView `json:"files"`
}

func toFileView(f session.File) fileView {
	v := fileView{ID: f.ID, Kind: string(f.Kind), Size: f.Sealed.Size, SHA256: f.Sealed.PlainSHA256.String(),
		ContentType: f.ContentType, Width: f.Width, Height: f.Height, CreatedAt: f.CreatedAt}
	if q := f.Quarantined; q != nil {
		v.Quarantined = &quarantineView{At: q.At, Reason: string(q.Reason)}
	}
	return v
}

func toSessionView(s *session.Session) sessionView {
	v := sessionView{ID: s.ID, WorkflowID: s.WorkflowID, Status: string(s.Status), Locale: s.Locale, Metadata: s.Metadata.Value(),
		CreatedAt: s.CreatedAt, UpdatedAt: s.UpdatedAt, ExpiresAt: s.ExpiresAt, Reason: s.Reason, Files: []fileView{}}
	for _, f := range s.Files {
		v.Files = append(v.Files, toFileView(f))
	}
	if !s.StepDeadline.IsZero() && s.Status != session.StatusExpired {
		d := s.StepDeadline
		v.StepDeadline = &d
	}
	return v
}

func (a *API) repo(r *http.Request) (*session.Repo, error) {
	v, err := a.view(r)
	if err != nil {
		return nil, err
	}
	return session.NewRepo(v), nil
}

func (a *API) createSession(w http.ResponseWriter, r *http.Request) error {
	if err := a.decide(r, nil); err != nil {
		return err
	}
	var req createSessionRequest
	if err := decodeJSON(w, r, a.d.Limits.MaxJSONBytes, &req); err != nil {
		return err
	}
	now := a.d.Now().UTC()
	s := &session.Session{
		ID:         identity.NewID(),
		WorkflowID: workflow.DefaultID,
		Status:     session.StatusPending,
		CreatedBy:  principalOf(r.Context()).ID,
		CreatedAt:  now,
		UpdatedAt:  now,
		Files:      []session.File{},
	}
	var fields []FieldError
	var stored *engine.Stored
	if req.WorkflowID != nil {
		var ok bool
		var err error
		stored, _, ok, err = a.startWorkflow(r, *req.WorkflowID)
		if err != nil {
			return err
		}
		if !ok {
			fields = append(fields, FieldError{"workflowId", "unknown workflow, or no active version"})
		}
		s.WorkflowID = *req.WorkflowID
	}
	if len(req.Metadata) > 0 && !bytes.Equal(req.Metadata, []byte("null")) {
		switch {
		case len(req.Metadata) > maxMetadataBytes:
			fields = append(fields, FieldError{"metadata", fmt.Sprintf("larger than %d bytes", maxMetadataBytes)})
		case req.Metadata[0] != '{':
			fields = append(fields, FieldError{"metadata", "must be a JSON object"})
		default:
			s.Metadata = pii.JSON(req.Metadata)
		}
	}
	if req.Locale != nil {
		if !localePattern.MatchString(*req.Locale) {
			fields = append(fields, FieldError{"locale", "must be a language tag such as en or pt-BR"})
		}
		s.Locale = *req.Locale
	}
	ttl := a.d.Limits.DefaultTTL
	if req.TTL != nil {
		if *req.TTL < 60 || *req.TTL > int64(a.d.Limits.MaxTTL/time.Second) {
			fields = append(fields, FieldError{"ttl", fmt.Sprintf("must be between 60 and %d seconds", int64(a.d.Limits.MaxTTL/time.Second))})
		} else {
			ttl = time.Duration(*req.TTL) * time.Second
		}
	}
	if len(fields) > 0 {
		return badRequest("The session request is invalid.", fields...)
	}
	s.ExpiresAt = now.Add(ttl)
	v, err := a.view(r)
	if err != nil {
		return err
	}
	repo := session.NewRepo(v)
	// The session's data key is stored with the session, in its create's
	// transaction, rather than on its own before it.
	ctx, keyWrites, keyCommitted, err := a.d.Keys.NewScope(r.Context(), principalOf(r.Context()).Tenant, s.ID)
	if err != nil {
		return err
	}
	ctx, _ = store.Attach(ctx, session.Collection, func(store.Write) ([]store.Write, error) { return keyWrites, nil })
	r = r.WithContext(ctx)
	r, commit := a.change(r, audit.Event{Action: "session.create", Outcome: audit.Success, Resource: audit.Resource{Type: "session"}}, session.Collection)
	// A session of a stored definition is pinned to its active version in
	// the create's transaction. Unless it waits for the person's files
	// first, it is handed to the workflow role at once; the Advance flag
	// makes the scheduler republish a message that gets lost.
	handOver := false
	if stored != nil {
		ctx, waits, err := engine.Start(r.Context(), v, *stored, s, now)
		if err != nil {
			return err
		}
		r, handOver = r.WithContext(ctx), !waits
		s.Advance = handOver
	}
	r, published, err := a.announce(r, webhook.EventSessionCreated, s)
	if err != nil {
		return err
	}
	if err := repo.Create(r.Context(), s); err != nil {
		return err
	}
	keyCommitted()
	published(r.Context())
	if handOver {
		if err := a.d.WorkflowLocal.PublishWritten(r.Context(), a.d.Broker, principalOf(r.Context()).Tenant, s); err != nil {
			a.d.Log.Warn("workflow message not published; the scheduler will republish", "requestId", requestID(r.Context()), "err", err)
		}
	}
	if err := commit(); err != nil {
		return err
	}
	w.Header().Set("Location", "/api/v1/sessions/"+s.ID)
	return writeJSON(w, http.StatusCreated, toSessionView(s))
}

// announce returns r carrying the webhook event typ about s, for the
// tenant's subscribers: it commits with the next write to the session
// collection (webhook.Service.Attach), so it is sent if and only if that
// write is made. Call published once it is.
func (a *API) announce(r *http.Request, typ webhook.EventType, s *session.Session) (*http.Request, func(context.Context), error) {
	if a.d.Webhooks == nil {
		return r, func(context.Context) {}, nil
	}
	ev := webhook.Event{ID: s.ID + "." + string(typ), Type: typ, CreatedAt: s.UpdatedAt,
		Data: webhook.Data{SessionID: s.ID, Status: s.Status, WorkflowID: s.WorkflowID}}
	ctx, published, err := a.d.Webhooks.Attach(r.Context(), principalOf(r.Context()).Tenant, session.Collection, ev)
	if err != nil {
		return nil, nil, err
	}
	return r.WithContext(ctx), published, nil
}

// getOr404 loads the session named in the path; an absent or malformed id is
// 404, exactly as another tenant's id.
func (a *API) getOr404(r *http.Request) (*session.Repo, *session.Session, error) {
	repo, err := a.repo(r)
	if err != nil {
		return nil, nil, err
	}
	s, err := repo.Get(r.Context(), r.PathValue("id"))
	if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrInvalid) {
		return nil, nil, notFound()
	}
	if err != nil {
		return nil, nil, err
	}
	rec := sessionRecord(principalOf(r.Context()).Tenant, s)
	if err := a.decide(r, &rec); err != nil {
		return nil, nil, err
	}
	return repo, s, nil
}

// sessionRecord is what authorization knows of a session (and of its
// files): its owner, the principal that created it.
func sessionRecord(tenant string, s *session.Session) authz.Record {
	return authz.Record{Tenant: tenant, ID: s.ID, Owner: s.CreatedBy, Restricted: s.Restricted}
}

func (a *API) getSession(w http.ResponseWriter, r *http.Request) error {
	_, s, err := a.getOr404(r)
	if err != nil {
		return err
	}
	if err := a.access(r, audit.Event{Action: "session.read", Outcome: audit.Success, Resource: audit.Resource{Type: "session", ID: s.ID}}); err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, toSessionView(s))
}

func (a *API) listSessions(w http.ResponseWriter, r *http.Request) error {
	if err := a.decide(r, nil); err != nil {
		return err
	}
	q := r.URL.Query()
	var f session.Filter
	var fields []FieldError
	for key := range q {
		switch key {
		case "status", "createdAfter", "createdBefore", "cursor", "limit":
			if len(q[key]) > 1 {
				fields = append(fields, FieldError{key, "given more than once"})
			}
		default:
			fields = append(fields, FieldError{key, "unknown query parameter"})
		}
	}
	if v := q.Get("status"); v != "" {
		f.Status = session.Status(v)
		if !f.Status.Valid() {
			fields = append(fields, FieldError{"status", "unknown status"})
		}
	}
	for _, tc := range []struct {
		key string
		dst *time.Time
	}{{"createdAfter", &f.CreatedAfter}, {"createdBefore", &f.CreatedBefore}} {
		if v := q.Get(tc.key); v != "" {
			t, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				fields = append(fields, FieldError{tc.key, "must be an RFC 3339 timestamp"})
			}
			*tc.dst = t
		}
	}
	f.Limit = 20
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 100 {
			fields = append(fields, FieldError{"limit", "must be an integer from 1 to 100"})
		}
		f.Limit = n
	}
	f.Cursor = q.Get("cursor")
	if len(fields) > 0 {
		return badRequest("The query is invalid.", fields...)
	}
	repo, err := a.repo(r)
	if err != nil {
		return err
	}
	list, next, err := repo.List(r.Context(), f)
	if errors.Is(err, store.ErrInvalid) {
		return badRequest("The cursor is invalid.", FieldError{"cursor", "not a cursor of this query"})
	}
	if err != nil {
		return err
	}
	out := struct {
		Items      []sessionView `json:"items"`
		NextCursor string        `json:"nextCursor,omitempty"`
	}{Items: []sessionView{}, NextCursor: next}
	tenant := principalOf(r.Context()).Tenant
	for _, s := range list {
		if visible(r, sessionRecord(tenant, s)) {
			out.Items = append(out.Items, toSessionView(s))
		}
	}
	if err := a.access(r, audit.Event{Action: "session.list", Outcome: audit.Success, Resource: audit.Resource{Type: "session"},
		Details: map[string]string{"count": strconv.Itoa(len(out.Items))}}); err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, out)
}

func (a *API) cancelSession(w http.ResponseWriter, r *http.Request) error {
	if err := drainEmpty(w, r); err != nil {
		return err
	}
	repo, s, err := a.getOr404(r)
	if err != nil {
		return err
	}
	r, commit := a.change(r, audit.Event{Action: "session.cancel", Outcome: audit.Success, Resource: audit.Resource{Type: "session", ID: s.ID}}, session.Collection)
	s, err = repo.Update(r.Context(), s.ID, a.d.Now(), func(s *session.Session) error {
		if s.Status == session.StatusCancelled {
			return session.ErrUnchanged
		}
		if !s.Status.Open() && s.Status != session.StatusReview {
			return problem(http.StatusConflict, "invalid-state", "Session cannot be cancelled",
				"A session in status "+string(s.Status)+" cannot be cancelled.")
		}
		s.Status, s.Reason, s.Advance = session.StatusCancelled, "cancelled by request", false
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

// deleteSession deletes a session for good: the record goes, the session's
// data key is shredded (so its record and files are unreadable even from a
// backup), then the stored objects are removed. A crash between the steps
// leaves only unreadable leftovers, which the scheduler's sweep removes.
func (a *API) deleteSession(w http.ResponseWriter, r *http.Request) error {
	if err := drainEmpty(w, r); err != nil {
		return err
	}
	repo, s, err := a.getOr404(r)
	if err != nil {
		return err
	}
	r, commit := a.change(r, audit.Event{Action: "session.delete", Outcome: audit.Success, Resource: audit.Resource{Type: "session", ID: s.ID},
		Details: map[string]string{"files": strconv.Itoa(len(s.Files))}}, session.Collection)
	err = session.Destroy(r.Context(), repo, a.d.Keys, a.d.Files, principalOf(r.Context()).Tenant, s)
	switch {
	case errors.Is(err, store.ErrConflict):
		return problem(http.StatusConflict, "conflict", "Session changed",
			"The session changed while it was being deleted; try again.")
	case errors.Is(err, store.ErrNotFound):
		return notFound()
	case errors.Is(err, session.ErrObjectsLeft):
		a.d.Log.Warn("delete session file; the sweep will remove it", "requestId", requestID(r.Context()), "err", err)
	case err != nil:
		return err
	}
	if err := commit(); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// drainEmpty rejects a body on a request that takes none.
func drainEmpty(w http.ResponseWriter, r *http.Request) error {
	n, err := io.Copy(io.Discard, http.MaxBytesReader(w, r.Body, 1<<10))
	if err != nil || n > 0 {
		return badRequest("This operation takes no request body.")
	}
	return nil
}

func (a *API) uploadFile(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	for key := range q {
		if key != "kind" {
			return badRequest("The query is invalid.", FieldError{key, "unknown query parameter"})
		}
	}
	kind := session.FileKind(q.Get("kind"))
	if !kind.Valid() || len(q["kind"]) > 1 {
		return badRequest("The query is invalid.", FieldError{"kind", "must be document_front, document_back, selfie or attachment"})
	}
	repo, s, err := a.getOr404(r)
	if err != nil {
		return err
	}
	if err := acceptsFiles(s, a.d.Now()); err != nil {
		return err
	}
	if r.ContentLength > a.d.Limits.MaxUploadBytes {
		return tooLarge(a.d.Limits.MaxUploadBytes)
	}
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, a.d.Limits.MaxUploadBytes))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return tooLarge(a.d.Limits.MaxUploadBytes)
		}
		return badRequest("The request body could not be read.")
	}
	if len(data) == 0 {
		return badRequest("The file is empty.")
	}
	info, err := a.checkMedia(r, data)
	if err != nil {
		return err
	}
	tenant := principalOf(r.Context()).Tenant
	f := session.File{ID: identity.NewID(), Kind: kind, ContentType: info.ContentType, Width: info.Width, Height: info.Height, CreatedAt: a.d.Now().UTC()}
	ref := s.FileRef(tenant, f.ID)
	f.Sealed, err = a.d.Files.Put(r.Context(), ref, bytes.NewReader(data), a.d.Limits.MaxUploadBytes)
	if err != nil {
		return fmt.Errorf("store file: %w", err)
	}
	r, commit := a.change(r, audit.Event{Action: "file.upload", Outcome: audit.Success, Resource: audit.Resource{Type: "file", ID: f.ID},
		Details: map[string]string{"session": s.ID, "kind": string(kind), "size": strconv.FormatInt(f.Sealed.Size, 10)}}, session.Collection)
	collect, r, err := a.collector(r, tenant, s)
	if err != nil {
		return err
	}
	var collected engine.Collected
	s, err = repo.UpdateFrom(r.Context(), s, a.d.Now(), func(s *session.Session) error {
		if err := acceptsFiles(s, a.d.Now()); err != nil {
			return err
		}
		s.Files = append(s.Files, f)
		s.Advance = true
		collected, err = collect(r.Context(), s)
		return err
	})
	if err != nil {
		if derr := a.d.Files.Delete(context.WithoutCancel(r.Context()), ref); derr != nil {
			a.d.Log.Warn("remove unrecorded file", "requestId", requestID(r.Context()), "err", derr)
		}
		if errors.Is(err, store.ErrNotFound) {
			return notFound()
		}
		return err
	}
	if !collected.Waits {
		if err := a.d.WorkflowLocal.PublishWritten(r.Context(), a.d.Broker, tenant, s); err != nil {
			a.d.Log.Warn("workflow message not published; the scheduler will republish", "requestId", requestID(r.Context()), "err", err)
		}
	}
	if err := commit(); err != nil {
		return err
	}
	w.Header().Set("Location", "/api/v1/sessions/"+s.ID+"/files/"+f.ID)
	return writeJSON(w, http.StatusCreated, toFileView(f))
}

// collector returns the function an upload to session s runs on the
// session it is about to write (engine.Collect), and r carrying what that
// function's outcome commits with the session's write: the run's update and
// the session.advance audit event, made as the workflow role's. A session
// of a built-in workflow, or an API without stored definitions, gets a
// function that collects nothing.
func (a *API) collector(r *http.Request, tenant string, s *session.Session) (func(context.Context, *session.Session) (engine.Collected, error), *http.Request, error) {
	if _, builtin := workflow.Lookup(s.WorkflowID); builtin || a.d.Definitions == nil {
		return func(context.Context, *session.Session) (engine.Collected, error) { return engine.Collected{}, nil }, r, nil
	}
	v, err := a.view(r)
	if err != nil {
		return nil, nil, err
	}
	var last engine.Collected
	ctx, _ := store.Attach(r.Context(), session.Collection, func(store.Write) ([]store.Write, error) { return last.Writes, nil })
	ctx, _ = a.d.Audit.AttachIf(ctx, session.Collection, func(main store.Write) (audit.Event, bool) {
		details := map[string]string{"status": main.Record.Index["status"]}
		if last.Step != "" {
			details["step"] = last.Step
		}
		return audit.Event{Tenant: tenant, Actor: audit.Actor{Type: "system", ID: "workflow"}, Action: "session.advance",
			Outcome: audit.Success, Resource: audit.Resource{Type: "session", ID: s.ID}, RequestID: requestID(r.Context()),
			Details: details}, last.Advanced
	})
	collect := func(ctx context.Context, s *session.Session) (engine.Collected, error) {
		var err error
		last, err = engine.Collect(ctx, v, a.d.Definitions, s, a.d.Now())
		return last, err
	}
	return collect, r.WithContext(ctx), nil
}

// checkMedia runs media.Check on an upload, at most GOMAXPROCS at once.
func (a *API) checkMedia(r *http.Request, data []byte) (media.Info, error) {
	select {
	case a.checks <- struct{}{}:
	case <-r.Context().Done():
		return media.Info{}, r.Context().Err()
	}
	defer func() { <-a.checks }()
	info, err := media.Check(data, r.Header.Get("Content-Type"), media.Limits{MaxBytes: a.d.Limits.MaxUploadBytes, MaxPixels: a.d.Limits.MaxImagePixels})
	if err != nil {
		return media.Info{}, mediaProblem(err)
	}
	return info, nil
}

func acceptsFiles(s *session.Session, now time.Time) error {
	if s.Status.Open() && !now.Before(s.ExpiresAt) {
		return problem(http.StatusConflict, "invalid-state", "Session expired",
			"The session expired at "+s.ExpiresAt.UTC().Format(time.RFC3339)+" and accepts no files.")
	}
	if !s.Status.Open() {
		return problem(http.StatusConflict, "invalid-state", "Session closed",
			"A session in status "+string(s.Status)+" accepts no files.")
	}
	if len(s.Files) >= session.MaxFiles {
		return problem(http.StatusConflict, "too-many-files", "Too many files",
			fmt.Sprintf("A session holds at most %d files.", session.MaxFiles))
	}
	return nil
}

// fileTampered is the answer to every download of a file whose stored
// object failed verification, now or earlier.
func fileTampered() *Problem {
	return problem(http.StatusConflict, "file-tampered", "File failed verification",
		"The stored file was modified or removed outside the platform; it is quarantined and not served.")
}

func (a *API) downloadFile(w http.ResponseWriter, r *http.Request) error {
	repo, s, err := a.getOr404(r)
	if err != nil {
		return err
	}
	f, ok := s.File(r.PathValue("fileId"))
	if !ok {
		return notFound()
	}
	if f.Quarantined != nil {
		a.emit(r, audit.Event{Action: "file.read", Outcome: audit.Denied, Reason: "quarantined",
			Resource: audit.Resource{Type: "file", ID: f.ID}, Details: map[string]string{"session": s.ID}})
		return fileTampered()
	}
	data, err := a.d.Files.ReadAll(r.Context(), s.FileRef(principalOf(r.Context()).Tenant, f.ID), f.Sealed)
	if reason, bad := session.QuarantineReasonOf(err); bad {
		return a.quarantine(r, repo, s.ID, f.ID, reason)
	}
	if err != nil {
		return err
	}
	if err := a.access(r, audit.Event{Action: "file.read", Outcome: audit.Success, Resource: audit.Resource{Type: "file", ID: f.ID},
		Details: map[string]string{"session": s.ID}}); err != nil {
		return err
	}
	h := w.Header()
	h.Set("Content-Type", f.ContentType)
	h.Set("Content-Length", strconv.Itoa(len(data)))
	h.Set("Content-Disposition", `attachment; filename="`+f.ID+`"`)
	h.Set("Digest", "sha-256="+f.Sealed.PlainSHA256.String())
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return nil
	}
	_, err = w.Write(data)
	if err != nil {
		a.d.Log.Info("download interrupted", "requestId", requestID(r.Context()), "err", err)
	}
	return nil
}

// quarantine marks a file whose stored object failed verification as
// quarantined, emits file.tamper_detected and returns the answer: 409
// file-tampered, or 404 when the session was deleted meanwhile (its objects
// and key go with it, which is no tampering). The file is refused whether or
// not the mark is recorded; a failure to record it is logged, and the next
// download or verification pass finds the object again.
func (a *API) quarantine(r *http.Request, repo *session.Repo, sessionID, fileID string, reason session.QuarantineReason) error {
	r, commit := a.change(r, audit.Event{Action: "file.tamper_detected", Outcome: audit.Denied, Reason: string(reason),
		Resource: audit.Resource{Type: "file", ID: fileID}, Details: map[string]string{"session": sessionID, "by": session.ByDownload}}, session.Collection)
	ctx := context.WithoutCancel(r.Context())
	q := session.Quarantine{At: a.d.Now().UTC(), Reason: reason, By: session.ByDownload}
	_, err := repo.QuarantineFile(ctx, sessionID, fileID, q)
	if errors.Is(err, store.ErrNotFound) {
		return notFound()
	}
	if err != nil {
		a.d.Log.Error("quarantine not recorded", "requestId", requestID(ctx), "file", fileID, "err", err)
	}
	if err := commit(); err != nil {
		a.d.Log.Error("file.tamper_detected not recorded", "requestId", requestID(ctx), "file", fileID, "err", err)
	}
	return fileTampered()
}
