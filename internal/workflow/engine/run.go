package engine

import (
	"context"
	"fmt"
	"time"

	"github.com/idvault/idvault/internal/files"
	"github.com/idvault/idvault/internal/session"
	"github.com/idvault/idvault/internal/store"
)

// RunsCollection is the store collection of workflow runs: one record per
// session, with the session's id as record id. Runs have no clear index
// fields: a run is only ever read by its session's id, and a field that
// every step changes would cost each step two index writes.
const RunsCollection = session.RunsCollection

// Run is the engine's state for one session: the definition version the
// session is pinned to, where it stands, and what every step produced. It
// holds personal data (DocReader's text fields) and is stored sealed; it
// holds no image (the document portrait is a sealed file, PortraitFile).
type Run struct {
	SessionID string `json:"sessionId"`
	// DefinitionID, Version and Hash pin the definition version.
	DefinitionID string `json:"definitionId"`
	Version      int    `json:"version"`
	Hash         string `json:"hash"`
	// Step is the current step; "" once a decision or an error ended the
	// run.
	Step string `json:"step"`
	// Decision and Reason are the decision the run reached (approved or
	// rejected), set when Step becomes "" by a decision.
	Decision string `json:"decision,omitempty"`
	Reason   string `json:"reason,omitempty"`
	// Done is set once the run reached its outcome (Decision or Error);
	// the session is written with it right after.
	Done bool `json:"done,omitempty"`
	// Error is why the run ended in error, or "".
	Error string `json:"error,omitempty"`
	// Expired says the run ended because the step it waited at (WaitStep)
	// passed its timeout; Reason says so.
	Expired bool `json:"expired,omitempty"`
	// Results are the results of the steps that ran, by step id.
	Results map[string]StepResult `json:"results"`
	// Attempts counts the attempts started of each automated step.
	Attempts map[string]int `json:"attempts"`
	// Attempt is the attempt of the current step in flight, or nil.
	Attempt *Attempt `json:"attempt,omitempty"`
	// LastError is the last technical failure of the current step.
	LastError string `json:"lastError,omitempty"`
	// Review is the verifier's decision, once made.
	Review *Review `json:"review,omitempty"`
	// WaitStep is the last step the run waited at (for files or a
	// verifier) and WaitSince when it began to wait there: the start of
	// that step's timeout.
	WaitStep  string    `json:"waitStep,omitempty"`
	WaitSince time.Time `json:"waitSince,omitzero"`
	// PortraitFile is the sealed document portrait DocReader extracted,
	// stored as session file PortraitID (PortraitRef).
	PortraitFile *files.Sealed `json:"portraitFile,omitempty"`
	PortraitID   string        `json:"portraitId,omitempty"`
	CreatedAt    time.Time     `json:"createdAt"`
	UpdatedAt    time.Time     `json:"updatedAt"`

	version int64
}

// Attempt is one attempt of an automated step: recorded before the call to
// the external service, so that a redelivered message knows a call may be
// in flight and another process does not start a second one before
// Deadline.
type Attempt struct {
	ID       string    `json:"id"`
	Step     string    `json:"step"`
	Number   int       `json:"number"`
	Started  time.Time `json:"started"`
	Deadline time.Time `json:"deadline"`
}

// StepResult is what one step produced. Only the fields of its type are
// set.
type StepResult struct {
	// Status is definition.StepCompleted, StepPassed or StepFailed.
	Status string `json:"status"`
	// AttemptID is the attempt that produced the result ("" for steps
	// without one).
	AttemptID string    `json:"attemptId,omitempty"`
	At        time.Time `json:"at"`
	// OverallStatus, DocumentType and Fields are DocReader's.
	OverallStatus *int              `json:"overallStatus,omitempty"`
	DocumentType  string            `json:"documentType,omitempty"`
	Fields        map[string]string `json:"fields,omitempty"`
	// Similarity is FaceAPI's match similarity, and Threshold the
	// similarity the step required (its own, or the platform's when the
	// definition left it out).
	Similarity *float64 `json:"similarity,omitempty"`
	Threshold  *float64 `json:"threshold,omitempty"`
	// LivenessPassed is FaceAPI's liveness verdict.
	LivenessPassed *bool `json:"livenessPassed,omitempty"`
	// Detail says, without personal data, why a step failed its
	// requirement ("face not detected").
	Detail string `json:"detail,omitempty"`
}

// Review is a verifier's decision on a session in review.
type Review struct {
	Step     string    `json:"step"`
	Reviewer string    `json:"reviewer"`
	Approved bool      `json:"approved"`
	Comment  string    `json:"comment,omitempty"`
	At       time.Time `json:"at"`
}

// runs reads and writes runs of one tenant.
type runs struct{ view *store.View }

func (rs runs) get(ctx context.Context, id string) (*Run, error) {
	var r Run
	rec, err := rs.view.Get(ctx, RunsCollection, id, &r)
	if err != nil {
		return nil, err
	}
	r.version = rec.Version
	return &r, nil
}

// save creates r if it was never stored, else writes it if the stored run
// is still at r's version; store.ErrConflict otherwise.
func (rs runs) save(ctx context.Context, r *Run, now time.Time) error {
	r.UpdatedAt = now.UTC()
	var rec store.Record
	var err error
	if r.version == 0 {
		rec, err = rs.view.Put(ctx, RunsCollection, r.SessionID, nil, r)
	} else {
		rec, err = rs.view.Update(ctx, RunsCollection, r.SessionID, r.version, nil, r)
	}
	if err != nil {
		return fmt.Errorf("update run: %w", err)
	}
	r.version = rec.Version
	return nil
}

// sealed returns the write save would make, to commit with another one;
// once it is committed, r is at version r.version+1.
func (rs runs) sealed(ctx context.Context, r *Run, now time.Time) (store.Write, error) {
	r.UpdatedAt = now.UTC()
	op := store.OpUpdate
	if r.version == 0 {
		op = store.OpPut
	}
	w, err := rs.view.Sealed(ctx, op, RunsCollection, r.SessionID, r.version, nil, r)
	if err != nil {
		return store.Write{}, fmt.Errorf("update run: %w", err)
	}
	return w, nil
}
