package engine_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/idvault/idvault/internal/files"
	"github.com/idvault/idvault/internal/regula/docreader"
	"github.com/idvault/idvault/internal/regula/regulatest"
	"github.com/idvault/idvault/internal/session"
	"github.com/idvault/idvault/internal/store"
	"github.com/idvault/idvault/internal/workflow/engine"
)

// countingBackend counts the transactions (Put, Update, Delete, Apply)
// made through it, by the collection of their first write.
type countingBackend struct {
	store.Backend
	mu     sync.Mutex
	writes map[string]int
}

func (c *countingBackend) count(collection string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.writes[collection]++
}

func (c *countingBackend) Put(ctx context.Context, rec store.Record) (store.Record, error) {
	c.count(rec.Collection)
	return c.Backend.Put(ctx, rec)
}

func (c *countingBackend) Update(ctx context.Context, rec store.Record) (store.Record, error) {
	c.count(rec.Collection)
	return c.Backend.Update(ctx, rec)
}

func (c *countingBackend) Delete(ctx context.Context, collection, tenant, id string, version int64) error {
	c.count(collection)
	return c.Backend.Delete(ctx, collection, tenant, id, version)
}

func (c *countingBackend) Apply(ctx context.Context, writes []store.Write) ([]store.Record, error) {
	if len(writes) > 0 {
		c.count(writes[0].Record.Collection)
	}
	return c.Backend.Apply(ctx, writes)
}

func (c *countingBackend) snapshot() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int, len(c.writes))
	for k, v := range c.writes {
		out[k] = v
	}
	return out
}

// TestStoreWritesPerSession counts the store transactions one delivery
// makes for a session that holds its files and runs the four-step workflow
// to approved: four. The session's in_progress; the run created with the
// docreader attempt; the face_match attempt with the docreader result; the
// session's outcome with its event, carrying the run's end with the
// face_match result. A step's result rides with the run's next write.
func TestStoreWritesPerSession(t *testing.T) {
	f := newFixture(t)
	f.define(t, kycYAML)
	cb := &countingBackend{Backend: f.env.Backend, writes: map[string]int{}}
	cfg := f.config()
	cfg.Backend = cb
	e := newEngine(t, cfg)
	id := f.newSession(t, "kyc", nil, docAndSelfie...)
	if err := e.Handle(context.Background(), message(id)); err != nil {
		t.Fatalf("Handle() = %v", err)
	}
	if s := f.session(t, id); s.Status != session.StatusApproved {
		t.Fatalf("session = %s %q, want approved", s.Status, s.Reason)
	}
	got := cb.snapshot()
	t.Logf("transactions by collection: %v", got)
	want := map[string]int{session.Collection: 2, engine.RunsCollection: 2}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("transactions = %v, want %v", got, want)
	}
	r := f.run(t, id)
	if r.Results["docreader"].AttemptID == "" || r.Results["face-match"].AttemptID == "" || r.Attempt != nil || !r.Done {
		t.Errorf("run = results %v, attempt %v, done %v, want both results of their attempts, no attempt, done", r.Results, r.Attempt, r.Done)
	}
}

// takeover is the DocReader of a process that is overtaken during its
// call: before its first call reaches the service, another process (run)
// takes the step over and finishes the session.
type takeover struct {
	engine.DocReader
	once sync.Once
	run  func()
}

func (d *takeover) Process(ctx context.Context, images [][]byte, scenario string) (docreader.Result, error) {
	d.once.Do(d.run)
	return d.DocReader.Process(ctx, images, scenario)
}

// overtaking returns the engine of a process whose clock is an hour ahead:
// it takes over any attempt in flight.
func overtaking(t *testing.T, f *fixture) *engine.Engine {
	t.Helper()
	cfg := f.config()
	cfg.Now = func() time.Time { return time.Now().Add(time.Hour) }
	return newEngine(t, cfg)
}

// handleOvertaken has a process handle session id while another process
// (overtaking) takes the session over and handles it to its end: wrap
// installs, in the first process's config, the call during which
// takeOver runs. Neither process's Handle may fail.
func handleOvertaken(t *testing.T, f *fixture, id string, wrap func(cfg *engine.Config, takeOver func())) {
	t.Helper()
	later := overtaking(t, f)
	var laterErr error
	cfg := f.config()
	wrap(&cfg, func() { laterErr = later.Handle(context.Background(), message(id)) })
	e := newEngine(t, cfg)
	if err := e.Handle(context.Background(), message(id)); err != nil {
		t.Errorf("Handle() of the overtaken process = %v, want nil", err)
	}
	if laterErr != nil {
		t.Errorf("Handle() of the process that took over = %v, want nil", laterErr)
	}
}

// TestLateResultIsDropped: a process whose attempt was taken over during
// its call gets its result after the step was completed by the other
// process; the result, held for the run's next write, is never written, and
// the process makes no further call.
func TestLateResultIsDropped(t *testing.T) {
	f := newFixture(t)
	f.define(t, strings.Replace(kycYAML, "timeout: 1s", "timeout: 10s", 1))
	id := f.newSession(t, "kyc", nil, docAndSelfie...)
	handleOvertaken(t, f, id, func(cfg *engine.Config, takeOver func()) {
		cfg.DocReader = &takeover{DocReader: f.drc, run: takeOver}
	})
	if s := f.session(t, id); s.Status != session.StatusApproved {
		t.Fatalf("session = %s %q, want approved", s.Status, s.Reason)
	}
	r := f.run(t, id)
	if r.Attempts["docreader"] != 2 || r.Results["docreader"].AttemptID == "" || r.PortraitID != session.PortraitFileID(id, r.Results["docreader"].AttemptID) {
		t.Errorf("run = attempts %v, docreader result of %q, portrait %q, want the result and portrait of the second attempt",
			r.Attempts, r.Results["docreader"].AttemptID, r.PortraitID)
	}
	if f.dr.Requests() != 2 || f.fa.Requests() != 1 {
		t.Errorf("requests = docreader %d, faceapi %d, want 2 (both attempts), 1 (the process that took over)", f.dr.Requests(), f.fa.Requests())
	}
	if got, want := summary(f, t, id), "session.advance=in_progress,session.decision=approved"; got != want {
		t.Errorf("audit events = %s, want %s", got, want)
	}
}

// faceTakeover is the FaceAPI of a process that is overtaken during its
// face match, as takeover is for DocReader.
type faceTakeover struct {
	engine.FaceAPI
	once sync.Once
	run  func()
}

func (f *faceTakeover) Match(ctx context.Context, portrait, live []byte) (float64, error) {
	f.once.Do(f.run)
	return f.FaceAPI.Match(ctx, portrait, live)
}

// TestLateOutcomeIsDropped: a process overtaken during the last call of a
// session (the other process finishes the session meanwhile) ends it with
// the run's end and the session's outcome in one transaction; both were
// written by the other process, so it writes neither, and the session has
// one decision, one event, one notification.
func TestLateOutcomeIsDropped(t *testing.T) {
	f := newFixture(t)
	f.define(t, kycYAML)
	id := f.newSession(t, "kyc", nil, docAndSelfie...)
	handleOvertaken(t, f, id, func(cfg *engine.Config, takeOver func()) {
		cfg.FaceAPI = &faceTakeover{FaceAPI: f.fac, run: takeOver}
	})
	if s := f.session(t, id); s.Status != session.StatusApproved || s.Advance {
		t.Fatalf("session = %s %q advance %t, want approved", s.Status, s.Reason, s.Advance)
	}
	r := f.run(t, id)
	if !r.Done || r.Attempts["face-match"] != 2 || f.fa.Requests() != 2 {
		t.Errorf("run = done %t, face-match attempts %d, FaceAPI requests %d; want done after 2 attempts and 2 calls",
			r.Done, r.Attempts["face-match"], f.fa.Requests())
	}
	if got, want := summary(f, t, id), "session.advance=in_progress,session.decision=approved"; got != want {
		t.Errorf("audit events = %s, want %s", got, want)
	}
	var completed int
	for _, n := range f.notifier.events() {
		if n.Event == "session.completed" {
			completed++
		}
	}
	if completed != 1 {
		t.Errorf("session.completed notifications = %d, want 1", completed)
	}
}

// countingFiles records the files read through it.
type countingFiles struct {
	engine.FileStore
	mu   sync.Mutex
	read []string
}

func (c *countingFiles) ReadAll(ctx context.Context, ref files.Ref, sealed files.Sealed) ([]byte, error) {
	c.mu.Lock()
	c.read = append(c.read, ref.ID)
	c.mu.Unlock()
	return c.FileStore.ReadAll(ctx, ref, sealed)
}

// TestPortraitKeptForFaceMatch: the face match that follows a DocReader
// step in the same delivery matches the portrait DocReader returned
// without reading back the file it was just stored as; a face match in a
// later delivery (after a failed attempt) reads the stored file.
func TestPortraitKeptForFaceMatch(t *testing.T) {
	for _, later := range []bool{false, true} {
		t.Run(fmt.Sprintf("later=%t", later), func(t *testing.T) {
			f := newFixture(t)
			f.define(t, kycYAML)
			cf := &countingFiles{FileStore: f.files}
			cfg := f.config()
			cfg.Files = cf
			e := newEngine(t, cfg)
			if later {
				f.fa.Inject(regulatest.Status(500))
			}
			id := f.newSession(t, "kyc", nil, docAndSelfie...)
			handleUntilDone(t, e, id)
			if s := f.session(t, id); s.Status != session.StatusApproved {
				t.Fatalf("session = %s %q, want approved", s.Status, s.Reason)
			}
			portrait := f.run(t, id).PortraitID
			var portraitReads int
			for _, r := range cf.read {
				if r == portrait {
					portraitReads++
				}
			}
			if want := map[bool]int{false: 0, true: 1}[later]; portrait == "" || portraitReads != want {
				t.Errorf("portrait %q read %d times (files read: %v), want %d", portrait, portraitReads, cf.read, want)
			}
		})
	}
}
