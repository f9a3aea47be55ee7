package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/idvault/idvault/internal/files"
	"github.com/idvault/idvault/internal/regula/docreader"
	"github.com/idvault/idvault/internal/regula/faceapi"
	"github.com/idvault/idvault/internal/regula/httpx"
	"github.com/idvault/idvault/internal/session"
	"github.com/idvault/idvault/internal/store"
	"github.com/idvault/idvault/internal/workflow/definition"
)

// FileStore reads a session's files, verifying them, and stores the
// document portrait DocReader extracts (files.Store).
type FileStore interface {
	ReadAll(ctx context.Context, ref files.Ref, sealed files.Sealed) ([]byte, error)
	Put(ctx context.Context, ref files.Ref, r io.Reader, maxBytes int64) (files.Sealed, error)
}

// maxPortraitBytes bounds the stored document portrait.
const maxPortraitBytes = 16 << 20

// PortraitRef is the reference of the document portrait file fileID of
// session sessionID (Run.PortraitID): a session file, sealed under the
// session's data key.
func PortraitRef(tenant, sessionID, fileID string) files.Ref {
	return files.Ref{Tenant: tenant, Location: files.Sessions, ID: fileID, Scope: sessionID}
}

// outcome is what an attempt produced.
type outcome struct {
	result     StepResult
	next       string
	portrait   *files.Sealed
	portraitID string
	// portraitData is the portrait itself, which the round keeps for a
	// face match that follows (state.portrait).
	portraitData []byte
}

// automated runs one attempt of an automated step: the attempt is
// recorded in the run (compare-and-swap) before the external call, and its
// outcome is written only while the attempt is still the run's current
// one, so two processes never complete a step twice. A result rides with
// the run's next write (state.dirty), a compare-and-swap on the version
// that recorded the attempt: it fails if another process has taken the
// step over since. A failure is written at once (settle), as Advance then
// returns.
func (e *Engine) automated(ctx context.Context, t tenantRepos, cur *state, st definition.Step) (bool, error) {
	s, run := cur.s, cur.run
	now := e.cfg.Now().UTC()
	if a := run.Attempt; a != nil && a.Step == st.ID && now.Before(a.Deadline) {
		return true, ErrInProgress
	}
	n := run.Attempts[st.ID]
	if n > st.Retries {
		return false, e.endRun(ctx, t, cur, fmt.Sprintf("step %s failed after %d attempts: %s", st.ID, n, run.LastError))
	}
	timeout := st.Timeout
	if timeout == 0 {
		timeout = e.cfg.DefaultTimeout
	}
	att := &Attempt{ID: newAttemptID(), Step: st.ID, Number: n + 1, Started: now, Deadline: now.Add(timeout + e.cfg.Grace)}
	run.Attempts[st.ID] = att.Number
	run.Attempt = att
	if err := e.saveRun(ctx, t, cur); err != nil || cur.stale {
		return false, err
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	out, callErr := e.call(cctx, t.tenant, cur, st, att.ID)
	cancel()
	if callErr == nil {
		out.result.AttemptID = att.ID
		out.result.At = e.cfg.Now().UTC()
		run.Results[st.ID] = out.result
		run.Step = out.next
		if out.portrait != nil {
			run.PortraitFile, run.PortraitID = out.portrait, out.portraitID
			cur.portrait.id, cur.portrait.data = out.portraitID, out.portraitData
		}
		run.Attempt = nil
		cur.dirty = true
		return false, nil
	}
	reason := describe(callErr)
	e.cfg.Log.Debug("workflow: step attempt failed", "tenant", t.tenant, "session", s.ID, "step", st.ID, "attempt", att.Number, "err", callErr)
	final := errors.Is(callErr, errPermanent) || permanent(callErr) || att.Number > st.Retries
	err := e.settle(ctx, t, cur, att, func(r *Run) {
		r.LastError = reason
		if final {
			r.Step, r.Error = "", fmt.Sprintf("step %s failed after %d attempts: %s", st.ID, att.Number, reason)
		}
	})
	if err != nil || final {
		return false, err
	}
	return true, fmt.Errorf("step %s attempt %d: %w", st.ID, att.Number, callErr)
}

// settle applies fn to the run, clears its attempt and writes it, if att
// is still the run's attempt; otherwise (another process took the step
// over) it does nothing.
func (e *Engine) settle(ctx context.Context, t tenantRepos, cur *state, att *Attempt, fn func(*Run)) error {
	r := cur.run
	for range 10 {
		if r.Attempt == nil || r.Attempt.ID != att.ID {
			cur.stale = true
			return nil
		}
		fn(r)
		r.Attempt = nil
		err := t.runs.save(ctx, r, e.cfg.Now())
		if err == nil {
			cur.run = r
			return nil
		}
		if !errors.Is(err, store.ErrConflict) {
			return err
		}
		if r, err = t.runs.get(ctx, cur.s.ID); err != nil {
			return fmt.Errorf("settle attempt: %w", err)
		}
	}
	cur.stale = true
	return fmt.Errorf("settle attempt: %w", store.ErrConflict)
}

// permanent reports whether err is a technical failure no retry can fix:
// an input the service refuses.
func permanent(err error) bool {
	var se *httpx.StatusError
	if errors.As(err, &se) {
		return se.StatusCode >= 400 && se.StatusCode < 500 && se.StatusCode != http.StatusRequestTimeout && se.StatusCode != http.StatusTooManyRequests
	}
	for _, p := range []error{docreader.ErrInvalidImage, docreader.ErrInvalidScenario, faceapi.ErrInvalidImage,
		faceapi.ErrInvalidTransactionID, files.ErrTampered, files.ErrNotFound} {
		if errors.Is(err, p) {
			return true
		}
	}
	return false
}

// describe says what went wrong without personal data: the clients'
// errors name the call and the status, never a body.
func describe(err error) string {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return "timed out"
	case errors.Is(err, files.ErrTampered):
		return "a session file failed verification"
	case errors.Is(err, files.ErrNotFound):
		return "a session file is missing"
	}
	return err.Error()
}

// call makes the external call of one attempt of st.
func (e *Engine) call(ctx context.Context, tenant string, cur *state, st definition.Step, attemptID string) (outcome, error) {
	s := cur.s
	switch st.Type {
	case definition.TypeDocReader:
		return e.docReader(ctx, tenant, s, st, attemptID)
	case definition.TypeFaceMatch:
		return e.faceMatch(ctx, tenant, cur, st)
	case definition.TypeLiveness:
		return e.liveness(ctx, s, st)
	case definition.TypeWebhook:
		for _, ev := range st.Events {
			if err := e.cfg.Notifier.Notify(ctx, tenant, ev, s.ID, s.Status); err != nil {
				return outcome{}, fmt.Errorf("notify %s: %w", ev, err)
			}
		}
		return outcome{result: StepResult{Status: definition.StepCompleted}, next: st.Next}, nil
	}
	return outcome{}, fmt.Errorf("step type %s: %w", st.Type, errPermanent)
}

func (e *Engine) readFile(ctx context.Context, tenant string, s *session.Session, f *session.File) ([]byte, error) {
	b, err := e.cfg.Files.ReadAll(ctx, s.FileRef(tenant, f.ID), f.Sealed)
	if err != nil {
		return nil, fmt.Errorf("read %s file: %w", f.Kind, err)
	}
	return b, nil
}

func passedOrFailed(ok bool, st definition.Step) (string, string) {
	if ok {
		return definition.StepPassed, st.Next
	}
	return definition.StepFailed, st.OnFail
}

func (e *Engine) docReader(ctx context.Context, tenant string, s *session.Session, st definition.Step, attemptID string) (outcome, error) {
	var images [][]byte
	for _, k := range []session.FileKind{session.KindDocumentFront, session.KindDocumentBack} {
		if f := usable(s, k); f != nil {
			b, err := e.readFile(ctx, tenant, s, f)
			if err != nil {
				return outcome{}, err
			}
			images = append(images, b)
		}
	}
	if len(images) == 0 {
		return outcome{}, fmt.Errorf("no document page: %w", errPermanent)
	}
	res, err := e.cfg.DocReader.Process(ctx, images, st.Scenario)
	if err != nil {
		return outcome{}, err
	}
	ok := true
	switch st.RequiredStatus {
	case definition.StatusOK:
		ok = res.OverallStatus == docreader.CheckOK
	case definition.StatusNotError:
		ok = res.OverallStatus != docreader.CheckError
	}
	status, next := passedOrFailed(ok, st)
	overall := res.OverallStatus
	out := outcome{next: next, result: StepResult{Status: status, OverallStatus: &overall, DocumentType: res.DocumentType, Fields: res.Fields}}
	if !ok {
		out.result.Detail = "document checks failed"
	}
	if res.Portrait != nil {
		id := session.PortraitFileID(s.ID, attemptID)
		sealed, err := e.cfg.Files.Put(ctx, PortraitRef(tenant, s.ID, id), bytes.NewReader(res.Portrait), maxPortraitBytes)
		if err != nil {
			return outcome{}, fmt.Errorf("store portrait: %w", err)
		}
		out.portrait, out.portraitID, out.portraitData = &sealed, id, res.Portrait
	}
	return out, nil
}

func (e *Engine) faceMatch(ctx context.Context, tenant string, cur *state, st definition.Step) (outcome, error) {
	s, run := cur.s, cur.run
	var portrait []byte
	var err error
	switch front := usable(s, session.KindDocumentFront); {
	case run.PortraitFile != nil && cur.portrait.data != nil && cur.portrait.id == run.PortraitID:
		// Stored by this round's DocReader step: no need to read it back.
		portrait = cur.portrait.data
	case run.PortraitFile != nil:
		if portrait, err = e.cfg.Files.ReadAll(ctx, PortraitRef(tenant, s.ID, run.PortraitID), *run.PortraitFile); err != nil {
			return outcome{}, fmt.Errorf("read portrait: %w", err)
		}
	case front != nil:
		if portrait, err = e.readFile(ctx, tenant, s, front); err != nil {
			return outcome{}, err
		}
	default:
		return outcome{}, fmt.Errorf("no document portrait: %w", errPermanent)
	}
	selfie := usable(s, session.KindSelfie)
	if selfie == nil {
		return outcome{}, fmt.Errorf("no selfie to match (a liveness portrait is not read): %w", errPermanent)
	}
	live, err := e.readFile(ctx, tenant, s, selfie)
	if err != nil {
		return outcome{}, err
	}
	threshold := e.cfg.MatchThreshold
	if st.Threshold != nil {
		threshold = *st.Threshold
	}
	sim, err := e.cfg.FaceAPI.Match(ctx, portrait, live)
	for _, unmatched := range []struct {
		err    error
		detail string
	}{{faceapi.ErrNoFace, "face not detected"}, {faceapi.ErrFaceQuality, "face unusable"}, {faceapi.ErrNotMatched, "faces not matched"}} {
		if errors.Is(err, unmatched.err) {
			zero := 0.0
			return outcome{next: st.OnFail, result: StepResult{Status: definition.StepFailed, Similarity: &zero, Threshold: &threshold, Detail: unmatched.detail}}, nil
		}
	}
	if err != nil {
		return outcome{}, err
	}
	status, next := passedOrFailed(sim >= threshold, st)
	return outcome{next: next, result: StepResult{Status: status, Similarity: &sim, Threshold: &threshold}}, nil
}

func (e *Engine) liveness(ctx context.Context, s *session.Session, st definition.Step) (outcome, error) {
	var meta map[string]any
	if raw := s.Metadata.Value(); len(raw) > 0 {
		if err := json.Unmarshal(raw, &meta); err != nil {
			return outcome{}, fmt.Errorf("session metadata: %w", errPermanent)
		}
	}
	id, _ := meta[LivenessTransactionKey].(string)
	if id == "" {
		return outcome{}, fmt.Errorf("session metadata has no %s: %w", LivenessTransactionKey, errPermanent)
	}
	res, err := e.cfg.FaceAPI.Liveness(ctx, id)
	passed := err == nil && res.Passed
	if err != nil && !errors.Is(err, faceapi.ErrLivenessFailed) {
		return outcome{}, err
	}
	status, next := passedOrFailed(passed, st)
	out := outcome{next: next, result: StepResult{Status: status, LivenessPassed: &passed}}
	if !passed {
		out.result.Detail = "liveness not confirmed"
	}
	return out, nil
}
