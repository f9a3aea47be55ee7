package engine

import (
	"context"
	"fmt"
	"time"

	"github.com/idvault/idvault/internal/session"
	"github.com/idvault/idvault/internal/store"
	"github.com/idvault/idvault/internal/workflow/definition"
)

// Start pins new session s, about to be created in view v, to stored
// definition st: it returns ctx carrying the session's run at the start
// step, to commit in the same transaction as the session's create (the
// next write to session.Collection made with it), so a session is never
// without its pinned version.
//
// When the start step waits for the person (document or selfie), nothing
// can move until a file arrives: Start records the wait in the run, sets
// s.StepDeadline from the step's timeout, and reports waits true, and the
// caller needs to hand the session to the workflow role only with its
// first upload. Otherwise (waits false) the caller hands it over at once
// (Advance and a workflow message), as for any session.
func Start(ctx context.Context, v *store.View, st Stored, s *session.Session, now time.Time) (actx context.Context, waits bool, err error) {
	def := st.Definition
	first, ok := def.Step(def.Start)
	if !ok {
		return nil, false, fmt.Errorf("start run: step %s is not in the definition: %w", def.Start, store.ErrInvalid)
	}
	now = now.UTC()
	run := &Run{SessionID: s.ID, DefinitionID: def.ID, Version: def.Version, Hash: st.Hash, Step: def.Start,
		Results: map[string]StepResult{}, Attempts: map[string]int{}, CreatedAt: now, UpdatedAt: now}
	if first.Type == definition.TypeDocument || first.Type == definition.TypeSelfie {
		waits = true
		run.WaitStep, run.WaitSince = first.ID, now
		s.StepDeadline = time.Time{}
		if first.Timeout > 0 {
			s.StepDeadline = now.Add(first.Timeout)
		}
	}
	w, err := v.Sealed(ctx, store.OpPut, RunsCollection, run.SessionID, 0, nil, run)
	if err != nil {
		return nil, false, fmt.Errorf("start run: %w", err)
	}
	actx, _ = store.Attach(ctx, session.Collection, func(store.Write) ([]store.Write, error) {
		return []store.Write{w}, nil
	})
	return actx, waits, nil
}
