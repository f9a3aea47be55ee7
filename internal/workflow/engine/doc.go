// Package engine runs versioned workflow definitions
// (internal/workflow/definition) for verification sessions: it stores the
// definitions of each tenant, pins every session to the version it started
// on, and moves the session step by step, calling DocReader and FaceAPI for
// the automated steps.
//
// # State
//
// Definitions live in collection "workflows", one sealed record per
// version (Definitions). A session's progress lives in collection
// "workflowruns", one sealed record per session with the session's id
// (Run): the pinned definition (id, version, hash), the current step, each
// step's result (statuses and values rules read, never images), the
// attempts of each automated step, the last error and the review decision.
// The session record holds the status the business sees; the run is the
// engine's source of truth. Every run change is a compare-and-swap on the
// run record.
//
// # At least once, never twice
//
// An automated step (docreader, face_match, liveness, webhook) records an
// attempt (id, number, deadline) in the run before its external call, and
// writes its result only while that attempt is still the run's current one.
// A process that finds an attempt in flight before its deadline returns
// ErrInProgress (the queue redelivers later); after the deadline it takes
// the step over with a new attempt, and a late result of the old attempt is
// dropped. So a redelivered or duplicated message resumes from the stored
// step, and two processes never complete a step twice.
//
// A step's result is not written on its own. Like the steps without an
// external call (document, selfie, rule, decision), it is stored with the
// run's next write: the record of the next attempt (durable before that
// attempt's call), the write before the run waits for files or a verifier,
// or the run's end. That write is a compare-and-swap on the version that
// recorded the attempt, so if another process took the step over in
// between it fails and the result is dropped. A technical
// failure of an attempt is written at once. External calls are at least
// once: a process that dies after a call and before the run's next write
// leaves the call to be made again by the process that takes the step over
// after the attempt's deadline.
//
// The run is marked done with its outcome first; then the outcome is
// written to the session, with its audit event and its webhook event in the
// same transaction. A crash in between is repaired by the next delivery,
// which finds a done run and a session without its outcome; a session that
// already holds an outcome is not written again, so no event is written
// twice.
//
// # Pinning and waiting
//
// A session created through the API is pinned in its create's transaction
// (Start). A step that waits for the person or a verifier (document,
// selfie, review) records in the run when the wait began (WaitStep,
// WaitSince); with a timeout, the session carries the deadline
// (session.Session.StepDeadline), the scheduler hands an overdue session
// back, and the run ends expired (Run.Expired, an outcome like the others)
// before the session's expiry is written.
//
// # Failures
//
// A requirement not met (a face not detected, a similarity under the
// threshold, a liveness not confirmed, a document status not reached) is
// not a failure: the step completes with status failed and the run follows
// on_fail. A technical failure (unavailable service, timeout, 5xx,
// malformed answer) makes Advance return an error so that the queue retries
// with its backoff; the step's attempts are counted in the run, and once
// Step.Retries retries have failed the session goes to status error with
// the reason. Failures no retry can fix (4xx, an image the service refuses,
// a tampered or missing session file, a missing input) put the session in
// error at once. Reasons never hold personal data.
package engine
