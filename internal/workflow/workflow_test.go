package workflow_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/idvault/idvault/internal/audit"
	"github.com/idvault/idvault/internal/barrier"
	"github.com/idvault/idvault/internal/queue"
	"github.com/idvault/idvault/internal/queue/queuetest"
	"github.com/idvault/idvault/internal/queue/sqlitequeue"
	"github.com/idvault/idvault/internal/session"
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

var t0 = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

func TestLookup(t *testing.T) {
	d, ok := workflow.Lookup(workflow.DefaultID)
	want := []session.FileKind{session.KindDocumentFront, session.KindSelfie}
	if !ok || d.ID != workflow.DefaultID || !slices.Equal(d.Required, want) {
		t.Errorf("Lookup(%q) = %+v, %v, want required %v", workflow.DefaultID, d, ok, want)
	}
	if d, ok := workflow.Lookup("nope"); ok {
		t.Errorf("Lookup(nope) = %+v, true, want false", d)
	}
}

func files(kinds ...session.FileKind) []session.File {
	out := []session.File{}
	for i, k := range kinds {
		out = append(out, session.File{ID: string(k) + "-" + string(rune('a'+i)), Kind: k})
	}
	return out
}

func TestAdvance(t *testing.T) {
	fileSets := []struct {
		name     string
		files    []session.File
		complete bool
	}{
		{"none", files(), false},
		{"front", files(session.KindDocumentFront), false},
		{"selfie", files(session.KindSelfie), false},
		{"back and attachment", files(session.KindDocumentBack, session.KindAttachment), false},
		{"front and selfie", files(session.KindDocumentFront, session.KindSelfie), true},
		{"front, back and selfie", files(session.KindDocumentFront, session.KindDocumentBack, session.KindSelfie), true},
	}
	statuses := []session.Status{
		session.StatusPending, session.StatusInProgress, session.StatusReview, session.StatusApproved,
		session.StatusRejected, session.StatusExpired, session.StatusError, session.StatusCancelled,
	}
	for _, st := range statuses {
		for _, fs := range fileSets {
			for _, advance := range []bool{false, true} {
				// The decision the workflow must make.
				want := st
				if st.Open() {
					switch {
					case fs.complete:
						want = session.StatusReview
					case len(fs.files) > 0:
						want = session.StatusInProgress
					}
				}
				wantUnchanged := want == st && !advance

				name := string(st) + "/" + fs.name
				if advance {
					name += "/advance"
				}
				t.Run(name, func(t *testing.T) {
					s := &session.Session{ID: "s1", WorkflowID: workflow.DefaultID, Status: st, Advance: advance, Files: fs.files}
					err := workflow.Advance(s)
					if wantUnchanged {
						if !errors.Is(err, session.ErrUnchanged) {
							t.Errorf("Advance() = %v, want session.ErrUnchanged", err)
						}
					} else if err != nil {
						t.Errorf("Advance() = %v, want nil", err)
					}
					if s.Status != want || s.Advance || s.Reason != "" {
						t.Errorf("Advance() left status %s, advance %v, reason %q, want %s, false, \"\"", s.Status, s.Advance, s.Reason, want)
					}
				})
			}
		}
	}
}

func TestAdvanceUnknownWorkflow(t *testing.T) {
	for _, st := range []session.Status{session.StatusPending, session.StatusInProgress} {
		t.Run(string(st), func(t *testing.T) {
			s := &session.Session{ID: "s1", WorkflowID: "retired-workflow", Status: st, Advance: true, Files: files(session.KindDocumentFront, session.KindSelfie)}
			if err := workflow.Advance(s); err != nil {
				t.Fatalf("Advance(unknown workflow) = %v, want nil", err)
			}
			if s.Status != session.StatusError || s.Reason == "" || s.Advance {
				t.Errorf("Advance(unknown workflow) left status %s, reason %q, advance %v, want error, a reason, false", s.Status, s.Reason, s.Advance)
			}
		})
	}
	t.Run("closed", func(t *testing.T) {
		s := &session.Session{ID: "s1", WorkflowID: "retired-workflow", Status: session.StatusApproved}
		if err := workflow.Advance(s); !errors.Is(err, session.ErrUnchanged) || s.Status != session.StatusApproved {
			t.Errorf("Advance(closed, unknown workflow) = %v, status %s, want session.ErrUnchanged, approved", err, s.Status)
		}
	})
}

type fixture struct {
	backend *sqlite.Store
	barrier *barrier.AESGCM
	broker  *sqlitequeue.Broker
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	t.Cleanup(func() { goleak.VerifyNone(t) }) // runs last, after everything below is closed
	e := testenv.Open(t, queue.Options{})
	return &fixture{backend: e.Backend, barrier: e.Barrier, broker: e.Broker}
}

func (f *fixture) repo(t *testing.T, tenant string) *session.Repo {
	t.Helper()
	v, err := store.NewView(f.backend, f.barrier, tenant)
	if err != nil {
		t.Fatalf("NewView(%q) = %v", tenant, err)
	}
	return session.NewRepo(v)
}

func (f *fixture) role(concurrency int) *workflow.Role {
	return workflow.NewRole(f.broker, f.backend, f.barrier, audit.NewEmitter(f.backend, f.barrier, nil), slog.New(slog.DiscardHandler), func() time.Time { return t0.Add(time.Hour) }, concurrency)
}

// complete stores a pending session that holds every required file and
// waits for the workflow.
func complete(t *testing.T, r *session.Repo, id string) *session.Session {
	t.Helper()
	s := &session.Session{
		ID: id, WorkflowID: workflow.DefaultID, Status: session.StatusPending, Advance: true,
		CreatedAt: t0, UpdatedAt: t0, ExpiresAt: t0.Add(24 * time.Hour),
		Files: files(session.KindDocumentFront, session.KindSelfie),
	}
	if err := r.Create(context.Background(), s); err != nil {
		t.Fatalf("Create(%s) = %v", id, err)
	}
	return s
}

func TestHandle(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	r := f.repo(t, "tenant-a")
	role := f.role(1)
	complete(t, r, "s1")
	body := []byte(`{"tenant":"tenant-a","session":"s1"}`)

	t.Run("idempotent", func(t *testing.T) {
		for i := range 2 {
			if err := role.Handle(ctx, body); err != nil {
				t.Fatalf("Handle() #%d = %v, want nil", i+1, err)
			}
			s, err := r.Get(ctx, "s1")
			if err != nil {
				t.Fatalf("Get(s1) = %v", err)
			}
			if s.Status != session.StatusReview || s.Advance || s.Version() != 2 || !s.UpdatedAt.Equal(t0.Add(time.Hour)) {
				t.Errorf("after Handle() #%d: status %s, advance %v, version %d, updated %v; want review, false, 2, %v",
					i+1, s.Status, s.Advance, s.Version(), s.UpdatedAt, t0.Add(time.Hour))
			}
		}
	})

	t.Run("other tenant", func(t *testing.T) {
		other := f.repo(t, "tenant-b")
		s := &session.Session{ID: "s1", WorkflowID: workflow.DefaultID, Status: session.StatusPending, Advance: true, Files: files(session.KindSelfie)}
		if err := other.Create(ctx, s); err != nil {
			t.Fatal(err)
		}
		if err := role.Handle(ctx, []byte(`{"tenant":"tenant-b","session":"s1"}`)); err != nil {
			t.Fatalf("Handle(tenant-b) = %v, want nil", err)
		}
		got, err := other.Get(ctx, "s1")
		if err != nil || got.Status != session.StatusInProgress {
			t.Errorf("tenant-b s1 after Handle = %v, %v, want in_progress", got.Status, err)
		}
		if got, err := r.Get(ctx, "s1"); err != nil || got.Version() != 2 {
			t.Errorf("tenant-a s1 version after tenant-b's message = %d, %v, want 2", got.Version(), err)
		}
	})

	t.Run("deleted session", func(t *testing.T) {
		if err := role.Handle(ctx, []byte(`{"tenant":"tenant-a","session":"gone"}`)); err != nil {
			t.Errorf("Handle(deleted session) = %v, want nil", err)
		}
	})

	t.Run("malformed", func(t *testing.T) {
		for _, b := range []string{
			``,
			`not json`,
			`null`,
			`{}`,
			`[]`,
			`{"tenant":"tenant-a"}`,
			`{"session":"s1"}`,
			`{"tenant":"","session":"s1"}`,
			`{"tenant":"tenant-a","session":""}`,
			`{"tenant":1,"session":"s1"}`,
		} {
			if err := role.Handle(ctx, []byte(b)); !errors.Is(err, workflow.ErrMalformed) {
				t.Errorf("Handle(%q) = %v, want ErrMalformed", b, err)
			}
		}
	})
}

func TestRun(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	r := f.repo(t, "tenant-a")
	ids := []string{"s1", "s2", "s3"}
	for _, id := range ids {
		complete(t, r, id)
	}

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- f.role(2).Run(runCtx) }()

	for _, id := range ids {
		if err := workflow.Publish(ctx, f.broker, "tenant-a", id); err != nil {
			t.Fatalf("Publish(%s) = %v", id, err)
		}
	}
	if err := f.broker.Publish(ctx, queue.TopicWorkflow, []byte("garbage")); err != nil {
		t.Fatalf("Publish(garbage) = %v", err)
	}

	for _, id := range ids {
		waitReview(t, r, id)
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

// TestRunBrokerClosed checks that Run returns once the broker closes.
func TestRunBrokerClosed(t *testing.T) {
	f := newFixture(t)
	done := make(chan error, 1)
	go func() { done <- f.role(3).Run(context.Background()) }()
	if err := f.broker.Close(); err != nil {
		t.Fatalf("broker.Close() = %v", err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run() after broker.Close = %v, want nil", err)
		}
	case <-time.After(patience):
		t.Fatalf("Run() did not return within %v of broker.Close", patience)
	}
}

// failingBackend fails the first write to the session fail.
type failingBackend struct {
	store.Backend
	fail   string
	failed atomic.Bool
}

func (b *failingBackend) Apply(ctx context.Context, writes []store.Write) ([]store.Record, error) {
	if len(writes) > 0 && writes[0].Record.ID == b.fail && b.failed.CompareAndSwap(false, true) {
		return nil, errors.New("store unavailable")
	}
	return b.Backend.Apply(ctx, writes)
}

// waitReview waits until session id is in review with its Advance flag
// cleared.
func waitReview(t *testing.T, r *session.Repo, id string) {
	t.Helper()
	deadline := time.Now().Add(patience)
	for {
		s, err := r.Get(context.Background(), id)
		if err != nil {
			t.Fatalf("Get(%s) = %v", id, err)
		}
		if s.Status == session.StatusReview && !s.Advance {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("session %s is %s (advance %v) after %v, want review", id, s.Status, s.Advance, patience)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// runRole runs role until the returned stop is called, which waits for Run
// to return.
func runRole(t *testing.T, role *workflow.Role) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- role.Run(ctx) }()
	return func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run() = %v", err)
		}
	}
}

// TestLocalHandOver: sessions published through a Local while the role
// runs with it go to its idle consumers without a queue message; one whose
// evaluation fails goes to the queue and is evaluated from there; a nil
// Local publishes to the queue.
func TestLocalHandOver(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	r := f.repo(t, "tenant-a")
	counted := &queuetest.Counting{Broker: f.broker}
	backend := &failingBackend{Backend: f.backend, fail: "bad"}
	local := workflow.NewLocal()
	role := workflow.NewRole(counted, backend, f.barrier, audit.NewEmitter(f.backend, f.barrier, nil), slog.New(slog.DiscardHandler),
		func() time.Time { return t0.Add(time.Hour) }, 2).WithLocal(local)
	defer runRole(t, role)()

	const warm, measured = 3, 10
	for i := range warm + measured {
		if i == warm {
			counted.Reset()
		}
		id := fmt.Sprintf("s%02d", i)
		complete(t, r, id)
		if err := local.Publish(ctx, counted, "tenant-a", id); err != nil {
			t.Fatalf("Publish(%s) = %v", id, err)
		}
		waitReview(t, r, id)
	}
	if n := counted.Published(); n != 0 {
		t.Errorf("queue messages for %d sessions handed to idle consumers = %d, want 0", measured, n)
	}

	complete(t, r, "bad")
	if err := local.Publish(ctx, counted, "tenant-a", "bad"); err != nil {
		t.Fatalf("Publish(bad) = %v", err)
	}
	waitReview(t, r, "bad")
	if n := counted.Published(); n != 1 || !backend.failed.Load() {
		t.Errorf("queue messages after a failed evaluation = %d (failed %t), want 1", n, backend.failed.Load())
	}

	var none *workflow.Local
	complete(t, r, "unhanded")
	if err := none.Publish(ctx, counted, "tenant-a", "unhanded"); err != nil {
		t.Fatalf("nil Local Publish = %v", err)
	}
	waitReview(t, r, "unhanded")
	if n := counted.Published(); n != 2 {
		t.Errorf("queue messages after a nil Local's publish = %d, want 2", n)
	}
}

// sessionReads counts the reads of session records.
type sessionReads struct {
	store.Backend
	n atomic.Int64
}

func (b *sessionReads) Get(ctx context.Context, collection, tenant, id string) (store.Record, error) {
	if collection == session.Collection {
		b.n.Add(1)
	}
	return b.Backend.Get(ctx, collection, tenant, id)
}

// TestLocalHandOverWritten: a session handed over with the copy its
// publisher wrote is evaluated from that copy, without reading it; a copy
// that another write has overtaken fails its compare-and-swap, and the
// session is read and evaluated as stored, that write kept.
func TestLocalHandOverWritten(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	r := f.repo(t, "tenant-a")
	reads := &sessionReads{Backend: f.backend}
	counted := &queuetest.Counting{Broker: f.broker}
	local := workflow.NewLocal()
	role := workflow.NewRole(counted, reads, f.barrier, audit.NewEmitter(f.backend, f.barrier, nil), slog.New(slog.DiscardHandler),
		func() time.Time { return t0.Add(time.Hour) }, 1).WithLocal(local)
	defer runRole(t, role)()
	publish := func(s *session.Session) {
		t.Helper()
		if err := local.PublishWritten(ctx, counted, "tenant-a", s); err != nil {
			t.Fatalf("PublishWritten(%s) = %v", s.ID, err)
		}
	}
	// The first goes through once the consumer is up; after it, the
	// consumer waits for the next (as TestLocalHandOver relies on).
	publish(complete(t, r, "warm"))
	waitReview(t, r, "warm")
	counted.Reset()
	reads.n.Store(0)

	fresh := complete(t, r, "fresh")
	publish(fresh)
	waitReview(t, r, "fresh")
	if n := reads.n.Load(); n != 0 {
		t.Errorf("session reads for a session handed over as written = %d, want 0", n)
	}

	stale := complete(t, r, "stale")
	if _, err := r.Update(ctx, "stale", t0, func(s *session.Session) error {
		s.Reason = "overtaken"
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	publish(stale)
	waitReview(t, r, "stale")
	if n := reads.n.Load(); n == 0 {
		t.Errorf("session reads for an overtaken copy = 0, want it read after its compare-and-swap failed")
	}
	if n := counted.Published(); n != 0 {
		t.Errorf("queue messages = %d, want 0: both sessions handed over", n)
	}
	got, err := r.Get(ctx, "stale")
	if err != nil {
		t.Fatal(err)
	}
	if got.Reason != "overtaken" {
		t.Errorf("session after evaluating an overtaken copy: reason %q, want the overtaking write's %q kept", got.Reason, "overtaken")
	}
}
