package httpapi_test

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/idvault/idvault/internal/audit"
	"github.com/idvault/idvault/internal/auditlog"
	"github.com/idvault/idvault/internal/authz"
	"github.com/idvault/idvault/internal/store"
)

// auditEventDoc is an audit event as the audit routes return it.
type auditEventDoc struct {
	ID     string    `json:"id"`
	Tenant string    `json:"tenant"`
	Time   time.Time `json:"time"`
	Actor  struct {
		Type string `json:"type"`
		ID   string `json:"id"`
	} `json:"actor"`
	Action   string `json:"action"`
	Resource struct {
		Type string `json:"type"`
		ID   string `json:"id"`
	} `json:"resource"`
	Outcome   string            `json:"outcome"`
	Reason    string            `json:"reason"`
	RequestID string            `json:"requestId"`
	Purpose   string            `json:"purpose"`
	Details   map[string]string `json:"details"`
	Position  int64             `json:"position"`
}

// auditPageDoc is a page of GET /api/v1/audit/events.
type auditPageDoc struct {
	Items      []json.RawMessage `json:"items"`
	NextCursor string            `json:"nextCursor"`
}

// auditReportDoc is the report of the verify routes.
type auditReportDoc struct {
	Tenant     string `json:"tenant"`
	From       int64  `json:"from"`
	Events     int64  `json:"events"`
	Checkpoint *struct {
		Origin string `json:"origin"`
		Size   int64  `json:"size"`
	} `json:"checkpoint"`
	Unsigned       int64 `json:"unsigned"`
	SkippedTrusted int   `json:"skippedTrusted"`
	Problem        *struct {
		Kind     string `json:"kind"`
		Position int64  `json:"position"`
		EventID  string `json:"eventId"`
		Detail   string `json:"detail"`
	} `json:"problem"`
}

// auditorOf returns the Authorization value of a new auditor API key of tn.
func (h *harness) auditorOf(t *testing.T, tn tenant) string {
	t.Helper()
	_, key := h.newKey(t, tn.ID, []string{authz.RoleAuditor}, nil)
	return "ApiKey " + key
}

// get sends a GET with auth and extra headers (name, value pairs).
func (h *harness) get(t *testing.T, path, auth string, header ...string) response {
	t.Helper()
	hdr := map[string]string{}
	for i := 0; i+1 < len(header); i += 2 {
		hdr[header[i]] = header[i+1]
	}
	return h.send(t, request{method: "GET", path: path, auth: auth, header: hdr})
}

// readAuditEvents reads every page of GET /api/v1/audit/events with query
// (without cursor) and page size limit, and returns the items, raw and
// decoded, and how many pages it took.
func (h *harness) readAuditEvents(t *testing.T, auth string, query url.Values, limit int) (raw []json.RawMessage, docs []auditEventDoc, pages int) {
	t.Helper()
	q := url.Values{}
	for k, v := range query {
		q[k] = v
	}
	q.Set("limit", strconv.Itoa(limit))
	for {
		res := h.get(t, "/api/v1/audit/events?"+q.Encode(), auth)
		wantStatus(t, res, http.StatusOK)
		page := decodeJSON[auditPageDoc](t, res)
		pages++
		if len(page.Items) > limit {
			t.Fatalf("page of %d items, want at most limit %d", len(page.Items), limit)
		}
		for _, item := range page.Items {
			var ev auditEventDoc
			if err := json.Unmarshal(item, &ev); err != nil {
				t.Fatalf("decode event = %v, want nil; item %s", err, item)
			}
			raw, docs = append(raw, item), append(docs, ev)
		}
		if page.NextCursor == "" {
			return raw, docs, pages
		}
		q.Set("cursor", page.NextCursor)
	}
}

// ids returns the event ids of evs, in order.
func ids(evs []auditEventDoc) []string {
	out := make([]string, len(evs))
	for i, ev := range evs {
		out[i] = ev.ID
	}
	return out
}

// appendSynthetic appends n events of action for tenantID straight to the
// audit log, as the audit role would, and returns their ids in order.
func (h *harness) appendSynthetic(t *testing.T, tenantID string, n int, action string) []string {
	t.Helper()
	evs := make([]audit.Opened, n)
	out := make([]string, n)
	for i := range evs {
		ev := audit.Event{ID: newID(), Tenant: tenantID, Time: h.clock.Now(), Actor: audit.Actor{Type: "system", ID: "synthetic"},
			Action: action, Resource: audit.Resource{Type: "session", ID: fmt.Sprintf("s%05d", i)}, Outcome: audit.Success}
		data, err := json.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		evs[i], out[i] = audit.Opened{Event: ev, Data: data}, ev.ID
	}
	if err := audit.LogAppender(h.auditLog)(t.Context(), evs); err != nil {
		t.Fatalf("append %d events = %v, want nil", n, err)
	}
	return out
}

// tamperAuditEvent flips one byte of the sealed event at position pos of
// tenantID's log, in its auditlog.batch record, as an attacker with write
// access to the database would.
func (h *harness) tamperAuditEvent(t *testing.T, tenantID string, pos int64) {
	t.Helper()
	q := store.Query{Collection: "auditlog.batch", Tenant: tenantID, Limit: store.MaxLimit}
	for {
		page, err := h.backend.Query(t.Context(), q)
		if err != nil {
			t.Fatal(err)
		}
		for _, rec := range page.Records {
			start, _ := strconv.ParseInt(rec.ID, 10, 64)
			end, _ := strconv.ParseInt(rec.Index["end"], 10, 64)
			if pos < start || pos >= end {
				continue
			}
			body := slices.Clone(rec.Body)
			off := 0
			for range pos - start {
				off += 4 + int(binary.BigEndian.Uint32(body[off:]))
			}
			n := int(binary.BigEndian.Uint32(body[off:]))
			body[off+4+n/2] ^= 0x01
			rec.Body = body
			if _, err := h.backend.Update(t.Context(), rec); err != nil {
				t.Fatalf("tamper batch %s = %v, want nil", rec.ID, err)
			}
			return
		}
		if page.Next == "" {
			t.Fatalf("no batch of %s holds position %d", tenantID, pos)
		}
		q.Cursor = page.Next
	}
}

// TestAuditEvents reads tenant A's events as its auditor: all of them in
// log order with their positions, each filter, and pages of every size.
func TestAuditEvents(t *testing.T) {
	h := newHarness(t)
	var sessions []string
	for range 5 {
		sessions = append(sessions, h.createSession(t, h.a, `{}`).ID)
	}
	h.createSession(t, h.b, `{}`)
	t1 := h.clock.Now().Add(time.Minute)
	h.clock.Advance(time.Minute)
	wantStatus(t, h.get(t, "/api/v1/sessions/"+sessions[0], h.a.Auth(), "X-Access-Purpose", "review"), http.StatusOK)
	t2 := h.clock.Now().Add(time.Minute)
	h.clock.Advance(time.Minute)
	intID, intKey := h.newKey(t, h.a.ID, []string{authz.RoleIntegration}, nil)
	wantProblem(t, h.get(t, "/api/v1/users", "ApiKey "+intKey), http.StatusForbidden, "forbidden")
	h.flushAudit(t)

	auditor := h.auditorOf(t, h.a)
	_, all, _ := h.readAuditEvents(t, auditor, nil, 1000)
	if len(all) != 7 {
		t.Fatalf("events = %d (%v), want 7: 5 session.create, session.read, access.denied", len(all), ids(all))
	}
	for i, ev := range all {
		if ev.Position != int64(i) || ev.Tenant != h.a.ID || ev.ID == "" || ev.Time.IsZero() {
			t.Errorf("event %d = position %d tenant %q id %q, want position %d of tenant A", i, ev.Position, ev.Tenant, ev.ID, i)
		}
	}
	var denied auditEventDoc
	for _, ev := range all {
		if ev.Action == "access.denied" {
			denied = ev
		}
	}
	if denied.Actor.ID != intID || denied.Actor.Type != "apikey" {
		t.Fatalf("access.denied actor = %+v, want the integration key %s", denied.Actor, intID)
	}

	tests := []struct {
		name  string
		query url.Values
		want  func(auditEventDoc) bool
	}{
		{"action", url.Values{"action": {"session.create"}}, func(ev auditEventDoc) bool { return ev.Action == "session.create" }},
		{"outcome", url.Values{"outcome": {"denied"}}, func(ev auditEventDoc) bool { return ev.Outcome == "denied" }},
		{"actorId", url.Values{"actorId": {intID}}, func(ev auditEventDoc) bool { return ev.Actor.ID == intID }},
		{"resourceType", url.Values{"resourceType": {"route"}}, func(ev auditEventDoc) bool { return ev.Resource.Type == "route" }},
		{"resourceId", url.Values{"resourceId": {sessions[0]}}, func(ev auditEventDoc) bool { return ev.Resource.ID == sessions[0] }},
		{"from", url.Values{"from": {t1.Format(time.RFC3339)}}, func(ev auditEventDoc) bool { return !ev.Time.Before(t1) }},
		{"to", url.Values{"to": {t1.Format(time.RFC3339)}}, func(ev auditEventDoc) bool { return ev.Time.Before(t1) }},
		{"from and to", url.Values{"from": {t1.Format(time.RFC3339Nano)}, "to": {t2.Format(time.RFC3339Nano)}},
			func(ev auditEventDoc) bool { return !ev.Time.Before(t1) && ev.Time.Before(t2) }},
		{"resource and action", url.Values{"resourceId": {sessions[0]}, "action": {"session.read"}},
			func(ev auditEventDoc) bool { return ev.Resource.ID == sessions[0] && ev.Action == "session.read" }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var want []string
			for _, ev := range all {
				if tc.want(ev) {
					want = append(want, ev.ID)
				}
			}
			if len(want) == 0 || len(want) == len(all) {
				t.Fatalf("the filter should select some events but not all; selects %d of %d", len(want), len(all))
			}
			_, got, _ := h.readAuditEvents(t, auditor, tc.query, 1000)
			if !slices.Equal(ids(got), want) {
				t.Errorf("events?%s = %v, want %v", tc.query.Encode(), ids(got), want)
			}
		})
	}

	for _, limit := range []int{1, 2, 3, 6, 7} {
		t.Run(fmt.Sprintf("pages of %d", limit), func(t *testing.T) {
			_, got, pages := h.readAuditEvents(t, auditor, nil, limit)
			if !slices.Equal(ids(got), ids(all)) {
				t.Errorf("paged events = %v, want %v", ids(got), ids(all))
			}
			if wantMin := (len(all) + limit - 1) / limit; pages < wantMin {
				t.Errorf("pages = %d, want at least %d", pages, wantMin)
			}
		})
	}
	_, got, pages := h.readAuditEvents(t, auditor, url.Values{"action": {"session.create"}}, 2)
	if len(got) != 5 || pages < 3 {
		t.Errorf("session.create in pages of 2 = %d events in %d pages, want 5 in at least 3", len(got), pages)
	}

	// Reading is a read of personal data: it is recorded with its filters
	// and count, and the stated purpose.
	res := h.get(t, "/api/v1/audit/events?action=session.create&limit=3", auditor, "X-Access-Purpose", "quarterly audit")
	wantStatus(t, res, http.StatusOK)
	ev := h.auditEvent(t, h.a.ID, res.header.Get("X-Request-Id"), "audit.read")
	if ev.Outcome != audit.Success || ev.Purpose != "quarterly audit" || ev.Details["count"] != "3" || ev.Details["action"] != "session.create" || ev.Resource.Type != "audit" {
		t.Errorf("audit.read event = %+v, want success with purpose, count 3 and the action filter", ev)
	}
}

// TestAuditRoutesNeedAuditRead: every audit route refuses credentials
// without audit:read with 403 and records access.denied, and refuses no
// credential with 401.
func TestAuditRoutesNeedAuditRead(t *testing.T) {
	h := newHarness(t)
	_, intKey := h.newKey(t, h.a.ID, []string{authz.RoleIntegration}, nil)
	_, verKey := h.newKey(t, h.a.ID, []string{authz.RoleVerifier}, nil)
	n := 0
	for _, rt := range h.api.Routes() {
		if !strings.HasPrefix(rt.Pattern, "/api/v1/audit/") {
			continue
		}
		n++
		if rt.Permission != authz.AuditRead || rt.Public {
			t.Errorf("%s %s permission = %q public = %v, want audit:read", rt.Method, rt.Pattern, rt.Permission, rt.Public)
		}
		for _, key := range []string{intKey, verKey} {
			res := h.do(t, rt.Method, rt.Pattern, "ApiKey "+key, "application/json", []byte(`{}`))
			wantProblem(t, res, http.StatusForbidden, "forbidden")
			ev := h.auditEvent(t, h.a.ID, res.header.Get("X-Request-Id"), "access.denied")
			if ev.Outcome != audit.Denied || ev.Resource.ID != rt.Method+" "+rt.Pattern || !strings.Contains(ev.Reason, "audit:read") {
				t.Errorf("%s %s: access.denied = %+v, want denied for the route, missing audit:read", rt.Method, rt.Pattern, ev)
			}
		}
		wantProblem(t, h.do(t, rt.Method, rt.Pattern, "", "application/json", []byte(`{}`)), http.StatusUnauthorized, "unauthenticated")
	}
	if n != 8 {
		t.Errorf("audit routes = %d, want 8", n)
	}
}

// TestAuditCrossTenant: tenant B's auditor never sees tenant A's events,
// proofs or checkpoints, whatever ids, positions or cursors it uses.
func TestAuditCrossTenant(t *testing.T) {
	h := newHarness(t)
	s := h.createSession(t, h.a, `{}`)
	wantStatus(t, h.get(t, "/api/v1/sessions/"+s.ID, h.a.Auth()), http.StatusOK)
	h.flushAudit(t)
	auditorA, auditorB := h.auditorOf(t, h.a), h.auditorOf(t, h.b)
	_, evsA, _ := h.readAuditEvents(t, auditorA, nil, 1000)
	if len(evsA) != 2 {
		t.Fatalf("tenant A events = %d, want 2", len(evsA))
	}
	res := h.get(t, "/api/v1/audit/proof?event="+evsA[1].ID, auditorA)
	wantStatus(t, res, http.StatusOK) // signs A's first checkpoint
	cpA := h.get(t, "/api/v1/audit/checkpoint", auditorA)
	wantStatus(t, cpA, http.StatusOK)
	// A cursor of A's second page, a position in A's log.
	pageA := decodeJSON[auditPageDoc](t, h.get(t, "/api/v1/audit/events?limit=1", auditorA))
	if pageA.NextCursor == "" {
		t.Fatal("tenant A's first page of 1 has no next cursor")
	}

	// B has a log of its own, shorter than A's.
	h.createSession(t, h.b, `{}`)
	h.flushAudit(t)
	for _, q := range []string{"", "?resourceId=" + s.ID, "?actorId=" + evsA[0].Actor.ID, "?cursor=" + pageA.NextCursor, "?action=session.read"} {
		res := h.get(t, "/api/v1/audit/events"+q, auditorB)
		wantStatus(t, res, http.StatusOK)
		for _, item := range decodeJSON[auditPageDoc](t, res).Items {
			var ev auditEventDoc
			_ = json.Unmarshal(item, &ev)
			if ev.Tenant != h.b.ID || contains(item, h.a.ID) || contains(item, s.ID) {
				t.Errorf("events%s as B = %s, want only B's events", q, item)
			}
		}
	}
	res = h.get(t, "/api/v1/audit/export", auditorB)
	wantStatus(t, res, http.StatusOK)
	if contains(res.body, h.a.ID) || contains(res.body, s.ID) || len(bytes.TrimSpace(res.body)) == 0 {
		t.Errorf("export as B = %q, want B's events only", truncate(res.body, 300))
	}
	for _, ev := range evsA {
		wantProblem(t, h.get(t, "/api/v1/audit/proof?event="+ev.ID, auditorB), http.StatusNotFound, "not-found")
	}
	wantProblem(t, h.get(t, "/api/v1/audit/checkpoint", auditorB), http.StatusNotFound, "not-found")
	wantProblem(t, h.get(t, "/api/v1/audit/consistency?from=1", auditorB), http.StatusBadRequest, "invalid-request")
	wantProblem(t, h.get(t, "/api/v1/audit/consistency?from=1&to=2", auditorB), http.StatusNotFound, "not-found")
	res = h.get(t, "/api/v1/audit/verify", auditorB)
	wantStatus(t, res, http.StatusOK)
	if rep := decodeJSON[auditReportDoc](t, res); rep.Tenant != h.b.ID || rep.Problem != nil || rep.Events != 1 {
		t.Errorf("verify as B = %+v, want B's log of 1 event, verified", rep)
	}
	// A's checkpoint is no checkpoint of B's log.
	res = h.do(t, "POST", "/api/v1/audit/verify", auditorB, "application/json", verifyBody(t, 0, cpA.body))
	wantStatus(t, res, http.StatusOK)
	if rep := decodeJSON[auditReportDoc](t, res); rep.Problem == nil || rep.Problem.Kind != "bad-signature" {
		t.Errorf("verify B against A's checkpoint = %+v, want bad-signature", rep)
	}
}

// verifyBody is the body of POST /api/v1/audit/verify.
func verifyBody(t *testing.T, from int64, trusted ...[]byte) []byte {
	t.Helper()
	notes := make([]string, len(trusted))
	for i, n := range trusted {
		notes[i] = string(n)
	}
	b, err := json.Marshal(map[string]any{"from": from, "trusted": notes})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestAuditExport: the NDJSON export holds exactly the events of the paged
// list, across the log's internal pages, and is recorded before it is sent.
func TestAuditExport(t *testing.T) {
	h := newHarness(t)
	s := h.createSession(t, h.a, `{}`)
	h.appendSynthetic(t, h.a.ID, 1500, "test.synthetic")
	wantStatus(t, h.get(t, "/api/v1/sessions/"+s.ID, h.a.Auth()), http.StatusOK)
	h.flushAudit(t)
	auditor := h.auditorOf(t, h.a)

	for _, q := range []url.Values{nil, {"action": {"session.read"}}, {"resourceType": {"session"}, "outcome": {"success"}}} {
		t.Run("export?"+q.Encode(), func(t *testing.T) {
			wantRaw, wantDocs, pages := h.readAuditEvents(t, auditor, q, 1000)
			if q == nil && (len(wantDocs) != 1502 || pages < 2) {
				t.Fatalf("events = %d in %d pages, want 1502 in at least 2", len(wantDocs), pages)
			}
			res := h.get(t, "/api/v1/audit/export?"+q.Encode(), auditor, "X-Access-Purpose", "export for the regulator")
			wantStatus(t, res, http.StatusOK)
			if ct := res.header.Get("Content-Type"); ct != "application/x-ndjson" {
				t.Errorf("Content-Type = %q, want application/x-ndjson", ct)
			}
			sc := bufio.NewScanner(bytes.NewReader(res.body))
			sc.Buffer(nil, 1<<20)
			i := 0
			for ; sc.Scan(); i++ {
				if i >= len(wantRaw) {
					t.Fatalf("export has more than %d lines", len(wantRaw))
				}
				var got, want any
				if err := json.Unmarshal(sc.Bytes(), &got); err != nil {
					t.Fatalf("line %d = %q: %v, want a JSON object", i, sc.Bytes(), err)
				}
				_ = json.Unmarshal(wantRaw[i], &want)
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("line %d = %s, want %s", i, sc.Bytes(), wantRaw[i])
				}
			}
			if i != len(wantRaw) {
				t.Errorf("export lines = %d, want %d", i, len(wantRaw))
			}
			ev := h.auditEvent(t, h.a.ID, res.header.Get("X-Request-Id"), "audit.export")
			if ev.Outcome != audit.Success || ev.Purpose != "export for the regulator" || ev.Resource.Type != "audit" {
				t.Errorf("audit.export = %+v, want success with the purpose", ev)
			}
			for k, v := range q {
				if ev.Details[k] != v[0] {
					t.Errorf("audit.export details[%s] = %q, want %q", k, ev.Details[k], v[0])
				}
			}
		})
	}
}

// TestAuditVerify: the log verifies after normal use, up to its signed
// checkpoint; a byte flipped in one stored event is named with its
// position, reads over it fail rather than skip it, and an export that
// reaches it is aborted instead of ending as if complete.
func TestAuditVerify(t *testing.T) {
	h := newHarness(t)
	auditor := h.auditorOf(t, h.a)
	wantProblem(t, h.get(t, "/api/v1/audit/checkpoint", auditor), http.StatusNotFound, "not-found")
	for range 3 {
		s := h.createSession(t, h.a, `{}`)
		wantStatus(t, h.get(t, "/api/v1/sessions/"+s.ID, h.a.Auth()), http.StatusOK)
	}
	h.flushAudit(t)
	_, evs, _ := h.readAuditEvents(t, auditor, nil, 1000)
	wantStatus(t, h.get(t, "/api/v1/audit/proof?event="+evs[len(evs)-1].ID, auditor), http.StatusOK) // signs a checkpoint

	res := h.get(t, "/api/v1/audit/verify", auditor)
	wantStatus(t, res, http.StatusOK)
	rep := decodeJSON[auditReportDoc](t, res)
	if rep.Problem != nil || rep.Events != 6 || rep.Checkpoint == nil || rep.Checkpoint.Size != 6 || rep.Unsigned != 0 || rep.Tenant != h.a.ID {
		t.Fatalf("verify = %+v, want 6 events verified up to the checkpoint of size 6", rep)
	}
	ev := h.auditEvent(t, h.a.ID, res.header.Get("X-Request-Id"), "audit.verify")
	if ev.Outcome != audit.Success || ev.Details["events"] != "6" {
		t.Errorf("audit.verify = %+v, want success of 6 events", ev)
	}

	// Larger than one export page, so that the tampered event lies past
	// the first.
	h.appendSynthetic(t, h.a.ID, 1200, "test.synthetic")
	h.flushAudit(t)
	const pos = 1100
	h.tamperAuditEvent(t, h.a.ID, pos)
	res = h.get(t, "/api/v1/audit/verify", auditor)
	wantStatus(t, res, http.StatusOK)
	rep = decodeJSON[auditReportDoc](t, res)
	if rep.Problem == nil || rep.Problem.Kind != "edit" || rep.Problem.Position != pos || rep.Events != pos {
		t.Fatalf("verify after tampering = %+v, want edit at %d after %d events", rep, pos, pos)
	}
	ev = h.auditEvent(t, h.a.ID, res.header.Get("X-Request-Id"), "audit.verify")
	if ev.Outcome != audit.Failure || ev.Details["problem"] != "edit" || ev.Details["position"] != strconv.Itoa(pos) {
		t.Errorf("audit.verify = %+v, want error naming edit at %d", ev, pos)
	}
	wantStatus(t, h.get(t, "/api/v1/audit/verify?from=0", auditor), http.StatusOK)

	res = h.get(t, "/api/v1/audit/events?limit=1000", auditor)
	wantStatus(t, res, http.StatusOK)
	page := decodeJSON[auditPageDoc](t, res)
	if len(page.Items) != 1000 || page.NextCursor == "" {
		t.Fatalf("first page = %d items, next %q; want 1000 and a cursor", len(page.Items), page.NextCursor)
	}
	wantProblem(t, h.get(t, "/api/v1/audit/events?limit=1000&cursor="+page.NextCursor, auditor), http.StatusConflict, "audit-tampered")
	if res, err := h.try(t.Context(), request{method: "GET", path: "/api/v1/audit/export", auth: auditor}); err == nil {
		t.Errorf("export over a tampered event = %d with %d bytes, want the response aborted", res.status, len(res.body))
	}
	if !contains(h.log.Bytes(), "audit export failed; response aborted") {
		t.Errorf("the aborted export is not in the log")
	}
}

// TestAuditProofs: an inclusion proof from the API checks offline with the
// public key from the API, and not with another key; a consistency proof
// between two checkpoints checks the same way.
func TestAuditProofs(t *testing.T) {
	h := newHarness(t)
	auditor := h.auditorOf(t, h.a)
	for range 3 {
		h.createSession(t, h.a, `{}`)
	}
	h.flushAudit(t)
	_, evs, _ := h.readAuditEvents(t, auditor, nil, 1000)

	res := h.get(t, "/api/v1/audit/public-key", auditor)
	wantStatus(t, res, http.StatusOK)
	key := strings.TrimSpace(string(res.body))
	if key != h.auditVerifier || !strings.HasPrefix(res.header.Get("Content-Type"), "text/plain") {
		t.Fatalf("public key = %q (%s), want %q as text", key, res.header.Get("Content-Type"), h.auditVerifier)
	}
	_, otherKey, err := auditlog.GenerateKey("idvault-test-audit")
	if err != nil {
		t.Fatal(err)
	}

	res = h.get(t, "/api/v1/audit/proof?event="+evs[1].ID, auditor, "X-Access-Purpose", "prove")
	wantStatus(t, res, http.StatusOK)
	proof := decodeJSON[auditlog.InclusionProof](t, res)
	if err := auditlog.CheckInclusion(key, proof); err != nil {
		t.Fatalf("CheckInclusion(public key) = %v, want nil", err)
	}
	if err := auditlog.CheckInclusion(otherKey, proof); !errors.Is(err, auditlog.ErrProof) {
		t.Errorf("CheckInclusion(another key) = %v, want ErrProof", err)
	}
	lf, err := auditlog.ParseLeaf(proof.Leaf)
	if err != nil || lf.ID != evs[1].ID || lf.Position != 1 || lf.Tenant != h.a.ID {
		t.Fatalf("proof leaf = %+v, %v; want event %s at 1", lf, err, evs[1].ID)
	}
	var inLeaf auditEventDoc
	if err := json.Unmarshal(lf.Data, &inLeaf); err != nil || inLeaf.ID != evs[1].ID || inLeaf.Action != evs[1].Action {
		t.Errorf("proof leaf event = %+v, %v; want the listed event", inLeaf, err)
	}
	forged := proof
	forged.Leaf = slices.Clone(proof.Leaf)
	forged.Leaf[len(forged.Leaf)-2] ^= 1
	if err := auditlog.CheckInclusion(key, forged); !errors.Is(err, auditlog.ErrProof) {
		t.Errorf("CheckInclusion(altered leaf) = %v, want ErrProof", err)
	}
	ev := h.auditEvent(t, h.a.ID, res.header.Get("X-Request-Id"), "audit.prove")
	if ev.Outcome != audit.Success || ev.Resource.Type != "event" || ev.Resource.ID != evs[1].ID || ev.Purpose != "prove" {
		t.Errorf("audit.prove = %+v, want success for the event with the purpose", ev)
	}
	wantProblem(t, h.get(t, "/api/v1/audit/proof?event="+newID(), auditor), http.StatusNotFound, "not-found")

	// A second checkpoint after more events.
	cp1 := h.get(t, "/api/v1/audit/checkpoint", auditor)
	wantStatus(t, cp1, http.StatusOK)
	size1 := checkpointSize(t, cp1.body)
	for range 2 {
		h.createSession(t, h.a, `{}`)
	}
	h.flushAudit(t)
	_, evs, _ = h.readAuditEvents(t, auditor, nil, 1000)
	wantStatus(t, h.get(t, "/api/v1/audit/proof?event="+evs[len(evs)-1].ID, auditor), http.StatusOK)
	cp2 := h.get(t, "/api/v1/audit/checkpoint", auditor)
	wantStatus(t, cp2, http.StatusOK)
	size2 := checkpointSize(t, cp2.body)
	if size2 <= size1 {
		t.Fatalf("checkpoint sizes %d then %d, want growth", size1, size2)
	}
	for _, q := range []string{fmt.Sprintf("from=%d&to=%d", size1, size2), fmt.Sprintf("from=%d", size1)} {
		res := h.get(t, "/api/v1/audit/consistency?"+q, auditor)
		wantStatus(t, res, http.StatusOK)
		cp := decodeJSON[auditlog.ConsistencyProof](t, res)
		if cp.Old != string(cp1.body) || cp.New != string(cp2.body) {
			t.Errorf("consistency?%s old/new = %q, %q; want the two checkpoints", q, cp.Old, cp.New)
		}
		if err := auditlog.CheckConsistency(key, cp); err != nil {
			t.Errorf("CheckConsistency(public key) = %v, want nil", err)
		}
		if err := auditlog.CheckConsistency(otherKey, cp); !errors.Is(err, auditlog.ErrProof) {
			t.Errorf("CheckConsistency(another key) = %v, want ErrProof", err)
		}
		ev := h.auditEvent(t, h.a.ID, res.header.Get("X-Request-Id"), "audit.prove")
		if ev.Resource.Type != "checkpoint" || ev.Resource.ID != strconv.FormatInt(size2, 10) || ev.Details["from"] != strconv.FormatInt(size1, 10) {
			t.Errorf("audit.prove of consistency = %+v, want checkpoint %d from %d", ev, size2, size1)
		}
	}
	wantProblem(t, h.get(t, fmt.Sprintf("/api/v1/audit/consistency?from=%d", size1+1), auditor), http.StatusNotFound, "not-found")
}

// checkpointSize returns the size line of a signed checkpoint note.
func checkpointSize(t *testing.T, signed []byte) int64 {
	t.Helper()
	lines := strings.Split(string(signed), "\n")
	if len(lines) < 3 {
		t.Fatalf("checkpoint = %q, want a signed note", signed)
	}
	n, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil {
		t.Fatalf("checkpoint size line %q: %v", lines[1], err)
	}
	return n
}

// TestAuditVerifyTrusted: checkpoints an auditor saved are checked against
// the log: the real one agrees; one signed by another key is a bad
// signature, and one signed by the log's own key over another tree (a
// history the key also signed) is a fork, each at its size.
func TestAuditVerifyTrusted(t *testing.T) {
	h := newHarness(t)
	auditor := h.auditorOf(t, h.a)
	for range 3 {
		h.createSession(t, h.a, `{}`)
	}
	h.flushAudit(t)
	_, evs, _ := h.readAuditEvents(t, auditor, nil, 1000)
	wantStatus(t, h.get(t, "/api/v1/audit/proof?event="+evs[0].ID, auditor), http.StatusOK)
	saved := h.get(t, "/api/v1/audit/checkpoint", auditor)
	wantStatus(t, saved, http.StatusOK)
	size := checkpointSize(t, saved.body)

	root := make([]byte, 32)
	copy(root, "another history of the same size")
	text := fmt.Sprintf("%s/%s\n%d\n%s\n", auditOrigin, h.a.ID, size, base64.StdEncoding.EncodeToString(root))
	sign := func(skey, text string) []byte {
		signer, err := note.NewSigner(skey)
		if err != nil {
			t.Fatal(err)
		}
		msg, err := note.Sign(&note.Note{Text: text}, signer)
		if err != nil {
			t.Fatal(err)
		}
		return msg
	}
	otherSigner, _, err := auditlog.GenerateKey("idvault-test-audit")
	if err != nil {
		t.Fatal(err)
	}
	realText, _, _ := strings.Cut(string(saved.body), "\n\n")
	tests := []struct {
		name    string
		trusted []byte
		kind    string
	}{
		{"saved", saved.body, ""},
		{"other key", sign(otherSigner, realText+"\n"), "bad-signature"},
		{"real key, other root", sign(h.auditSigner, text), "fork"},
		{"real key, other tenant", sign(h.auditSigner, strings.Replace(realText+"\n", h.a.ID, h.b.ID, 1)), "bad-signature"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := h.do(t, "POST", "/api/v1/audit/verify", auditor, "application/json", verifyBody(t, 0, tc.trusted))
			wantStatus(t, res, http.StatusOK)
			rep := decodeJSON[auditReportDoc](t, res)
			switch {
			case tc.kind == "" && rep.Problem != nil:
				t.Errorf("verify against %s = %+v, want verified", tc.name, rep.Problem)
			case tc.kind != "" && (rep.Problem == nil || rep.Problem.Kind != tc.kind || rep.Problem.Position != size):
				t.Errorf("verify against %s = %+v, want %s at %d", tc.name, rep.Problem, tc.kind, size)
			}
			ev := h.auditEvent(t, h.a.ID, res.header.Get("X-Request-Id"), "audit.verify")
			if ev.Details["trusted"] != "1" || ev.Details["problem"] != tc.kind {
				t.Errorf("audit.verify details = %v, want trusted 1, problem %q", ev.Details, tc.kind)
			}
		})
	}
}

// TestAuditPurposeRequired: where the tenant requires a stated purpose,
// reading, exporting and proving events without one is refused and the
// refusal recorded; verification, checkpoints and consistency hold no
// personal data and need none.
func TestAuditPurposeRequired(t *testing.T) {
	h := newHarness(t)
	auditor := h.auditorOf(t, h.a)
	h.createSession(t, h.a, `{}`)
	h.flushAudit(t)
	_, evs, _ := h.readAuditEvents(t, auditor, nil, 1000)
	wantStatus(t, h.do(t, "PUT", "/api/v1/settings/policy", h.a.Auth(), "application/json", []byte(`{"requireMFA":false,"requirePurpose":true}`)), http.StatusOK)
	for path, action := range map[string]string{
		"/api/v1/audit/events":                   "audit.read",
		"/api/v1/audit/export":                   "audit.export",
		"/api/v1/audit/proof?event=" + evs[0].ID: "audit.prove",
	} {
		res := h.get(t, path, auditor)
		wantProblem(t, res, http.StatusBadRequest, "purpose-required")
		if ev := h.auditEvent(t, h.a.ID, res.header.Get("X-Request-Id"), action); ev.Outcome != audit.Denied {
			t.Errorf("%s without purpose: %s outcome = %q, want denied", path, action, ev.Outcome)
		}
		wantStatus(t, h.get(t, path, auditor, "X-Access-Purpose", "annual audit"), http.StatusOK)
	}
	wantStatus(t, h.get(t, "/api/v1/audit/verify", auditor), http.StatusOK)
	wantStatus(t, h.get(t, "/api/v1/audit/checkpoint", auditor), http.StatusOK)
	wantStatus(t, h.get(t, "/api/v1/audit/public-key", auditor), http.StatusOK)
}

// TestAuditBadInput: every malformed query or body is 400 naming the
// parameter, and unknown or repeated parameters are rejected as on every
// other route.
func TestAuditBadInput(t *testing.T) {
	h := newHarness(t)
	auditor := h.auditorOf(t, h.a)
	h.createSession(t, h.a, `{}`)
	h.flushAudit(t)
	forged := base64.RawURLEncoding.EncodeToString([]byte{0x02, 0, 0, 0, 0, 0, 0, 0, 1})
	tests := []struct {
		path, field string
	}{
		{"/api/v1/audit/events?cursor=%21%21%21", "cursor"},
		{"/api/v1/audit/events?cursor=" + forged, "cursor"},
		{"/api/v1/audit/events?from=yesterday", "from"},
		{"/api/v1/audit/events?to=2031-03-14", "to"},
		{"/api/v1/audit/events?from=2031-03-14T00:00:00Z&to=2031-03-13T00:00:00Z", "to"},
		{"/api/v1/audit/events?limit=0", "limit"},
		{"/api/v1/audit/events?limit=5000", "limit"},
		{"/api/v1/audit/events?limit=ten", "limit"},
		{"/api/v1/audit/events?outcome=maybe", "outcome"},
		{"/api/v1/audit/events?action=DROP%20TABLE", "action"},
		{"/api/v1/audit/events?resourceType=Session%0A", "resourceType"},
		{"/api/v1/audit/events?actorId=a%00b", "actorId"},
		{"/api/v1/audit/events?resourceId=" + strings.Repeat("x", 257), "resourceId"},
		{"/api/v1/audit/events?foo=1", "foo"},
		{"/api/v1/audit/events?action=auth.login&action=session.read", "action"},
		{"/api/v1/audit/export?cursor=x", "cursor"},
		{"/api/v1/audit/export?limit=10", "limit"},
		{"/api/v1/audit/export?from=never", "from"},
		{"/api/v1/audit/verify?from=-1", "from"},
		{"/api/v1/audit/verify?from=abc", "from"},
		{"/api/v1/audit/verify?from=3", "from"},
		{"/api/v1/audit/verify?tenant=" + h.b.ID, "tenant"},
		{"/api/v1/audit/proof", "event"},
		{"/api/v1/audit/proof?event=x&event=y", "event"},
		{"/api/v1/audit/consistency", "from"},
		{"/api/v1/audit/consistency?from=0", "from"},
		{"/api/v1/audit/consistency?from=2&to=1", "to"},
		{"/api/v1/audit/checkpoint?size=1", "size"},
		{"/api/v1/audit/public-key?x=1", "x"},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			p := wantProblem(t, h.get(t, tc.path, auditor), http.StatusBadRequest, "invalid-request")
			wantField(t, p, tc.field)
		})
	}
	for _, tc := range []struct {
		body, field string
	}{
		{`{"from":-1}`, "from"},
		{`{"trusted":[""]}`, "trusted"},
		{`{"trusted":[` + strings.Repeat(`"x",`, 64) + `"x"]}`, "trusted"},
	} {
		p := wantProblem(t, h.do(t, "POST", "/api/v1/audit/verify", auditor, "application/json", []byte(tc.body)), http.StatusBadRequest, "invalid-request")
		wantField(t, p, tc.field)
	}
	wantProblem(t, h.do(t, "POST", "/api/v1/audit/verify", auditor, "application/json", []byte(`{"tenant":"x"}`)), http.StatusBadRequest, "invalid-request")
	wantProblem(t, h.do(t, "POST", "/api/v1/audit/verify", auditor, "text/plain", []byte(`{}`)), http.StatusUnsupportedMediaType, "unsupported-media-type")
	// A forged trusted checkpoint that is not a note at all is a bad
	// signature, not a failure.
	res := h.do(t, "POST", "/api/v1/audit/verify", auditor, "application/json", []byte(`{"trusted":["not a note"]}`))
	wantStatus(t, res, http.StatusOK)
	if rep := decodeJSON[auditReportDoc](t, res); rep.Problem == nil || rep.Problem.Kind != "bad-signature" {
		t.Errorf("verify against garbage = %+v, want bad-signature", rep.Problem)
	}
}

// TestAuditEventsSparse: a filter that matches one event past the log's
// per-call scan budget still finds it in one request: a page keeps reading
// until it is full or the log ends.
func TestAuditEventsSparse(t *testing.T) {
	h := newHarness(t)
	auditor := h.auditorOf(t, h.a)
	h.appendSynthetic(t, h.a.ID, auditlog.ScanBudget+100, "test.synthetic")
	s := h.createSession(t, h.a, `{}`)
	h.flushAudit(t)
	res := h.get(t, "/api/v1/audit/events?action=session.create&limit=10", auditor)
	wantStatus(t, res, http.StatusOK)
	page := decodeJSON[auditPageDoc](t, res)
	if len(page.Items) != 1 || page.NextCursor != "" || !contains(page.Items[0], s.ID) {
		t.Fatalf("sparse page = %d items, next %q; want the one session.create and the end", len(page.Items), page.NextCursor)
	}
	var ev auditEventDoc
	if err := json.Unmarshal(page.Items[0], &ev); err != nil || ev.Position != auditlog.ScanBudget+100 {
		t.Errorf("sparse event position = %d (%v), want %d", ev.Position, err, auditlog.ScanBudget+100)
	}
}
