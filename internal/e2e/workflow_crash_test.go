package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/idvault/idvault/internal/regula/regulatest"
)

const (
	// workflowCrashIterations is how many times TestWorkflowCrash kills the
	// server; workflowCrashIterationsShort with -short.
	workflowCrashIterations      = 20
	workflowCrashIterationsShort = 3
	// workflowCrashWorkers is how many clients create sessions at once.
	workflowCrashWorkers = 3
	// workflowSettleTimeout bounds the final wait for every session to
	// reach its decision and every expected webhook event to arrive.
	workflowSettleTimeout = 120 * time.Second
)

// crashWorkflow is the definition TestWorkflowCrash runs: the document and
// a selfie, read and matched by the stand-ins, then a rule that routes by
// the session's metadata, so that each session's correct end is known when
// it is created. Sessions sent to review notify the business first.
const crashWorkflow = `id: crash-flow
version: 1
name: Crash test flow
start: document
steps:
  - id: document
    type: document
    pages:
      - side: front
    next: selfie
  - id: selfie
    type: selfie
    next: docreader
  - id: docreader
    type: docreader
    scenario: FullProcess
    timeout: 10s
    retries: 5
    next: face-match
  - id: face-match
    type: face_match
    threshold: 0.75
    timeout: 10s
    retries: 5
    next: checks
    on_fail: rejected
  - id: checks
    type: rule
    cases:
      - when: '"route" in session.metadata && session.metadata.route == "review"'
        next: notify-review
      - when: '"route" in session.metadata && session.metadata.route == "reject"'
        decision: rejected
        reason: rejected by rule
    default:
      next: approved
  - id: notify-review
    type: webhook
    events: [review.required]
    timeout: 10s
    retries: 5
    next: review
  - id: review
    type: review
    on_approve: approved
    on_reject: rejected
  - id: approved
    type: decision
    decision: approved
  - id: rejected
    type: decision
    decision: rejected
`

// routes are the metadata routes and the status each one must end in.
var routes = map[string]string{"approve": "approved", "reject": "rejected", "review": "review"}

// receivedEvent is one verified webhook delivery.
type receivedEvent struct {
	typ, sessionID, status, decision string
}

// receiver is the business's webhook endpoint: it verifies every delivery
// with webhook.Verify and records the events by id.
type receiver struct {
	mu     sync.Mutex
	secret string
	events map[string]receivedEvent // by event id
	count  int                      // deliveries accepted, duplicates included
	bad    []string                 // why deliveries were refused
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	refuse := func(why string) {
		rc.bad = append(rc.bad, why)
		http.Error(w, why, http.StatusBadRequest)
	}
	ev, why := readEvent(r, []byte(rc.secret), time.Now())
	if why != "" {
		refuse(why)
		return
	}
	got := receivedEvent{typ: ev.Type, sessionID: ev.Data.SessionID, status: ev.Data.Status, decision: ev.Data.Decision}
	if prev, dup := rc.events[ev.ID]; dup && prev != got {
		refuse(fmt.Sprintf("event %s delivered as %+v and as %+v", ev.ID, prev, got))
		return
	}
	rc.events[ev.ID] = got
	rc.count++
	w.WriteHeader(http.StatusNoContent)
}

func (rc *receiver) snapshot() (map[string]receivedEvent, int, []string) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	events := make(map[string]receivedEvent, len(rc.events))
	for k, v := range rc.events {
		events[k] = v
	}
	return events, rc.count, append([]string(nil), rc.bad...)
}

// flowSession is a session of the crash workflow whose creation was
// acknowledged.
type flowSession struct {
	id, route string
	// complete: both uploads were acknowledged, so the session must reach
	// routes[route].
	complete bool
}

// flowModel records what the server acknowledged across all runs.
type flowModel struct {
	mu       sync.Mutex
	sessions []*flowSession
	creates  int // creates sent
	uploads  int // uploads acknowledged
}

// worker creates sessions and uploads a document and a selfie to each,
// until stop is closed or a request fails (the process was killed).
func (m *flowModel) worker(ctx context.Context, t *testing.T, s *server, r *rand.Rand, stop <-chan struct{}) {
	kinds := []string{"approve", "reject", "review"}
	for {
		select {
		case <-stop:
			return
		default:
		}
		route := kinds[r.IntN(len(kinds))]
		m.mu.Lock()
		m.creates++
		m.mu.Unlock()
		v, err := s.createSession(ctx, `{"workflowId":"crash-flow","metadata":{"route":"`+route+`"}}`)
		if err != nil {
			return
		}
		fs := &flowSession{id: v.ID, route: route}
		m.mu.Lock()
		m.sessions = append(m.sessions, fs)
		m.mu.Unlock()
		doc := encodeJPEG(t, noise(r, 96, 64))
		if _, err := s.upload(ctx, v.ID, "document_front", "image/jpeg", doc); err != nil {
			return
		}
		selfie := encodeJPEG(t, noise(r, 64, 64))
		if _, err := s.upload(ctx, v.ID, "selfie", "image/jpeg", selfie); err != nil {
			m.mu.Lock()
			m.uploads++
			m.mu.Unlock()
			return
		}
		m.mu.Lock()
		m.uploads += 2
		fs.complete = true
		m.mu.Unlock()
	}
}

// TestWorkflowCrash runs sessions of a stored workflow against stand-in
// DocReader and FaceAPI services while it SIGKILLs the server at random
// moments, restarting it on the same data directory each time. At the end
// every session whose uploads were acknowledged must have reached the end
// its metadata routes it to (none in error, none stuck), every expected
// webhook event must have reached the test's receiver with a valid
// signature (duplicates allowed), and the audit logs must verify.
func TestWorkflowCrash(t *testing.T) {
	iterations := workflowCrashIterations
	if testing.Short() {
		iterations = workflowCrashIterationsShort
	}
	dir := t.TempDir()
	ctx := t.Context()
	r := newRand(t)

	dr := regulatest.NewDocReader(t, regulatest.Options{})
	fa := regulatest.NewFaceAPI(t, regulatest.Options{})
	rc := &receiver{events: map[string]receivedEvent{}}
	hooks := httptest.NewServer(rc)
	t.Cleanup(hooks.Close)
	hookURL, err := url.Parse(hooks.URL)
	if err != nil {
		t.Fatal(err)
	}
	env := append([]string{
		"IDVAULT_REGULA__DOCREADER__URL=" + dr.URL(), "IDVAULT_REGULA__DOCREADER__ALLOWLOOPBACKHTTP=true",
		"IDVAULT_REGULA__FACEAPI__URL=" + fa.URL(), "IDVAULT_REGULA__FACEAPI__ALLOWLOOPBACKHTTP=true",
		"IDVAULT_WEBHOOKS__ALLOWNETWORKS=127.0.0.0/8", "IDVAULT_WEBHOOKS__ALLOWHTTP=true",
		"IDVAULT_WEBHOOKS__PORTS=" + hookURL.Port(),
		"IDVAULT_WEBHOOKS__TIMEOUT=5s", "IDVAULT_WEBHOOKS__BACKOFF=1s", "IDVAULT_WEBHOOKS__MAXBACKOFF=5s",
		"IDVAULT_WEBHOOKS__POLLINTERVAL=500ms", "IDVAULT_WEBHOOKS__REPUBLISH=3s",
	}, crashEnv...)

	s := startServer(t, dir, env...)
	apiKey := s.apiKey
	if apiKey == "" {
		t.Fatalf("first start printed no API key; stdout:\n%s", s.stdout.text())
	}
	if _, _, err := s.call(ctx, "POST", "/api/v1/workflows", "application/yaml", []byte(crashWorkflow), http.StatusCreated); err != nil {
		t.Fatalf("store the workflow: %v", err)
	}
	// The API announces session.created with the session; the engine
	// announces review.required when a session reaches review,
	// session.completed when it is decided and session.error when it ends in
	// error; every one of them must arrive.
	sub := `{"url":"` + hooks.URL + `/hooks","eventTypes":["session.created","session.completed","session.error","review.required"]}`
	var created struct {
		ID     string `json:"id"`
		Secret string `json:"secret"`
	}
	if err := s.callJSON(ctx, "POST", "/api/v1/webhooks", "application/json", []byte(sub), http.StatusCreated, &created); err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	if !strings.HasPrefix(created.Secret, "whsec_") {
		t.Fatalf("subscription secret %q, want whsec_…", created.Secret)
	}
	rc.mu.Lock()
	rc.secret = created.Secret
	rc.mu.Unlock()

	m := &flowModel{}
	for i := range iterations {
		s.timeout = crashRequestTimeout
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for range workflowCrashWorkers {
			wr := rand.New(rand.NewPCG(r.Uint64(), r.Uint64()))
			wg.Go(func() { m.worker(ctx, t, s, wr, stop) })
		}
		delay := time.Duration(100+r.IntN(1401)) * time.Millisecond
		time.Sleep(delay) // the random moment of the crash
		s.signal(syscall.SIGKILL)
		close(stop)
		s.wait()
		wg.Wait()
		checkDatabase(t, dir)
		s = startServer(t, dir, env...)
		s.apiKey = apiKey
		_, received, _ := rc.snapshot()
		m.mu.Lock()
		t.Logf("iteration %d: killed after %s; %d sessions created of %d sent, %d uploads acknowledged; %d webhook deliveries accepted",
			i+1, delay, len(m.sessions), m.creates, m.uploads, received)
		m.mu.Unlock()
		if t.Failed() {
			t.FailNow()
		}
	}

	s.timeout = verifyRequestTimeout
	start := time.Now()
	deadline := start.Add(workflowSettleTimeout)
	for polls := 0; ; polls++ {
		why := m.unsettled(ctx, t, s, rc)
		if why == "" {
			break
		}
		if polls == 0 {
			t.Logf("waiting for the workflow and the webhooks: %s", why)
		}
		if time.Now().After(deadline) {
			t.Fatalf("not settled within %s: %s", workflowSettleTimeout, why)
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Logf("settled %s after the last restart", time.Since(start).Round(100*time.Millisecond))

	events, deliveries := m.checkFinal(ctx, t, s, rc)
	waitAuditDrained(t, dir)
	s.stop()
	checkDatabase(t, dir)
	logged := readAuditLogs(t, dir)
	complete := 0
	for _, fs := range m.sessions {
		if fs.complete {
			complete++
		}
	}
	t.Logf("%d SIGKILLs; %d sessions created (%d with both uploads acknowledged); %d webhook events received in %d deliveries; "+
		"%d DocReader and %d FaceAPI requests; %d audit events verified",
		iterations, len(m.sessions), complete, events, deliveries, dr.Requests(), fa.Requests(), len(logged))
}

// unsettled returns why the run is not over yet, or "" when every
// acknowledged session's session.created event has arrived, and every
// complete session has reached its end and its session.completed (or, in
// review, review.required) event has arrived.
func (m *flowModel) unsettled(ctx context.Context, t *testing.T, s *server, rc *receiver) string {
	events, _, _ := rc.snapshot()
	for _, fs := range m.sessions {
		if _, ok := events[fs.id+".session.created"]; !ok {
			return fmt.Sprintf("no session.created event yet for session %s", fs.id)
		}
		if !fs.complete {
			continue
		}
		v, err := s.getSession(ctx, fs.id)
		if err != nil {
			// A server that stopped answering may be shutting down after a
			// role failed; its error is printed at exit, once the API has
			// drained (api.shutdownTimeout).
			select {
			case <-s.exited:
			case <-time.After(exitTimeout):
			}
			tail := s.stderr.snapshot()
			if len(tail) > 5 {
				tail = tail[len(tail)-5:]
			}
			t.Fatalf("read session %s: %v (process state %v)\nstdout:\n%s\nlast stderr lines:\n%s", fs.id, err, s.state, s.stdout.text(), strings.Join(tail, "\n"))
		}
		if want := routes[fs.route]; v.Status != want {
			if v.Status == "error" || v.Status == "approved" || v.Status == "rejected" {
				t.Fatalf("session %s (route %s) ended %s, want %s", fs.id, fs.route, v.Status, want)
			}
			return fmt.Sprintf("session %s (route %s) is %s, want %s", fs.id, fs.route, v.Status, want)
		}
		want := fs.id + ".session.completed"
		if fs.route == "review" {
			want = fs.id + ".review.required"
		}
		if _, ok := events[want]; !ok {
			return fmt.Sprintf("no %s event yet for session %s", strings.TrimPrefix(want, fs.id+"."), fs.id)
		}
	}
	return ""
}

// checkFinal checks every session the server lists and every event the
// receiver got, and returns the number of events and deliveries.
func (m *flowModel) checkFinal(ctx context.Context, t *testing.T, s *server, rc *receiver) (events, deliveries int) {
	got, deliveries, bad := rc.snapshot()
	for _, why := range bad {
		t.Errorf("the receiver refused a delivery: %s", why)
	}
	all, err := s.listAll(ctx, url.Values{})
	if err != nil {
		t.Fatal(err)
	}
	status := make(map[string]string, len(all))
	for _, v := range all {
		status[v.ID] = v.Status
		if v.Status == "error" {
			t.Errorf("session %s is in error; the stand-ins were never told to fail", v.ID)
		}
	}
	tracked := make(map[string]*flowSession, len(m.sessions))
	for _, fs := range m.sessions {
		tracked[fs.id] = fs
		st, ok := status[fs.id]
		switch {
		case !ok:
			t.Errorf("session %s, whose creation was acknowledged, is not listed", fs.id)
		case !fs.complete && st != "pending" && st != "in_progress" && st != routes[fs.route]:
			// An upload whose answer was lost may have been stored.
			t.Errorf("session %s (route %s, an upload unacknowledged) is %s, want pending, in_progress or %s", fs.id, fs.route, st, routes[fs.route])
		}
	}
	for id, ev := range got {
		st := status[ev.sessionID]
		switch {
		case id != ev.sessionID+"."+ev.typ:
			t.Errorf("event %s is about session %s, type %s; want id <session>.<type>", id, ev.sessionID, ev.typ)
		case ev.typ == "review.required" && (st != "review" || ev.status != "in_progress" && ev.status != "review"):
			t.Errorf("review.required for session %s, which is %s (event status %s)", ev.sessionID, st, ev.status)
		case ev.typ == "session.completed" && (ev.decision != st || st != "approved" && st != "rejected"):
			t.Errorf("session.completed with decision %q for session %s, which is %s", ev.decision, ev.sessionID, st)
		case ev.typ == "session.created" && ev.status != "pending":
			t.Errorf("session.created for session %s with status %s, want pending", ev.sessionID, ev.status)
		case ev.typ == "session.error":
			t.Errorf("session.error for session %s (%s); the stand-ins were never told to fail", ev.sessionID, st)
		}
		if fs := tracked[ev.sessionID]; fs == nil && st == "" {
			t.Errorf("event %s about a session the server does not list", id)
		}
	}
	return len(got), deliveries
}
