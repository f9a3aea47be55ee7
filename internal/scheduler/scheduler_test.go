package scheduler_test

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/idvault/idvault/internal/audit"
	"github.com/idvault/idvault/internal/barrier"
	"github.com/idvault/idvault/internal/files"
	"github.com/idvault/idvault/internal/files/localfs"
	"github.com/idvault/idvault/internal/identity"
	"github.com/idvault/idvault/internal/queue"
	"github.com/idvault/idvault/internal/queue/sqlitequeue"
	"github.com/idvault/idvault/internal/scheduler"
	"github.com/idvault/idvault/internal/session"
	"github.com/idvault/idvault/internal/sqlitedb"
	"github.com/idvault/idvault/internal/store"
	"github.com/idvault/idvault/internal/store/sqlite"
	"github.com/idvault/idvault/internal/testenv"
	"github.com/idvault/idvault/internal/workflow"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// patience bounds every wait for something that must happen.
const patience = 20 * time.Second

// republishAfter is the scheduler's republish delay in every test.
const republishAfter = 30 * time.Second

// now is the scheduler's clock in every test.
var now = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

type fixture struct {
	db        *sqlitedb.DB
	backend   *sqlite.Store
	barrier   *barrier.AESGCM
	broker    *sqlitequeue.Broker
	ids       *identity.Service
	scheduler *scheduler.Scheduler
	log       *slog.Logger
	files     *files.Store
	bucketDir string
	deps      scheduler.Deps
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	t.Cleanup(func() { goleak.VerifyNone(t) }) // runs last, after everything below is closed
	ctx := context.Background()
	e := testenv.Open(t, queue.Options{})
	db, backend, broker, bar := e.DB, e.Backend, e.Broker, e.Barrier
	blinder, err := barrier.NewBlinder(testenv.RandomKey(t))
	if err != nil {
		t.Fatalf("barrier.NewBlinder() = %v", err)
	}
	clock := func() time.Time { return now }
	log := slog.New(slog.DiscardHandler)
	bucketDir := filepath.Join(t.TempDir(), "files")
	bucket, err := localfs.Open(ctx, bucketDir)
	if err != nil {
		t.Fatalf("localfs.Open() = %v", err)
	}
	t.Cleanup(func() { _ = bucket.Close() })
	fs := files.New(bucket, bar)
	ids := identity.NewService(backend, bar, blinder, clock)
	emitter := audit.NewEmitter(backend, bar, clock)
	return &fixture{
		db:      db,
		backend: backend,
		barrier: bar,
		broker:  broker,
		ids:     ids,
		scheduler: scheduler.New(scheduler.Deps{Backend: backend, Barrier: bar, Identity: ids, Broker: broker, Files: fs,
			Audit: emitter, Log: log, Now: clock, Interval: time.Hour, RepublishAfter: republishAfter,
			SweepInterval: time.Hour, OrphanGrace: time.Hour}),
		files:     fs,
		bucketDir: bucketDir,
		deps: scheduler.Deps{Backend: backend, Barrier: bar, Identity: ids, Broker: broker, Files: fs,
			Audit: emitter, Log: log, Interval: time.Hour, RepublishAfter: republishAfter,
			SweepInterval: time.Hour, OrphanGrace: time.Hour},
		log: log,
	}
}

func (f *fixture) tenant(t *testing.T, name string) string {
	t.Helper()
	tn, err := f.ids.CreateTenant(context.Background(), name)
	if err != nil {
		t.Fatalf("CreateTenant(%q) = %v", name, err)
	}
	return tn.ID
}

func (f *fixture) repo(t *testing.T, tenant string) *session.Repo {
	t.Helper()
	v, err := store.NewView(f.backend, f.barrier, tenant)
	if err != nil {
		t.Fatalf("NewView(%q) = %v", tenant, err)
	}
	return session.NewRepo(v)
}

// spec is a session to store: its status, its expiry, its advance flag and
// its last update, relative to now.
type spec struct {
	id      string
	status  session.Status
	expires time.Duration
	advance bool
	updated time.Duration
}

func (f *fixture) create(t *testing.T, tenant string, sp spec) {
	t.Helper()
	s := &session.Session{
		ID: sp.id, WorkflowID: workflow.DefaultID, Status: sp.status, Advance: sp.advance,
		CreatedAt: now.Add(-48 * time.Hour), UpdatedAt: now.Add(sp.updated), ExpiresAt: now.Add(sp.expires),
		Files: []session.File{},
	}
	if err := f.repo(t, tenant).Create(context.Background(), s); err != nil {
		t.Fatalf("Create(%s/%s) = %v", tenant, sp.id, err)
	}
}

func (f *fixture) get(t *testing.T, tenant, id string) *session.Session {
	t.Helper()
	s, err := f.repo(t, tenant).Get(context.Background(), id)
	if err != nil {
		t.Fatalf("Get(%s/%s) = %v", tenant, id, err)
	}
	return s
}

func (f *fixture) runOnce(t *testing.T) {
	t.Helper()
	if _, err := f.scheduler.RunOnce(context.Background()); err != nil {
		t.Fatalf("RunOnce() = %v", err)
	}
}

// queued counts the messages waiting on topic, straight from the broker's
// table (see the sqlitequeue package doc): RunOnce publishes before it
// returns, so the count is exact.
func (f *fixture) queued(t *testing.T, topic string) int {
	t.Helper()
	var n int
	if err := f.db.QueryRow(`SELECT COUNT(*) FROM queue_messages WHERE topic = ?`, topic).Scan(&n); err != nil {
		t.Fatalf("count queue messages: %v", err)
	}
	return n
}

// receive takes the next message of topic and acks it.
func (f *fixture) receive(t *testing.T, topic string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	d, err := f.broker.Receive(ctx, topic)
	if err != nil {
		t.Fatalf("Receive(%s) = %v", topic, err)
	}
	if err := d.Ack(ctx); err != nil {
		t.Fatalf("Ack() = %v", err)
	}
	return d.Body()
}

func TestExpire(t *testing.T) {
	f := newFixture(t)
	a, b := f.tenant(t, "Acme"), f.tenant(t, "Globex")
	specsA := []spec{
		{id: "pending-past", status: session.StatusPending, expires: -time.Minute},
		{id: "in-progress-past", status: session.StatusInProgress, expires: -time.Hour},
		{id: "pending-future", status: session.StatusPending, expires: time.Minute},
		{id: "pending-now", status: session.StatusPending, expires: 0},
		{id: "review-past", status: session.StatusReview, expires: -time.Hour},
		{id: "approved-past", status: session.StatusApproved, expires: -time.Hour},
		{id: "cancelled-past", status: session.StatusCancelled, expires: -time.Hour},
		{id: "error-past", status: session.StatusError, expires: -time.Hour},
	}
	specsB := []spec{
		{id: "pending-past", status: session.StatusPending, expires: time.Hour}, // same id as in a, not due
		{id: "b-in-progress-past", status: session.StatusInProgress, expires: -time.Second},
	}
	for _, sp := range specsA {
		f.create(t, a, sp)
	}
	for _, sp := range specsB {
		f.create(t, b, sp)
	}
	wantExpired := map[string][]string{
		a: {"in-progress-past", "pending-past"},
		b: {"b-in-progress-past"},
	}

	f.runOnce(t)

	t.Run("statuses", func(t *testing.T) {
		for tenant, specs := range map[string][]spec{a: specsA, b: specsB} {
			for _, sp := range specs {
				s := f.get(t, tenant, sp.id)
				if slices.Contains(wantExpired[tenant], sp.id) {
					if s.Status != session.StatusExpired || s.Reason != "ttl" || s.Version() != 2 || !s.UpdatedAt.Equal(now) {
						t.Errorf("%s: status %s, reason %q, version %d, updated %v; want expired, ttl, 2, %v", sp.id, s.Status, s.Reason, s.Version(), s.UpdatedAt, now)
					}
				} else if s.Status != sp.status || s.Version() != 1 {
					t.Errorf("%s: status %s, version %d; want %s untouched at version 1", sp.id, s.Status, s.Version(), sp.status)
				}
			}
		}
	})

	t.Run("audit events", func(t *testing.T) {
		for tenant, want := range wantExpired {
			evs := f.auditEvents(t, tenant)
			var got []string
			for _, ev := range evs {
				if ev.Action != "session.expire" || ev.Outcome != audit.Success || ev.Actor.Type != "system" ||
					ev.Resource.Type != "session" || !ev.Time.Equal(now) {
					t.Errorf("audit event %+v, want a successful session.expire by the system at %v", ev, now)
				}
				got = append(got, ev.Resource.ID)
			}
			slices.Sort(got)
			if !slices.Equal(got, want) {
				t.Errorf("audit events of tenant %s name sessions %v, want %v", tenant, got, want)
			}
		}
	})

	t.Run("nothing republished", func(t *testing.T) {
		if n := f.queued(t, queue.TopicWorkflow); n != 0 {
			t.Errorf("workflow messages after RunOnce = %d, want 0 (no session waits for the workflow)", n)
		}
	})

	t.Run("second pass", func(t *testing.T) {
		before := len(f.auditEvents(t, a)) + len(f.auditEvents(t, b))
		f.runOnce(t)
		if n := len(f.auditEvents(t, a)) + len(f.auditEvents(t, b)); n != before {
			t.Errorf("audit events after a second RunOnce = %d, want the %d of the first", n, before)
		}
		for _, id := range wantExpired[a] {
			if s := f.get(t, a, id); s.Version() != 2 {
				t.Errorf("%s version after a second RunOnce = %d, want 2", id, s.Version())
			}
		}
	})
}

func TestRepublish(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	a, b := f.tenant(t, "Acme"), f.tenant(t, "Globex")
	for _, sp := range []spec{
		{id: "stale", status: session.StatusPending, expires: time.Hour, advance: true, updated: -republishAfter - time.Second},
		{id: "fresh", status: session.StatusPending, expires: time.Hour, advance: true, updated: -republishAfter + time.Second},
		{id: "edge", status: session.StatusInProgress, expires: time.Hour, advance: true, updated: -republishAfter},
		{id: "idle", status: session.StatusPending, expires: time.Hour, updated: -time.Hour},
	} {
		f.create(t, a, sp)
	}
	f.create(t, b, spec{id: "stale-b", status: session.StatusInProgress, expires: time.Hour, advance: true, updated: -time.Hour})

	f.runOnce(t)
	if n := f.queued(t, queue.TopicWorkflow); n != 2 {
		t.Fatalf("workflow messages after RunOnce = %d, want 2", n)
	}
	role := workflow.NewRole(f.broker, f.backend, f.barrier, audit.NewEmitter(f.backend, f.barrier, nil), f.log, func() time.Time { return now }, 1)
	var got []workflow.Message
	for range 2 {
		body := f.receive(t, queue.TopicWorkflow)
		var m workflow.Message
		if err := json.Unmarshal(body, &m); err != nil {
			t.Fatalf("workflow message %q: %v", body, err)
		}
		got = append(got, m)
		if err := role.Handle(ctx, body); err != nil {
			t.Fatalf("Handle(%q) = %v", body, err)
		}
	}
	want := []workflow.Message{{Tenant: a, Session: "stale"}, {Tenant: b, Session: "stale-b"}}
	slices.SortFunc(got, func(x, y workflow.Message) int { return cmp.Compare(x.Session, y.Session) })
	if !slices.Equal(got, want) {
		t.Errorf("republished %+v, want %+v", got, want)
	}
	for _, ev := range f.auditEvents(t, a) {
		if ev.Action != "session.advance" || ev.Actor.ID != "workflow" {
			t.Errorf("audit event %s by %s after RunOnce, want only the workflow's session.advance (nothing expired)", ev.Action, ev.Actor.ID)
		}
	}

	// The workflow has evaluated both: a new pass has nothing to republish.
	f.runOnce(t)
	if n := f.queued(t, queue.TopicWorkflow); n != 0 {
		t.Errorf("workflow messages after the workflow handled them = %d, want 0", n)
	}
}

func TestRun(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	a := f.tenant(t, "Acme")
	f.create(t, a, spec{id: "due", status: session.StatusPending, expires: -time.Minute})

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- f.scheduler.Run(runCtx) }()

	// Run makes its first pass at once.
	deadline := time.Now().Add(20 * time.Second)
	for len(f.auditEvents(t, a)) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no audit event from the first pass")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if s := f.get(t, a, "due"); s.Status != session.StatusExpired {
		t.Errorf("due session is %s after the first pass wrote its audit event, want expired", s.Status)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run() after cancel = %v, want nil", err)
		}
	case <-time.After(patience):
		t.Fatalf("Run() did not return within %v of cancel", patience)
	}
}

func TestSweep(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	a, b := f.tenant(t, "Acme"), f.tenant(t, "Bolt")
	put := func(tenant, id string) files.Sealed {
		t.Helper()
		sealed, err := f.files.Put(ctx, files.Ref{Tenant: tenant, Location: files.Sessions, ID: id}, bytes.NewReader([]byte("image "+id)), 1<<20)
		if err != nil {
			t.Fatalf("Put(%s) = %v", id, err)
		}
		return sealed
	}
	exists := func(tenant, id string) bool {
		t.Helper()
		ok, err := f.files.Exists(ctx, files.Ref{Tenant: tenant, Location: files.Sessions, ID: id})
		if err != nil {
			t.Fatalf("Exists(%s) = %v", id, err)
		}
		return ok
	}
	f.create(t, a, spec{id: "s1", status: session.StatusInProgress, expires: time.Hour})
	kept := put(a, "kept")
	if _, err := f.repo(t, a).Update(ctx, "s1", now, func(s *session.Session) error {
		s.Files = append(s.Files, session.File{ID: "kept", Kind: session.KindSelfie, Sealed: kept})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	put(a, "orphan")
	put(b, "kept") // same id in another tenant, referenced by nobody there
	// Document portraits are referenced by the session's workflow run: kept
	// while their session exists.
	put(a, session.PortraitFileID("s1", "attempt-1"))
	put(a, session.PortraitFileID("gone", "attempt-1"))

	// A scheduler on the real clock: every object is younger than the grace.
	fresh := f.deps
	if rep, err := scheduler.New(fresh).RunOnce(ctx); err != nil || rep.Swept != 0 {
		t.Fatalf("RunOnce(fresh objects) = %+v, %v; want nothing swept", rep, err)
	}
	if !exists(a, "orphan") {
		t.Fatal("a fresh unreferenced object was swept")
	}

	// The fixture's clock is years ahead: every object is past the grace.
	rep, err := f.scheduler.RunOnce(ctx)
	if err != nil || rep.Swept != 3 {
		t.Fatalf("RunOnce() = %+v, %v; want 3 swept", rep, err)
	}
	if !exists(a, "kept") {
		t.Error("the referenced object was swept")
	}
	if !exists(a, session.PortraitFileID("s1", "attempt-1")) {
		t.Error("the document portrait of a live session was swept")
	}
	if exists(a, session.PortraitFileID("gone", "attempt-1")) {
		t.Error("the document portrait of a session that is gone survived the sweep")
	}
	if exists(a, "orphan") || exists(b, "kept") {
		t.Error("an unreferenced object survived the sweep")
	}
	if got, err := f.files.ReadAll(ctx, files.Ref{Tenant: a, Location: files.Sessions, ID: "kept"}, kept); err != nil || string(got) != "image kept" {
		t.Errorf("ReadAll(kept) = %q, %v", got, err)
	}
	// The sweep ran; the next pass within SweepInterval does not sweep.
	put(a, "later")
	if rep, err := f.scheduler.RunOnce(ctx); err != nil || rep.Swept != 0 {
		t.Errorf("RunOnce() within the sweep interval = %+v, %v; want nothing swept", rep, err)
	}
}

// verifyInterval is the verification cadence of the verification tests.
const verifyInterval = 24 * time.Hour

// withFiles stores session id of tenant holding one stored file for each of
// fileIDs, in that order. The session stays open long past any clock a test
// uses, so that no expiry mixes with what a test counts.
func (f *fixture) withFiles(t *testing.T, tenant, id string, fileIDs ...string) {
	t.Helper()
	ctx := context.Background()
	f.create(t, tenant, spec{id: id, status: session.StatusInProgress, expires: 365 * 24 * time.Hour})
	var added []session.File
	for _, fid := range fileIDs {
		ref := (&session.Session{ID: id}).FileRef(tenant, fid)
		sealed, err := f.files.Put(ctx, ref, bytes.NewReader([]byte("image "+fid)), 1<<20)
		if err != nil {
			t.Fatalf("Put(%s) = %v", fid, err)
		}
		added = append(added, session.File{ID: fid, Kind: session.KindAttachment, ContentType: "image/png", CreatedAt: now, Sealed: sealed})
	}
	if _, err := f.repo(t, tenant).Update(ctx, id, now, func(s *session.Session) error {
		s.Files = append(s.Files, added...)
		return nil
	}); err != nil {
		t.Fatalf("Update(%s/%s) = %v", tenant, id, err)
	}
}

// objectPath is where the bucket keeps the object of session file id of
// tenant.
func (f *fixture) objectPath(tenant, id string) string {
	return filepath.Join(f.bucketDir, string(files.Sessions), tenant, id)
}

// flip changes one byte of the stored object of file id of tenant, behind
// the platform's back.
func (f *fixture) flip(t *testing.T, tenant, id string) {
	t.Helper()
	path := f.objectPath(tenant, id)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read object %s = %v", id, err)
	}
	data[len(data)/2] ^= 0x01
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatalf("write object %s = %v", id, err)
	}
}

// quarantined returns the ids of the quarantined files of tenant's session
// id, sorted.
func (f *fixture) quarantined(t *testing.T, tenant, id string) []string {
	t.Helper()
	var out []string
	for _, file := range f.get(t, tenant, id).Files {
		if file.Quarantined != nil {
			out = append(out, file.ID)
		}
	}
	slices.Sort(out)
	return out
}

// verifier returns a scheduler over the fixture's stores that reads at most
// batch files per pass, on clock, logging to log.
func (f *fixture) verifier(clock func() time.Time, batch int, log *slog.Logger) *scheduler.Scheduler {
	d := f.deps
	d.Now, d.Log, d.VerifyInterval, d.VerifyBatch = clock, log, verifyInterval, batch
	return scheduler.New(d)
}

// verifyCounts is the verification part of a Report.
type verifyCounts struct{ verified, tampered, missing int }

func countsOf(rep scheduler.Report) verifyCounts {
	return verifyCounts{rep.Verified, rep.Tampered, rep.Missing}
}

func TestVerify(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	a, b := f.tenant(t, "Acme"), f.tenant(t, "Bolt")
	f.withFiles(t, a, "s1", "f1", "f2", "f3")
	f.create(t, b, spec{id: "empty", status: session.StatusPending, expires: 365 * 24 * time.Hour})
	f.flip(t, a, "f2")
	var logs bytes.Buffer
	clock := now
	sch := f.verifier(func() time.Time { return clock }, 1000, slog.New(slog.NewJSONHandler(&logs, nil)))

	rep, err := sch.RunOnce(ctx)
	if err != nil || countsOf(rep) != (verifyCounts{3, 1, 0}) {
		t.Fatalf("RunOnce() = %+v, %v; want 3 verified, 1 tampered, 0 missing", rep, err)
	}

	t.Run("quarantined", func(t *testing.T) {
		if got := f.quarantined(t, a, "s1"); !slices.Equal(got, []string{"f2"}) {
			t.Fatalf("quarantined files = %q, want [f2]", got)
		}
		file, _ := f.get(t, a, "s1").File("f2")
		if q := file.Quarantined; !q.At.Equal(now) || q.Reason != session.ReasonVerificationFailed || q.By != session.ByScheduler {
			t.Errorf("quarantine of f2 = %+v, want at %v, %q, by %q", q, now, session.ReasonVerificationFailed, session.ByScheduler)
		}
	})

	t.Run("audit event", func(t *testing.T) {
		evs := f.auditEvents(t, a)
		if len(evs) != 1 {
			t.Fatalf("audit events of %s = %d, want 1 (one per tampered file)", a, len(evs))
		}
		ev := evs[0]
		if ev.Action != "file.tamper_detected" || ev.Outcome != audit.Denied || ev.Reason != string(session.ReasonVerificationFailed) ||
			ev.Actor != (audit.Actor{Type: "system", ID: "scheduler"}) || ev.Resource != (audit.Resource{Type: "file", ID: "f2"}) ||
			ev.Details["session"] != "s1" || ev.Details["by"] != session.ByScheduler || !ev.Time.Equal(now) {
			t.Errorf("audit event = %+v, want a denied file.tamper_detected of f2 in s1 by the scheduler at %v", ev, now)
		}
	})

	t.Run("summary log holds counts only", func(t *testing.T) {
		line := logs.String()
		for _, want := range []string{`"msg":"scheduler: verify"`, `"checked":3`, `"tampered":1`, `"missing":0`, `"level":"WARN"`} {
			if !strings.Contains(line, want) {
				t.Errorf("log %q lacks %s", line, want)
			}
		}
		for _, id := range []string{a, "s1", "f2"} {
			if strings.Contains(line, id) {
				t.Errorf("log %q names %q, want counts only", line, id)
			}
		}
	})

	t.Run("next pass within the interval", func(t *testing.T) {
		clock = now.Add(verifyInterval - time.Second)
		if rep, err := sch.RunOnce(ctx); err != nil || countsOf(rep) != (verifyCounts{}) {
			t.Errorf("RunOnce() within the verify interval = %+v, %v; want nothing verified", rep, err)
		}
	})

	t.Run("next round skips the quarantined file", func(t *testing.T) {
		clock = now.Add(verifyInterval)
		if rep, err := sch.RunOnce(ctx); err != nil || countsOf(rep) != (verifyCounts{2, 0, 0}) {
			t.Errorf("RunOnce() a verify interval later = %+v, %v; want 2 verified, nothing tampered", rep, err)
		}
		if n := len(f.auditEvents(t, a)); n != 1 {
			t.Errorf("audit events after the second round = %d, want the 1 of the first", n)
		}
		file, _ := f.get(t, a, "s1").File("f2")
		if !file.Quarantined.At.Equal(now) {
			t.Errorf("quarantine of f2 at %v after the second round, want the first (%v) kept", file.Quarantined.At, now)
		}
	})
}

func TestVerifyMissing(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	a := f.tenant(t, "Acme")
	f.withFiles(t, a, "s1", "kept", "gone")
	if err := os.Remove(f.objectPath(a, "gone")); err != nil {
		t.Fatal(err)
	}
	rep, err := f.verifier(func() time.Time { return now }, 1000, f.log).RunOnce(ctx)
	if err != nil || countsOf(rep) != (verifyCounts{2, 0, 1}) {
		t.Fatalf("RunOnce() = %+v, %v; want 2 verified, 0 tampered, 1 missing", rep, err)
	}
	file, _ := f.get(t, a, "s1").File("gone")
	if q := file.Quarantined; q == nil || q.Reason != session.ReasonObjectMissing || q.By != session.ByScheduler {
		t.Errorf("quarantine of the missing file = %+v, want %q by %q", q, session.ReasonObjectMissing, session.ByScheduler)
	}
	if got := f.quarantined(t, a, "s1"); !slices.Equal(got, []string{"gone"}) {
		t.Errorf("quarantined files = %q, want [gone]", got)
	}
	if n := len(f.auditEvents(t, a)); n != 1 {
		t.Errorf("audit events = %d, want 1", n)
	}
}

// TestVerifyBatches checks that a round split over passes reads every file
// exactly once: after the first pass every object is tampered with, so each
// later read quarantines the file it reads, and the files read in the first
// pass must stay unquarantined until the next round.
func TestVerifyBatches(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	a, b := f.tenant(t, "Acme"), f.tenant(t, "Bolt")
	f.withFiles(t, a, "s1", "a1", "a2")
	f.withFiles(t, a, "s2", "a3")
	f.withFiles(t, b, "s3", "b1", "b2")
	all := map[string][2]string{"a1": {a, "s1"}, "a2": {a, "s1"}, "a3": {a, "s2"}, "b1": {b, "s3"}, "b2": {b, "s3"}}
	quarantined := func(t *testing.T) []string {
		t.Helper()
		var out []string
		for _, at := range [][2]string{{a, "s1"}, {a, "s2"}, {b, "s3"}} {
			out = append(out, f.quarantined(t, at[0], at[1])...)
		}
		slices.Sort(out)
		return out
	}
	clock := now
	sch := f.verifier(func() time.Time { return clock }, 2, f.log)
	pass := func(t *testing.T, want verifyCounts) {
		t.Helper()
		rep, err := sch.RunOnce(ctx)
		if err != nil || countsOf(rep) != want {
			t.Fatalf("RunOnce() = %+v, %v; want %d verified, %d tampered", rep, err, want.verified, want.tampered)
		}
	}

	pass(t, verifyCounts{2, 0, 0})
	for id, at := range all {
		f.flip(t, at[0], id)
	}
	pass(t, verifyCounts{2, 2, 0})
	pass(t, verifyCounts{1, 1, 0})
	got := quarantined(t)
	if len(got) != 3 {
		t.Fatalf("quarantined after one round = %q, want the 3 files not read in its first pass", got)
	}
	pass(t, verifyCounts{}) // the round is over; the next is not due

	clock = now.Add(verifyInterval)
	pass(t, verifyCounts{2, 2, 0})
	if got := quarantined(t); len(got) != len(all) {
		t.Errorf("quarantined after the second round = %q, want all %d files", got, len(all))
	}
	pass(t, verifyCounts{})
}

// auditEvents returns the audit events of tenant written so far, in order.
func (f *fixture) auditEvents(t *testing.T, tenant string) []audit.Event {
	t.Helper()
	var evs []audit.Event
	if err := audit.ReadOutbox(context.Background(), f.backend, f.barrier, func(ev audit.Event) error {
		if ev.Tenant == tenant {
			evs = append(evs, ev)
		}
		return nil
	}); err != nil {
		t.Fatalf("audit.ReadOutbox() = %v", err)
	}
	return evs
}

// TestOverdue: a session whose waiting step passed its deadline is flagged
// and handed to the workflow role once (the flag makes republish take over
// if the message is lost); one whose deadline is ahead, or that holds none,
// or that has ended, is left alone.
func TestOverdue(t *testing.T) {
	f := newFixture(t)
	a := f.tenant(t, "Acme")
	for _, sp := range []spec{
		{id: "review-overdue", status: session.StatusReview, expires: time.Hour},
		{id: "pending-overdue", status: session.StatusPending, expires: time.Hour},
		{id: "review-ahead", status: session.StatusReview, expires: time.Hour},
		{id: "review-none", status: session.StatusReview, expires: time.Hour},
		{id: "expired-overdue", status: session.StatusExpired, expires: time.Hour},
	} {
		f.create(t, a, sp)
	}
	deadline := map[string]time.Duration{"review-overdue": -time.Minute, "pending-overdue": -time.Second, "review-ahead": time.Minute, "expired-overdue": -time.Hour}
	for id, d := range deadline {
		if _, err := f.repo(t, a).Update(context.Background(), id, now.Add(-time.Hour), func(s *session.Session) error {
			s.StepDeadline = now.Add(d)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}

	f.runOnce(t)
	if n := f.queued(t, queue.TopicWorkflow); n != 2 {
		t.Errorf("workflow messages = %d, want 2 (the overdue open sessions)", n)
	}
	for id, want := range map[string]bool{"review-overdue": true, "pending-overdue": true, "review-ahead": false, "review-none": false, "expired-overdue": false} {
		if got := f.get(t, a, id).Advance; got != want {
			t.Errorf("%s advance = %t, want %t", id, got, want)
		}
	}
	// The next pass leaves the flagged sessions to republish, which waits
	// RepublishAfter since their last update.
	f.runOnce(t)
	if n := f.queued(t, queue.TopicWorkflow); n != 2 {
		t.Errorf("workflow messages after a second pass = %d, want still 2", n)
	}
}

// TestSweepDropsOrphanRecords: the sweep deletes the workflow run and the
// gateway call count of a session that is gone (a Destroy that died
// midway) and keeps those of a session that exists.
func TestSweepDropsOrphanRecords(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	a := f.tenant(t, "Acme")
	f.create(t, a, spec{id: "s1", status: session.StatusInProgress, expires: time.Hour})
	v, err := store.NewView(f.backend, f.barrier, a)
	if err != nil {
		t.Fatal(err)
	}
	for _, coll := range []string{session.RunsCollection, session.GatewayCallsCollection} {
		for _, id := range []string{"s1", "gone"} {
			if _, err := v.Put(ctx, coll, id, nil, map[string]string{"sessionId": id}); err != nil {
				t.Fatal(err)
			}
		}
	}
	rep, err := f.scheduler.RunOnce(ctx)
	if err != nil || rep.Dropped != 2 {
		t.Fatalf("RunOnce() = %+v, %v; want 2 dropped", rep, err)
	}
	for _, coll := range []string{session.RunsCollection, session.GatewayCallsCollection} {
		var body map[string]string
		if _, err := v.Get(ctx, coll, "s1", &body); err != nil {
			t.Errorf("%s record of the live session: %v, want kept", coll, err)
		}
		if _, err := v.Get(ctx, coll, "gone", &body); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s record of the deleted session: %v, want ErrNotFound", coll, err)
		}
	}
}
