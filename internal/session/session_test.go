package session_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"github.com/idvault/idvault/internal/pii"
	"github.com/idvault/idvault/internal/queue"
	"github.com/idvault/idvault/internal/testenv"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/idvault/idvault/internal/barrier"
	"github.com/idvault/idvault/internal/files"
	"github.com/idvault/idvault/internal/session"
	"github.com/idvault/idvault/internal/store"
	"github.com/idvault/idvault/internal/store/sqlite"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

var t0 = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

type fixture struct {
	dir     string
	backend *sqlite.Store
	barrier *barrier.AESGCM
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	e := testenv.Open(t, queue.Options{})
	dir, backend, bar := e.Dir, e.Backend, e.Barrier
	return &fixture{dir: dir, backend: backend, barrier: bar}
}

func (f *fixture) repo(t *testing.T, tenant string) *session.Repo {
	t.Helper()
	v, err := store.NewView(f.backend, f.barrier, tenant)
	if err != nil {
		t.Fatalf("NewView(%q) = %v", tenant, err)
	}
	return session.NewRepo(v)
}

// dbContains reports whether any file of the database (main file, WAL,
// shared memory) holds s.
func (f *fixture) dbContains(t *testing.T, s string) bool {
	t.Helper()
	entries, err := os.ReadDir(f.dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(f.dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte(s)) {
			return true
		}
	}
	return false
}

func newSession(id string, created time.Time) *session.Session {
	return &session.Session{
		ID:         id,
		WorkflowID: "document-selfie-review",
		Status:     session.StatusPending,
		CreatedBy:  "apikey-1",
		CreatedAt:  created,
		UpdatedAt:  created,
		ExpiresAt:  created.Add(24 * time.Hour),
		Files:      []session.File{},
	}
}

func create(t *testing.T, r *session.Repo, s *session.Session) {
	t.Helper()
	if err := r.Create(context.Background(), s); err != nil {
		t.Fatalf("Create(%s) = %v", s.ID, err)
	}
}

func TestCreateGet(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	r := f.repo(t, "tenant-a")
	s := newSession("s1", t0)
	s.Locale = "de-DE"
	s.Metadata = pii.JSON(`{"ref":"order-17"}`)
	s.Files = []session.File{{ID: "f1", Kind: session.KindSelfie, ContentType: "image/jpeg", Width: 640, Height: 480, CreatedAt: t0}}
	create(t, r, s)
	if s.Version() != 1 {
		t.Errorf("Version() after Create = %d, want 1", s.Version())
	}

	got, err := r.Get(ctx, "s1")
	if err != nil {
		t.Fatalf("Get(s1) = %v", err)
	}
	if got.Version() != 1 || got.ID != s.ID || got.WorkflowID != s.WorkflowID || got.Status != s.Status ||
		got.Locale != s.Locale || !bytes.Equal(got.Metadata, s.Metadata) || got.CreatedBy != s.CreatedBy ||
		!got.CreatedAt.Equal(s.CreatedAt) || !got.UpdatedAt.Equal(s.UpdatedAt) || !got.ExpiresAt.Equal(s.ExpiresAt) {
		t.Errorf("Get(s1) = %+v (version %d), want %+v (version 1)", got, got.Version(), s)
	}
	if file, ok := got.File("f1"); !ok || file.Kind != session.KindSelfie || file.Width != 640 {
		t.Errorf("Get(s1).File(f1) = %+v, %v, want the selfie", file, ok)
	}
	if _, ok := got.File("nope"); ok {
		t.Errorf("Get(s1).File(nope) found a file, want none")
	}
	if !got.HasKind(session.KindSelfie) || got.HasKind(session.KindDocumentFront) {
		t.Errorf("HasKind(selfie, document_front) = %v, %v, want true, false", got.HasKind(session.KindSelfie), got.HasKind(session.KindDocumentFront))
	}

	t.Run("duplicate", func(t *testing.T) {
		if err := r.Create(ctx, newSession("s1", t0)); !errors.Is(err, store.ErrConflict) {
			t.Errorf("Create(existing id) = %v, want store.ErrConflict", err)
		}
	})

	t.Run("missing", func(t *testing.T) {
		if _, err := r.Get(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Get(nope) = %v, want store.ErrNotFound", err)
		}
	})

	t.Run("other tenant", func(t *testing.T) {
		if _, err := f.repo(t, "tenant-b").Get(ctx, "s1"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Get(s1) in another tenant = %v, want store.ErrNotFound", err)
		}
	})
}

func TestUpdate(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	r := f.repo(t, "tenant-a")
	create(t, r, newSession("s1", t0))

	t.Run("writes", func(t *testing.T) {
		later := t0.Add(time.Minute)
		got, err := r.Update(ctx, "s1", later, func(s *session.Session) error {
			s.Status = session.StatusInProgress
			return nil
		})
		if err != nil || got.Status != session.StatusInProgress || got.Version() != 2 || !got.UpdatedAt.Equal(later) {
			t.Fatalf("Update(s1) = %+v (version %d), %v, want in_progress, version 2, updated %v", got, got.Version(), err, later)
		}
		again, err := r.Get(ctx, "s1")
		if err != nil || again.Status != session.StatusInProgress || again.Version() != 2 {
			t.Errorf("Get(s1) after Update = %+v (version %d), %v, want in_progress, version 2", again, again.Version(), err)
		}
	})

	t.Run("unchanged", func(t *testing.T) {
		got, err := r.Update(ctx, "s1", t0.Add(time.Hour), func(s *session.Session) error {
			s.Reason = "discarded"
			return session.ErrUnchanged
		})
		if err != nil || got.Version() != 2 {
			t.Fatalf("Update(s1, ErrUnchanged) = version %d, %v, want 2, nil", got.Version(), err)
		}
		stored, err := r.Get(ctx, "s1")
		if err != nil || stored.Version() != 2 || stored.Reason != "" || !stored.UpdatedAt.Equal(t0.Add(time.Minute)) {
			t.Errorf("Get(s1) after ErrUnchanged = %+v (version %d), %v, want it untouched at version 2", stored, stored.Version(), err)
		}
	})

	t.Run("fn error", func(t *testing.T) {
		boom := errors.New("boom")
		if _, err := r.Update(ctx, "s1", t0.Add(time.Hour), func(s *session.Session) error {
			s.Status = session.StatusCancelled
			return boom
		}); !errors.Is(err, boom) {
			t.Fatalf("Update(s1, failing fn) = %v, want %v", err, boom)
		}
		stored, err := r.Get(ctx, "s1")
		if err != nil || stored.Status != session.StatusInProgress || stored.Version() != 2 {
			t.Errorf("Get(s1) after a failing fn = %s (version %d), %v, want in_progress at version 2", stored.Status, stored.Version(), err)
		}
	})

	t.Run("missing", func(t *testing.T) {
		if _, err := r.Update(ctx, "nope", t0, func(*session.Session) error { return nil }); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Update(nope) = %v, want store.ErrNotFound", err)
		}
	})
}

// TestUpdateConcurrent checks that compare-and-swap retries lose no write:
// each of several concurrent updaters appends its own file.
func TestUpdateConcurrent(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	r := f.repo(t, "tenant-a")
	create(t, r, newSession("s1", t0))
	const n = 8
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			_, errs[i] = r.Update(ctx, "s1", t0.Add(time.Duration(i)*time.Second), func(s *session.Session) error {
				s.Files = append(s.Files, session.File{ID: fmt.Sprintf("f%d", i), Kind: session.KindAttachment})
				return nil
			})
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Update #%d = %v, want nil", i, err)
		}
	}
	got, err := r.Get(ctx, "s1")
	if err != nil {
		t.Fatalf("Get(s1) = %v", err)
	}
	var ids []string
	for _, file := range got.Files {
		ids = append(ids, file.ID)
	}
	slices.Sort(ids)
	want := []string{"f0", "f1", "f2", "f3", "f4", "f5", "f6", "f7"}
	if !slices.Equal(ids, want) {
		t.Errorf("files after %d concurrent updates = %v, want %v", n, ids, want)
	}
	if got.Version() != n+1 {
		t.Errorf("Version() after %d updates = %d, want %d", n, got.Version(), n+1)
	}
}

// TestUpdateFromStaleSnapshot checks that UpdateFrom writes from the
// snapshot it is given, and that a snapshot another writer has overtaken is
// read again instead of overwriting that writer's change.
func TestUpdateFromStaleSnapshot(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	r := f.repo(t, "tenant-a")
	create(t, r, newSession("s1", t0))
	snap, err := r.Get(ctx, "s1")
	if err != nil {
		t.Fatal(err)
	}
	got, err := r.UpdateFrom(ctx, snap, t0.Add(time.Minute), func(s *session.Session) error {
		s.Files = append(s.Files, session.File{ID: "fresh", Kind: session.KindAttachment})
		return nil
	})
	if err != nil || got.Version() != 2 {
		t.Fatalf("UpdateFrom(current snapshot) = version %d, %v; want 2, nil", got.Version(), err)
	}
	stale, err := r.Get(ctx, "s1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Update(ctx, "s1", t0.Add(2*time.Minute), func(s *session.Session) error {
		s.Files = append(s.Files, session.File{ID: "other", Kind: session.KindAttachment})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	calls := 0
	got, err = r.UpdateFrom(ctx, stale, t0.Add(3*time.Minute), func(s *session.Session) error {
		calls++
		s.Files = append(s.Files, session.File{ID: "late", Kind: session.KindAttachment})
		return nil
	})
	if err != nil || got.Version() != 4 || calls != 2 {
		t.Fatalf("UpdateFrom(stale snapshot) = version %d, %v after %d calls of fn; want 4, nil after 2", got.Version(), err, calls)
	}
	stored, err := r.Get(ctx, "s1")
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, file := range stored.Files {
		files = append(files, file.ID)
	}
	if want := []string{"fresh", "other", "late"}; !slices.Equal(files, want) {
		t.Errorf("files = %v, want %v: the stale snapshot overwrote a change", files, want)
	}
}

// TestClone checks that changing a clone's slices leaves the original as
// it was, and that the clone keeps its version.
func TestClone(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	r := f.repo(t, "tenant-a")
	s := newSession("s1", t0)
	s.Files = []session.File{{ID: "f1", Kind: session.KindSelfie}}
	s.Metadata = pii.JSON(`{"a":1}`)
	create(t, r, s)
	orig, err := r.Get(ctx, "s1")
	if err != nil {
		t.Fatal(err)
	}
	c := orig.Clone()
	c.Files[0].ID = "changed"
	c.Files = append(c.Files, session.File{ID: "f2"})
	c.Metadata[2] = 'b'
	c.Status = session.StatusCancelled
	if orig.Files[0].ID != "f1" || len(orig.Files) != 1 || string(orig.Metadata) != `{"a":1}` || orig.Status == session.StatusCancelled {
		t.Errorf("original after changing its clone = files %v, metadata %s, status %s; want it unchanged", orig.Files, orig.Metadata.Value(), orig.Status)
	}
	if c.Version() != orig.Version() {
		t.Errorf("clone version = %d, want %d", c.Version(), orig.Version())
	}
}

func ids(list []*session.Session) []string {
	out := make([]string, 0, len(list))
	for _, s := range list {
		out = append(out, s.ID)
	}
	return out
}

func TestList(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	r := f.repo(t, "tenant-a")
	// s0 … s5 created an hour apart; statuses, expiry and advance vary.
	type spec struct {
		status  session.Status
		expires time.Duration // after t0
		advance bool
		updated time.Duration // after t0
	}
	specs := []spec{
		{session.StatusPending, 50 * time.Hour, false, 0},
		{session.StatusInProgress, 10 * time.Hour, true, time.Hour},
		{session.StatusPending, 30 * time.Hour, true, 5 * time.Hour},
		{session.StatusReview, 20 * time.Hour, false, 3 * time.Hour},
		{session.StatusPending, 40 * time.Hour, false, 4 * time.Hour},
		{session.StatusCancelled, 5 * time.Hour, true, 5 * time.Hour},
	}
	for i, sp := range specs {
		s := newSession(fmt.Sprintf("s%d", i), t0.Add(time.Duration(i)*time.Hour))
		s.Status, s.ExpiresAt, s.Advance, s.UpdatedAt = sp.status, t0.Add(sp.expires), sp.advance, t0.Add(sp.updated)
		create(t, r, s)
	}
	other := f.repo(t, "tenant-b")
	create(t, other, newSession("b0", t0))

	tests := []struct {
		name   string
		filter session.Filter
		want   []string
	}{
		{"all newest first", session.Filter{}, []string{"s5", "s4", "s3", "s2", "s1", "s0"}},
		{"status", session.Filter{Status: session.StatusPending}, []string{"s4", "s2", "s0"}},
		{"status without sessions", session.Filter{Status: session.StatusApproved}, []string{}},
		{"created after (inclusive)", session.Filter{CreatedAfter: t0.Add(3 * time.Hour)}, []string{"s5", "s4", "s3"}},
		{"created before (exclusive)", session.Filter{CreatedBefore: t0.Add(2 * time.Hour)}, []string{"s1", "s0"}},
		{"created window", session.Filter{CreatedAfter: t0.Add(time.Hour), CreatedBefore: t0.Add(4 * time.Hour)}, []string{"s3", "s2", "s1"}},
		{"window and status", session.Filter{Status: session.StatusPending, CreatedAfter: t0.Add(time.Hour), CreatedBefore: t0.Add(5 * time.Hour)}, []string{"s4", "s2"}},
		{"advance", session.Filter{Advance: true}, []string{"s5", "s2", "s1"}},
		{"advance updated before", session.Filter{Advance: true, UpdatedBefore: t0.Add(5 * time.Hour)}, []string{"s1"}},
		{"expires before by expiry", session.Filter{ExpiresBefore: t0.Add(35 * time.Hour)}, []string{"s5", "s1", "s3", "s2"}},
		{"expires before and status", session.Filter{Status: session.StatusPending, ExpiresBefore: t0.Add(45 * time.Hour)}, []string{"s2", "s4"}},
		{"expires before nothing", session.Filter{ExpiresBefore: t0}, []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, next, err := r.List(ctx, tt.filter)
			if err != nil || next != "" || !slices.Equal(ids(got), tt.want) {
				t.Errorf("List(%+v) = %v, %q, %v, want %v, \"\", nil", tt.filter, ids(got), next, err, tt.want)
			}
		})
	}

	t.Run("versions", func(t *testing.T) {
		got, _, err := r.List(ctx, session.Filter{})
		if err != nil {
			t.Fatalf("List() = %v", err)
		}
		for _, s := range got {
			if s.Version() != 1 {
				t.Errorf("List() session %s version = %d, want 1", s.ID, s.Version())
			}
		}
	})

	t.Run("pages", func(t *testing.T) {
		for _, tt := range []struct {
			name   string
			filter session.Filter
			want   []string
		}{
			{"newest first", session.Filter{}, []string{"s5", "s4", "s3", "s2", "s1", "s0"}},
			{"by expiry", session.Filter{ExpiresBefore: t0.Add(100 * time.Hour)}, []string{"s5", "s1", "s3", "s2", "s4", "s0"}},
		} {
			t.Run(tt.name, func(t *testing.T) {
				var all []string
				f := tt.filter
				f.Limit = 4
				for pages := 1; ; pages++ {
					got, next, err := r.List(ctx, f)
					if err != nil {
						t.Fatalf("List(page %d) = %v", pages, err)
					}
					if len(got) > f.Limit {
						t.Errorf("List(page %d) = %d sessions, want at most %d", pages, len(got), f.Limit)
					}
					all = append(all, ids(got)...)
					if next == "" {
						if pages != 2 {
							t.Errorf("List() took %d pages of 4 for 6 sessions, want 2", pages)
						}
						break
					}
					f.Cursor = next
				}
				if !slices.Equal(all, tt.want) {
					t.Errorf("List() over pages = %v, want %v", all, tt.want)
				}
			})
		}
	})

	t.Run("tenant isolation", func(t *testing.T) {
		got, _, err := other.List(ctx, session.Filter{})
		if err != nil || !slices.Equal(ids(got), []string{"b0"}) {
			t.Errorf("List() in tenant-b = %v, %v, want [b0]", ids(got), err)
		}
	})
}

func TestSealed(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	r := f.repo(t, "tenant-a")
	const marker = "Jane-Q-Marker-5c1d"
	s := newSession("s1", t0)
	s.Metadata = pii.JSON(`{"name":"` + marker + `"}`)
	s.Reason = "reason-" + marker
	create(t, r, s)
	if _, err := r.Update(ctx, "s1", t0, func(s *session.Session) error {
		s.Files = append(s.Files, session.File{ID: "file-" + marker, Kind: session.KindSelfie, ContentType: "image/" + marker})
		return nil
	}); err != nil {
		t.Fatalf("Update(s1) = %v", err)
	}
	if !f.dbContains(t, "tenant-a") {
		t.Fatalf("database files do not contain the tenant id; the scan sees nothing")
	}
	if f.dbContains(t, marker) {
		t.Errorf("database files contain %q in clear", marker)
	}
}

func TestStatusAndKind(t *testing.T) {
	for _, tt := range []struct {
		status      session.Status
		valid, open bool
	}{
		{session.StatusPending, true, true},
		{session.StatusInProgress, true, true},
		{session.StatusReview, true, false},
		{session.StatusApproved, true, false},
		{session.StatusRejected, true, false},
		{session.StatusExpired, true, false},
		{session.StatusError, true, false},
		{session.StatusCancelled, true, false},
		{"", false, false},
		{"PENDING", false, false},
	} {
		t.Run(string(tt.status), func(t *testing.T) {
			if got := tt.status.Valid(); got != tt.valid {
				t.Errorf("Status(%q).Valid() = %v, want %v", tt.status, got, tt.valid)
			}
			if got := tt.status.Open(); got != tt.open {
				t.Errorf("Status(%q).Open() = %v, want %v", tt.status, got, tt.open)
			}
		})
	}
	for _, tt := range []struct {
		kind  session.FileKind
		valid bool
	}{
		{session.KindDocumentFront, true},
		{session.KindDocumentBack, true},
		{session.KindSelfie, true},
		{session.KindAttachment, true},
		{"", false},
		{"passport", false},
	} {
		if got := tt.kind.Valid(); got != tt.valid {
			t.Errorf("FileKind(%q).Valid() = %v, want %v", tt.kind, got, tt.valid)
		}
	}
}

func TestQuarantineFile(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	r := f.repo(t, "tenant-a")
	s := newSession("s1", t0)
	s.Files = []session.File{{ID: "f1", Kind: session.KindSelfie}, {ID: "f2", Kind: session.KindDocumentFront}}
	create(t, r, s)
	local := time.FixedZone("UTC+2", 2*60*60)
	first := session.Quarantine{At: t0.Add(time.Minute).In(local), Reason: session.ReasonVerificationFailed, By: session.ByDownload}
	second := session.Quarantine{At: t0.Add(time.Hour), Reason: session.ReasonObjectMissing, By: session.ByScheduler}

	tests := []struct {
		name        string
		id, fileID  string
		q           session.Quarantine
		want        bool
		wantErr     error
		wantVersion int64
	}{
		{"marks", "s1", "f1", first, true, nil, 2},
		{"already quarantined keeps the first", "s1", "f1", second, false, nil, 2},
		{"unknown file", "s1", "nope", second, false, nil, 2},
		{"unknown session", "nope", "f1", second, false, store.ErrNotFound, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := r.QuarantineFile(ctx, tt.id, tt.fileID, tt.q)
			if got != tt.want || !errors.Is(err, tt.wantErr) {
				t.Fatalf("QuarantineFile(%s, %s) = %v, %v, want %v, %v", tt.id, tt.fileID, got, err, tt.want, tt.wantErr)
			}
			stored, err := r.Get(ctx, "s1")
			if err != nil {
				t.Fatalf("Get(s1) = %v", err)
			}
			if stored.Version() != tt.wantVersion {
				t.Errorf("Get(s1).Version() = %d, want %d", stored.Version(), tt.wantVersion)
			}
			f1, _ := stored.File("f1")
			if q := f1.Quarantined; q == nil || !q.At.Equal(first.At) || q.At.Location() != time.UTC ||
				q.Reason != session.ReasonVerificationFailed || q.By != session.ByDownload {
				t.Errorf("Get(s1).File(f1).Quarantined = %+v, want %+v in UTC", q, first)
			}
			if f2, _ := stored.File("f2"); f2.Quarantined != nil {
				t.Errorf("Get(s1).File(f2).Quarantined = %+v, want nil", f2.Quarantined)
			}
		})
	}
}

func TestQuarantineReasonOf(t *testing.T) {
	tests := []struct {
		name   string
		err    error
		want   session.QuarantineReason
		wantOK bool
	}{
		{"nil", nil, "", false},
		{"tampered", fmt.Errorf("read: %w", files.ErrTampered), session.ReasonVerificationFailed, true},
		{"missing", fmt.Errorf("read: %w", files.ErrNotFound), session.ReasonObjectMissing, true},
		{"i/o error", errors.New("connection reset"), "", false},
		{"cancelled", context.Canceled, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := session.QuarantineReasonOf(tt.err)
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("QuarantineReasonOf(%v) = %q, %v, want %q, %v", tt.err, got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func TestPortraitFileID(t *testing.T) {
	id := session.PortraitFileID("01a2260c-2723-72cf-897f-565201db2a4d", "01a2260c-aaaa-72cf-897f-565201db2a4d")
	if got, ok := session.PortraitSession(id); !ok || got != "01a2260c-2723-72cf-897f-565201db2a4d" {
		t.Errorf("PortraitSession(%q) = %q, %t", id, got, ok)
	}
	for _, notPortrait := range []string{"01a2260c-2723-72cf-897f-565201db2a4d", "-portrait-x", ""} {
		if got, ok := session.PortraitSession(notPortrait); ok {
			t.Errorf("PortraitSession(%q) = %q, true; want false", notPortrait, got)
		}
	}
}
