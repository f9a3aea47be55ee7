package engine_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/idvault/idvault/internal/audit"
	"github.com/idvault/idvault/internal/files"
	"github.com/idvault/idvault/internal/files/localfs"
	"github.com/idvault/idvault/internal/pii"
	"github.com/idvault/idvault/internal/queue"
	"github.com/idvault/idvault/internal/regula/docreader"
	"github.com/idvault/idvault/internal/regula/faceapi"
	"github.com/idvault/idvault/internal/regula/httpx"
	"github.com/idvault/idvault/internal/regula/regulatest"
	"github.com/idvault/idvault/internal/session"
	"github.com/idvault/idvault/internal/store"
	"github.com/idvault/idvault/internal/testenv"
	"github.com/idvault/idvault/internal/workflow/engine"
)

const tenant = "acme"

// kycYAML is the four-step workflow of the tests: document and selfie,
// DocReader, face match, a rule, and a decision; doubtful cases notify and
// go to review.
const kycYAML = `
id: kyc
version: 1
name: KYC
start: document
steps:
  - id: document
    type: document
    pages: [{side: front}]
    next: selfie
  - id: selfie
    type: selfie
    next: docreader
  - id: docreader
    type: docreader
    scenario: FullProcess
    required_status: ok
    timeout: 1s
    retries: 2
    next: face-match
    on_fail: rejected-document
  - id: face-match
    type: face_match
    threshold: 0.8
    retries: 2
    next: checks
    on_fail: notify-review
  - id: checks
    type: rule
    cases:
      - when: docreader.documentType == "Utopia - ePassport (ICAO 9303 specimen)" && face_match.similarity >= 0.9 && steps.docreader.status == "passed"
        decision: approved
        reason: identity verified
    default:
      next: notify-review
  - id: notify-review
    type: webhook
    events: [review.required]
    next: review
  - id: review
    type: review
    on_approve: approved
    on_reject: rejected
  - id: approved
    type: decision
    decision: approved
    reason: verified
  - id: rejected
    type: decision
    decision: rejected
    reason: rejected by a verifier
  - id: rejected-document
    type: decision
    decision: rejected
    reason: document checks failed
`

// notification is one Notify call.
type notification struct {
	Tenant, Event, Session string
	Status                 session.Status
}

// recorder is the webhook Notifier of the tests: it records every event
// and fails the calls it is told to.
type recorder struct {
	mu    sync.Mutex
	sent  []notification
	fails int
}

func (r *recorder) Notify(_ context.Context, tenant, eventType, sessionID string, status session.Status) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fails > 0 {
		r.fails--
		return errors.New("webhook receiver unavailable")
	}
	r.sent = append(r.sent, notification{tenant, eventType, sessionID, status})
	return nil
}

// Attach records the event when publish is called, that is once the
// engine has written the change it announces; it fails as Notify does.
func (r *recorder) Attach(ctx context.Context, tenant, eventType, sessionID string, status session.Status) (context.Context, func(context.Context), error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fails > 0 {
		r.fails--
		return nil, nil, errors.New("webhook receiver unavailable")
	}
	return ctx, func(context.Context) {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.sent = append(r.sent, notification{tenant, eventType, sessionID, status})
	}, nil
}

func (r *recorder) events() []notification {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]notification(nil), r.sent...)
}

type fixture struct {
	env      *testenv.Env
	defs     *engine.Definitions
	emitter  *audit.Emitter
	files    *files.Store
	dr       *regulatest.DocReader
	fa       *regulatest.FaceAPI
	drc      *docreader.Client
	fac      *faceapi.Client
	notifier *recorder
	eng      *engine.Engine
	// bucketDir is the directory of the files' local bucket.
	bucketDir string
}

func newFixture(tb testing.TB) *fixture {
	tb.Helper()
	ctx := context.Background()
	f := &fixture{env: testenv.Open(tb, queue.Options{}), notifier: &recorder{}}
	f.defs = engine.NewDefinitions(f.env.Backend, f.env.Barrier, nil)
	f.emitter = audit.NewEmitter(f.env.Backend, f.env.Barrier, nil)
	f.bucketDir = tb.TempDir()
	bucket, err := localfs.Open(ctx, f.bucketDir)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = bucket.Close() })
	f.files = files.New(bucket, f.env.Barrier)
	f.dr = regulatest.NewDocReader(tb, regulatest.Options{})
	f.fa = regulatest.NewFaceAPI(tb, regulatest.Options{})
	cfg := func(url string) httpx.Config {
		return httpx.Config{URL: url, AllowLoopbackHTTP: true, Timeout: 10 * time.Second}
	}
	if f.drc, err = docreader.New(cfg(f.dr.URL()), httpx.Options{}); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(f.drc.Close)
	if f.fac, err = faceapi.New(cfg(f.fa.URL()), httpx.Options{}); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(f.fac.Close)
	f.eng = f.engine(tb)
	return f
}

// engine returns a new engine over the fixture's store: another workflow
// process.
func (f *fixture) engine(tb testing.TB) *engine.Engine {
	tb.Helper()
	return newEngine(tb, f.config())
}

// config is the configuration of the fixture's engines: its store,
// definitions, audit emitter, stand-in clients, files and notifier.
func (f *fixture) config() engine.Config {
	return engine.Config{Backend: f.env.Backend, Barrier: f.env.Barrier, Definitions: f.defs, Audit: f.emitter,
		DocReader: f.drc, FaceAPI: f.fac, Files: f.files, Notifier: f.notifier}
}

func newEngine(tb testing.TB, cfg engine.Config) *engine.Engine {
	tb.Helper()
	e, err := engine.New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return e
}

func (f *fixture) define(tb testing.TB, doc string) engine.Stored {
	tb.Helper()
	st, err := f.defs.Create(context.Background(), tenant, []byte(doc))
	if err != nil {
		tb.Fatalf("Create() = %v", err)
	}
	return st
}

func (f *fixture) repo(tb testing.TB) *session.Repo {
	tb.Helper()
	v, err := store.NewView(f.env.Backend, f.env.Barrier, tenant)
	if err != nil {
		tb.Fatal(err)
	}
	return session.NewRepo(v)
}

// newSession stores a pending session of workflow with metadata and a file
// of each kind.
func (f *fixture) newSession(tb testing.TB, workflow string, metadata map[string]any, kinds ...session.FileKind) string {
	tb.Helper()
	ctx := context.Background()
	now := time.Now().UTC()
	s := &session.Session{ID: uuid.NewString(), WorkflowID: workflow, Status: session.StatusPending, CreatedBy: "test",
		CreatedAt: now, UpdatedAt: now, ExpiresAt: now.Add(time.Hour), Files: []session.File{}}
	if metadata != nil {
		raw, err := json.Marshal(metadata)
		if err != nil {
			tb.Fatal(err)
		}
		s.Metadata = pii.JSON(raw)
	}
	if err := f.repo(tb).Create(ctx, s); err != nil {
		tb.Fatal(err)
	}
	f.addFiles(tb, s.ID, kinds...)
	return s.ID
}

// addFiles stores a JPEG of each kind as a file of session id.
func (f *fixture) addFiles(tb testing.TB, id string, kinds ...session.FileKind) {
	tb.Helper()
	ctx := context.Background()
	for _, k := range kinds {
		fileID := uuid.NewString()
		ref := files.Ref{Tenant: tenant, Location: files.Sessions, ID: fileID, Scope: id}
		sealed, err := f.files.Put(ctx, ref, bytes.NewReader(regulatest.JPEG(64, 80)), 1<<20)
		if err != nil {
			tb.Fatal(err)
		}
		_, err = f.repo(tb).Update(ctx, id, time.Now(), func(s *session.Session) error {
			s.Files = append(s.Files, session.File{ID: fileID, Kind: k, ContentType: "image/jpeg", CreatedAt: time.Now().UTC(), Sealed: sealed})
			s.Advance = true
			return nil
		})
		if err != nil {
			tb.Fatal(err)
		}
	}
}

func (f *fixture) session(tb testing.TB, id string) *session.Session {
	tb.Helper()
	s, err := f.repo(tb).Get(context.Background(), id)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

func (f *fixture) run(tb testing.TB, id string) engine.Run {
	tb.Helper()
	v, err := store.NewView(f.env.Backend, f.env.Barrier, tenant)
	if err != nil {
		tb.Fatal(err)
	}
	var r engine.Run
	if _, err := v.Get(context.Background(), engine.RunsCollection, id, &r); err != nil {
		tb.Fatal(err)
	}
	return r
}

func message(id string) []byte {
	return []byte(`{"tenant":"` + tenant + `","session":"` + id + `"}`)
}

// auditEvents returns the events waiting in the audit outbox.
func (f *fixture) auditEvents(tb testing.TB) []audit.Event {
	tb.Helper()
	var out []audit.Event
	err := audit.ReadOutbox(context.Background(), f.env.Backend, f.env.Barrier, func(ev audit.Event) error {
		out = append(out, ev)
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return out
}

// eventsOf returns the actions and details of the audit events about
// session id, in order.
func (f *fixture) eventsOf(tb testing.TB, id string) []audit.Event {
	tb.Helper()
	var out []audit.Event
	for _, ev := range f.auditEvents(tb) {
		if ev.Resource.ID == id {
			out = append(out, ev)
		}
	}
	return out
}
