package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/idvault/idvault/internal/audit"
	"github.com/idvault/idvault/internal/auditlog"
	"github.com/idvault/idvault/internal/store"
)

// The audit routes read, export, verify and prove the caller's tenant's
// tamper-evident audit log (package auditlog); every one needs audit:read
// and sees only the caller's own tenant's log. Events hold personal data
// (the actor's address and user agent), so listing, exporting and proving
// them are reads of personal data (access: stated purpose, fail-closed
// event). Checkpoints, consistency proofs, verification reports and the
// verifier key hold none.

const (
	// defaultAuditLimit and maxAuditLimit bound a page of events.
	defaultAuditLimit = 100
	maxAuditLimit     = store.MaxLimit
	// auditPageBudget is how long one page of events may keep scanning the
	// log for matches (auditlog.Events opens at most auditlog.ScanBudget
	// events per call); a page cut short carries its next cursor.
	auditPageBudget = 2 * time.Second
	// maxTrusted bounds the trusted checkpoints of one verification.
	maxTrusted = 64
)

// auditActionPattern and auditKindPattern are the shapes of the action and
// resource type filters (for example auth.login, console-session).
var (
	auditActionPattern = regexp.MustCompile(`^[a-z][a-z0-9_]*(\.[a-z0-9_]+)+$`)
	auditKindPattern   = regexp.MustCompile(`^[a-z][a-z0-9_/-]{0,63}$`)
)

// auditQuery is a parsed query of the events and export routes.
type auditQuery struct {
	filter auditlog.Filter
	cursor string
	limit  int
}

// details returns the filters of q for the event that records the read:
// kinds, ids and times only (filter values are matched against the log's
// clear filter fields, which never hold personal data).
func (q auditQuery) details() map[string]string {
	d := map[string]string{}
	f := q.filter
	for k, v := range map[string]string{"action": f.Action, "outcome": f.Outcome, "actorId": f.ActorID,
		"resourceType": f.ResourceType, "resourceId": f.ResourceID} {
		if v != "" {
			d[k] = v
		}
	}
	if !f.From.IsZero() {
		d["from"] = f.From.UTC().Format(time.RFC3339Nano)
	}
	if !f.To.IsZero() {
		d["to"] = f.To.UTC().Format(time.RFC3339Nano)
	}
	return d
}

// checkQueryKeys rejects query parameters other than allowed and repeated
// ones, as every route with a query does. An unknown name is echoed only
// when it is short and plain (it could hold anything).
func checkQueryKeys(r *http.Request, allowed ...string) []FieldError {
	var fields []FieldError
	q := r.URL.Query()
	for key, vs := range q {
		switch {
		case !slices.Contains(allowed, key):
			name := key
			if !fieldName.MatchString(name) {
				name = "(query)"
			}
			fields = append(fields, FieldError{name, "unknown query parameter"})
		case len(vs) > 1:
			fields = append(fields, FieldError{key, "given more than once"})
		}
	}
	return fields
}

// printableID reports whether s can be a filter value: 1 to
// auditlog.MaxIndexValueLen bytes of printable UTF-8.
func printableID(s string) bool {
	if s == "" || len(s) > auditlog.MaxIndexValueLen || !utf8.ValidString(s) {
		return false
	}
	for _, c := range s {
		if !unicode.IsPrint(c) {
			return false
		}
	}
	return true
}

// parseAuditQuery parses the filters of the events and export routes and,
// when paged, the cursor and limit. Every invalid parameter is named.
func parseAuditQuery(r *http.Request, paged bool) (auditQuery, error) {
	allowed := []string{"action", "outcome", "actorId", "resourceType", "resourceId", "from", "to"}
	if paged {
		allowed = append(allowed, "cursor", "limit")
	}
	fields := checkQueryKeys(r, allowed...)
	q := r.URL.Query()
	out := auditQuery{limit: defaultAuditLimit}
	f := &out.filter
	if v := q.Get("action"); v != "" {
		if len(v) > auditlog.MaxIndexValueLen || !auditActionPattern.MatchString(v) {
			fields = append(fields, FieldError{"action", "must be an action such as auth.login"})
		}
		f.Action = v
	}
	if v := q.Get("outcome"); v != "" {
		if v != audit.Success && v != audit.Denied && v != audit.Failure {
			fields = append(fields, FieldError{"outcome", "must be success, denied or error"})
		}
		f.Outcome = v
	}
	if v := q.Get("resourceType"); v != "" {
		if !auditKindPattern.MatchString(v) {
			fields = append(fields, FieldError{"resourceType", "must be a resource type such as session"})
		}
		f.ResourceType = v
	}
	for _, tc := range []struct {
		key string
		dst *string
	}{{"actorId", &f.ActorID}, {"resourceId", &f.ResourceID}} {
		if v := q.Get(tc.key); v != "" {
			if !printableID(v) {
				fields = append(fields, FieldError{tc.key, fmt.Sprintf("must be 1 to %d bytes of printable characters", auditlog.MaxIndexValueLen)})
			}
			*tc.dst = v
		}
	}
	for _, tc := range []struct {
		key string
		dst *time.Time
	}{{"from", &f.From}, {"to", &f.To}} {
		if v := q.Get(tc.key); v != "" {
			t, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				fields = append(fields, FieldError{tc.key, "must be an RFC 3339 timestamp"})
			}
			*tc.dst = t
		}
	}
	if !f.From.IsZero() && !f.To.IsZero() && !f.To.After(f.From) {
		fields = append(fields, FieldError{"to", "must be after from"})
	}
	if v := q.Get("limit"); paged && v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxAuditLimit {
			fields = append(fields, FieldError{"limit", fmt.Sprintf("must be an integer from 1 to %d", maxAuditLimit)})
		}
		out.limit = n
	}
	if paged {
		out.cursor = q.Get("cursor")
	}
	if len(fields) > 0 {
		return auditQuery{}, badRequest("The query is invalid.", fields...)
	}
	return out, nil
}

// auditLog returns the log the audit routes use; the server always wires
// one, so its absence is an internal error.
func (a *API) auditLog() (*auditlog.Log, error) {
	if a.d.AuditLog == nil || a.d.AuditVerifierKey == "" {
		return nil, errors.New("audit routes: no audit log configured")
	}
	return a.d.AuditLog, nil
}

// auditTampered is the answer when stored log state does not match itself.
func auditTampered() *Problem {
	return problem(http.StatusConflict, "audit-tampered", "Audit log failed verification",
		"The stored audit log does not verify here; GET /api/v1/audit/verify names the first problem and its position.")
}

// eventJSON returns the stored event (its canonical JSON object) with its
// position in the log added as "position".
func eventJSON(s auditlog.Stored) (json.RawMessage, error) {
	d := bytes.TrimSpace(s.Data)
	if len(d) < 2 || d[0] != '{' || d[len(d)-1] != '}' || !json.Valid(d) {
		return nil, fmt.Errorf("audit event %s at %d: not a JSON object", s.ID, s.Index)
	}
	out := make([]byte, 0, len(d)+32)
	out = append(out, d[:len(d)-1]...)
	if len(bytes.TrimSpace(d[1:len(d)-1])) > 0 {
		out = append(out, ',')
	}
	out = append(out, `"position":`...)
	out = strconv.AppendInt(out, s.Index, 10)
	return append(out, '}'), nil
}

// auditPage is one page of events.
type auditPage struct {
	Items      []json.RawMessage `json:"items"`
	NextCursor string            `json:"nextCursor,omitempty"`
}

// auditEvents lists events of the caller's tenant, in log order. A page
// keeps reading the log until it holds limit events, the log ends or
// auditPageBudget is spent; a short page with a nextCursor is not the end.
func (a *API) auditEvents(w http.ResponseWriter, r *http.Request) error {
	q, err := parseAuditQuery(r, true)
	if err != nil {
		return err
	}
	alog, err := a.auditLog()
	if err != nil {
		return err
	}
	tenant := principalOf(r.Context()).Tenant
	out := auditPage{Items: []json.RawMessage{}}
	cursor := q.cursor
	deadline := a.d.Now().Add(auditPageBudget)
	for {
		page, next, err := alog.Events(r.Context(), tenant, q.filter, cursor, q.limit-len(out.Items))
		switch {
		case errors.Is(err, store.ErrInvalid):
			return badRequest("The cursor is invalid.", FieldError{"cursor", "not a cursor of this log"})
		case errors.Is(err, auditlog.ErrTampered):
			return auditTampered()
		case err != nil:
			return err
		}
		for _, s := range page {
			item, err := eventJSON(s)
			if err != nil {
				return err
			}
			out.Items = append(out.Items, item)
		}
		cursor = next
		if next == "" || len(out.Items) >= q.limit || !a.d.Now().Before(deadline) {
			break
		}
	}
	out.NextCursor = cursor
	details := q.details()
	details["count"] = strconv.Itoa(len(out.Items))
	if err := a.access(r, audit.Event{Action: "audit.read", Outcome: audit.Success, Resource: audit.Resource{Type: "audit"},
		Details: details}); err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, out)
}

// auditExport streams every event of the caller's tenant that matches the
// filters as NDJSON, in log order. The export is recorded (audit.export)
// before the first event is sent. A failure after the first byte aborts the
// response, so that a client sees an error rather than a complete-looking
// export.
func (a *API) auditExport(w http.ResponseWriter, r *http.Request) error {
	q, err := parseAuditQuery(r, false)
	if err != nil {
		return err
	}
	alog, err := a.auditLog()
	if err != nil {
		return err
	}
	ctx := r.Context()
	tenant := principalOf(ctx).Tenant
	page, next, err := alog.Events(ctx, tenant, q.filter, "", maxAuditLimit)
	if errors.Is(err, auditlog.ErrTampered) {
		return auditTampered()
	}
	if err != nil {
		return err
	}
	if err := a.access(r, audit.Event{Action: "audit.export", Outcome: audit.Success, Resource: audit.Resource{Type: "audit"},
		Details: q.details()}); err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Content-Disposition", `attachment; filename="audit.ndjson"`)
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return nil
	}
	rc := http.NewResponseController(w)
	sent := 0
	var line []byte
	for {
		for _, s := range page {
			item, err := eventJSON(s)
			if err != nil {
				a.abortExport(r, sent, err)
			}
			line = append(append(line[:0], item...), '\n')
			if _, err := w.Write(line); err != nil {
				a.d.Log.Info("audit export interrupted by the client", "requestId", requestID(ctx), "events", sent, "err", err)
				return nil
			}
			sent++
		}
		if next == "" {
			return nil
		}
		if err := rc.Flush(); err != nil {
			a.d.Log.Info("audit export interrupted by the client", "requestId", requestID(ctx), "events", sent, "err", err)
			return nil
		}
		page, next, err = alog.Events(ctx, tenant, q.filter, next, maxAuditLimit)
		if err != nil {
			a.abortExport(r, sent, err)
		}
	}
}

// abortExport logs why an export stopped after its first byte and aborts
// the response (http.ErrAbortHandler: the connection or HTTP/2 stream is
// reset), the one way net/http offers to tell a client that a streamed body
// is incomplete.
func (a *API) abortExport(r *http.Request, sent int, err error) {
	a.d.Log.Error("audit export failed; response aborted", "requestId", requestID(r.Context()), "events", sent, "err", err)
	panic(http.ErrAbortHandler)
}

// verifyRequest is the body of POST /api/v1/audit/verify.
type verifyRequest struct {
	// Trusted are signed checkpoint notes the auditor saved earlier.
	Trusted []string `json:"trusted"`
	// From is the size of a retained checkpoint to start at (0: the
	// oldest retained).
	From *int64 `json:"from"`
}

// auditVerify verifies the caller's tenant's log from the query's from.
func (a *API) auditVerify(w http.ResponseWriter, r *http.Request) error {
	fields := checkQueryKeys(r, "from")
	var from int64
	if v := r.URL.Query().Get("from"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			fields = append(fields, FieldError{"from", "must be a non-negative integer, the size of a retained checkpoint"})
		}
		from = n
	}
	if len(fields) > 0 {
		return badRequest("The query is invalid.", fields...)
	}
	return a.verify(w, r, auditlog.VerifyOptions{From: from})
}

// auditVerifyTrusted verifies the caller's tenant's log against checkpoints
// the auditor saved: a log that no longer agrees with one of them (rolled
// back, or rewritten and re-signed) is reported as a fork.
func (a *API) auditVerifyTrusted(w http.ResponseWriter, r *http.Request) error {
	var req verifyRequest
	if err := decodeJSON(w, r, a.d.Limits.MaxJSONBytes, &req); err != nil {
		return err
	}
	var fields []FieldError
	opts := auditlog.VerifyOptions{}
	if req.From != nil {
		if *req.From < 0 {
			fields = append(fields, FieldError{"from", "must be a non-negative integer, the size of a retained checkpoint"})
		}
		opts.From = *req.From
	}
	if len(req.Trusted) > maxTrusted {
		fields = append(fields, FieldError{"trusted", fmt.Sprintf("at most %d checkpoints", maxTrusted)})
	}
	for i, n := range req.Trusted {
		if n == "" {
			fields = append(fields, FieldError{"trusted", fmt.Sprintf("checkpoint %d is empty", i)})
			continue
		}
		opts.Trusted = append(opts.Trusted, []byte(n))
	}
	if len(fields) > 0 {
		return badRequest("The verification request is invalid.", fields...)
	}
	return a.verify(w, r, opts)
}

// verify runs Log.Verify for the caller's tenant, records audit.verify
// (fail-closed) and answers the report: 200 whether or not a problem was
// found; the report says which.
func (a *API) verify(w http.ResponseWriter, r *http.Request, opts auditlog.VerifyOptions) error {
	alog, err := a.auditLog()
	if err != nil {
		return err
	}
	rep, err := alog.Verify(r.Context(), principalOf(r.Context()).Tenant, opts)
	switch {
	case errors.Is(err, auditlog.ErrPruned):
		return badRequest("The start is before the oldest retained checkpoint.", FieldError{"from", "older than the oldest retained checkpoint"})
	case errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrInvalid):
		return badRequest("The start is not a retained checkpoint.", FieldError{"from", "not the size of a stored checkpoint"})
	case err != nil:
		return err
	}
	ev := audit.Event{Action: "audit.verify", Outcome: audit.Success, Resource: audit.Resource{Type: "audit"},
		Details: map[string]string{"events": strconv.FormatInt(rep.Events, 10), "from": strconv.FormatInt(rep.From, 10),
			"trusted": strconv.Itoa(len(opts.Trusted))}}
	if p := rep.Problem; p != nil {
		ev.Outcome, ev.Reason = audit.Failure, "the log failed verification"
		ev.Details["problem"] = string(p.Kind)
		ev.Details["position"] = strconv.FormatInt(p.Position, 10)
	}
	if err := a.emitErr(r, ev); err != nil {
		return fmt.Errorf("audit audit.verify: %w", err)
	}
	return writeJSON(w, http.StatusOK, rep)
}

// auditCheckpoint answers the latest signed checkpoint of the caller's
// tenant's log as its signed note, for the auditor to keep.
func (a *API) auditCheckpoint(w http.ResponseWriter, r *http.Request) error {
	if fields := checkQueryKeys(r); len(fields) > 0 {
		return badRequest("The query is invalid.", fields...)
	}
	alog, err := a.auditLog()
	if err != nil {
		return err
	}
	signed, _, err := alog.Checkpoint(r.Context(), principalOf(r.Context()).Tenant)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return problem(http.StatusNotFound, "not-found", "Not found", "No checkpoint has been signed for this tenant's audit log yet.")
	case errors.Is(err, auditlog.ErrTampered):
		return auditTampered()
	case err != nil:
		return err
	}
	return writeText(w, signed)
}

// auditProof answers the inclusion proof of one event of the caller's
// tenant. The proof holds the event, so it is a read of personal data.
func (a *API) auditProof(w http.ResponseWriter, r *http.Request) error {
	fields := checkQueryKeys(r, "event")
	id := r.URL.Query().Get("event")
	if id == "" {
		fields = append(fields, FieldError{"event", "required: the id of an event"})
	}
	if len(fields) > 0 {
		return badRequest("The query is invalid.", fields...)
	}
	alog, err := a.auditLog()
	if err != nil {
		return err
	}
	p, err := alog.Prove(r.Context(), principalOf(r.Context()).Tenant, id)
	switch {
	case errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrInvalid):
		return notFound()
	case errors.Is(err, auditlog.ErrTampered):
		return auditTampered()
	case err != nil:
		return err
	}
	if err := a.access(r, audit.Event{Action: "audit.prove", Outcome: audit.Success, Resource: audit.Resource{Type: "event", ID: id},
		Details: map[string]string{"position": strconv.FormatInt(p.Index, 10)}}); err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, p)
}

// auditConsistency answers the proof that the caller's tenant's log at the
// checkpoint of size to (the latest when absent) extends the one at size
// from.
func (a *API) auditConsistency(w http.ResponseWriter, r *http.Request) error {
	fields := checkQueryKeys(r, "from", "to")
	q := r.URL.Query()
	var from, to int64
	if v := q.Get("from"); v == "" {
		fields = append(fields, FieldError{"from", "required: the size of a stored checkpoint"})
	} else if n, err := strconv.ParseInt(v, 10, 64); err != nil || n < 1 {
		fields = append(fields, FieldError{"from", "must be a positive integer, the size of a stored checkpoint"})
	} else {
		from = n
	}
	if v := q.Get("to"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 {
			fields = append(fields, FieldError{"to", "must be a positive integer, the size of a stored checkpoint"})
		}
		to = n
	}
	if from > 0 && to > 0 && to < from {
		fields = append(fields, FieldError{"to", "must not be less than from"})
	}
	if len(fields) > 0 {
		return badRequest("The query is invalid.", fields...)
	}
	alog, err := a.auditLog()
	if err != nil {
		return err
	}
	p, err := alog.Consistency(r.Context(), principalOf(r.Context()).Tenant, from, to)
	switch {
	case errors.Is(err, auditlog.ErrPruned):
		return badRequest("The start is before the oldest retained checkpoint.", FieldError{"from", "older than the oldest retained checkpoint"})
	case errors.Is(err, store.ErrNotFound):
		return problem(http.StatusNotFound, "not-found", "Not found", "No checkpoint of that size is stored for this tenant's audit log.")
	case errors.Is(err, store.ErrInvalid):
		return badRequest("The query is invalid.", FieldError{"from", "beyond the latest checkpoint"})
	case errors.Is(err, auditlog.ErrTampered):
		return auditTampered()
	case err != nil:
		return err
	}
	size := noteSize(p.New)
	if err := a.emitErr(r, audit.Event{Action: "audit.prove", Outcome: audit.Success, Resource: audit.Resource{Type: "checkpoint", ID: size},
		Details: map[string]string{"from": strconv.FormatInt(from, 10), "to": size}}); err != nil {
		return fmt.Errorf("audit audit.prove: %w", err)
	}
	return writeJSON(w, http.StatusOK, p)
}

// noteSize returns the size line of a checkpoint note the log signed.
func noteSize(signed string) string {
	lines := strings.SplitN(signed, "\n", 3)
	if len(lines) < 3 {
		return ""
	}
	return lines[1]
}

// auditPublicKey answers the verifier key of the log's checkpoints (note
// verifier key encoding), with which auditlog.CheckInclusion,
// auditlog.CheckConsistency or any C2SP signed-note verifier checks proofs
// and checkpoints offline. It needs audit:read like the proofs it checks:
// the key is no secret, but an unauthenticated route would tell anyone which
// deployment this is; auditors who must not trust the server they audit get
// the key out of band.
func (a *API) auditPublicKey(w http.ResponseWriter, r *http.Request) error {
	if fields := checkQueryKeys(r); len(fields) > 0 {
		return badRequest("The query is invalid.", fields...)
	}
	if _, err := a.auditLog(); err != nil {
		return err
	}
	return writeText(w, []byte(a.d.AuditVerifierKey+"\n"))
}

// writeText answers 200 with a text/plain body.
func writeText(w http.ResponseWriter, body []byte) error {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	_, err := w.Write(body)
	return err
}
