package webhook

import (
	"encoding/json"
	"fmt"
	"regexp"
	"time"

	"github.com/idvault/idvault/internal/session"
)

// EventType names what happened. Subscriptions choose the types they
// receive.
type EventType string

// Event types.
const (
	// EventSessionCreated: a session was started.
	EventSessionCreated EventType = "session.created"
	// EventSessionCompleted: a session reached a decision (approved or
	// rejected); Data.Decision says which.
	EventSessionCompleted EventType = "session.completed"
	// EventSessionExpired: a session passed its time to live unfinished.
	EventSessionExpired EventType = "session.expired"
	// EventSessionError: a session's workflow ended in the error state;
	// Data.ErrorCode says why.
	EventSessionError EventType = "session.error"
	// EventReviewRequired: a session waits for a verifier's decision.
	EventReviewRequired EventType = "review.required"
)

// EventTypes lists every event type, in documentation order.
var EventTypes = []EventType{EventSessionCreated, EventSessionCompleted, EventSessionExpired, EventSessionError, EventReviewRequired}

// Valid reports whether t is a known event type.
func (t EventType) Valid() bool {
	switch t {
	case EventSessionCreated, EventSessionCompleted, EventSessionExpired, EventSessionError, EventReviewRequired:
		return true
	}
	return false
}

// Decisions a completed session carries in Data.Decision.
const (
	DecisionApproved = "approved"
	DecisionRejected = "rejected"
)

// Event is one thing to tell a tenant's subscribers. It holds ids and
// states only, never personal data: a webhook leaves the platform for a
// system idvault does not control, over a channel whose logs, proxies and
// retries are outside its protection, so the receiver fetches anything
// more through the authenticated API, where access is checked and audited.
// Enqueue enforces this by accepting only id-shaped values.
type Event struct {
	// ID identifies the event; a receiver deduplicates by it. Enqueue is
	// idempotent by (subscription, ID), so a caller that may enqueue the
	// same event twice (a retried workflow step) MUST give a stable id.
	// Empty: a random id. 1 to 128 of [A-Za-z0-9._:-].
	ID   string
	Type EventType
	// CreatedAt is when the event happened. Zero: the time of Enqueue.
	CreatedAt time.Time
	Data      Data
}

// Data is the body of an event.
type Data struct {
	// SessionID is the session the event is about. Required.
	SessionID string `json:"sessionId"`
	// Status is the session's status (a session.Status). Required.
	Status session.Status `json:"status"`
	// Decision is DecisionApproved or DecisionRejected; required for
	// EventSessionCompleted, empty otherwise.
	Decision string `json:"decision,omitempty"`
	// WorkflowID and WorkflowVersion name the workflow definition the
	// session runs, when known.
	WorkflowID      string `json:"workflowId,omitempty"`
	WorkflowVersion int    `json:"workflowVersion,omitempty"`
	// ErrorCode is a fixed code (1 to 64 of [a-z0-9._-]) saying why a
	// session ended in error; only for EventSessionError.
	ErrorCode string `json:"errorCode,omitempty"`
}

// Payload is the JSON body every delivery POSTs. Its bytes are signed.
type Payload struct {
	ID        string    `json:"id"`
	Type      EventType `json:"type"`
	CreatedAt time.Time `json:"createdAt"`
	Tenant    string    `json:"tenant"`
	Data      Data      `json:"data"`
}

var (
	idPattern   = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`)
	codePattern = regexp.MustCompile(`^[a-z0-9._-]{1,64}$`)
)

// validate checks ev and the shape of every value in it.
func (ev Event) validate() error {
	d := ev.Data
	switch {
	case !ev.Type.Valid():
		return fmt.Errorf("event type %q: %w", ev.Type, ErrInvalid)
	case !idPattern.MatchString(ev.ID):
		return fmt.Errorf("event id: 1 to 128 of [A-Za-z0-9._:-]: %w", ErrInvalid)
	case !idPattern.MatchString(d.SessionID):
		return fmt.Errorf("event sessionId: 1 to 128 of [A-Za-z0-9._:-]: %w", ErrInvalid)
	case !d.Status.Valid():
		return fmt.Errorf("event status %q: %w", d.Status, ErrInvalid)
	case d.WorkflowID != "" && !idPattern.MatchString(d.WorkflowID):
		return fmt.Errorf("event workflowId: 1 to 128 of [A-Za-z0-9._:-]: %w", ErrInvalid)
	case d.WorkflowVersion < 0:
		return fmt.Errorf("event workflowVersion %d: %w", d.WorkflowVersion, ErrInvalid)
	}
	if ev.Type == EventSessionCompleted {
		if d.Decision != DecisionApproved && d.Decision != DecisionRejected {
			return fmt.Errorf("session.completed needs decision approved or rejected: %w", ErrInvalid)
		}
	} else if d.Decision != "" {
		return fmt.Errorf("decision only on session.completed: %w", ErrInvalid)
	}
	if ev.Type == EventSessionError {
		if d.ErrorCode != "" && !codePattern.MatchString(d.ErrorCode) {
			return fmt.Errorf("event errorCode: 1 to 64 of [a-z0-9._-]: %w", ErrInvalid)
		}
	} else if d.ErrorCode != "" {
		return fmt.Errorf("errorCode only on session.error: %w", ErrInvalid)
	}
	return nil
}

// payload returns the JSON body of ev for tenant.
func (ev Event) payload(tenant string) ([]byte, error) {
	b, err := json.Marshal(Payload{ID: ev.ID, Type: ev.Type, CreatedAt: ev.CreatedAt.UTC(), Tenant: tenant, Data: ev.Data})
	if err != nil {
		return nil, fmt.Errorf("encode payload: %w", err)
	}
	return b, nil
}
