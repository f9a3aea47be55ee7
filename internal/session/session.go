// Package session holds verification sessions: one run of a workflow for one
// person, with the files collected for it. It is the typed repository above
// the store's tenant view; every session body (metadata, file list, sealed
// file keys) is sealed, and only status, timestamps, the workflow id and the
// advance flag are index fields. A file whose stored object fails
// verification is marked quarantined inside the sealed body (File.Quarantined)
// and is never served again; no index field says so.
package session

import (
	"context"
	"errors"
	"fmt"
	"github.com/idvault/idvault/internal/pii"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/idvault/idvault/internal/authz"
	"github.com/idvault/idvault/internal/files"
	"github.com/idvault/idvault/internal/store"
)

// Collection is the store collection of sessions.
const Collection = "sessions"

// RunsCollection holds the workflow engine's run of each session (its
// steps' results), one record per session under the session's id, sealed
// under the session's own data key like the session, and destroyed with it.
const RunsCollection = "workflowruns"

// GatewayCallsCollection holds the count of the calls the API's Regula
// gateway forwarded for a session's device tokens, one record per session
// under the session's id, destroyed with it. It holds a number, no personal
// data, and is sealed under the tenant's key.
const GatewayCallsCollection = "gatewaycalls"

// Status is the state of a session.
type Status string

// Session statuses.
const (
	StatusPending    Status = "pending"
	StatusInProgress Status = "in_progress"
	StatusReview     Status = "review"
	StatusApproved   Status = "approved"
	StatusRejected   Status = "rejected"
	StatusExpired    Status = "expired"
	StatusError      Status = "error"
	StatusCancelled  Status = "cancelled"
)

// Valid reports whether s is a known status.
func (s Status) Valid() bool {
	switch s {
	case StatusPending, StatusInProgress, StatusReview, StatusApproved, StatusRejected, StatusExpired, StatusError, StatusCancelled:
		return true
	}
	return false
}

// Open reports whether a session in status s still accepts files and can
// expire.
func (s Status) Open() bool { return s == StatusPending || s == StatusInProgress }

// FileKind is what a file of a session shows.
type FileKind string

// File kinds.
const (
	KindDocumentFront FileKind = "document_front"
	KindDocumentBack  FileKind = "document_back"
	KindSelfie        FileKind = "selfie"
	KindAttachment    FileKind = "attachment"
)

// Valid reports whether k is a known kind.
func (k FileKind) Valid() bool {
	switch k {
	case KindDocumentFront, KindDocumentBack, KindSelfie, KindAttachment:
		return true
	}
	return false
}

// MaxFiles is the most files one session holds.
const MaxFiles = 32

// File is one file of a session. Sealed holds the digests and the wrapped
// per-file key; it never leaves the platform.
type File struct {
	ID          string       `json:"id"`
	Kind        FileKind     `json:"kind"`
	ContentType string       `json:"contentType"`
	Width       int          `json:"width,omitempty"`
	Height      int          `json:"height,omitempty"`
	CreatedAt   time.Time    `json:"createdAt"`
	Sealed      files.Sealed `json:"sealed"`
	// Quarantined is set once the stored object failed verification; such a
	// file is never served again. Nothing lifts it automatically.
	Quarantined *Quarantine `json:"quarantined,omitempty"`
}

// QuarantineReason says why a file was quarantined. It is a fixed
// vocabulary, safe to show to integrators and to write to logs.
type QuarantineReason string

// Quarantine reasons.
const (
	// ReasonVerificationFailed: the stored object was changed, truncated,
	// extended or replaced (files.ErrTampered).
	ReasonVerificationFailed QuarantineReason = "verification failed"
	// ReasonObjectMissing: no object is stored for the file
	// (files.ErrNotFound).
	ReasonObjectMissing QuarantineReason = "object missing"
)

// QuarantineReasonOf maps an error of files.Store.ReadAll to the reason that
// quarantines the file, or reports false when err is nil or an I/O error
// that says nothing about the stored object.
func QuarantineReasonOf(err error) (QuarantineReason, bool) {
	switch {
	case errors.Is(err, files.ErrTampered):
		return ReasonVerificationFailed, true
	case errors.Is(err, files.ErrNotFound):
		return ReasonObjectMissing, true
	}
	return "", false
}

// Who found a file tampered.
const (
	ByDownload  = "download"
	ByScheduler = "scheduler"
)

// Quarantine records when, why and by whom a file was quarantined.
type Quarantine struct {
	At     time.Time        `json:"at"`
	Reason QuarantineReason `json:"reason"`
	// By is ByDownload or ByScheduler.
	By string `json:"by"`
}

// Session is one verification session.
type Session struct {
	ID         string    `json:"id"`
	WorkflowID string    `json:"workflowId"`
	Status     Status    `json:"status"`
	Locale     string    `json:"locale,omitempty"`
	Metadata   pii.JSON  `json:"metadata,omitempty"`
	CreatedBy  string    `json:"createdBy"`
	CreatedAt  time.Time `json:"createdAt"`
	UpdatedAt  time.Time `json:"updatedAt"`
	ExpiresAt  time.Time `json:"expiresAt"`
	// Advance is set in the same write that adds a file and cleared by the
	// workflow role once it has evaluated the session, so a lost queue
	// message is found again by the scheduler.
	Advance bool   `json:"advance,omitempty"`
	Reason  string `json:"reason,omitempty"`
	// StepDeadline is when the workflow step the session waits at (for
	// the person's files or a verifier's decision) times out; zero when
	// it waits at no step with a timeout. The workflow role sets it and
	// the scheduler hands the session back to it once it has passed; it
	// may be stale after the session moved on, and the workflow role
	// then clears it.
	StepDeadline time.Time `json:"stepDeadline,omitzero"`
	Files        []File    `json:"files"`
	// Restricted limits the session to these groups (layer 3 of access
	// control); empty means every principal whose permissions reach it.
	Restricted []authz.Grant `json:"restricted,omitempty"`

	version int64
}

// LogValue shows only the session's id, workflow and status, so that
// logging a session cannot leak its metadata or files.
func (s *Session) LogValue() slog.Value {
	return slog.GroupValue(slog.String("id", s.ID), slog.String("workflowId", s.WorkflowID), slog.String("status", string(s.Status)))
}

// Clone returns a copy of s, with s's version, whose slices (Files,
// Restricted, Metadata) are its own: appending to or replacing their
// elements leaves s as it was.
func (s *Session) Clone() *Session {
	c := *s
	c.Files = slices.Clone(s.Files)
	c.Restricted = slices.Clone(s.Restricted)
	c.Metadata = slices.Clone(s.Metadata)
	return &c
}

// Version is the stored version the session was read at.
func (s *Session) Version() int64 { return s.version }

// File returns the file with id.
func (s *Session) File(id string) (File, bool) {
	for _, f := range s.Files {
		if f.ID == id {
			return f, true
		}
	}
	return File{}, false
}

// FileRef returns the reference of the stored object of file fileID of s in
// tenant. Upload, download and verification all name a session's files
// through it.
func (s *Session) FileRef(tenant, fileID string) files.Ref {
	return files.Ref{Tenant: tenant, Location: files.Sessions, ID: fileID, Scope: s.ID}
}

// HasKind reports whether the session holds a file of kind k.
func (s *Session) HasKind(k FileKind) bool {
	for _, f := range s.Files {
		if f.Kind == k {
			return true
		}
	}
	return false
}

// QuarantineFile marks the file with id quarantined with q and reports
// whether it changed s: false when s holds no such file or the file is
// already quarantined (the first quarantine is kept).
func (s *Session) QuarantineFile(id string, q Quarantine) bool {
	for i := range s.Files {
		if s.Files[i].ID == id {
			if s.Files[i].Quarantined != nil {
				return false
			}
			q.At = q.At.UTC()
			s.Files[i].Quarantined = &q
			return true
		}
	}
	return false
}

func (s *Session) index() map[string]string {
	idx := map[string]string{
		"status":     string(s.Status),
		"workflowId": s.WorkflowID,
		"createdAt":  s.CreatedAt.UTC().Format(store.TimeFormat),
		"expiresAt":  s.ExpiresAt.UTC().Format(store.TimeFormat),
		"updatedAt":  s.UpdatedAt.UTC().Format(store.TimeFormat),
	}
	if s.Advance {
		idx["advance"] = "1"
	}
	if !s.StepDeadline.IsZero() {
		idx["stepDeadline"] = s.StepDeadline.UTC().Format(store.TimeFormat)
	}
	return idx
}

// Repo stores the sessions of one tenant. It is safe for concurrent use.
type Repo struct {
	view *store.View
}

// NewRepo returns the session repository over a tenant view.
func NewRepo(v *store.View) *Repo { return &Repo{view: v} }

// Create stores a new session.
func (r *Repo) Create(ctx context.Context, s *Session) error {
	rec, err := r.view.Put(ctx, Collection, s.ID, s.index(), s)
	if err != nil {
		return fmt.Errorf("create session: %w", err)
	}
	s.version = rec.Version
	return nil
}

// Get returns the session with id, or store.ErrNotFound.
func (r *Repo) Get(ctx context.Context, id string) (*Session, error) {
	var s Session
	rec, err := r.view.Get(ctx, Collection, id, &s)
	if err != nil {
		return nil, err
	}
	s.version = rec.Version
	return &s, nil
}

// Delete removes the session record if it is still at s's version
// (store.ErrConflict otherwise). It does not touch the session's files or
// data key; the caller shreds the key (see keyring.Keyring.Shred).
func (r *Repo) Delete(ctx context.Context, s *Session) error {
	return r.view.Delete(ctx, Collection, s.ID, s.version)
}

// ErrUnchanged may be returned by an Update function to leave the session
// as it is; Update then returns the session unchanged and no error.
var ErrUnchanged = errors.New("session: unchanged")

// Update reads the session, applies fn and writes it back with
// compare-and-swap, retrying on conflict. fn may be called several times
// and must be free of side effects other than on s.
func (r *Repo) Update(ctx context.Context, id string, now time.Time, fn func(s *Session) error) (*Session, error) {
	return r.update(ctx, id, nil, now, fn)
}

// UpdateFrom is Update starting from s, a session the caller has just read
// from r, instead of reading it again: fn applies to s itself (the caller
// MUST NOT use s afterwards, only the result) and the first compare-and-swap
// is against s's version; on a conflict the session is read again, as
// Update does.
func (r *Repo) UpdateFrom(ctx context.Context, s *Session, now time.Time, fn func(s *Session) error) (*Session, error) {
	return r.update(ctx, s.ID, s, now, fn)
}

func (r *Repo) update(ctx context.Context, id string, s *Session, now time.Time, fn func(s *Session) error) (*Session, error) {
	for attempt := 0; ; attempt++ {
		if s == nil {
			var err error
			if s, err = r.Get(ctx, id); err != nil {
				return nil, err
			}
		}
		if err := fn(s); errors.Is(err, ErrUnchanged) {
			return s, nil
		} else if err != nil {
			return s, err
		}
		s.UpdatedAt = now.UTC()
		rec, err := r.view.Update(ctx, Collection, s.ID, s.version, s.index(), s)
		if errors.Is(err, store.ErrConflict) && attempt < 50 {
			s = nil
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("update session: %w", err)
		}
		s.version = rec.Version
		return s, nil
	}
}

// QuarantineFile marks file fileID of session id quarantined with q, with
// compare-and-swap, and reports whether this call marked it: false when the
// file was already quarantined or the session holds no such file. A missing
// session is store.ErrNotFound. Both the download path and the scheduler's
// verification quarantine files through it.
func (r *Repo) QuarantineFile(ctx context.Context, id, fileID string, q Quarantine) (bool, error) {
	marked := false
	_, err := r.Update(ctx, id, q.At, func(s *Session) error {
		marked = s.QuarantineFile(fileID, q)
		if !marked {
			return ErrUnchanged
		}
		return nil
	})
	if err != nil {
		return false, err
	}
	return marked, nil
}

// Filter selects sessions for List.
type Filter struct {
	Status        Status
	CreatedAfter  time.Time
	CreatedBefore time.Time
	// Advance selects sessions waiting for the workflow, last updated
	// before UpdatedBefore.
	Advance       bool
	UpdatedBefore time.Time
	ExpiresBefore time.Time
	// StepDeadlineBefore selects sessions whose StepDeadline is set and
	// before it.
	StepDeadlineBefore time.Time
	Limit              int
	Cursor             string
}

// Each calls fn for every session matching f (its Limit is the page size
// and its Cursor ignored), page after page, until fn returns an error.
func (r *Repo) Each(ctx context.Context, f Filter, fn func(*Session) error) error {
	f.Cursor = ""
	if f.Limit <= 0 {
		f.Limit = 100
	}
	for {
		list, next, err := r.List(ctx, f)
		if err != nil {
			return err
		}
		for _, s := range list {
			if err := fn(s); err != nil {
				return err
			}
		}
		if next == "" {
			return nil
		}
		f.Cursor = next
	}
}

// List returns one page of sessions matching f, newest first (or by expiry
// when ExpiresBefore is set, by step deadline when StepDeadlineBefore is),
// and the cursor of the next page.
func (r *Repo) List(ctx context.Context, f Filter) ([]*Session, string, error) {
	q := store.Query{Collection: Collection, OrderBy: "createdAt", Desc: true, Limit: f.Limit, Cursor: f.Cursor}
	if f.Status != "" {
		q.Where = append(q.Where, store.Cond{Field: "status", Op: store.Eq, Value: string(f.Status)})
	}
	if !f.CreatedAfter.IsZero() {
		q.Where = append(q.Where, store.Cond{Field: "createdAt", Op: store.Gte, Value: f.CreatedAfter.UTC().Format(store.TimeFormat)})
	}
	if !f.CreatedBefore.IsZero() {
		q.Where = append(q.Where, store.Cond{Field: "createdAt", Op: store.Lt, Value: f.CreatedBefore.UTC().Format(store.TimeFormat)})
	}
	if f.Advance {
		q.Where = append(q.Where, store.Cond{Field: "advance", Op: store.Eq, Value: "1"})
	}
	if !f.UpdatedBefore.IsZero() {
		q.Where = append(q.Where, store.Cond{Field: "updatedAt", Op: store.Lt, Value: f.UpdatedBefore.UTC().Format(store.TimeFormat)})
	}
	if !f.ExpiresBefore.IsZero() {
		q.OrderBy, q.Desc = "expiresAt", false
		q.Where = append(q.Where, store.Cond{Field: "expiresAt", Op: store.Lt, Value: f.ExpiresBefore.UTC().Format(store.TimeFormat)})
	}
	if !f.StepDeadlineBefore.IsZero() {
		q.OrderBy, q.Desc = "stepDeadline", false
		q.Where = append(q.Where, store.Cond{Field: "stepDeadline", Op: store.Lt, Value: f.StepDeadlineBefore.UTC().Format(store.TimeFormat)})
	}
	page, err := r.view.Query(ctx, q)
	if err != nil {
		return nil, "", fmt.Errorf("list sessions: %w", err)
	}
	out := make([]*Session, 0, len(page.Records))
	for _, rec := range page.Records {
		var s Session
		if err := r.view.Decode(ctx, rec, &s); err != nil {
			return nil, "", err
		}
		s.version = rec.Version
		out = append(out, &s)
	}
	return out, page.Next, nil
}

// portraitInfix joins a session id and an attempt id in the id of a
// document portrait file (PortraitFileID).
const portraitInfix = "-portrait-"

// PortraitFileID returns the id of the document portrait that attempt of a
// workflow step extracted for session sessionID: a file of the session's
// location that the session's workflow run references, not its Files.
func PortraitFileID(sessionID, attempt string) string {
	return sessionID + portraitInfix + attempt
}

// PortraitSession returns the session whose document portrait fileID is
// (PortraitFileID), or false when fileID is no portrait's.
func PortraitSession(fileID string) (string, bool) {
	i := strings.Index(fileID, portraitInfix)
	if i <= 0 {
		return "", false
	}
	return fileID[:i], true
}
