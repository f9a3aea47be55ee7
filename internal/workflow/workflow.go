// Package workflow runs verification workflows: the workflow role takes
// session events from the workflow queue and moves sessions forward.
//
// Messages carry a tenant id and a session id only. Handling is idempotent:
// the session is re-read, evaluated against its workflow and written back
// with compare-and-swap, so a redelivered or duplicated message changes
// nothing the first one did not. The session's Advance flag, set in the same
// write that added a file, is cleared in the same write that evaluates it;
// the scheduler republishes sessions whose flag stays set, so a message lost
// between the API's write and its publish is recovered.
//
// A session whose workflow is not built in runs on a stored, versioned
// definition: the role hands it to the Runner set with WithRunner (the
// engine of internal/workflow/engine), which keeps its own state per
// session. Without a Runner such a session goes to error ("unknown
// workflow").
package workflow

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/idvault/idvault/internal/audit"
	"github.com/idvault/idvault/internal/barrier"
	"github.com/idvault/idvault/internal/queue"
	"github.com/idvault/idvault/internal/session"
	"github.com/idvault/idvault/internal/store"
)

// Definition is a workflow: the files a session must collect before it goes
// to review.
type Definition struct {
	ID          string             `json:"id"`
	Description string             `json:"description"`
	Required    []session.FileKind `json:"required"`
}

// DefaultID is the id of the built-in default workflow.
const DefaultID = "document-selfie-review"

var builtin = map[string]Definition{
	DefaultID: {
		ID:          DefaultID,
		Description: "Collect the document front and a selfie, then send the session to manual review.",
		Required:    []session.FileKind{session.KindDocumentFront, session.KindSelfie},
	},
}

// Lookup returns the built-in workflow with id.
func Lookup(id string) (Definition, bool) {
	d, ok := builtin[id]
	return d, ok
}

// Message is the body of a workflow queue message.
type Message struct {
	Tenant  string `json:"tenant"`
	Session string `json:"session"`
	// written is the session as a publisher of this process wrote it,
	// handed over with it (Local.PublishWritten) so that the consumer need
	// not read it back: a compare-and-swap on its version fails if
	// anything changed it since, and the session is read then. It never
	// goes on the queue.
	written *session.Session
}

// Publish publishes a message asking the workflow role to evaluate a session.
func Publish(ctx context.Context, b queue.Broker, tenant, sessionID string) error {
	body, err := json.Marshal(Message{Tenant: tenant, Session: sessionID})
	if err != nil {
		return err
	}
	return b.Publish(ctx, queue.TopicWorkflow, body)
}

// Local is the way from this process's publishers to its own workflow
// role (Role.WithLocal): a session is handed straight to a consumer that
// waits for one (queue.Handoff), without a queue message, whose publish,
// claim and acknowledgement would be three store writes more. It is as
// safe as a message: the publisher has set the session's Advance flag in
// the write before, so should the process die before the session is
// evaluated, the scheduler republishes it, as it does a message lost
// between that write and its publish; and a consumer whose evaluation
// fails publishes a message, which the queue retries with backoff and
// dead-letters as any. A nil *Local hands nothing over.
type Local struct {
	h *queue.Handoff[Message]
}

// NewLocal returns a Local for one process.
func NewLocal() *Local { return &Local{h: queue.NewHandoff[Message]()} }

// Publish hands session sessionID of tenant to an idle consumer of the
// workflow role in this process, or else publishes a message to b.
func (l *Local) Publish(ctx context.Context, b queue.Broker, tenant, sessionID string) error {
	if l != nil && l.h.Offer(Message{Tenant: tenant, Session: sessionID}) {
		return nil
	}
	return Publish(ctx, b, tenant, sessionID)
}

// PublishWritten is Publish for s, the session as the caller has just
// written it: a consumer of this process takes a copy of it rather than
// reading it again.
func (l *Local) PublishWritten(ctx context.Context, b queue.Broker, tenant string, s *session.Session) error {
	if l != nil && l.h.Offer(Message{Tenant: tenant, Session: s.ID, written: s.Clone()}) {
		return nil
	}
	return Publish(ctx, b, tenant, s.ID)
}

// Advance evaluates s against its workflow: an open session holding every
// required file goes to review; an open session holding some goes to
// in_progress. It clears s.Advance and returns session.ErrUnchanged when
// nothing changes.
func Advance(s *session.Session) error {
	if !s.Status.Open() {
		if !s.Advance {
			return session.ErrUnchanged
		}
		s.Advance = false
		return nil
	}
	def, ok := Lookup(s.WorkflowID)
	if !ok {
		s.Status, s.Reason, s.Advance = session.StatusError, "unknown workflow", false
		return nil
	}
	before := *s
	complete := true
	for _, k := range def.Required {
		if !s.HasKind(k) {
			complete = false
		}
	}
	switch {
	case complete:
		s.Status = session.StatusReview
	case len(s.Files) > 0:
		s.Status = session.StatusInProgress
	}
	s.Advance = false
	if s.Status == before.Status && !before.Advance {
		return session.ErrUnchanged
	}
	return nil
}

// Runner runs sessions of stored workflow definitions (*engine.Engine).
// AdvanceFrom is idempotent and returns an error when the message should be
// delivered again later, or one for which InProgress reports true when
// another process holds the session's current step.
type Runner interface {
	// AdvanceFrom runs session s, as the role has just read it.
	AdvanceFrom(ctx context.Context, tenant string, s *session.Session) error
	InProgress(err error) bool
}

// Role is the workflow role.
type Role struct {
	runner      Runner
	broker      queue.Broker
	backend     store.Backend
	barrier     barrier.Barrier
	audit       *audit.Emitter
	log         *slog.Logger
	now         func() time.Time
	concurrency int
	local       *Local
}

// NewRole returns the workflow role with concurrency parallel consumers;
// every status change it makes is audited through em, in the same
// transaction as the change.
func NewRole(broker queue.Broker, backend store.Backend, b barrier.Barrier, em *audit.Emitter, log *slog.Logger, now func() time.Time, concurrency int) *Role {
	if now == nil {
		now = time.Now
	}
	return &Role{broker: broker, backend: backend, barrier: b, audit: em, log: log, now: now, concurrency: max(concurrency, 1)}
}

// WithRunner makes the role hand sessions whose workflow is not built in to
// runner, and returns the role.
func (r *Role) WithRunner(runner Runner) *Role {
	r.runner = runner
	return r
}

// WithLocal makes Run take sessions handed over through l as well as from
// the queue, and returns the role.
func (r *Role) WithLocal(l *Local) *Role {
	r.local = l
	return r
}

// Run consumes the workflow topic until ctx is done, with the role's
// concurrency, and as many consumers again of the sessions handed over
// through its Local, if it has one. Messages in progress when ctx ends are
// finished first.
func (r *Role) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	errs := make([]error, r.concurrency)
	for i := range r.concurrency {
		wg.Go(func() { errs[i] = r.consume(ctx) })
		if r.local != nil {
			wg.Go(func() { r.consumeLocal(ctx) })
		}
	}
	wg.Wait()
	return errors.Join(errs...)
}

// consumeLocal evaluates the sessions handed over through r.local. One
// whose evaluation fails goes to the queue, for its retries.
func (r *Role) consumeLocal(ctx context.Context) {
	r.local.h.Serve(ctx, func(ctx context.Context, m Message) {
		if err := r.handle(ctx, m); err != nil {
			r.log.Warn("workflow: session handed over in the process failed; queued", "tenant", m.Tenant, "session", m.Session, "err", err)
			if err := Publish(ctx, r.broker, m.Tenant, m.Session); err != nil {
				r.log.Warn("workflow message not published; the scheduler will republish", "session", m.Session, "err", err)
			}
		}
	})
}

func (r *Role) consume(ctx context.Context) error {
	return queue.Consume(ctx, r.broker, queue.TopicWorkflow, r.log, 5*time.Second, func(ctx context.Context, d queue.Delivery) {
		if err := r.Handle(ctx, d.Body()); err != nil {
			r.log.Error("workflow: step failed", "messageId", d.ID(), "attempt", d.Attempt(), "err", err)
			if err := d.Nack(ctx); err != nil {
				r.log.Warn("workflow: nack", "messageId", d.ID(), "err", err)
			}
			return
		}
		if err := d.Ack(ctx); err != nil {
			r.log.Warn("workflow: ack", "messageId", d.ID(), "err", err)
		}
	})
}

// ErrMalformed means a workflow message could not be parsed.
var ErrMalformed = errors.New("workflow: malformed message")

// errStored stops the evaluation of a session whose workflow is a stored
// definition: the Runner takes it.
var errStored = errors.New("workflow: stored definition")

// Handle evaluates the session named by one message. A session that no
// longer exists is not an error (it was deleted). A session of a stored
// definition is advanced by the Runner; any error it returns, including
// engine.ErrInProgress, is returned so that the queue delivers the message
// again.
func (r *Role) Handle(ctx context.Context, body []byte) error {
	var m Message
	if err := json.Unmarshal(body, &m); err != nil || m.Tenant == "" || m.Session == "" {
		return ErrMalformed
	}
	return r.handle(ctx, m)
}

func (r *Role) handle(ctx context.Context, m Message) error {
	v, err := store.NewView(r.backend, r.barrier, m.Tenant)
	if err != nil {
		return err
	}
	base := ctx
	ctx, _ = r.audit.AttachWith(ctx, session.Collection, func(main store.Write) audit.Event {
		return audit.Event{Tenant: m.Tenant, Actor: audit.Actor{Type: "system", ID: "workflow"}, Action: "session.advance",
			Outcome: audit.Success, Resource: audit.Resource{Type: "session", ID: m.Session},
			Details: map[string]string{"status": main.Record.Index["status"]}}
	})
	// A change carries its event; no change, no event.
	advance := func(s *session.Session) error {
		if _, ok := Lookup(s.WorkflowID); !ok && r.runner != nil {
			return errStored
		}
		return Advance(s)
	}
	repo := session.NewRepo(v)
	var s *session.Session
	if m.written != nil {
		s, err = repo.UpdateFrom(ctx, m.written, r.now(), advance)
	} else {
		s, err = repo.Update(ctx, m.Session, r.now(), advance)
	}
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if errors.Is(err, errStored) {
		err := r.runner.AdvanceFrom(base, m.Tenant, s)
		if err != nil && r.runner.InProgress(err) {
			// Another process holds the step, or held it and died: it is not
			// this message's failure, so it must not count towards
			// dead-lettering. The session keeps its Advance flag, and the
			// scheduler republishes it until the step is done or taken over.
			r.log.Debug("workflow: step in progress elsewhere", "tenant", m.Tenant, "session", m.Session)
			return nil
		}
		if err != nil {
			return fmt.Errorf("advance session %s: %w", m.Session, err)
		}
		return nil
	}
	if err != nil {
		return err
	}
	r.log.Debug("workflow: session evaluated", "tenant", m.Tenant, "session", s.ID, "status", s.Status)
	return nil
}
