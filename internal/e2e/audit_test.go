package e2e

import (
	"cmp"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/json"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	_ "modernc.org/sqlite" // the driver of the read-only look at the database

	"github.com/idvault/idvault/internal/audit"
	"github.com/idvault/idvault/internal/auditlog"
	"github.com/idvault/idvault/internal/config"
	idvault "github.com/idvault/idvault/internal/server"
)

// drainTimeout bounds the wait for the audit pipeline to move every event
// from the outbox, through the queue, into the log.
const drainTimeout = 60 * time.Second

// sentRequest is one API request recorded by an auditTrail.
type sentRequest struct {
	id     string // the X-Request-Id the client chose
	route  string // method and path, for messages
	action string // the audit action it produces when acknowledged
	// sent and acked are ticks of the trail's clock: acked is 0 while the
	// request is unacknowledged.
	sent, acked int64
}

// auditTrail records the API requests a test sends, to check the audit log
// against them: every acknowledged request's event must be in the log
// exactly once, an unacknowledged one's at most once, and events in the
// order the requests were acknowledged. It is safe for concurrent use.
type auditTrail struct {
	mu    sync.Mutex
	clock int64 // ticks at each send and each acknowledgement
	reqs  map[string]*sentRequest
}

func newAuditTrail() *auditTrail { return &auditTrail{reqs: map[string]*sentRequest{}} }

// send records a request about to be sent and returns it with a fresh
// request id.
func (a *auditTrail) send(method, path string) *sentRequest {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.clock++
	r := &sentRequest{id: "e2e-" + rand.Text(), route: method + " " + path, action: auditAction(method, path), sent: a.clock}
	a.reqs[r.id] = r
	return r
}

// ack records that r's response, with the status wanted, was read whole.
func (a *auditTrail) ack(r *sentRequest) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.clock++
	r.acked = a.clock
}

// auditAction returns the action docs/audit-events.md gives the successful
// session request method path, or "" for a request this test does not
// expect to be audited.
func auditAction(method, path string) string {
	path, _, _ = strings.Cut(path, "?")
	p := strings.Split(strings.TrimPrefix(path, "/api/v1/"), "/")
	if p[0] != "sessions" {
		return ""
	}
	switch {
	case len(p) == 1 && method == "POST":
		return "session.create"
	case len(p) == 1 && method == "GET":
		return "session.list"
	case len(p) == 2 && method == "GET":
		return "session.read"
	case len(p) == 3 && method == "POST" && p[2] == "cancel":
		return "session.cancel"
	case len(p) == 3 && method == "POST" && p[2] == "files":
		return "file.upload"
	case len(p) == 4 && method == "GET" && p[2] == "files":
		return "file.read"
	}
	return ""
}

// loggedEvent is one event read back from a tenant's audit log.
type loggedEvent struct {
	tenant string
	pos    int64
	ev     audit.Event
}

// check checks the events of every tenant's log against the trail and
// returns how many acknowledged requests it found in the log, and how many
// unacknowledged ones:
//   - an acknowledged request's event is in the log exactly once (by request
//     id and action), an unacknowledged one's at most once, and no request
//     has an event of another action;
//   - every event with a request id belongs to a request of the trail;
//   - no event id appears twice;
//   - events of one tenant are in causal order: when A was acknowledged
//     before B was sent (as each worker's requests are, one after the
//     other), A's event comes before B's in the chain.
func (a *auditTrail) check(t *testing.T, events []loggedEvent) (acknowledged, unacknowledged int) {
	t.Helper()
	a.mu.Lock()
	defer a.mu.Unlock()
	ids := map[string]bool{}
	found := map[string][]loggedEvent{}
	for _, e := range events {
		if ids[e.ev.ID] {
			t.Errorf("event id %s appears twice in the logs", e.ev.ID)
		}
		ids[e.ev.ID] = true
		if e.ev.RequestID == "" {
			continue
		}
		r := a.reqs[e.ev.RequestID]
		switch {
		case r == nil:
			t.Errorf("event %s (%s at %d) has request id %q, which no request of the test carried", e.ev.ID, e.ev.Action, e.pos, e.ev.RequestID)
			continue
		case e.ev.Action != r.action:
			t.Errorf("%s (request %s) produced %s, want %q", r.route, r.id, e.ev.Action, r.action)
		case e.ev.Outcome != audit.Success:
			t.Errorf("%s (request %s) produced %s with outcome %s, want success", r.route, r.id, e.ev.Action, e.ev.Outcome)
		}
		found[r.id] = append(found[r.id], e)
	}
	var acked []*sentRequest
	for _, r := range a.reqs {
		n := len(found[r.id])
		switch {
		case n > 1:
			t.Errorf("%s (request %s, acknowledged %t) is in the log %d times, want at most once", r.route, r.id, r.acked > 0, n)
		case r.acked == 0:
			unacknowledged += n
		case r.action == "":
			t.Errorf("acknowledged %s (request %s) is not a request this test audits", r.route, r.id)
		case n == 0:
			t.Errorf("acknowledged %s (request %s) has no %s event in the log", r.route, r.id, r.action)
		default:
			acked = append(acked, r)
		}
	}
	// Causal order: walk the acknowledged requests in the order they were
	// sent, keeping per tenant the latest position among those acknowledged
	// before the current one was sent.
	bySent := slices.SortedFunc(slices.Values(acked), func(x, y *sentRequest) int { return cmp.Compare(x.sent, y.sent) })
	byAck := slices.SortedFunc(slices.Values(acked), func(x, y *sentRequest) int { return cmp.Compare(x.acked, y.acked) })
	type latest struct {
		pos int64
		req *sentRequest
	}
	before := map[string]latest{}
	next := 0
	for _, b := range bySent {
		for ; next < len(byAck) && byAck[next].acked < b.sent; next++ {
			e := found[byAck[next].id][0]
			if l, ok := before[e.tenant]; !ok || e.pos > l.pos {
				before[e.tenant] = latest{e.pos, byAck[next]}
			}
		}
		e := found[b.id][0]
		if l, ok := before[e.tenant]; ok && l.pos > e.pos {
			t.Errorf("%s (request %s) is at position %d, before %s (request %s) at %d, which was acknowledged before it was sent",
				b.route, b.id, e.pos, l.req.route, l.req.id, l.pos)
		}
	}
	return len(acked), unacknowledged
}

// openReadOnly opens the database of the data directory dir read-only, for
// looking at it while the server runs. The caller closes it.
func openReadOnly(t testing.TB, dir string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "idvault.db")+"?mode=ro&_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatalf("open database read-only: %v", err)
	}
	return db
}

// pipeline is what the audit pipeline holds at one moment.
type pipeline struct {
	outbox, queued, dead, logged int
}

// pipelineAt reads what the audit pipeline of dir's database holds.
func pipelineAt(t *testing.T, dir string) pipeline {
	t.Helper()
	db := openReadOnly(t, dir)
	defer db.Close()
	p, err := readPipeline(t.Context(), db)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func readPipeline(ctx context.Context, db *sql.DB) (pipeline, error) {
	var p pipeline
	err := db.QueryRowContext(ctx, `SELECT
		(SELECT count(*) FROM store_records WHERE collection = ?),
		(SELECT count(*) FROM queue_messages WHERE topic = ?),
		(SELECT count(*) FROM queue_messages WHERE topic = ?),
		(SELECT count(*) FROM store_records WHERE collection = 'auditlog.id')`,
		audit.OutboxCollection, "audit", "audit.dead").Scan(&p.outbox, &p.queued, &p.dead, &p.logged)
	if err != nil {
		return p, fmt.Errorf("read the audit pipeline: %w", err)
	}
	return p, nil
}

// waitAuditDrained waits, while the server runs, until the outbox and the
// audit topic are empty and the log holds as many events as at the poll
// before, and fails t if an audit message was dead-lettered. It returns how
// many events the logs hold.
func waitAuditDrained(t *testing.T, dir string) int {
	t.Helper()
	ctx := t.Context()
	db := openReadOnly(t, dir)
	defer db.Close()
	start := time.Now()
	var prev pipeline
	for polls := 0; ; polls++ {
		p, err := readPipeline(ctx, db)
		if err != nil {
			t.Fatal(err)
		}
		if p.dead > 0 {
			t.Errorf("%d audit messages were dead-lettered: their events never reach the log", p.dead)
		}
		if polls > 0 && p.outbox == 0 && p.queued == 0 && p.logged == prev.logged {
			t.Logf("audit pipeline drained %s after the last request: %d events in the logs", time.Since(start).Round(100*time.Millisecond), p.logged)
			return p.logged
		}
		if time.Since(start) > drainTimeout {
			t.Fatalf("audit pipeline not drained within %s: %d events in the outbox, %d audit messages queued, %d events logged",
				drainTimeout, p.outbox, p.queued, p.logged)
		}
		prev = p
		time.Sleep(250 * time.Millisecond)
	}
}

// readAuditLogs opens the stopped server's data directory dir as the server
// does, checks that Verify reports every tenant's log verified, and returns
// every event of every log in log order.
func readAuditLogs(t *testing.T, dir string) []loggedEvent {
	t.Helper()
	ctx := t.Context()
	// The configuration the server ran with (the listen address names the
	// log's origin).
	cfg, err := config.Load("", []string{"IDVAULT_DATADIR=" + dir, "IDVAULT_API__LISTEN=127.0.0.1:0"})
	if err != nil {
		t.Fatalf("load the configuration of %s: %v", dir, err)
	}
	srv, err := idvault.Open(ctx, cfg, slog.New(slog.DiscardHandler), false)
	if err != nil {
		t.Fatalf("open %s: %v", dir, err)
	}
	defer func() {
		if err := srv.Close(); err != nil {
			t.Errorf("close %s: %v", dir, err)
		}
	}()
	if srv.AuditLog == nil {
		t.Fatalf("%s has no audit log signing key", dir)
	}
	tenants, err := srv.AuditLog.Tenants(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var all []loggedEvent
	for _, tenant := range tenants {
		n := len(all)
		for cursor := ""; ; {
			page, next, err := srv.AuditLog.Events(ctx, tenant, auditlog.Filter{}, cursor, 1000)
			if err != nil {
				t.Fatalf("read the audit log of %s: %v", tenant, err)
			}
			for _, st := range page {
				var ev audit.Event
				if err := json.Unmarshal(st.Data, &ev); err != nil {
					t.Fatalf("event %s at %d of %s: %v", st.ID, st.Index, tenant, err)
				}
				if ev.ID != st.ID || ev.Tenant != tenant {
					t.Errorf("event at %d of %s is %s of tenant %s, stored as %s", st.Index, tenant, ev.ID, ev.Tenant, st.ID)
				}
				all = append(all, loggedEvent{tenant: tenant, pos: st.Index, ev: ev})
			}
			if next == "" {
				break
			}
			cursor = next
		}
		rep, err := srv.AuditLog.Verify(ctx, tenant, auditlog.VerifyOptions{})
		if err != nil {
			t.Fatalf("verify the audit log of %s: %v", tenant, err)
		}
		if !rep.Verified() {
			t.Errorf("verify the audit log of %s: %s at %d (event %s): %s", tenant, rep.Problem.Kind, rep.Problem.Position, rep.Problem.EventID, rep.Problem.Detail)
		} else if int(rep.Events) != len(all)-n {
			t.Errorf("verify the audit log of %s: %d events verified, %d read", tenant, rep.Events, len(all)-n)
		}
	}
	return all
}
