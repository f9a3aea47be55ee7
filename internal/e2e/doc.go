// Package e2e holds end-to-end tests that build the real idvault binary and
// drive it as an operator and an API client would: over HTTPS with the
// self-signed development certificate pinned, through signals and restarts,
// and through SIGKILL at random moments.
//
// The package has no code of its own; everything is in its tests:
//
//   - TestQuickStart follows the README's quick start (create a session,
//     upload a JPEG and a PNG, download them back byte-identical, wait for
//     review, list with a status filter and pagination, cancel) and then
//     scans every file of the data directory, and the process logs, for the
//     session metadata and for runs of the images' bytes in clear.
//   - TestInit checks that init --json prints exactly one JSON object, that
//     a second init refuses, and that serve reuses the tenant.
//   - TestGracefulShutdown sends SIGTERM during a slow 8 MB upload and checks
//     that the upload completes, the process exits 0 and the file survives
//     a restart.
//   - TestTLS checks the TLS policy from the client side.
//   - TestConfigCheck and TestHelp check the command line.
//   - TestCrashRecovery kills the server with SIGKILL while concurrent
//     clients create sessions, upload files, cancel sessions and read them
//     back, restarts it on the same data directory, and checks that every
//     acknowledged write survived, that nothing half-written is visible and
//     that the database passes SQLite's integrity check. Each request
//     carries a request id of the test's choosing; at the end, once the audit
//     pipeline has drained, the test opens the stopped server's data
//     directory in process and checks that every acknowledged request's
//     audit event is in the tenant's log exactly once (an unacknowledged
//     one's at most once), that every log verifies, and that events are in
//     causal order: a request acknowledged before another was sent comes
//     first in the chain.
//   - TestWorkflowCrash runs sessions of a stored workflow (document,
//     selfie, DocReader, face match, a rule routing by metadata to approval,
//     rejection or a webhook step and review) against the test-only
//     regulatest stand-ins while it SIGKILLs the server at random moments,
//     with a webhook receiver in the test that verifies every delivery's
//     signature. At the end every session whose uploads were acknowledged
//     has reached the end its metadata calls for (none in error, none
//     stuck), every acknowledged session's session.created event and every
//     session.completed and review.required event arrived at least once,
//     every event received matches its session, and the audit logs verify.
//   - TestAuditMarkers runs a flow carrying known personal data (metadata,
//     a username, a User-Agent, a stated purpose) and secrets (an admin
//     secret, API keys, a password, a token) and checks that none reaches
//     the process's output, an audit event outside its sealed personal
//     fields, or any file of the data directory in clear, and that the
//     stated purpose is recorded in the read events.
//
// The binary is built once per test run with the go command found on PATH.
// Without one the tests skip, unless IDVAULT_TEST_REQUIRE_INTEGRATION=1,
// which turns the skip into a failure. With -short the crash test runs a
// few iterations instead of the full count.
package e2e
