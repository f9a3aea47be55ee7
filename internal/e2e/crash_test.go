package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image/png"
	"io/fs"
	"maps"
	"math/rand/v2"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/idvault/idvault/internal/sqlitedb"
)

const (
	// crashIterations is how many times TestCrashRecovery kills the
	// server; crashIterationsShort with -short.
	crashIterations      = 20
	crashIterationsShort = 3
	// crashWorkers is how many clients run at once.
	crashWorkers = 4
	// crashRequestTimeout bounds each request of the workload (an
	// unanswered workload request is allowed: the process is being killed).
	crashRequestTimeout = 3 * time.Second
	// verifyRequestTimeout bounds each request of the checks after a
	// restart, which must all be answered: generous, so that a loaded CI
	// machine does not fail the test.
	verifyRequestTimeout = 30 * time.Second
	// settleTimeout bounds the final wait for every session to reach the
	// status its files call for, recovering lost workflow messages.
	settleTimeout = 60 * time.Second
)

// crashEnv makes a message whose handler was killed visible again soon,
// and a session whose workflow message was lost republished soon.
var crashEnv = []string{"IDVAULT_QUEUE__VISIBILITYTIMEOUT=2s", "IDVAULT_SCHEDULER__REPUBLISHAFTER=3s"}

// trackedFile is an acknowledged upload.
type trackedFile struct {
	kind string
	data []byte
}

// tracked is a session whose creation was acknowledged, with what was
// acknowledged about it since.
type tracked struct {
	id          string
	cancelled   bool // a cancel was acknowledged
	cancelTried bool // a cancel was sent
	uncertain   bool // a request on it went unanswered, so its state is unknown
	files       map[string]trackedFile
}

func (s *tracked) has(kind string) bool {
	for _, f := range s.files {
		if f.kind == kind {
			return true
		}
	}
	return false
}

// model records what the server acknowledged across all runs.
type model struct {
	t *testing.T

	mu       sync.Mutex
	sessions map[string]*tracked
	open     []*tracked      // sessions a worker may take to work on
	unknown  map[string]bool // listed sessions whose creation was never acknowledged
	// Of the current run:
	touched                                map[string]bool // sessions a request was sent for
	createsSent, createsAcked              int
	uploadsAcked, cancelsAcked, readsAcked int
}

func newModel(t *testing.T) *model {
	return &model{t: t, sessions: map[string]*tracked{}, unknown: map[string]bool{}, touched: map[string]bool{}}
}

func (m *model) beginRun() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.touched = map[string]bool{}
	m.createsSent, m.createsAcked, m.uploadsAcked, m.cancelsAcked, m.readsAcked = 0, 0, 0, 0, 0
}

// take removes and returns a random open session, or nil.
func (m *model) take(r *rand.Rand) *tracked {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.open) == 0 {
		return nil
	}
	i := r.IntN(len(m.open))
	s := m.open[i]
	m.open = slices.Delete(m.open, i, i+1)
	m.touched[s.id] = true
	return s
}

// putBack returns s to the open sessions unless it needs no more work or
// its state is unknown.
func (m *model) putBack(s *tracked) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if s.cancelled || s.uncertain || (s.has("document_front") && s.has("selfie")) {
		return
	}
	m.open = append(m.open, s)
}

// failed classifies a request error: a complete response with an
// unexpected status is a server bug; anything else (reset, refused,
// timeout) leaves the request unacknowledged.
func (m *model) failed(what string, err error) {
	if se, ok := errors.AsType[*statusError](err); ok {
		m.t.Errorf("%s: %v", what, se)
	}
}

// worker runs the workload until stop is closed.
func (m *model) worker(ctx context.Context, s *server, r *rand.Rand, stop <-chan struct{}) {
	for {
		select {
		case <-stop:
			return
		default:
		}
		sess := (*tracked)(nil)
		if r.Float64() > 0.3 {
			sess = m.take(r)
		}
		if sess == nil {
			m.create(ctx, s, r)
			continue
		}
		switch x := r.Float64(); {
		case x < 0.12:
			m.cancel(ctx, s, sess)
		case x < 0.3:
			m.read(ctx, s, r, sess)
		default:
			m.upload(ctx, s, r, sess)
		}
		m.putBack(sess)
	}
}

func (m *model) create(ctx context.Context, s *server, r *rand.Rand) {
	m.mu.Lock()
	m.createsSent++
	m.mu.Unlock()
	v, err := s.createSession(ctx, fmt.Sprintf(`{"metadata":{"customerRef":"crash-%016x"}}`, r.Uint64()))
	if err != nil {
		m.failed("create session", err)
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if v.Status != "pending" {
		m.t.Errorf("created session %s status = %s, want pending", v.ID, v.Status)
	}
	tr := &tracked{id: v.ID, files: map[string]trackedFile{}}
	m.sessions[v.ID] = tr
	m.open = append(m.open, tr)
	m.touched[v.ID] = true
	m.createsAcked++
}

func (m *model) cancel(ctx context.Context, s *server, sess *tracked) {
	sess.cancelTried = true
	v, err := s.cancelSession(ctx, sess.id)
	if err != nil {
		sess.uncertain = true
		m.failed("cancel session "+sess.id, err)
		return
	}
	if v.Status != "cancelled" {
		m.t.Errorf("cancel session %s = status %s, want cancelled", sess.id, v.Status)
	}
	sess.cancelled = true
	m.mu.Lock()
	m.cancelsAcked++
	m.mu.Unlock()
}

func (m *model) upload(ctx context.Context, s *server, r *rand.Rand, sess *tracked) {
	kind, ct := "document_front", "image/jpeg"
	if sess.has(kind) {
		kind, ct = "selfie", "image/png"
	}
	img := noise(r, 8+r.IntN(24), 8+r.IntN(24))
	data := encodePNG(m.t, img, png.BestSpeed)
	if ct == "image/jpeg" {
		data = encodeJPEG(m.t, img)
	}
	f, err := s.upload(ctx, sess.id, kind, ct, data)
	if err != nil {
		sess.uncertain = true
		m.failed("upload to session "+sess.id, err)
		return
	}
	if f.SHA256 != sha256Hex(data) || f.Kind != kind || f.Size != int64(len(data)) {
		m.t.Errorf("upload to session %s = %+v, want kind %s, size %d, sha256 %s", sess.id, f, kind, len(data), sha256Hex(data))
	}
	sess.files[f.ID] = trackedFile{kind: kind, data: data}
	m.mu.Lock()
	m.uploadsAcked++
	m.mu.Unlock()
}

// read reads sess, one of its acknowledged files or a page of the session
// list, and checks what it gets against what was acknowledged. Reads
// change nothing, but each writes its audit event before it answers.
func (m *model) read(ctx context.Context, s *server, r *rand.Rand, sess *tracked) {
	ids := slices.Sorted(maps.Keys(sess.files))
	switch x := r.IntN(4); {
	case x == 0:
		if _, err := s.listPage(ctx, url.Values{"limit": {"5"}}); err != nil {
			m.failed("list sessions", err)
			return
		}
	case x == 1 && len(ids) > 0:
		id := ids[r.IntN(len(ids))]
		data, _, err := s.download(ctx, sess.id, id)
		if err != nil {
			m.failed("download file "+id, err)
			return
		}
		if !bytes.Equal(data, sess.files[id].data) {
			m.t.Errorf("file %s of session %s differs from the acknowledged upload", id, sess.id)
		}
	default:
		v, err := s.getSession(ctx, sess.id)
		if err != nil {
			m.failed("get session "+sess.id, err)
			return
		}
		checkAcknowledged(m.t, sess, v)
	}
	m.mu.Lock()
	m.readsAcked++
	m.mu.Unlock()
}

// verify checks the restarted server against the model: every acknowledged
// session exists in its acknowledged state or a later one, with every
// acknowledged file; no session appeared that was not sent; and, for the
// sessions of the last run (all of them when full is set), GET works and
// every listed file downloads intact. It returns how many files the
// sessions list.
func (m *model) verify(ctx context.Context, s *server, full bool) (files int) {
	t := m.t
	t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	list, err := s.listAll(ctx, url.Values{"limit": {"100"}})
	if err != nil {
		t.Fatalf("list sessions after restart: %v", err)
	}
	byID := make(map[string]sessionView, len(list))
	for _, v := range list {
		if _, dup := byID[v.ID]; dup {
			t.Errorf("session %s listed twice", v.ID)
		}
		byID[v.ID] = v
		files += len(v.Files)
		checkInvariants(t, v)
	}
	for id, tr := range m.sessions {
		v, ok := byID[id]
		if !ok {
			t.Errorf("acknowledged session %s is missing after restart", id)
			continue
		}
		checkAcknowledged(t, tr, v)
	}
	appeared := 0
	for id := range byID {
		if m.sessions[id] == nil && !m.unknown[id] {
			m.unknown[id] = true
			m.touched[id] = true
			appeared++
		}
	}
	if unacked := m.createsSent - m.createsAcked; appeared > unacked {
		t.Errorf("%d unacknowledged sessions appeared after restart, but only %d creates went unanswered", appeared, unacked)
	}
	for id, listed := range byID {
		if !full && !m.touched[id] {
			continue
		}
		v, err := s.getSession(ctx, id)
		if err != nil {
			t.Errorf("get listed session: %v", err)
			continue
		}
		if !slices.Equal(v.Files, listed.Files) {
			t.Errorf("session %s files = %+v, listed as %+v", id, v.Files, listed.Files)
		}
		for _, f := range v.Files {
			data, _, err := s.download(ctx, id, f.ID)
			if err != nil {
				t.Errorf("download listed file: %v", err)
				continue
			}
			if got := sha256Hex(data); got != f.SHA256 {
				t.Errorf("file %s of session %s has sha256 %s, listed as %s", f.ID, id, got, f.SHA256)
			}
			if tr := m.sessions[id]; tr != nil {
				if tf, ok := tr.files[f.ID]; ok && !bytes.Equal(data, tf.data) {
					t.Errorf("file %s of session %s differs from the acknowledged upload", f.ID, id)
				}
			}
		}
	}
	return files
}

// checkInvariants checks what must hold of any stored session.
func checkInvariants(t *testing.T, v sessionView) {
	t.Helper()
	kinds := map[string]bool{}
	for _, f := range v.Files {
		kinds[f.Kind] = true
	}
	switch v.Status {
	case "review":
		if !kinds["document_front"] || !kinds["selfie"] {
			t.Errorf("session %s is in review with files %v, want a document_front and a selfie", v.ID, kinds)
		}
	case "in_progress":
		if len(v.Files) == 0 {
			t.Errorf("session %s is in_progress with no file", v.ID)
		}
	case "error", "expired":
		t.Errorf("session %s is %s; nothing in this test should fail or expire", v.ID, v.Status)
	}
}

// checkAcknowledged checks a stored session against what was acknowledged:
// created (pending), then files added, then perhaps cancelled. Without a
// reviewer, the only later statuses are in_progress and review, and
// cancelled where a cancel was sent.
func checkAcknowledged(t *testing.T, tr *tracked, v sessionView) {
	t.Helper()
	switch {
	case tr.cancelled:
		if v.Status != "cancelled" {
			t.Errorf("session %s status = %s, want cancelled (acknowledged)", tr.id, v.Status)
		}
	case v.Status == "cancelled":
		if !tr.cancelTried {
			t.Errorf("session %s is cancelled, but no cancel was sent", tr.id)
		}
	case !slices.Contains([]string{"pending", "in_progress", "review"}, v.Status):
		t.Errorf("session %s status = %s, want pending or a later status", tr.id, v.Status)
	}
	for id, tf := range tr.files {
		i := slices.IndexFunc(v.Files, func(f fileView) bool { return f.ID == id })
		if i < 0 {
			t.Errorf("session %s lacks acknowledged %s file %s", tr.id, tf.kind, id)
			continue
		}
		if f := v.Files[i]; f.Kind != tf.kind || f.SHA256 != sha256Hex(tf.data) {
			t.Errorf("session %s file %s = kind %s, sha256 %s; want %s, %s", tr.id, id, f.Kind, f.SHA256, tf.kind, sha256Hex(tf.data))
		}
	}
}

// settled reports whether every listed session holds the status its files
// call for: review with a document and a selfie, in_progress with fewer,
// pending with none; cancelled only where a cancel was sent. It returns a
// description of the first that does not.
func (m *model) settled(ctx context.Context, s *server) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	list, err := s.listAll(ctx, url.Values{"limit": {"100"}})
	if err != nil {
		return "", err
	}
	for _, v := range list {
		if tr := m.sessions[v.ID]; v.Status == "cancelled" && tr != nil && tr.cancelTried {
			continue
		}
		kinds := map[string]bool{}
		for _, f := range v.Files {
			kinds[f.Kind] = true
		}
		want := "pending"
		switch {
		case kinds["document_front"] && kinds["selfie"]:
			want = "review"
		case len(v.Files) > 0:
			want = "in_progress"
		}
		if v.Status != want {
			return fmt.Sprintf("session %s (updated %s) is %s with %d files, want %s", v.ID, v.UpdatedAt.Format(time.RFC3339), v.Status, len(v.Files), want), nil
		}
	}
	return "", nil
}

// checkDatabase opens the database as the server would and runs SQLite's
// integrity check.
func checkDatabase(t *testing.T, dir string) {
	t.Helper()
	ctx := t.Context()
	db, err := sqlitedb.Open(ctx, filepath.Join(dir, "idvault.db"))
	if err != nil {
		t.Fatalf("open database after kill: %v", err)
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, "PRAGMA integrity_check")
	if err != nil {
		t.Fatalf("integrity check: %v", err)
	}
	defer rows.Close()
	var results []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		results = append(results, s)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(results, []string{"ok"}) {
		t.Errorf("PRAGMA integrity_check = %v, want [ok]", results)
	}
}

func TestCrashRecovery(t *testing.T) {
	iterations := crashIterations
	if testing.Short() {
		iterations = crashIterationsShort
	}
	dir := t.TempDir()
	ctx := t.Context()
	r := newRand(t)
	m := newModel(t)
	trail := newAuditTrail()
	killsOutbox, killsQueued := 0, 0 // kills that left events in the outbox, messages in the audit topic

	s := startServer(t, dir, crashEnv...)
	s.trail = trail
	apiKey := s.apiKey
	if apiKey == "" {
		t.Fatalf("first start printed no API key; stdout:\n%s", s.stdout.text())
	}
	for i := range iterations {
		s.timeout = crashRequestTimeout
		m.beginRun()
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for range crashWorkers {
			wr := rand.New(rand.NewPCG(r.Uint64(), r.Uint64()))
			wg.Go(func() { m.worker(ctx, s, wr, stop) })
		}
		delay := time.Duration(50+r.IntN(551)) * time.Millisecond
		time.Sleep(delay) // the random moment of the crash
		s.signal(syscall.SIGKILL)
		close(stop) // requests in flight die with the process
		s.wait()
		wg.Wait()
		if t.Failed() {
			t.FailNow()
		}
		checkDatabase(t, dir)
		p := pipelineAt(t, dir)
		if p.outbox > 0 {
			killsOutbox++
		}
		if p.queued > 0 {
			killsQueued++
		}

		s = startServer(t, dir, crashEnv...)
		if out := s.stdout.text(); strings.Contains(out, "initialised") || strings.Contains(out, "root key") {
			t.Fatalf("restart %d printed credentials or a key warning; the tenant must be reused:\n%s", i+1, out)
		}
		s.apiKey, s.timeout, s.trail = apiKey, verifyRequestTimeout, trail
		m.verify(ctx, s, false)
		waitAuditResumed(t, dir, p.logged)
		t.Logf("iteration %d: killed after %s; acknowledged %d of %d creates, %d uploads, %d cancels, %d reads; %d sessions in all; "+
			"at the kill %d events in the audit outbox, %d audit messages queued, %d events logged",
			i+1, delay, m.createsAcked, m.createsSent, m.uploadsAcked, m.cancelsAcked, m.readsAcked, len(m.sessions)+len(m.unknown), p.outbox, p.queued, p.logged)
		if t.Failed() {
			t.FailNow()
		}
	}

	// A session whose workflow message was lost in a crash is republished
	// by the scheduler once it has waited scheduler.republishAfter.
	start := time.Now()
	deadline := start.Add(settleTimeout)
	for polls := 0; ; polls++ {
		why, err := m.settled(ctx, s)
		if err != nil {
			t.Fatal(err)
		}
		if why == "" {
			break
		}
		if polls == 0 {
			t.Logf("waiting for the workflow: %s", why)
		}
		if time.Now().After(deadline) {
			t.Fatalf("sessions did not settle within %s: %s", time.Since(start).Round(time.Second), why)
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Logf("every session settled %s after the last restart", time.Since(start).Round(100*time.Millisecond))
	m.beginRun()
	referenced := m.verify(ctx, s, true)
	logged := waitAuditDrained(t, dir)
	s.stop()
	checkDatabase(t, dir)
	events := readAuditLogs(t, dir)
	if len(events) < logged {
		t.Errorf("the logs hold %d events after the stop, %d before it", len(events), logged)
	}
	acked, unacked := trail.check(t, events)
	t.Logf("audit: %d SIGKILLs (%d left events in the outbox, %d left messages in the audit topic); %d requests sent, "+
		"%d acknowledged and checked against %d logged events; %d unacknowledged ones logged once",
		iterations, killsOutbox, killsQueued, len(trail.reqs), acked, len(events), unacked)
	objects, temporary := countObjects(t, filepath.Join(dir, "files"))
	t.Logf("%d sessions; %d stored objects of which %d referenced; %d temporary files left by killed uploads",
		len(m.sessions)+len(m.unknown), objects, referenced, temporary)
	if objects < referenced {
		t.Errorf("%d stored objects, fewer than the %d files the sessions list", objects, referenced)
	}
}

// waitAuditResumed waits until the restarted server's audit role has
// appended to the logs, which held logged events at the kill: its lease
// first waits out the killed holder's, and only then does the next kill
// find it relaying and appending. The checks after the restart have
// written events for it to append.
func waitAuditResumed(t *testing.T, dir string, logged int) {
	t.Helper()
	deadline := time.Now().Add(drainTimeout)
	for pipelineAt(t, dir).logged <= logged {
		if time.Now().After(deadline) {
			t.Fatalf("the audit role appended nothing within %s of the restart", drainTimeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// countObjects counts the stored objects under dir and, apart, the
// temporary files of writes that never finished.
func countObjects(t *testing.T, dir string) (objects, temporary int) {
	t.Helper()
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		switch {
		case err != nil:
			return err
		case d.IsDir():
		case strings.HasSuffix(path, ".tmp"):
			temporary++
		default:
			objects++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return objects, temporary
}
