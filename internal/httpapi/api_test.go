package httpapi_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/idvault/idvault/internal/identity"
	"github.com/idvault/idvault/internal/keyring"
	"github.com/idvault/idvault/internal/session"
)

const jsonType = "application/json"

// TestSessionLifecycle is the happy path the rejection tests are measured
// against: it shows the harness serves the real API over TLS.
func TestSessionLifecycle(t *testing.T) {
	h := newHarness(t)
	res := h.do(t, "POST", "/api/v1/sessions", h.a.Auth(), jsonType,
		[]byte(`{"metadata":{"ref":"cust-1"},"locale":"pt-BR","ttl":600}`))
	wantStatus(t, res, http.StatusCreated)
	if res.proto != "HTTP/2.0" {
		t.Errorf("protocol = %q, want HTTP/2.0 over TLS", res.proto)
	}
	s := decodeJSON[sessionDoc](t, res)
	if got, want := res.header.Get("Location"), "/api/v1/sessions/"+s.ID; got != want {
		t.Errorf("Location = %q, want %q", got, want)
	}
	if s.Status != "pending" || s.Locale != "pt-BR" || !s.ExpiresAt.Equal(testEpoch.Add(600*time.Second)) {
		t.Errorf("created session = %+v, want pending, pt-BR, expiring at %v", s, testEpoch.Add(600*time.Second))
	}
	// The session's data key was stored with it (keyring.NewScope).
	if rec, err := h.backend.Get(t.Context(), keyring.Collection, h.a.ID, "session:"+s.ID); err != nil || rec.Index["session"] != s.ID {
		t.Errorf("session data key record = %+v, %v; want one indexed by the session", rec.Index, err)
	}

	img := testPNG(t, 32, 24)
	f := h.upload(t, h.a, s.ID, "document_front", "image/png", img)
	sum := sha256.Sum256(img)
	if f.SHA256 != hex.EncodeToString(sum[:]) || f.Size != int64(len(img)) || f.Width != 32 || f.Height != 24 {
		t.Errorf("uploaded file = %+v, want sha256 %x, size %d, 32x24", f, sum, len(img))
	}
	pdf := testPDF("lifecycle")
	h.upload(t, h.a, s.ID, "attachment", "application/pdf", pdf)

	res = h.do(t, "GET", "/api/v1/sessions/"+s.ID+"/files/"+f.ID, h.a.Auth(), "", nil)
	wantStatus(t, res, http.StatusOK)
	if !bytes.Equal(res.body, img) {
		t.Errorf("download = %d bytes, want the %d uploaded", len(res.body), len(img))
	}
	if got, want := res.header.Get("Digest"), "sha-256="+f.SHA256; got != want {
		t.Errorf("Digest = %q, want %q", got, want)
	}

	got := decodeJSON[sessionDoc](t, h.do(t, "GET", "/api/v1/sessions/"+s.ID, h.a.Auth(), "", nil))
	if len(got.Files) != 2 || string(got.Metadata) != `{"ref":"cust-1"}` {
		t.Errorf("session = %+v, want 2 files and the metadata", got)
	}
	list := decodeJSON[listDoc](t, h.do(t, "GET", "/api/v1/sessions?status=pending&limit=5", h.a.Auth(), "", nil))
	if len(list.Items) != 1 || list.Items[0].ID != s.ID {
		t.Errorf("list = %+v, want only %s", list, s.ID)
	}
	res = h.do(t, "POST", "/api/v1/sessions/"+s.ID+"/cancel", h.a.Auth(), "", nil)
	wantStatus(t, res, http.StatusOK)
	if c := decodeJSON[sessionDoc](t, res); c.Status != "cancelled" {
		t.Errorf("cancelled session status = %q, want cancelled", c.Status)
	}
}

// TestCreateSessionRejects sends bad session requests: each is a
// problem+json naming the fault, and creates nothing.
func TestCreateSessionRejects(t *testing.T) {
	h := newHarness(t)
	maxTTL := int64(testLimits.MaxTTL / time.Second)
	overJSON := `{"metadata":{"pad":"` + strings.Repeat("x", int(testLimits.MaxJSONBytes)) + `"}}`
	bigMetadata := `{"metadata":{"pad":"` + strings.Repeat("x", 16<<10) + `"}}`
	tests := []struct {
		name        string
		contentType string
		body        string
		status      int
		slug        string
		fields      []string
	}{
		{"malformed JSON", jsonType, `{"ttl": 600`, 400, "invalid-request", nil},
		{"not JSON", jsonType, `ttl=600`, 400, "invalid-request", nil},
		{"ttl as string", jsonType, `{"ttl":"600"}`, 400, "invalid-request", nil},
		{"ttl as fraction", jsonType, `{"ttl":600.5}`, 400, "invalid-request", nil},
		{"ttl beyond int64", jsonType, `{"ttl":1e30}`, 400, "invalid-request", nil},
		{"metadata as array", jsonType, `{"metadata":["a"]}`, 400, "invalid-request", []string{"metadata"}},
		{"metadata as string", jsonType, `{"metadata":"a"}`, 400, "invalid-request", []string{"metadata"}},
		{"metadata as number", jsonType, `{"metadata":7}`, 400, "invalid-request", []string{"metadata"}},
		{"workflowId as number", jsonType, `{"workflowId":7}`, 400, "invalid-request", nil},
		{"locale as object", jsonType, `{"locale":{}}`, 400, "invalid-request", nil},
		{"unknown field", jsonType, `{"colour":"blue"}`, 400, "invalid-request", nil},
		{"null", jsonType, `null`, 400, "invalid-request", nil},
		{"array", jsonType, `[{}]`, 400, "invalid-request", nil},
		{"status set by the caller", jsonType, `{"status":"approved"}`, 400, "invalid-request", nil},
		{"id set by the caller", jsonType, `{"id":"` + newID() + `"}`, 400, "invalid-request", nil},
		{"creator set by the caller", jsonType, `{"createdBy":"someone"}`, 400, "invalid-request", nil},
		{"body over MaxJSONBytes", jsonType, overJSON, 413, "too-large", nil},
		{"text/plain", "text/plain", `{}`, 415, "unsupported-media-type", nil},
		{"no Content-Type", "", `{}`, 415, "unsupported-media-type", nil},
		{"form Content-Type", "application/x-www-form-urlencoded", `ttl=600`, 415, "unsupported-media-type", nil},
		{"JSON-like media type", "application/json-patch+json", `{}`, 415, "unsupported-media-type", nil},
		{"malformed Content-Type", "application/json; =", `{}`, 415, "unsupported-media-type", nil},
		{"empty body", jsonType, ``, 400, "invalid-request", nil},
		{"two JSON values", jsonType, `{}{}`, 400, "invalid-request", nil},
		{"trailing garbage", jsonType, `{} x`, 400, "invalid-request", nil},
		{"array body", jsonType, `[]`, 400, "invalid-request", nil},
		{"string body", jsonType, `"session"`, 400, "invalid-request", nil},
		{"ttl zero", jsonType, `{"ttl":0}`, 400, "invalid-request", []string{"ttl"}},
		{"ttl negative", jsonType, `{"ttl":-600}`, 400, "invalid-request", []string{"ttl"}},
		{"ttl below minimum", jsonType, `{"ttl":59}`, 400, "invalid-request", []string{"ttl"}},
		{"ttl above maximum", jsonType, `{"ttl":` + strconv.FormatInt(maxTTL+1, 10) + `}`, 400, "invalid-request", []string{"ttl"}},
		// 9223372037 s overflows time.Duration to a negative value.
		{"ttl overflowing a duration", jsonType, `{"ttl":9223372037}`, 400, "invalid-request", []string{"ttl"}},
		{"ttl max int64", jsonType, `{"ttl":9223372036854775807}`, 400, "invalid-request", []string{"ttl"}},
		{"locale with underscore", jsonType, `{"locale":"en_US"}`, 400, "invalid-request", []string{"locale"}},
		{"empty locale", jsonType, `{"locale":""}`, 400, "invalid-request", []string{"locale"}},
		{"locale with markup", jsonType, `{"locale":"<script>"}`, 400, "invalid-request", []string{"locale"}},
		{"locale with header injection", jsonType, `{"locale":"en\r\nX-Injected: 1"}`, 400, "invalid-request", []string{"locale"}},
		{"unknown workflow", jsonType, `{"workflowId":"no-such-workflow"}`, 400, "invalid-request", []string{"workflowId"}},
		{"empty workflow", jsonType, `{"workflowId":""}`, 400, "invalid-request", []string{"workflowId"}},
		{"metadata too large", jsonType, bigMetadata, 400, "invalid-request", []string{"metadata"}},
		{"every field wrong", jsonType, `{"workflowId":"x","metadata":[],"locale":"?","ttl":1}`, 400, "invalid-request",
			[]string{"workflowId", "metadata", "locale", "ttl"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := h.snapshot(t)
			res := h.do(t, "POST", "/api/v1/sessions", h.a.Auth(), tc.contentType, []byte(tc.body))
			p := wantProblem(t, res, tc.status, tc.slug)
			for _, f := range tc.fields {
				wantField(t, p, f)
			}
			if contains(res.body, "<script>") || contains(res.body, "X-Injected") {
				t.Errorf("problem echoes the input: %s", res.body)
			}
			if res.header.Get("Location") != "" {
				t.Errorf("Location = %q on a failed create, want none", res.header.Get("Location"))
			}
			h.unchanged(t, before)
		})
	}
}

// TestCreateSessionProblemEchoesNoValue checks that a rejected value is not
// repeated in the problem.
func TestCreateSessionProblemEchoesNoValue(t *testing.T) {
	h := newHarness(t)
	secret := marker(t, "value")
	for _, body := range []string{
		`{"ttl":"` + secret + `"}`,
		`{"metadata":["` + secret + `"]}`,
		`{"locale":"` + secret + `"}`,
		`{"ttl":60,"metadata":{"a":"` + secret + `"}`,
		`{"` + secret + ` jane.doe@example.com":1}`,
	} {
		res := h.do(t, "POST", "/api/v1/sessions", h.a.Auth(), jsonType, []byte(body))
		wantProblem(t, res, http.StatusBadRequest, "invalid-request")
		if contains(res.body, secret) {
			t.Errorf("POST %s: problem %s repeats the value", body, res.body)
		}
	}
}

// TestListSessionsRejects sends bad list queries.
func TestListSessionsRejects(t *testing.T) {
	h := newHarness(t)
	h.createSession(t, h.a, `{}`)
	tests := []struct {
		name  string
		query string
		field string
	}{
		{"unknown parameter", "foo=1", "foo"},
		{"parameter of another route", "kind=selfie", "kind"},
		{"unknown status", "status=done", "status"},
		{"status in capitals", "status=PENDING", "status"},
		{"bad createdAfter", "createdAfter=yesterday", "createdAfter"},
		{"date without time", "createdBefore=2031-03-14", "createdBefore"},
		{"time without zone", "createdAfter=2031-03-14T10:00:00", "createdAfter"},
		{"limit 0", "limit=0", "limit"},
		{"limit 101", "limit=101", "limit"},
		{"limit abc", "limit=abc", "limit"},
		{"limit negative", "limit=-1", "limit"},
		{"limit beyond int64", "limit=99999999999999999999", "limit"},
		{"limit repeated", "limit=1&limit=2", "limit"},
		{"status repeated", "status=pending&status=review", "status"},
		{"garbage cursor", "cursor=" + url.QueryEscape("not a cursor!"), "cursor"},
		{"short cursor", "cursor=AAAA", "cursor"},
		{"cursor of another version", "cursor=Ag" + strings.Repeat("A", 40), "cursor"},
		// Go's parser drops a pair holding ';' or a bad escape: the request
		// would be served without it.
		{"semicolon separator", "status=done;limit=1", "query"},
		{"semicolon inside a value", "limit=1&cursor=AY;x", "query"},
		{"bad escape", "limit=%zz", "query"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := h.snapshot(t)
			res := h.do(t, "GET", "/api/v1/sessions?"+tc.query, h.a.Auth(), "", nil)
			p := wantProblem(t, res, http.StatusBadRequest, "invalid-request")
			wantField(t, p, tc.field)
			h.unchanged(t, before)
		})
	}
}

// TestListSessionsRejectsForeignCursor uses real cursors where they do not
// belong: another tenant's, another filter's, a tampered one.
func TestListSessionsRejectsForeignCursor(t *testing.T) {
	h := newHarness(t)
	var bIDs []string
	for range 3 {
		bIDs = append(bIDs, h.createSession(t, h.b, `{}`).ID)
	}
	h.createSession(t, h.a, `{}`)
	h.createSession(t, h.a, `{}`)
	page := decodeJSON[listDoc](t, h.do(t, "GET", "/api/v1/sessions?limit=1", h.b.Auth(), "", nil))
	if page.NextCursor == "" || len(page.Items) != 1 {
		t.Fatalf("tenant b's first page = %+v, want one item and a cursor", page)
	}
	cursor := page.NextCursor
	tampered := []byte(cursor)
	tampered[5] ^= 'A' ^ 'B'
	if tampered[5] == cursor[5] {
		t.Fatal("tampering changed nothing")
	}
	tests := []struct {
		name  string
		tn    tenant
		query string
	}{
		{"cursor of tenant b used by tenant a", h.a, "limit=1&cursor=" + cursor},
		{"cursor of tenant b used by tenant a with a filter", h.a, "status=pending&limit=1&cursor=" + cursor},
		{"cursor used with another filter", h.b, "status=pending&limit=1&cursor=" + cursor},
		{"cursor with a tampered query hash", h.b, "limit=1&cursor=" + url.QueryEscape(string(tampered))},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := h.snapshot(t)
			res := h.do(t, "GET", "/api/v1/sessions?"+tc.query, tc.tn.Auth(), "", nil)
			p := wantProblem(t, res, http.StatusBadRequest, "invalid-request")
			wantField(t, p, "cursor")
			for _, id := range bIDs {
				if contains(res.body, id) {
					t.Errorf("problem %s names tenant b's session %s", res.body, id)
				}
			}
			h.unchanged(t, before)
		})
	}
	t.Run("cursor works where it belongs", func(t *testing.T) {
		next := decodeJSON[listDoc](t, h.do(t, "GET", "/api/v1/sessions?limit=1&cursor="+cursor, h.b.Auth(), "", nil))
		if len(next.Items) != 1 || next.Items[0].ID == page.Items[0].ID {
			t.Errorf("second page = %+v, want the next session of tenant b", next)
		}
	})
}

// TestGetSessionRejects asks for sessions that do not exist: each answer is
// the same 404.
func TestGetSessionRejects(t *testing.T) {
	h := newHarness(t)
	s := h.createSession(t, h.a, `{}`)
	unknown := h.do(t, "GET", "/api/v1/sessions/"+newID(), h.a.Auth(), "", nil)
	wantProblem(t, unknown, http.StatusNotFound, "not-found")
	want := withoutIDs(t, unknown.body)
	for _, tc := range []struct{ name, id string }{
		{"unknown id", newID()},
		{"not an id", "not-an-id"},
		{"id in capitals", strings.ToUpper(s.ID)},
		{"id over the store's key length", strings.Repeat("a", 300)},
		{"encoded path traversal", "..%2F..%2Fapikeys"},
		{"encoded NUL", s.ID + "%00"},
		{"SQL metacharacters", url.PathEscape("' OR '1'='1")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := h.snapshot(t)
			res := h.do(t, "GET", "/api/v1/sessions/"+tc.id, h.a.Auth(), "", nil)
			wantProblem(t, res, http.StatusNotFound, "not-found")
			if got := withoutIDs(t, res.body); got != want {
				t.Errorf("404 = %s, want the unknown-id 404 %s", got, want)
			}
			h.unchanged(t, before)
		})
	}
}

// TestCancelSessionRejects cancels what cannot be cancelled.
func TestCancelSessionRejects(t *testing.T) {
	h := newHarness(t)
	open := h.createSession(t, h.a, `{}`).ID
	closed := map[session.Status]string{}
	for _, st := range []session.Status{session.StatusExpired, session.StatusApproved, session.StatusRejected, session.StatusError} {
		id := h.createSession(t, h.a, `{}`).ID
		h.setStatus(t, h.a, id, st)
		closed[st] = id
	}
	tests := []struct {
		name        string
		id          string
		contentType string
		body        []byte
		status      int
		slug        string
	}{
		{"JSON body", open, jsonType, []byte(`{"reason":"x"}`), 400, "invalid-request"},
		{"empty JSON object", open, jsonType, []byte(`{}`), 400, "invalid-request"},
		{"body over 1 KiB", open, "application/octet-stream", bytes.Repeat([]byte("x"), 4<<10), 400, "invalid-request"},
		{"unknown session", newID(), "", nil, 404, "not-found"},
		{"expired session", closed[session.StatusExpired], "", nil, 409, "invalid-state"},
		{"approved session", closed[session.StatusApproved], "", nil, 409, "invalid-state"},
		{"rejected session", closed[session.StatusRejected], "", nil, 409, "invalid-state"},
		{"session in error", closed[session.StatusError], "", nil, 409, "invalid-state"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := h.snapshot(t)
			res := h.do(t, "POST", "/api/v1/sessions/"+tc.id+"/cancel", h.a.Auth(), tc.contentType, tc.body)
			wantProblem(t, res, tc.status, tc.slug)
			h.unchanged(t, before)
		})
	}
}

// TestUploadFileRejects uploads what must not be stored.
func TestUploadFileRejects(t *testing.T) {
	h := newHarness(t)
	open := h.createSession(t, h.a, `{}`).ID
	h.upload(t, h.a, open, "document_front", "image/png", testPNG(t, 8, 8))
	cancelled := h.createSession(t, h.a, `{}`).ID
	wantStatus(t, h.do(t, "POST", "/api/v1/sessions/"+cancelled+"/cancel", h.a.Auth(), "", nil), http.StatusOK)
	expired := h.createSession(t, h.a, `{}`).ID
	h.setStatus(t, h.a, expired, session.StatusExpired)
	review := h.createSession(t, h.a, `{}`).ID
	h.setStatus(t, h.a, review, session.StatusReview)

	pngData := testPNG(t, 16, 16)
	jpegData := testJPEG(t, 16, 16)
	badCRC := append([]byte(nil), pngData...)
	badCRC[8+4+4+13] ^= 0xff // the IHDR CRC
	corruptJPEG := append([]byte("\xff\xd8\xff\xe0"), randomBytes(t, 512)...)
	oversized := append(append([]byte(nil), pngData...), make([]byte, testLimits.MaxUploadBytes)...)
	svg := []byte(`<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>`)

	tests := []struct {
		name        string
		id          string
		query       string
		contentType string
		body        []byte
		unsized     bool
		status      int
		slug        string
	}{
		{"missing kind", open, "", "image/png", pngData, false, 400, "invalid-request"},
		{"unknown kind", open, "kind=passport", "image/png", pngData, false, 400, "invalid-request"},
		{"empty kind", open, "kind=", "image/png", pngData, false, 400, "invalid-request"},
		{"kind given twice", open, "kind=selfie&kind=document_front", "image/png", pngData, false, 400, "invalid-request"},
		{"unknown query parameter", open, "kind=selfie&colour=blue", "image/png", pngData, false, 400, "invalid-request"},
		{"empty body", open, "kind=selfie", "image/png", nil, false, 400, "invalid-request"},
		{"oversized with Content-Length", open, "kind=selfie", "image/png", oversized, false, 413, "too-large"},
		{"oversized without Content-Length", open, "kind=selfie", "image/png", oversized, true, 413, "too-large"},
		{"PNG declared as JPEG", open, "kind=selfie", "image/jpeg", pngData, false, 415, "content-type-mismatch"},
		{"JPEG declared as PNG", open, "kind=selfie", "image/png", jpegData, false, 415, "content-type-mismatch"},
		{"PNG without Content-Type", open, "kind=selfie", "", pngData, false, 415, "content-type-mismatch"},
		{"PDF declared as PNG", open, "kind=attachment", "image/png", testPDF("x"), false, 415, "content-type-mismatch"},
		{"PNG declared as octet-stream", open, "kind=selfie", "application/octet-stream", pngData, false, 415, "content-type-mismatch"},
		{"GIF", open, "kind=selfie", "image/gif", testGIF(t), false, 415, "unsupported-media-type"},
		{"HTML", open, "kind=attachment", "text/html", htmlFile, false, 415, "unsupported-media-type"},
		{"HTML declared as JPEG", open, "kind=selfie", "image/jpeg", htmlFile, false, 415, "unsupported-media-type"},
		{"SVG", open, "kind=selfie", "image/svg+xml", svg, false, 415, "unsupported-media-type"},
		{"random bytes", open, "kind=attachment", "application/octet-stream", randomBytes(t, 2048), false, 415, "unsupported-media-type"},
		{"truncated JPEG", open, "kind=selfie", "image/jpeg", jpegData[:len(jpegData)/2], false, 422, "corrupt-file"},
		{"corrupt JPEG", open, "kind=selfie", "image/jpeg", corruptJPEG, false, 422, "corrupt-file"},
		{"truncated PNG", open, "kind=selfie", "image/png", pngData[:len(pngData)-20], false, 422, "corrupt-file"},
		{"PNG with a bad CRC", open, "kind=selfie", "image/png", badCRC, false, 422, "corrupt-file"},
		{"PDF without EOF marker", open, "kind=attachment", "application/pdf", []byte("%PDF-1.7\n1 0 obj\n"), false, 422, "corrupt-file"},
		{"pixel bomb", open, "kind=selfie", "image/png", pixelBombPNG(t, 60000, 60000), false, 413, "too-many-pixels"},
		{"pixel bomb, one row", open, "kind=selfie", "image/png", pixelBombPNG(t, 1<<31-1, 1), false, 413, "too-many-pixels"},
		{"cancelled session", cancelled, "kind=selfie", "image/png", pngData, false, 409, "invalid-state"},
		{"expired session", expired, "kind=selfie", "image/png", pngData, false, 409, "invalid-state"},
		{"session in review", review, "kind=selfie", "image/png", pngData, false, 409, "invalid-state"},
		{"unknown session", newID(), "kind=selfie", "image/png", pngData, false, 404, "not-found"},
		{"malformed session id", "x", "kind=selfie", "image/png", pngData, false, 404, "not-found"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := h.snapshot(t)
			res := h.send(t, request{method: "POST", path: "/api/v1/sessions/" + tc.id + "/files?" + tc.query,
				auth: h.a.Auth(), contentType: tc.contentType, body: tc.body, unsized: tc.unsized})
			wantProblem(t, res, tc.status, tc.slug)
			h.unchanged(t, before)
		})
	}
}

// TestUploadRejectsPastExpiry uploads to a session whose expiresAt has
// passed but that the scheduler has not yet marked expired.
func TestUploadRejectsPastExpiry(t *testing.T) {
	h := newHarness(t)
	s := h.createSession(t, h.a, `{"ttl":60}`)
	h.clock.Advance(61 * time.Second)
	before := h.snapshot(t)
	res := h.do(t, "POST", "/api/v1/sessions/"+s.ID+"/files?kind=selfie", h.a.Auth(), "image/png", testPNG(t, 8, 8))
	wantProblem(t, res, http.StatusConflict, "invalid-state")
	h.unchanged(t, before)
}

// TestUploadRejectsTooManyFiles fills a session to session.MaxFiles.
func TestUploadRejectsTooManyFiles(t *testing.T) {
	h := newHarness(t)
	s := h.createSession(t, h.a, `{}`)
	img := testPNG(t, 2, 2)
	for range session.MaxFiles {
		h.upload(t, h.a, s.ID, "attachment", "image/png", img)
	}
	before := h.snapshot(t)
	res := h.do(t, "POST", "/api/v1/sessions/"+s.ID+"/files?kind=attachment", h.a.Auth(), "image/png", img)
	wantProblem(t, res, http.StatusConflict, "too-many-files")
	h.unchanged(t, before)
}

// TestDownloadFileRejects asks for files that are not there: each answer is
// the same 404.
func TestDownloadFileRejects(t *testing.T) {
	h := newHarness(t)
	s1 := h.createSession(t, h.a, `{}`)
	f1 := h.upload(t, h.a, s1.ID, "selfie", "image/png", testPNG(t, 8, 8))
	s2 := h.createSession(t, h.a, `{}`)
	f2 := h.upload(t, h.a, s2.ID, "selfie", "image/png", testPNG(t, 8, 8))
	unknown := h.do(t, "GET", "/api/v1/sessions/"+s1.ID+"/files/"+newID(), h.a.Auth(), "", nil)
	wantProblem(t, unknown, http.StatusNotFound, "not-found")
	want := withoutIDs(t, unknown.body)
	for _, tc := range []struct{ name, path string }{
		{"unknown file id", "/api/v1/sessions/" + s1.ID + "/files/" + newID()},
		{"file id of another session", "/api/v1/sessions/" + s1.ID + "/files/" + f2.ID},
		{"unknown session", "/api/v1/sessions/" + newID() + "/files/" + f1.ID},
		{"malformed file id", "/api/v1/sessions/" + s1.ID + "/files/..%2F" + f1.ID},
		{"session id as file id", "/api/v1/sessions/" + s1.ID + "/files/" + s1.ID},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := h.snapshot(t)
			for _, method := range []string{"GET", "HEAD"} {
				res := h.do(t, method, tc.path, h.a.Auth(), "", nil)
				if method == "HEAD" {
					wantStatus(t, res, http.StatusNotFound)
					continue
				}
				wantProblem(t, res, http.StatusNotFound, "not-found")
				if got := withoutIDs(t, res.body); got != want {
					t.Errorf("404 = %s, want the unknown-id 404 %s", got, want)
				}
			}
			h.unchanged(t, before)
		})
	}
}

// TestIssueTokenRejects sends bad sign-ins: malformed ones are 400/413/415,
// wrong credentials are one indistinct 401, and none issues a token.
func TestIssueTokenRejects(t *testing.T) {
	h := newHarness(t)
	body := func(tenantID, user, password string) string {
		return fmt.Sprintf(`{"tenantId":%q,"username":%q,"password":%q}`, tenantID, user, password)
	}
	tests := []struct {
		name        string
		contentType string
		body        string
		status      int
		slug        string
	}{
		{"malformed JSON", jsonType, `{"tenantId":`, 400, "invalid-request"},
		{"unknown field", jsonType, `{"tenantId":"a","username":"b","password":"c","role":"admin"}`, 400, "invalid-request"},
		{"password as number", jsonType, `{"tenantId":"a","username":"b","password":1}`, 400, "invalid-request"},
		{"missing password", jsonType, `{"tenantId":"` + h.a.ID + `","username":"admin"}`, 400, "invalid-request"},
		{"empty strings", jsonType, body("", "", ""), 400, "invalid-request"},
		{"empty body", jsonType, ``, 400, "invalid-request"},
		{"two JSON values", jsonType, body(h.a.ID, "admin", h.a.Password) + `{}`, 400, "invalid-request"},
		{"form post", "application/x-www-form-urlencoded", "username=admin&password=x", 415, "unsupported-media-type"},
		{"over MaxJSONBytes", jsonType, body(h.a.ID, "admin", strings.Repeat("p", int(testLimits.MaxJSONBytes))), 413, "too-large"},
		{"wrong password", jsonType, body(h.a.ID, "admin", "wrong-password"), 401, "invalid-credentials"},
		{"unknown user", jsonType, body(h.a.ID, "nobody", h.a.Password), 401, "invalid-credentials"},
		{"unknown tenant", jsonType, body(newID(), "admin", h.a.Password), 401, "invalid-credentials"},
		{"password of another tenant's user", jsonType, body(h.a.ID, "admin", h.b.Password), 401, "invalid-credentials"},
		{"platform tenant", jsonType, body("_platform", "admin", h.a.Password), 401, "invalid-credentials"},
	}
	var wrongCreds []string
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := h.snapshot(t)
			res := h.do(t, "POST", "/api/v1/auth/token", "", tc.contentType, []byte(tc.body))
			p := wantProblem(t, res, tc.status, tc.slug)
			if contains(res.body, "accessToken") || contains(res.body, "idvt.") {
				t.Errorf("failed sign-in answered %s, want no token", res.body)
			}
			if tc.status == http.StatusUnauthorized {
				wrongCreds = append(wrongCreds, withoutIDs(t, res.body))
				ev := h.auditEvent(t, "_platform", p.RequestID, "auth.failure")
				if ev.Outcome != "denied" {
					t.Errorf("audit outcome = %q, want denied", ev.Outcome)
				}
			}
			h.unchanged(t, before)
		})
	}
	slices.Sort(wrongCreds)
	if len(slices.Compact(slices.Clone(wrongCreds))) != 1 {
		t.Errorf("401 bodies differ between wrong credentials: %q, want one", wrongCreds)
	}
}

// TestIssueTokenExpiry checks the token's lifetime against the injected
// clock.
func TestIssueTokenExpiry(t *testing.T) {
	h := newHarness(t)
	res := h.do(t, "POST", "/api/v1/auth/token", "", jsonType,
		[]byte(fmt.Sprintf(`{"tenantId":%q,"username":"admin","password":%q}`, h.a.ID, h.a.Password)))
	wantStatus(t, res, http.StatusOK)
	tok := decodeJSON[struct {
		AccessToken string    `json:"accessToken"`
		TokenType   string    `json:"tokenType"`
		ExpiresIn   int       `json:"expiresIn"`
		ExpiresAt   time.Time `json:"expiresAt"`
	}](t, res)
	if want := testEpoch.Add(identity.TokenTTL); !tok.ExpiresAt.Equal(want) {
		t.Errorf("expiresAt = %v, want %v", tok.ExpiresAt, want)
	}
	if want := int(identity.TokenTTL / time.Second); tok.ExpiresIn != want {
		t.Errorf("expiresIn = %d, want %d (the clock's now to expiresAt)", tok.ExpiresIn, want)
	}
	if tok.TokenType != "Bearer" {
		t.Errorf("tokenType = %q, want Bearer", tok.TokenType)
	}
	wantStatus(t, h.do(t, "GET", "/api/v1/sessions", "Bearer "+tok.AccessToken, "", nil), http.StatusOK)
}

// TestRoutingRejects covers unknown routes and methods.
func TestRoutingRejects(t *testing.T) {
	h := newHarness(t)
	s := h.createSession(t, h.a, `{}`)
	tests := []struct {
		name   string
		method string
		path   string
		auth   string
		status int
		slug   string
		allow  []string
	}{
		{"unknown route", "GET", "/api/v1/nothing", "", 404, "not-found", nil},
		{"unknown route with a key", "GET", "/api/v1/nothing", h.a.Auth(), 404, "not-found", nil},
		{"another API version", "GET", "/api/v2/sessions", h.a.Auth(), 404, "not-found", nil},
		{"trailing slash", "GET", "/api/v1/sessions/", h.a.Auth(), 404, "not-found", nil},
		{"root", "GET", "/", "", 404, "not-found", nil},
		{"DELETE on sessions", "DELETE", "/api/v1/sessions", h.a.Auth(), 405, "method-not-allowed", []string{"GET", "HEAD", "POST"}},
		{"PUT on a session", "PUT", "/api/v1/sessions/" + s.ID, h.a.Auth(), 405, "method-not-allowed", []string{"DELETE", "GET", "HEAD"}},
		{"PATCH on a session", "PATCH", "/api/v1/sessions/" + s.ID, h.a.Auth(), 405, "method-not-allowed", []string{"DELETE", "GET", "HEAD"}},
		{"GET on cancel", "GET", "/api/v1/sessions/" + s.ID + "/cancel", h.a.Auth(), 405, "method-not-allowed", []string{"POST"}},
		{"GET on the file list", "GET", "/api/v1/sessions/" + s.ID + "/files", h.a.Auth(), 405, "method-not-allowed", []string{"POST"}},
		{"DELETE on a file", "DELETE", "/api/v1/sessions/" + s.ID + "/files/" + newID(), h.a.Auth(), 405, "method-not-allowed", []string{"GET", "HEAD"}},
		{"GET on token", "GET", "/api/v1/auth/token", "", 405, "method-not-allowed", []string{"POST"}},
		{"POST on healthz", "POST", "/healthz", "", 405, "method-not-allowed", []string{"GET", "HEAD"}},
		{"OPTIONS on sessions", "OPTIONS", "/api/v1/sessions", "", 405, "method-not-allowed", []string{"GET", "HEAD", "POST"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := h.snapshot(t)
			res := h.do(t, tc.method, tc.path, tc.auth, "", nil)
			wantProblem(t, res, tc.status, tc.slug)
			if tc.allow != nil {
				var got []string
				for m := range strings.SplitSeq(res.header.Get("Allow"), ",") {
					got = append(got, strings.TrimSpace(m))
				}
				slices.Sort(got)
				if !slices.Equal(got, tc.allow) {
					t.Errorf("Allow = %q, want %q", res.header.Get("Allow"), tc.allow)
				}
			}
			h.unchanged(t, before)
		})
	}

	t.Run("HEAD on cancel", func(t *testing.T) {
		res := h.do(t, "HEAD", "/api/v1/sessions/"+s.ID+"/cancel", h.a.Auth(), "", nil)
		wantStatus(t, res, http.StatusMethodNotAllowed)
		if res.header.Get("Allow") != "POST" {
			t.Errorf("Allow = %q, want POST", res.header.Get("Allow"))
		}
	})
	for _, tc := range []struct {
		name   string
		path   string
		auth   string
		status int
	}{
		{"HEAD on healthz", "/healthz", "", 200},
		{"HEAD on a session", "/api/v1/sessions/" + s.ID, h.a.Auth(), 200},
		{"HEAD on a session without a key", "/api/v1/sessions/" + s.ID, "", 401},
		{"HEAD on the session list", "/api/v1/sessions", h.a.Auth(), 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := h.do(t, "HEAD", tc.path, tc.auth, "", nil)
			wantStatus(t, res, tc.status)
			if len(res.body) != 0 {
				t.Errorf("HEAD body = %d bytes, want none", len(res.body))
			}
		})
	}
}
