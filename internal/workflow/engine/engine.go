package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"time"

	"github.com/google/uuid"

	"github.com/idvault/idvault/internal/audit"
	"github.com/idvault/idvault/internal/barrier"
	"github.com/idvault/idvault/internal/regula/docreader"
	"github.com/idvault/idvault/internal/regula/faceapi"
	"github.com/idvault/idvault/internal/session"
	"github.com/idvault/idvault/internal/store"
	"github.com/idvault/idvault/internal/workflow/definition"
)

// LivenessTransactionKey is the key of session metadata that holds the
// FaceAPI liveness transaction id (a UUID) a liveness step reads. The
// capture SDK reports it; the business or the SDK integration stores it
// there.
const LivenessTransactionKey = "livenessTransactionId"

// DocReader processes document images (docreader.Client).
type DocReader interface {
	Process(ctx context.Context, images [][]byte, scenario string) (docreader.Result, error)
}

// FaceAPI matches faces and reads liveness transactions (faceapi.Client).
type FaceAPI interface {
	Match(ctx context.Context, portrait, live []byte) (float64, error)
	Liveness(ctx context.Context, transactionID string) (faceapi.LivenessResult, error)
}

// Notifier tells the tenant's webhook subscriptions of an event about a
// session (webhook.Service). Both are idempotent by (session, event type).
type Notifier interface {
	// Notify enqueues the event at once: a webhook step's.
	Notify(ctx context.Context, tenant, eventType, sessionID string, status session.Status) error
	// Attach returns ctx carrying the event, to commit with the next write
	// to the session collection made with it, so the event is sent if and
	// only if the status it announces is written; publish hands it over
	// once that write is made.
	Attach(ctx context.Context, tenant, eventType, sessionID string, status session.Status) (actx context.Context, publish func(context.Context), err error)
}

// Errors of the engine.
var (
	// ErrInProgress means another process holds an attempt of the
	// session's current step whose deadline has not passed; the message
	// should be retried later.
	ErrInProgress = errors.New("engine: step attempt in progress elsewhere")
	// ErrNotInReview means a review decision was given for a session that
	// is not waiting in a review step.
	ErrNotInReview = errors.New("engine: session is not in review")
	// ErrMalformed means a workflow message could not be parsed.
	ErrMalformed = errors.New("engine: malformed message")
	// errPermanent marks a step failure no retry can fix.
	errPermanent = errors.New("permanent failure")
)

// Config holds an Engine's collaborators. Backend, Barrier, Definitions,
// Audit, DocReader, FaceAPI, Files and Notifier are required.
type Config struct {
	Backend     store.Backend
	Barrier     barrier.Barrier
	Definitions *Definitions
	// Audit receives session.advance, session.decision and
	// review.decision events, each in the transaction of the change.
	Audit     *audit.Emitter
	DocReader DocReader
	FaceAPI   FaceAPI
	Files     FileStore
	Notifier  Notifier
	// Log receives debug lines; nil discards them.
	Log *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// DefaultTimeout bounds an attempt of an automated step without a
	// timeout of its own; zero means 30s.
	DefaultTimeout time.Duration
	// Grace is how long after an attempt's timeout another process may
	// take the step over, for a process that died during the call; zero
	// means 30s.
	Grace time.Duration
	// MatchThreshold is the similarity at which a face_match step without
	// a threshold of its own passes (regula.faceAPI.matchThreshold); zero
	// means DefaultMatchThreshold.
	MatchThreshold float64
}

// DefaultMatchThreshold is Config.MatchThreshold's default, the same as
// regula.faceAPI.matchThreshold's.
const DefaultMatchThreshold = 0.75

// Engine runs workflow definitions for sessions. It is safe for concurrent
// use, and several engines (processes) may run against one store: every
// state change is a compare-and-swap on the session's run.
type Engine struct {
	cfg Config
}

// New returns an engine over cfg.
func New(cfg Config) (*Engine, error) {
	if cfg.Backend == nil || cfg.Barrier == nil || cfg.Definitions == nil || cfg.Audit == nil ||
		cfg.DocReader == nil || cfg.FaceAPI == nil || cfg.Files == nil || cfg.Notifier == nil {
		return nil, errors.New("engine: incomplete config")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.DefaultTimeout <= 0 {
		cfg.DefaultTimeout = 30 * time.Second
	}
	if cfg.Grace <= 0 {
		cfg.Grace = 30 * time.Second
	}
	if cfg.MatchThreshold == 0 {
		cfg.MatchThreshold = DefaultMatchThreshold
	}
	if !(cfg.MatchThreshold > 0 && cfg.MatchThreshold <= 1) {
		return nil, fmt.Errorf("engine: match threshold %v: must be above 0 and at most 1", cfg.MatchThreshold)
	}
	return &Engine{cfg: cfg}, nil
}

// message is the body of a workflow queue message (workflow.Message).
type message struct {
	Tenant  string `json:"tenant"`
	Session string `json:"session"`
}

// Handle runs the session named by a workflow queue message body
// ({"tenant": ..., "session": ...}) as far as it can go; see Advance.
func (e *Engine) Handle(ctx context.Context, body []byte) error {
	var m message
	if err := json.Unmarshal(body, &m); err != nil || m.Tenant == "" || m.Session == "" {
		return ErrMalformed
	}
	return e.Advance(ctx, m.Tenant, m.Session)
}

// tenantRepos are the repositories of one tenant.
type tenantRepos struct {
	tenant   string
	sessions *session.Repo
	runs     runs
}

func (e *Engine) repos(tenant string) (tenantRepos, error) {
	v, err := store.NewView(e.cfg.Backend, e.cfg.Barrier, tenant)
	if err != nil {
		return tenantRepos{}, err
	}
	return tenantRepos{tenant: tenant, sessions: session.NewRepo(v), runs: runs{view: v}}, nil
}

// InProgress reports whether err means that another process holds the
// session's current step (ErrInProgress).
func (e *Engine) InProgress(err error) bool { return errors.Is(err, ErrInProgress) }

// Advance runs session id of tenant from its stored step as far as it can
// go: until it waits for files or a verifier, or ends. On the first call
// the session's run is created, pinned to the latest active version of the
// session's workflow. It returns nil when the session is waiting or done (a
// missing session included), ErrInProgress when another process holds the
// current step, and another error on a technical failure the caller should
// retry later (the step's attempts are counted in the run; once they are
// used up the session goes to error instead). Advance is idempotent: a
// repeated call resumes from the stored state and never repeats a
// completed step.
func (e *Engine) Advance(ctx context.Context, tenant, id string) error {
	return e.advance(ctx, tenant, id, nil)
}

// AdvanceFrom is Advance for session s as the caller has just read it,
// which the first round takes instead of reading it again; s is not
// changed.
func (e *Engine) AdvanceFrom(ctx context.Context, tenant string, s *session.Session) error {
	return e.advance(ctx, tenant, s.ID, s.Clone())
}

func (e *Engine) advance(ctx context.Context, tenant, id string, read *session.Session) error {
	t, err := e.repos(tenant)
	if err != nil {
		return err
	}
	var cur *state
	for range 1000 {
		if cur == nil || cur.stale {
			s := read
			read = nil
			if s == nil {
				if s, err = t.sessions.Get(ctx, id); errors.Is(err, store.ErrNotFound) {
					return nil
				} else if err != nil {
					return fmt.Errorf("advance: %w", err)
				}
			}
			run, def, err := e.load(ctx, t, s)
			if err != nil || run == nil {
				return err
			}
			cur = &state{s: s, run: run, def: def}
		}
		stop, err := e.step(ctx, t, cur)
		if err != nil || (stop && !cur.stale) {
			return err
		}
	}
	return fmt.Errorf("advance session %s: no progress", id)
}

// load returns the session's run and its definition, or on first use a
// new run (not yet stored: its first save creates it, and of two processes
// one creates it, the other gets a conflict and rereads). It returns a nil
// run when there is nothing to run.
func (e *Engine) load(ctx context.Context, t tenantRepos, s *session.Session) (*Run, definition.Definition, error) {
	run, err := t.runs.get(ctx, s.ID)
	if errors.Is(err, store.ErrNotFound) {
		if !s.Status.Open() {
			return nil, definition.Definition{}, nil
		}
		st, err := e.cfg.Definitions.Latest(ctx, t.tenant, s.WorkflowID)
		if errors.Is(err, store.ErrNotFound) {
			_, err = e.writeSession(ctx, t, s, "session.advance", nil, func(s *session.Session) error {
				if !s.Status.Open() {
					return session.ErrUnchanged
				}
				s.Status, s.Reason, s.Advance = session.StatusError, "no active version of the session's workflow", false
				return nil
			})
			return nil, definition.Definition{}, err
		}
		if err != nil {
			return nil, definition.Definition{}, err
		}
		now := e.cfg.Now().UTC()
		run = &Run{SessionID: s.ID, DefinitionID: st.Definition.ID, Version: st.Definition.Version, Hash: st.Hash,
			Step: st.Definition.Start, Results: map[string]StepResult{}, Attempts: map[string]int{}, CreatedAt: now, UpdatedAt: now}
		return run, st.Definition, nil
	}
	if err != nil {
		return nil, definition.Definition{}, fmt.Errorf("load run: %w", err)
	}
	def, err := e.definition(ctx, t.tenant, run)
	return run, def, err
}

// definition returns the version run is pinned to; the hash pins its
// content.
func (e *Engine) definition(ctx context.Context, tenant string, run *Run) (definition.Definition, error) {
	def, err := e.cfg.Definitions.Pinned(ctx, tenant, run.DefinitionID, run.Version, run.Hash)
	if err != nil {
		return definition.Definition{}, fmt.Errorf("load pinned definition: %w", err)
	}
	return def, nil
}

// state is what one round of Advance works on: the session and run as
// this process last read or wrote them, so that the next round need not
// read them again. stale says they may differ from the store (a
// compare-and-swap conflict, another process's attempt): the next round
// rereads them.
type state struct {
	s     *session.Session
	run   *Run
	def   definition.Definition
	stale bool
	// dirty says run has changes not yet stored, saved with its next
	// write: steps without an external call (document, selfie, rule,
	// decision), as they give the same result when run again, and the
	// result of an automated step's attempt, whose call is made again if
	// it is lost (at least once). The next write is a compare-and-swap on
	// the version this process last wrote, so a process that lost the run
	// to another writes none of them.
	dirty bool
	// portrait is the document portrait a DocReader attempt of this round
	// stored as file id (Run.PortraitID), kept for the face match.
	portrait struct {
		id   string
		data []byte
	}
}

// terminal reports whether the session is in a status the engine never
// leaves.
func terminal(s session.Status) bool { return !s.Open() && s != session.StatusReview }

// step makes one transition of the run and reports whether Advance should
// stop (the session waits or is done).
func (e *Engine) step(ctx context.Context, t tenantRepos, cur *state) (bool, error) {
	s, run, def := cur.s, cur.run, cur.def
	if run.Done {
		if !terminal(s.Status) {
			return true, e.writeOutcome(ctx, t, cur)
		}
		return true, e.clearAdvance(ctx, t, s)
	}
	if run.Step == "" {
		return e.finish(ctx, t, cur)
	}
	if terminal(s.Status) {
		return true, e.clearAdvance(ctx, t, s)
	}
	st, ok := def.Step(run.Step)
	if !ok {
		return false, e.endRun(ctx, t, cur, fmt.Sprintf("step %s is not in the definition", run.Step))
	}
	switch st.Type {
	case definition.TypeDocument, definition.TypeSelfie:
		if !collected(s, st) {
			deadline := e.waitDeadline(cur, st)
			if overdue(deadline, e.cfg.Now()) {
				return true, e.timeOut(ctx, t, cur, st)
			}
			return true, e.wait(ctx, t, cur, deadline)
		}
		return false, e.complete(ctx, t, cur, st, StepResult{Status: definition.StepCompleted}, st.Next, "", "")
	case definition.TypeReview:
		deadline := e.waitDeadline(cur, st)
		if overdue(deadline, e.cfg.Now()) {
			return true, e.timeOut(ctx, t, cur, st)
		}
		if err := e.flush(ctx, t, cur); err != nil || cur.stale {
			return false, err
		}
		waiting := func(s *session.Session) bool {
			return s.Status == session.StatusReview && !s.Advance && s.StepDeadline.Equal(deadline)
		}
		if waiting(s) {
			return true, nil
		}
		actx, published, err := e.cfg.Notifier.Attach(ctx, t.tenant, "review.required", s.ID, session.StatusReview)
		if err != nil {
			return false, fmt.Errorf("notify review.required: %w", err)
		}
		entered := false
		_, err = e.writeSession(actx, t, s, "session.advance", map[string]string{"step": st.ID}, func(s *session.Session) error {
			entered = false // a compare-and-swap retry decides again
			if terminal(s.Status) || waiting(s) {
				return session.ErrUnchanged
			}
			entered = s.Status != session.StatusReview
			s.Status, s.Advance, s.StepDeadline = session.StatusReview, false, deadline
			return nil
		})
		if err == nil && entered {
			published(ctx)
		}
		return true, err
	case definition.TypeDecision:
		return false, e.complete(ctx, t, cur, st, StepResult{Status: definition.StepCompleted}, "", st.Decision, st.Reason)
	}
	if s.Status == session.StatusPending {
		return false, e.setInProgress(ctx, t, cur, st.ID, true, time.Time{})
	}
	if !s.StepDeadline.IsZero() {
		// The session no longer waits: the deadline of the step it waited
		// at must not expire it.
		return false, e.clearDeadline(ctx, t, cur)
	}
	if st.Type == definition.TypeRule {
		next, decision, reason, err := def.Evaluate(st.ID, e.vars(s, run))
		if err != nil {
			return false, e.endRun(ctx, t, cur, fmt.Sprintf("step %s: rule evaluation failed", st.ID))
		}
		return false, e.complete(ctx, t, cur, st, StepResult{Status: definition.StepCompleted}, next, decision, reason)
	}
	return e.automated(ctx, t, cur, st)
}

// collected reports whether s holds the files a document or selfie step
// needs.
func collected(s *session.Session, st definition.Step) bool {
	if st.Type == definition.TypeSelfie {
		return usable(s, session.KindSelfie) != nil
	}
	for _, p := range st.Pages {
		if p.Required && usable(s, pageKind(p.Side)) == nil {
			return false
		}
	}
	return true
}

func pageKind(side string) session.FileKind {
	if side == definition.SideBack {
		return session.KindDocumentBack
	}
	return session.KindDocumentFront
}

// usable returns the last file of kind k that is not quarantined, or nil.
func usable(s *session.Session, k session.FileKind) *session.File {
	for i := len(s.Files) - 1; i >= 0; i-- {
		if f := &s.Files[i]; f.Kind == k && f.Quarantined == nil {
			return f
		}
	}
	return nil
}

// complete records the result of st, a step without an external call, and
// moves the run to next, or ends it with decision. The change is stored
// with the run's next write.
func (e *Engine) complete(ctx context.Context, t tenantRepos, cur *state, st definition.Step, res StepResult, next, decision, reason string) error {
	run := cur.run
	res.At = e.cfg.Now().UTC()
	run.Results[st.ID] = res
	run.Step, run.Decision, run.Reason = next, decision, reason
	run.Attempt, run.LastError = nil, ""
	cur.dirty = true
	return nil
}

// endRun ends the run in error with reason, which MUST NOT hold personal
// data; the next round puts the session in error.
func (e *Engine) endRun(ctx context.Context, t tenantRepos, cur *state, reason string) error {
	cur.run.Step, cur.run.Error, cur.run.Attempt = "", reason, nil
	return e.saveRun(ctx, t, cur)
}

// saveRun writes cur.run with compare-and-swap. A conflict is left for the
// next round, which rereads the run.
func (e *Engine) saveRun(ctx context.Context, t tenantRepos, cur *state) error {
	err := t.runs.save(ctx, cur.run, e.cfg.Now())
	if errors.Is(err, store.ErrConflict) {
		cur.stale = true
		return nil
	}
	if err != nil {
		return err
	}
	cur.dirty = false
	return nil
}

// flush stores the run's unsaved changes, if any.
func (e *Engine) flush(ctx context.Context, t tenantRepos, cur *state) error {
	if !cur.dirty && cur.run.version != 0 {
		return nil
	}
	return e.saveRun(ctx, t, cur)
}

// errRunMoved stops a session write that carries the run's update when
// the run is no longer at the version this process holds.
var errRunMoved = errors.New("engine: run changed by another process")

// finish marks the run done and writes its outcome to the session, both in
// one transaction: the run's update rides with the session's write, each a
// compare-and-swap. A session that holds an outcome already (a
// cancellation won) is left as it is, and the run's end is written alone.
// Should the run have moved (another process took it over), nothing is
// written and the next round rereads both.
func (e *Engine) finish(ctx context.Context, t tenantRepos, cur *state) (bool, error) {
	run := cur.run
	run.Done = true
	w, err := t.runs.sealed(ctx, run, e.cfg.Now())
	if err != nil {
		return false, err
	}
	tries := 0
	actx, att := store.Attach(ctx, session.Collection, func(store.Write) ([]store.Write, error) {
		if tries++; tries > 1 {
			// A retry after a conflict, which may be the run's own: no
			// retry of the session's write resolves that.
			stored, err := t.runs.get(ctx, run.SessionID)
			if err != nil {
				return nil, err
			}
			if stored.version != run.version {
				return nil, errRunMoved
			}
		}
		return []store.Write{w}, nil
	})
	err = e.writeOutcome(actx, t, cur)
	if err == nil {
		err = att.Commit(actx, e.cfg.Backend)
	}
	switch {
	case errors.Is(err, errRunMoved), errors.Is(err, store.ErrConflict):
		cur.stale = true
		return false, nil
	case err != nil:
		return false, err
	}
	run.version++
	cur.dirty = false
	return true, nil
}

// writeOutcome writes the outcome of a done run to a session that does
// not hold it yet.
func (e *Engine) writeOutcome(ctx context.Context, t tenantRepos, cur *state) error {
	run := cur.run
	action, status, reason := "session.decision", session.StatusRejected, run.Reason
	details := map[string]string{"decision": run.Decision}
	event := "session.completed"
	switch {
	case run.Error != "":
		action, status, reason, event = "session.advance", session.StatusError, run.Error, "session.error"
		details = map[string]string{"reason": run.Error}
	case run.Expired:
		// The event id is the one of an expiry by TTL, so a session is
		// announced expired once.
		action, status, event = "session.expire", session.StatusExpired, "session.expired"
		details = map[string]string{"step": run.WaitStep, "reason": "step_timeout"}
	case run.Decision == definition.Approved:
		status = session.StatusApproved
	}
	// Subscribers hear of the outcome in the transaction that writes it:
	// never of an outcome a concurrent change (a cancellation) kept from
	// being written.
	actx, published, err := e.cfg.Notifier.Attach(ctx, t.tenant, event, run.SessionID, status)
	if err != nil {
		return fmt.Errorf("notify %s: %w", event, err)
	}
	written := false
	s, err := e.writeSession(actx, t, cur.s, action, details, func(s *session.Session) error {
		written = false // a compare-and-swap retry decides again
		if terminal(s.Status) {
			return session.ErrUnchanged
		}
		s.Status, s.Reason, s.Advance, s.StepDeadline = status, reason, false, time.Time{}
		written = true
		return nil
	})
	if err != nil {
		return err
	}
	if written {
		published(ctx)
	}
	cur.s = s
	return nil
}

// wait leaves the session waiting for files: in_progress once it holds
// one, with its Advance flag cleared.
func (e *Engine) wait(ctx context.Context, t tenantRepos, cur *state, deadline time.Time) error {
	if err := e.flush(ctx, t, cur); err != nil || cur.stale {
		return err
	}
	if cur.s.Status == session.StatusPending && len(cur.s.Files) > 0 {
		return e.setInProgress(ctx, t, cur, "", false, deadline)
	}
	return e.clearAdvanceSeen(ctx, t, cur.s, deadline)
}

// waitDeadline returns when waiting step st times out, zero when it has
// no timeout. The timeout runs from when the run first found itself
// waiting at st, recorded in the run (stored with its next write).
func (e *Engine) waitDeadline(cur *state, st definition.Step) time.Time {
	run := cur.run
	if run.WaitStep != st.ID {
		run.WaitStep, run.WaitSince = st.ID, e.cfg.Now().UTC()
		cur.dirty = true
	}
	if st.Timeout <= 0 {
		return time.Time{}
	}
	return run.WaitSince.Add(st.Timeout)
}

// overdue reports whether deadline is set and not after now.
func overdue(deadline, now time.Time) bool {
	return !deadline.IsZero() && !now.Before(deadline)
}

// timeOut ends the run of a session whose waiting step st has passed its
// timeout, then expires the session (writeOutcome), as any outcome: the run
// first, by compare-and-swap, so that a verifier's decision racing the
// deadline either lands before it (and the step is no longer overdue) or
// finds the run ended and is refused; a crash in between is repaired by
// the next delivery, which finds a done run.
func (e *Engine) timeOut(ctx context.Context, t tenantRepos, cur *state, st definition.Step) error {
	run := cur.run
	run.Step, run.Done, run.Expired, run.Reason, run.Attempt = "", true, true, fmt.Sprintf("step %s timed out", st.ID), nil
	if err := e.saveRun(ctx, t, cur); err != nil || cur.stale {
		return err
	}
	return e.writeOutcome(ctx, t, cur)
}

// clearDeadline clears the step deadline of a session that no longer
// waits at a step.
func (e *Engine) clearDeadline(ctx context.Context, t tenantRepos, cur *state) error {
	s, err := e.writeSession(ctx, t, cur.s, "", nil, func(s *session.Session) error {
		if s.StepDeadline.IsZero() {
			return session.ErrUnchanged
		}
		s.StepDeadline = time.Time{}
		return nil
	})
	if err != nil {
		return err
	}
	cur.s = s
	return nil
}

// setInProgress moves a pending session to in_progress. Before an automated
// step (automated) it leaves the Advance flag as it is: while automated
// steps remain, the flag stays set, so the scheduler republishes the session
// if its messages are lost or a process holding a step dies. The flag is
// cleared when the session waits for files or a reviewer, or ends.
func (e *Engine) setInProgress(ctx context.Context, t tenantRepos, cur *state, step string, automated bool, deadline time.Time) error {
	details := map[string]string{}
	if step != "" {
		details["step"] = step
	}
	s, err := e.writeSession(ctx, t, cur.s, "session.advance", details, func(s *session.Session) error {
		if s.Status != session.StatusPending {
			return session.ErrUnchanged
		}
		s.Status, s.StepDeadline = session.StatusInProgress, deadline
		if !automated && len(s.Files) == len(cur.s.Files) {
			s.Advance = false // no file arrived since the evaluation
		}
		return nil
	})
	if err != nil {
		return err
	}
	cur.s = s
	return nil
}

// clearAdvanceSeen sets the step deadline of a session that waits for
// files and clears its Advance flag, unless a file arrived after seen was
// read: its upload set the flag and published a message, and clearing it
// now could leave the session waiting for good if that message is lost.
func (e *Engine) clearAdvanceSeen(ctx context.Context, t tenantRepos, seen *session.Session, deadline time.Time) error {
	if !seen.Advance && seen.StepDeadline.Equal(deadline) {
		return nil
	}
	_, err := e.writeSession(ctx, t, seen, "", nil, func(s *session.Session) error {
		changed := false
		if s.Advance && len(s.Files) == len(seen.Files) {
			s.Advance, changed = false, true
		}
		if !s.StepDeadline.Equal(deadline) && !terminal(s.Status) {
			s.StepDeadline, changed = deadline, true
		}
		if !changed {
			return session.ErrUnchanged
		}
		return nil
	})
	return err
}

func (e *Engine) clearAdvance(ctx context.Context, t tenantRepos, s *session.Session) error {
	if !s.Advance {
		return nil
	}
	_, err := e.writeSession(ctx, t, s, "", nil, func(s *session.Session) error {
		if !s.Advance {
			return session.ErrUnchanged
		}
		s.Advance = false
		return nil
	})
	return err
}

// writeSession updates the session with fn by compare-and-swap, from
// from, the session as this process last read or wrote it (not changed:
// fn works on a copy), read again only if it is not the stored version any
// more; when action is set, a change carries an audit event of that
// action, with details and the new status, in the same transaction.
func (e *Engine) writeSession(ctx context.Context, t tenantRepos, from *session.Session, action string, details map[string]string, fn func(*session.Session) error) (*session.Session, error) {
	if action != "" {
		ctx, _ = e.cfg.Audit.AttachWith(ctx, session.Collection, func(main store.Write) audit.Event {
			d := maps.Clone(details)
			if d == nil {
				d = map[string]string{}
			}
			d["status"] = main.Record.Index["status"]
			return audit.Event{Tenant: t.tenant, Actor: audit.Actor{Type: "system", ID: "workflow"}, Action: action,
				Outcome: audit.Success, Resource: audit.Resource{Type: "session", ID: from.ID}, Details: d}
		})
	}
	s, err := t.sessions.UpdateFrom(ctx, from.Clone(), e.cfg.Now(), fn)
	if err != nil {
		return nil, fmt.Errorf("write session: %w", err)
	}
	return s, nil
}

// vars returns the rule variables (definition.Variables) of the session
// and its run. Each step type's variables hold the result of the last
// step of that type.
func (e *Engine) vars(s *session.Session, run *Run) map[string]any {
	meta := map[string]any{}
	if raw := s.Metadata.Value(); len(raw) > 0 {
		if err := json.Unmarshal(raw, &meta); err != nil || meta == nil {
			meta = map[string]any{}
		}
	}
	steps := map[string]map[string]string{}
	vars := map[string]any{definition.VarSessionMetadata: meta, definition.VarSteps: steps}
	latest := map[string]time.Time{}
	newest := func(kind string, at time.Time) bool {
		if t, ok := latest[kind]; ok && t.After(at) {
			return false
		}
		latest[kind] = at
		return true
	}
	for id, r := range run.Results {
		steps[id] = map[string]string{"status": r.Status}
		switch {
		case r.OverallStatus != nil && newest("docreader", r.At):
			vars[definition.VarDocReaderOverallStatus] = int64(*r.OverallStatus)
			vars[definition.VarDocReaderDocumentType] = r.DocumentType
			fields := r.Fields
			if fields == nil {
				fields = map[string]string{}
			}
			vars[definition.VarDocReaderFields] = fields
			vars[definition.VarDocReaderPassed] = r.Status == definition.StepPassed
		case r.Similarity != nil && newest("face_match", r.At):
			vars[definition.VarFaceMatchSimilarity] = *r.Similarity
			vars[definition.VarFaceMatchPassed] = r.Status == definition.StepPassed
		case r.LivenessPassed != nil && newest("liveness", r.At):
			vars[definition.VarLivenessPassed] = *r.LivenessPassed
		}
	}
	return vars
}

// Decide records a verifier's decision on session sessionID of tenant,
// which MUST be in status review at a review step, and runs the session on
// to the review step's on_approve or on_reject decision. The decision and
// its review.decision audit event are written in one transaction, with
// compare-and-swap: of two concurrent decisions one is recorded, the other
// gets ErrNotInReview. The comment is kept in the run, not in the audit
// event (it may hold personal data). An error after the decision was
// recorded (running on to the decision failed) leaves the decision in
// place: the caller publishes a workflow message, whose Advance finishes
// the session.
func (e *Engine) Decide(ctx context.Context, tenant, sessionID, reviewer string, approve bool, comment string) error {
	t, err := e.repos(tenant)
	if err != nil {
		return err
	}
	for attempt := 0; ; attempt++ {
		s, err := t.sessions.Get(ctx, sessionID)
		if err != nil {
			return fmt.Errorf("decide: %w", err)
		}
		if s.Status != session.StatusReview {
			return ErrNotInReview
		}
		run, def, err := e.load(ctx, t, s)
		if err != nil {
			return fmt.Errorf("decide: %w", err)
		}
		if run == nil || run.version == 0 {
			return ErrNotInReview
		}
		st, ok := def.Step(run.Step)
		if !ok || st.Type != definition.TypeReview {
			return ErrNotInReview
		}
		if run.WaitStep == st.ID && st.Timeout > 0 && overdue(run.WaitSince.Add(st.Timeout), e.cfg.Now()) {
			// Too late: the review timed out, and the session expires.
			if err := e.Advance(ctx, tenant, sessionID); err != nil {
				return fmt.Errorf("decide: %w", err)
			}
			return ErrNotInReview
		}
		decision, next := definition.Rejected, st.OnReject
		if approve {
			decision, next = definition.Approved, st.OnApprove
		}
		now := e.cfg.Now().UTC()
		run.Review = &Review{Step: st.ID, Reviewer: reviewer, Approved: approve, Comment: comment, At: now}
		run.Results[st.ID] = StepResult{Status: definition.StepCompleted, At: now}
		run.Step = next
		actx, _ := e.cfg.Audit.Attach(ctx, audit.Event{Tenant: tenant, Actor: audit.Actor{Type: "user", ID: reviewer},
			Action: "review.decision", Outcome: audit.Success, Resource: audit.Resource{Type: "session", ID: sessionID},
			Details: map[string]string{"decision": decision, "step": st.ID}}, RunsCollection)
		err = t.runs.save(actx, run, now)
		if errors.Is(err, store.ErrConflict) && attempt < 10 {
			continue
		}
		if err != nil {
			return fmt.Errorf("decide: %w", err)
		}
		return e.Advance(ctx, tenant, sessionID)
	}
}

func newAttemptID() string { return uuid.Must(uuid.NewV7()).String() }
