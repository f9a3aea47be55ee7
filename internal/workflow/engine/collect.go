package engine

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/idvault/idvault/internal/session"
	"github.com/idvault/idvault/internal/store"
	"github.com/idvault/idvault/internal/workflow/definition"
)

// Collected is what Collect made of an upload.
type Collected struct {
	// Writes holds the run's update, to commit in the same transaction as
	// the session's (nil when Collect moved nothing).
	Writes []store.Write
	// Waits says the session waits for more files at a document or selfie
	// step: no workflow message is needed. When false the caller hands the
	// session to the workflow role (its Advance flag is set).
	Waits bool
	// Advanced says the session left pending, and Step names the step it
	// stands at: the change the session.advance audit event records, as
	// the engine's own would.
	Advanced bool
	Step     string
}

// Collect runs the part of s's workflow an upload can run without the
// workflow role: s is the session as the upload is about to write it, its
// new file included. When the run stands at document or selfie steps
// (those that wait for the person's files), Collect completes each one
// whose files s now holds, as Advance would. If the run ends up waiting at
// another such step, Collect records the wait and leaves s in_progress with
// the step's deadline and its Advance flag cleared (Waits): the workflow
// role has nothing to do until the next upload, and the upload saves a
// workflow message, its delivery and the engine's reads and writes. If it
// reaches another kind of step, Collect records the completed steps and
// leaves s with its Advance flag set, for the caller to hand over.
//
// The run's update comes back in Collected.Writes, a compare-and-swap on
// the version read here that the caller commits with the session's own
// compare-and-swap; a conflict on either fails both, and the caller calls
// Collect again on the session read anew. Collect changes nothing and
// leaves the session to the workflow role (Waits false, no writes) when the
// run is not at a collecting step, holds an attempt, is done, its pinned
// definition cannot be read, or the step it would go on waiting at has
// passed its timeout, so that the engine decides those as it always does. A session
// without a run (a built-in workflow, a run not yet made) is not Collect's
// either.
func Collect(ctx context.Context, v *store.View, defs *Definitions, s *session.Session, now time.Time) (Collected, error) {
	if s.Status != session.StatusPending && s.Status != session.StatusInProgress {
		return Collected{}, nil
	}
	rs := runs{view: v}
	run, err := rs.get(ctx, s.ID)
	if errors.Is(err, store.ErrNotFound) {
		return Collected{}, nil
	}
	if err != nil {
		return Collected{}, fmt.Errorf("collect: %w", err)
	}
	if run.Done || run.Step == "" || run.Attempt != nil {
		return Collected{}, nil
	}
	def, err := defs.Pinned(ctx, v.Tenant(), run.DefinitionID, run.Version, run.Hash)
	if err != nil {
		// The engine puts the session in error with the reason.
		return Collected{}, nil
	}
	now = now.UTC()
	var moved bool
	for range len(def.Steps) {
		st, ok := def.Step(run.Step)
		if !ok || (st.Type != definition.TypeDocument && st.Type != definition.TypeSelfie) {
			break
		}
		if !collected(s, st) {
			if run.WaitStep != st.ID {
				run.WaitStep, run.WaitSince = st.ID, now
			}
			deadline := time.Time{}
			if st.Timeout > 0 {
				deadline = run.WaitSince.Add(st.Timeout)
			}
			if overdue(deadline, now) {
				// The engine expires the session.
				return Collected{}, nil
			}
			if !moved && run.WaitStep == st.ID && s.StepDeadline.Equal(deadline) && s.Status == session.StatusInProgress {
				// Still waiting where it waited: a file the step does not
				// need yet, nothing to record.
				s.Advance = false
				return Collected{Waits: true}, nil
			}
			c := Collected{Waits: true, Advanced: s.Status == session.StatusPending}
			s.Status, s.StepDeadline, s.Advance = session.StatusInProgress, deadline, false
			return c.with(ctx, rs, run, now)
		}
		run.Results[st.ID] = StepResult{Status: definition.StepCompleted, At: now}
		run.Step, run.Attempt, run.LastError = st.Next, nil, ""
		moved = true
	}
	if !moved {
		return Collected{}, nil
	}
	// The next step is the workflow role's. The session no longer waits
	// at a step, so it loses the deadline of the one it waited at, as the
	// engine would clear it.
	c := Collected{Advanced: s.Status == session.StatusPending, Step: run.Step}
	s.Status, s.StepDeadline, s.Advance = session.StatusInProgress, time.Time{}, true
	return c.with(ctx, rs, run, now)
}

// with returns c carrying the update of run.
func (c Collected) with(ctx context.Context, rs runs, run *Run, now time.Time) (Collected, error) {
	run.UpdatedAt = now
	w, err := rs.view.Sealed(ctx, store.OpUpdate, RunsCollection, run.SessionID, run.version, nil, run)
	if err != nil {
		return Collected{}, fmt.Errorf("collect: %w", err)
	}
	c.Writes = []store.Write{w}
	return c, nil
}
