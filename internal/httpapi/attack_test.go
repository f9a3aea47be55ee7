package httpapi_test

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/idvault/idvault/internal/authz"
	"github.com/idvault/idvault/internal/identity"
	"github.com/idvault/idvault/internal/session"
	"github.com/idvault/idvault/internal/store"
)

// TestCrossTenantAccess has tenant a's credentials reach for tenant b's
// session and file: every attempt is the 404 of an unknown id, and b's data
// is unchanged.
func TestCrossTenantAccess(t *testing.T) {
	h := newHarness(t)
	sa := h.createSession(t, h.a, `{}`)
	fa := h.upload(t, h.a, sa.ID, "selfie", "image/png", testPNG(t, 8, 8))
	sb := h.createSession(t, h.b, `{"metadata":{"owner":"tenant-b"}}`)
	fb := h.upload(t, h.b, sb.ID, "selfie", "image/png", testPNG(t, 8, 8))
	bBefore := h.do(t, "GET", "/api/v1/sessions/"+sb.ID, h.b.Auth(), "", nil)
	wantStatus(t, bBefore, http.StatusOK)
	tok, _, err := h.identity.IssueToken(t.Context(), h.a.ID, h.a.Username, h.a.Password, "")
	if err != nil {
		t.Fatalf("IssueToken = %v, want nil", err)
	}
	aBearer := "Bearer " + tok
	img := testPNG(t, 8, 8)

	tests := []struct {
		name string
		// attack and unknown are the same request at b's resource and at
		// one that does not exist.
		attack, unknown request
	}{
		{"read b's session",
			request{method: "GET", path: "/api/v1/sessions/" + sb.ID, auth: h.a.Auth()},
			request{method: "GET", path: "/api/v1/sessions/" + newID(), auth: h.a.Auth()}},
		{"read b's session with a bearer token",
			request{method: "GET", path: "/api/v1/sessions/" + sb.ID, auth: aBearer},
			request{method: "GET", path: "/api/v1/sessions/" + newID(), auth: aBearer}},
		{"cancel b's session",
			request{method: "POST", path: "/api/v1/sessions/" + sb.ID + "/cancel", auth: h.a.Auth()},
			request{method: "POST", path: "/api/v1/sessions/" + newID() + "/cancel", auth: h.a.Auth()}},
		{"upload to b's session",
			request{method: "POST", path: "/api/v1/sessions/" + sb.ID + "/files?kind=selfie", auth: h.a.Auth(), contentType: "image/png", body: img},
			request{method: "POST", path: "/api/v1/sessions/" + newID() + "/files?kind=selfie", auth: h.a.Auth(), contentType: "image/png", body: img}},
		{"download b's file from b's session",
			request{method: "GET", path: "/api/v1/sessions/" + sb.ID + "/files/" + fb.ID, auth: h.a.Auth()},
			request{method: "GET", path: "/api/v1/sessions/" + newID() + "/files/" + newID(), auth: h.a.Auth()}},
		{"download b's file through a's session",
			request{method: "GET", path: "/api/v1/sessions/" + sa.ID + "/files/" + fb.ID, auth: h.a.Auth()},
			request{method: "GET", path: "/api/v1/sessions/" + sa.ID + "/files/" + newID(), auth: h.a.Auth()}},
		{"download a's file id from b's session",
			request{method: "GET", path: "/api/v1/sessions/" + sb.ID + "/files/" + fa.ID, auth: h.a.Auth()},
			request{method: "GET", path: "/api/v1/sessions/" + newID() + "/files/" + fa.ID, auth: h.a.Auth()}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := h.snapshot(t)
			got := h.send(t, tc.attack)
			wantProblem(t, got, http.StatusNotFound, "not-found")
			want := h.send(t, tc.unknown)
			wantProblem(t, want, http.StatusNotFound, "not-found")
			if g, w := withoutIDs(t, got.body), withoutIDs(t, want.body); g != w {
				t.Errorf("404 for b's resource = %s, want the unknown-id 404 %s", g, w)
			}
			if contains(got.body, "tenant-b") || contains(got.body, h.b.ID) {
				t.Errorf("404 %s reveals tenant b", got.body)
			}
			h.unchanged(t, before)
		})
	}

	t.Run("list", func(t *testing.T) {
		for _, q := range []string{"", "?status=pending", "?limit=100", "?createdAfter=2000-01-01T00:00:00Z"} {
			res := h.do(t, "GET", "/api/v1/sessions"+q, h.a.Auth(), "", nil)
			wantStatus(t, res, http.StatusOK)
			list := decodeJSON[listDoc](t, res)
			if len(list.Items) != 1 || list.Items[0].ID != sa.ID {
				t.Errorf("GET /api/v1/sessions%s = %+v, want only a's session %s", q, list.Items, sa.ID)
			}
			if contains(res.body, sb.ID) || contains(res.body, fb.ID) {
				t.Errorf("GET /api/v1/sessions%s names b's session or file", q)
			}
		}
	})

	t.Run("b's session unchanged", func(t *testing.T) {
		after := h.do(t, "GET", "/api/v1/sessions/"+sb.ID, h.b.Auth(), "", nil)
		wantStatus(t, after, http.StatusOK)
		if !bytes.Equal(after.body, bBefore.body) {
			t.Errorf("b's session = %s, want unchanged %s", after.body, bBefore.body)
		}
		wantStatus(t, h.do(t, "GET", "/api/v1/sessions/"+sb.ID+"/files/"+fb.ID, h.b.Auth(), "", nil), http.StatusOK)
	})
}

// TestForgedCredentials presents credentials that are wrong in every part:
// each is a 401 with WWW-Authenticate, audited as auth.failure, without the
// credential in the audit event.
func TestForgedCredentials(t *testing.T) {
	h := newHarness(t)
	ka := strings.Split(h.a.Key, ".")
	kb := strings.Split(h.b.Key, ".")
	if len(ka) != 4 || len(kb) != 4 {
		t.Fatalf("API key %q is not idvk.<tenant>.<id>.<secret>", h.a.Key)
	}
	tok, _, err := h.identity.IssueToken(t.Context(), h.a.ID, h.a.Username, h.a.Password, "")
	if err != nil {
		t.Fatalf("IssueToken = %v, want nil", err)
	}
	kt := strings.Split(tok, ".")
	past := h.clock.Now().Add(-time.Second)
	_, expiredKey := h.newKey(t, h.a.ID, []string{authz.RoleAdmin}, &past)
	now := h.clock.Now()
	_, expiringNowKey := h.newKey(t, h.a.ID, []string{authz.RoleAdmin}, &now)
	forged := base64.RawURLEncoding.EncodeToString(randomBytes(t, 32))
	join := func(parts ...string) string { return strings.Join(parts, ".") }

	tests := []struct{ name, auth string }{
		{"no credential", ""},
		{"wrong secret", "ApiKey " + join("idvk", h.a.ID, ka[2], forged)},
		{"secret of tenant b's key", "ApiKey " + join("idvk", h.a.ID, ka[2], kb[3])},
		{"tenant b's key id under tenant a", "ApiKey " + join("idvk", h.a.ID, kb[2], kb[3])},
		{"tenant segment changed to b", "ApiKey " + join("idvk", h.b.ID, ka[2], ka[3])},
		{"truncated key", "ApiKey " + h.a.Key[:len(h.a.Key)-1]},
		{"extended key", "ApiKey " + h.a.Key + "A"},
		{"secret in other case", "ApiKey " + join("idvk", h.a.ID, ka[2], strings.ToUpper(ka[3]))},
		{"key with a fifth part", "ApiKey " + h.a.Key + ".x"},
		{"API key sent as bearer", "Bearer " + h.a.Key},
		{"API key relabelled as token", "Bearer " + join("idvt", h.a.ID, ka[2], ka[3])},
		{"bearer token sent as API key", "ApiKey " + tok},
		{"token relabelled as API key", "ApiKey " + join("idvk", kt[1], kt[2], kt[3])},
		{"platform tenant", "ApiKey " + join("idvk", store.PlatformTenant, ka[2], ka[3])},
		{"platform tenant with a tenant id as key id", "ApiKey " + join("idvk", store.PlatformTenant, h.a.ID, forged)},
		{"expired API key", "ApiKey " + expiredKey},
		{"API key expiring now", "ApiKey " + expiringNowKey},
		{"scheme only", "ApiKey"},
		{"unknown scheme", "Token " + h.a.Key},
		{"basic auth", "Basic " + base64.StdEncoding.EncodeToString([]byte("admin:"+h.a.Password))},
		{"empty parts", "ApiKey ..."},
		{"tenant over the store's key length", "ApiKey " + join("idvk", strings.Repeat("t", 300), ka[2], ka[3])},
		{"SQL metacharacters", "ApiKey " + join("idvk", "' OR '1'='1", "x", forged)},
		{"non-ASCII", "ApiKey " + join("idvk", "tenänt", "ïd", forged)},
		{"huge header", "ApiKey " + strings.Repeat("A", 16<<10)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := h.snapshot(t)
			for _, r := range []request{
				{method: "GET", path: "/api/v1/sessions", auth: tc.auth},
				{method: "POST", path: "/api/v1/sessions", auth: tc.auth, contentType: jsonType, body: []byte(`{}`)},
			} {
				res := h.send(t, r)
				p := wantProblem(t, res, http.StatusUnauthorized, "unauthenticated")
				if got, want := res.header.Get("WWW-Authenticate"), `ApiKey realm="idvault", Bearer realm="idvault"`; got != want {
					t.Errorf("WWW-Authenticate = %q, want %q", got, want)
				}
				ev := h.auditEvent(t, store.PlatformTenant, p.RequestID, "auth.failure")
				if ev.Outcome != "denied" || ev.Actor.Type != "anonymous" || ev.Resource.ID != r.method+" /api/v1/sessions" {
					t.Errorf("audit event = %+v, want a denied anonymous auth.failure on %s /api/v1/sessions", ev, r.method)
				}
				evJSON, err := json.Marshal(ev)
				if err != nil {
					t.Fatal(err)
				}
				for _, secret := range []string{ka[3], kb[3], kt[3], forged} {
					if strings.Contains(tc.auth, secret) && bytes.Contains(evJSON, []byte(secret)) {
						t.Errorf("audit event %s holds the presented secret", evJSON)
					}
				}
			}
			h.unchanged(t, before)
		})
	}
}

// TestExpiredToken uses a bearer token past its lifetime.
func TestExpiredToken(t *testing.T) {
	h := newHarness(t)
	res := h.do(t, "POST", "/api/v1/auth/token", "", jsonType,
		[]byte(fmt.Sprintf(`{"tenantId":%q,"username":"admin","password":%q}`, h.a.ID, h.a.Password)))
	wantStatus(t, res, http.StatusOK)
	tok := decodeJSON[struct {
		AccessToken string `json:"accessToken"`
	}](t, res)
	auth := "Bearer " + tok.AccessToken
	wantStatus(t, h.do(t, "GET", "/api/v1/sessions", auth, "", nil), http.StatusOK)
	h.clock.Advance(identity.TokenTTL - time.Second)
	wantStatus(t, h.do(t, "GET", "/api/v1/sessions", auth, "", nil), http.StatusOK)
	h.clock.Advance(time.Second)
	res = h.do(t, "GET", "/api/v1/sessions", auth, "", nil)
	p := wantProblem(t, res, http.StatusUnauthorized, "unauthenticated")
	h.auditEvent(t, store.PlatformTenant, p.RequestID, "auth.failure")
}

// TestSuspendedTenant uses a valid key of a suspended tenant.
func TestSuspendedTenant(t *testing.T) {
	h := newHarness(t)
	c := h.newTenant(t, "tenant-c")
	wantStatus(t, h.do(t, "GET", "/api/v1/sessions", c.Auth(), "", nil), http.StatusOK)
	v, err := store.NewView(h.backend, h.barrier, store.PlatformTenant)
	if err != nil {
		t.Fatal(err)
	}
	var tn identity.Tenant
	rec, err := v.Get(t.Context(), identity.CollTenants, c.ID, &tn)
	if err != nil {
		t.Fatalf("get tenant = %v, want nil", err)
	}
	tn.Status = identity.TenantSuspended
	if _, err := v.Update(t.Context(), identity.CollTenants, c.ID, rec.Version, map[string]string{"status": tn.Status}, tn); err != nil {
		t.Fatalf("suspend tenant = %v, want nil", err)
	}
	// Written straight to the store, as another process would: it takes
	// effect within identity.RecentTTL.
	h.clock.Advance(identity.RecentTTL)
	before := h.snapshot(t)
	wantProblem(t, h.do(t, "GET", "/api/v1/sessions", c.Auth(), "", nil), http.StatusForbidden, "tenant-suspended")
	wantProblem(t, h.do(t, "POST", "/api/v1/sessions", c.Auth(), jsonType, []byte(`{}`)), http.StatusForbidden, "tenant-suspended")
	wantProblem(t, h.do(t, "POST", "/api/v1/auth/token", "", jsonType,
		[]byte(fmt.Sprintf(`{"tenantId":%q,"username":"admin","password":%q}`, c.ID, c.Password))),
		http.StatusUnauthorized, "invalid-credentials")
	h.unchanged(t, before)
}

// TestPrivilegeEscalation authenticates with keys whose roles grant
// nothing: every protected route is a 403 audited as access.denied.
func TestPrivilegeEscalation(t *testing.T) {
	h := newHarness(t)
	s := h.createSession(t, h.a, `{}`)
	f := h.upload(t, h.a, s.ID, "selfie", "image/png", testPNG(t, 8, 8))
	routes := []request{
		{method: "POST", path: "/api/v1/sessions", contentType: jsonType, body: []byte(`{}`)},
		{method: "GET", path: "/api/v1/sessions"},
		{method: "GET", path: "/api/v1/sessions/" + s.ID},
		{method: "POST", path: "/api/v1/sessions/" + s.ID + "/cancel"},
		{method: "POST", path: "/api/v1/sessions/" + s.ID + "/files?kind=selfie", contentType: "image/png", body: testPNG(t, 8, 8)},
		{method: "GET", path: "/api/v1/sessions/" + s.ID + "/files/" + f.ID},
	}
	for _, tc := range []struct {
		name  string
		roles []string
	}{
		{"no roles", nil},
		{"empty roles", []string{}},
		{"unknown role", []string{"unknown"}},
		{"admin in capitals", []string{"Admin"}},
		{"admin with a space", []string{"admin "}},
		{"permission as role", []string{string(authz.SessionRead)}},
		{"wildcard role", []string{"*"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			keyID, key := h.newKey(t, h.a.ID, tc.roles, nil)
			for _, r := range routes {
				before := h.snapshot(t)
				r.auth = "ApiKey " + key
				res := h.send(t, r)
				p := wantProblem(t, res, http.StatusForbidden, "forbidden")
				// The same request at ids that name nothing is the same 403: a
				// caller without the permission learns nothing of what exists.
				ghost := r
				ghost.path = strings.NewReplacer(s.ID, newID(), f.ID, newID()).Replace(r.path)
				if g, w := withoutIDs(t, res.body), withoutIDs(t, h.send(t, ghost).body); g != w {
					t.Errorf("%s %s: 403 = %s, want the 403 of unknown ids %s", r.method, r.path, g, w)
				}
				ev := h.auditEvent(t, h.a.ID, p.RequestID, "access.denied")
				if ev.Actor.Type != "apikey" || ev.Actor.ID != keyID || ev.Outcome != "denied" {
					t.Errorf("audit event = %+v, want denied for API key %s", ev, keyID)
				}
				h.unchanged(t, before)
			}
		})
	}
}

// TestTamperedFile changes stored objects behind the platform's back: each
// download is a 409 that serves nothing of the file. The first is audited as
// file.tamper_detected and quarantines the file; the next, refused as
// quarantined, as a denied file.read.
func TestTamperedFile(t *testing.T) {
	h := newHarness(t)
	s := h.createSession(t, h.a, `{}`)
	intact := testPNG(t, 8, 8)
	fIntact := h.upload(t, h.a, s.ID, "document_back", "image/png", intact)
	sb := h.createSession(t, h.b, `{}`)
	fb := h.upload(t, h.b, sb.ID, "selfie", "image/png", testPNG(t, 16, 16))
	bObject, err := os.ReadFile(h.objectPath(h.b, fb.ID))
	if err != nil {
		t.Fatalf("read tenant b's object = %v, want nil", err)
	}

	tests := []struct {
		name   string
		tamper func(t *testing.T, path string, sibling string)
	}{
		{"flipped byte in the middle", func(t *testing.T, path, _ string) { flip(t, path, func(n int) int { return n / 2 }) }},
		{"flipped first byte", func(t *testing.T, path, _ string) { flip(t, path, func(int) int { return 0 }) }},
		{"flipped last byte", func(t *testing.T, path, _ string) { flip(t, path, func(n int) int { return n - 1 }) }},
		{"truncated", func(t *testing.T, path, _ string) { rewrite(t, path, func(b []byte) []byte { return b[:len(b)/2] }) }},
		{"last byte cut", func(t *testing.T, path, _ string) { rewrite(t, path, func(b []byte) []byte { return b[:len(b)-1] }) }},
		{"extended", func(t *testing.T, path, _ string) { rewrite(t, path, func(b []byte) []byte { return append(b, 0) }) }},
		{"emptied", func(t *testing.T, path, _ string) { rewrite(t, path, func([]byte) []byte { return nil }) }},
		{"replaced with another file's object", func(t *testing.T, path, sibling string) {
			data, err := os.ReadFile(sibling)
			if err != nil {
				t.Fatal(err)
			}
			rewrite(t, path, func([]byte) []byte { return data })
		}},
		{"replaced with tenant b's object", func(t *testing.T, path, _ string) {
			rewrite(t, path, func([]byte) []byte { return bObject })
		}},
		{"deleted", func(t *testing.T, path, _ string) {
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			img := testPNG(t, 16, 16)
			f := h.upload(t, h.a, s.ID, "attachment", "image/png", img)
			sibling := h.upload(t, h.a, s.ID, "attachment", "image/png", testPNG(t, 16, 16))
			tc.tamper(t, h.objectPath(h.a, f.ID), h.objectPath(h.a, sibling.ID))
			path := "/api/v1/sessions/" + s.ID + "/files/" + f.ID
			for i := range 2 {
				res := h.do(t, "GET", path, h.a.Auth(), "", nil)
				p := wantProblem(t, res, http.StatusConflict, "file-tampered")
				if bytes.Contains(res.body, []byte("\x89PNG")) || bytes.Contains(res.body, img[len(img)/2:len(img)/2+16]) {
					t.Errorf("409 body holds image bytes: %q", res.body)
				}
				for _, hdr := range []string{"Content-Disposition", "Digest"} {
					if v := res.header.Get(hdr); v != "" {
						t.Errorf("%s = %q on a tampered file, want none", hdr, v)
					}
				}
				action, reason := "file.tamper_detected", ""
				if i > 0 {
					action, reason = "file.read", "quarantined"
				}
				ev := h.auditEvent(t, h.a.ID, p.RequestID, action)
				if ev.Resource.ID != f.ID || ev.Details["session"] != s.ID || ev.Outcome != "denied" || (reason != "" && ev.Reason != reason) {
					t.Errorf("audit event = %+v, want denied %s of file %s in session %s", ev, action, f.ID, s.ID)
				}
			}
			res := h.do(t, "HEAD", path, h.a.Auth(), "", nil)
			wantStatus(t, res, http.StatusConflict)
		})
	}
	t.Run("intact file still served", func(t *testing.T) {
		res := h.do(t, "GET", "/api/v1/sessions/"+s.ID+"/files/"+fIntact.ID, h.a.Auth(), "", nil)
		wantStatus(t, res, http.StatusOK)
		if !bytes.Equal(res.body, intact) {
			t.Errorf("intact download = %d bytes, want the %d uploaded", len(res.body), len(intact))
		}
	})
}

func flip(t *testing.T, path string, at func(n int) int) {
	t.Helper()
	rewrite(t, path, func(b []byte) []byte {
		b[at(len(b))] ^= 0x01
		return b
	})
}

func rewrite(t *testing.T, path string, fn func([]byte) []byte) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read stored object = %v, want nil", err)
	}
	if err := os.WriteFile(path, fn(data), 0o600); err != nil {
		t.Fatalf("write stored object = %v, want nil", err)
	}
}

// TestDownloadIsNeverRendered uploads a PNG that is also an HTML page (a
// polyglot) and a PDF: downloads are attachments of the sniffed type that a
// browser must not sniff or run.
func TestDownloadIsNeverRendered(t *testing.T) {
	h := newHarness(t)
	s := h.createSession(t, h.a, `{}`)
	polyglot := pngWithText(t, testPNG(t, 8, 8), "<html><script>alert(document.domain)</script></html>")
	for _, tc := range []struct {
		name, contentType string
		data              []byte
	}{
		{"PNG with HTML inside", "image/png", polyglot},
		{"PDF", "application/pdf", testPDF("<script>alert(1)</script>")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := h.upload(t, h.a, s.ID, "attachment", tc.contentType, tc.data)
			res := h.do(t, "GET", "/api/v1/sessions/"+s.ID+"/files/"+f.ID, h.a.Auth(), "", nil)
			wantStatus(t, res, http.StatusOK)
			sum := sha256.Sum256(tc.data)
			for hdr, want := range map[string]string{
				"Content-Type":            tc.contentType,
				"Content-Disposition":     `attachment; filename="` + f.ID + `"`,
				"X-Content-Type-Options":  "nosniff",
				"Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
				"Cache-Control":           "no-store",
				"Digest":                  "sha-256=" + hex.EncodeToString(sum[:]),
			} {
				if got := res.header.Get(hdr); got != want {
					t.Errorf("%s = %q, want %q", hdr, got, want)
				}
			}
			if !bytes.Equal(res.body, tc.data) {
				t.Errorf("download = %d bytes, want the %d uploaded", len(res.body), len(tc.data))
			}
		})
	}
}

// TestRequestIDInjection sends hostile X-Request-Id values: they are
// replaced by a fresh id, a good one is echoed.
func TestRequestIDInjection(t *testing.T) {
	h := newHarness(t)
	generated := func(t *testing.T, got, sent string) {
		t.Helper()
		if !errorIDPattern.MatchString(got) || strings.Contains(sent, got) {
			t.Errorf("X-Request-Id = %q for %q, want a fresh 24-hex-digit id", got, sent)
		}
	}
	for _, tc := range []struct {
		name, id string
		echoed   bool
	}{
		{"good id", "req-2031.03_14", true},
		{"64 characters", strings.Repeat("a", 64), true},
		{"65 characters", strings.Repeat("a", 65), false},
		{"200 characters", strings.Repeat("r", 200), false},
		{"markup", "<script>alert(1)</script>", false},
		{"spaces", "a b", false},
		{"semicolon", "a;b=c", false},
		{"non-ASCII", "äöü", false},
		{"log forging", `x","level":"ERROR","msg":"forged`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// An authenticated failure: the id reaches the problem body, the
			// log line and the audit event.
			res := h.send(t, request{method: "GET", path: "/api/v1/sessions/" + newID(), auth: h.a.Auth(),
				header: map[string]string{"X-Request-Id": tc.id}})
			p := wantProblem(t, res, http.StatusNotFound, "not-found")
			got := res.header.Get("X-Request-Id")
			if tc.echoed {
				if got != tc.id || p.RequestID != tc.id {
					t.Errorf("X-Request-Id = %q, requestId = %q, want %q echoed", got, p.RequestID, tc.id)
				}
				return
			}
			generated(t, got, tc.id)
			if contains(res.body, tc.id) {
				t.Errorf("problem %s repeats the hostile id", res.body)
			}
		})
	}
	if bytes.Contains(h.log.Bytes(), []byte(`"msg":"forged`)) {
		t.Errorf("log holds a forged line")
	}

	// A newline cannot be sent by net/http's client, so these go over a raw
	// TLS connection: a folded header line and a bare CR.
	for _, tc := range []struct{ name, header string }{
		{"folded header", "X-Request-Id: abc\r\n Set-Cookie: injected=1\r\n"},
		{"bare CR", "X-Request-Id: abc\rSet-Cookie: injected=1\r\n"},
		{"bare LF", "X-Request-Id: abc\nSet-Cookie: injected=1\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := h.rawGet(t, "/healthz", tc.header)
			if res.Header.Get("Set-Cookie") != "" {
				t.Errorf("response sets a cookie: %q", res.Header.Get("Set-Cookie"))
			}
			if id := res.Header.Get("X-Request-Id"); strings.Contains(id, "injected") || strings.ContainsAny(id, "\r\n ") {
				t.Errorf("X-Request-Id = %q, want no injected text", id)
			}
		})
	}
}

// rawGet sends a hand-written HTTP/1.1 GET with extra header lines over TLS.
func (h *harness) rawGet(t *testing.T, path, extra string) *http.Response {
	t.Helper()
	conn, err := tls.Dial("tcp", h.srv.Listener.Addr().String(),
		&tls.Config{RootCAs: h.roots, ServerName: "localhost", NextProtos: []string{"http/1.1"}, MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatalf("tls.Dial = %v, want nil", err)
	}
	defer conn.Close()
	if _, err := fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: localhost\r\n%sConnection: close\r\n\r\n", path, extra); err != nil {
		t.Fatalf("write request = %v, want nil", err)
	}
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("read response = %v, want nil", err)
	}
	res.Body.Close()
	return res
}

// TestNoSecretsInLogsOrStorage runs a full flow with distinctive secrets,
// personal data and image bytes, then looks for them in the log and in
// every stored byte: the SQLite files and the bucket.
func TestNoSecretsInLogsOrStorage(t *testing.T) {
	h := newHarness(t)
	metaMarker := marker(t, "meta")
	imageMarker := marker(t, "image")
	pdfMarker := marker(t, "pdf")
	username := marker(t, "user") + "@example.com"
	password := marker(t, "password")
	forgedSecret := ("mkForgedSecret" + strings.Repeat("Z", 43))[:43]
	wrongPassword := marker(t, "wrongpw")

	if _, err := h.identity.CreateUser(t.Context(), h.a.ID, username, password, []string{authz.RoleAdmin}); err != nil {
		t.Fatalf("CreateUser = %v, want nil", err)
	}
	res := h.do(t, "POST", "/api/v1/auth/token", "", jsonType,
		[]byte(fmt.Sprintf(`{"tenantId":%q,"username":%q,"password":%q}`, h.a.ID, username, password)))
	wantStatus(t, res, http.StatusOK)
	tok := decodeJSON[struct {
		AccessToken string `json:"accessToken"`
	}](t, res).AccessToken
	bearer := "Bearer " + tok

	res = h.do(t, "POST", "/api/v1/sessions", bearer, jsonType,
		[]byte(`{"metadata":{"email":"`+metaMarker+`","name":"Ana Marker"},"locale":"pt-BR"}`))
	wantStatus(t, res, http.StatusCreated)
	s := decodeJSON[sessionDoc](t, res)
	pngData := pngWithText(t, testPNG(t, 48, 32), imageMarker)
	idat := pngData[bytes.Index(pngData, []byte("IDAT"))+4:][:32]
	fp := h.upload(t, h.a, s.ID, "document_front", "image/png", pngData)
	pdf := testPDF(pdfMarker)
	fd := h.upload(t, h.a, s.ID, "attachment", "application/pdf", pdf)
	for _, f := range []fileDoc{fp, fd} {
		wantStatus(t, h.do(t, "GET", "/api/v1/sessions/"+s.ID+"/files/"+f.ID, bearer, "", nil), http.StatusOK)
	}
	wantStatus(t, h.do(t, "GET", "/api/v1/sessions/"+s.ID, h.a.Auth(), "", nil), http.StatusOK)
	wantStatus(t, h.do(t, "GET", "/api/v1/sessions", h.a.Auth(), "", nil), http.StatusOK)
	ka := strings.Split(h.a.Key, ".")
	wantStatus(t, h.do(t, "GET", "/api/v1/sessions", "ApiKey idvk."+h.a.ID+"."+ka[2]+"."+forgedSecret, "", nil), http.StatusUnauthorized)
	wantStatus(t, h.do(t, "POST", "/api/v1/auth/token", "", jsonType,
		[]byte(fmt.Sprintf(`{"tenantId":%q,"username":%q,"password":%q}`, h.a.ID, username, wrongPassword))), http.StatusUnauthorized)
	wantStatus(t, h.do(t, "POST", "/api/v1/sessions", h.a.Auth(), jsonType,
		[]byte(`{"metadata":{"email":"`+metaMarker+`"},"ttl":"`+metaMarker+`"}`)), http.StatusBadRequest)
	wantStatus(t, h.do(t, "POST", "/api/v1/sessions", h.a.Auth(), jsonType,
		[]byte(`{"metadata":{"email":"`+metaMarker+`"}`)), http.StatusBadRequest)
	wantStatus(t, h.do(t, "POST", "/api/v1/sessions/"+s.ID+"/files?kind=selfie", h.a.Auth(), "image/jpeg", pngData), http.StatusUnsupportedMediaType)
	// Append every audit event so that the audit collection is on disk too.

	needles := map[string][]byte{
		"metadata":                []byte(metaMarker),
		"image text":              []byte(imageMarker),
		"image pixels":            idat,
		"image pixels, base64":    []byte(base64.StdEncoding.EncodeToString(idat)[:40]),
		"PDF text":                []byte(pdfMarker),
		"username":                []byte(username),
		"password":                []byte(password),
		"wrong password":          []byte(wrongPassword),
		"admin password":          []byte(h.a.Password),
		"API key secret":          []byte(ka[3]),
		"forged API key secret":   []byte(forgedSecret),
		"bearer token secret":     []byte(tok[strings.LastIndex(tok, ".")+1:]),
		"tenant b API key secret": []byte(h.b.Key[strings.LastIndex(h.b.Key, ".")+1:]),
		"tenant b admin password": []byte(h.b.Password),
		"metadata name":           []byte("Ana Marker"),
		"username in lowercase":   []byte(strings.ToLower(username)),
		"metadata marker, base64": []byte(base64.StdEncoding.EncodeToString([]byte(metaMarker))[:20]),
		"image marker, hex":       []byte(hex.EncodeToString([]byte(imageMarker))),
		"image marker, base64":    []byte(base64.StdEncoding.EncodeToString([]byte(imageMarker))[:20]),
		"password, base64":        []byte(base64.StdEncoding.EncodeToString([]byte(password))[:20]),
	}

	// Close the server so that every log line is written.
	h.srv.Close()
	log := h.log.Bytes()
	if !bytes.Contains(log, []byte(`"msg":"request"`)) || !bytes.Contains(log, []byte(`"msg":"request rejected"`)) {
		t.Fatalf("log holds no access lines: %q", truncate(log, 500))
	}
	for name, n := range needles {
		if bytes.Contains(log, n) {
			t.Errorf("log holds the %s", name)
		}
	}
	for _, dir := range []string{h.dbDir, h.bucketDir} {
		for _, hit := range filesContaining(t, dir, needles) {
			t.Errorf("stored in clear: %s", hit)
		}
	}
}

// TestAccessLogAttributesRequests checks that the access log line of a
// request names its tenant and principal, and that a problem's errorId is
// in the log line, so an operator can find who did what.
func TestAccessLogAttributesRequests(t *testing.T) {
	h := newHarness(t)
	ok := h.do(t, "GET", "/api/v1/sessions", h.a.Auth(), "", nil)
	wantStatus(t, ok, http.StatusOK)
	missing := h.do(t, "GET", "/api/v1/sessions/"+newID(), h.b.Auth(), "", nil)
	p := wantProblem(t, missing, http.StatusNotFound, "not-found")
	h.srv.Close() // every log line is written once the server is closed

	lines := map[string]map[string]any{}
	for line := range bytes.SplitSeq(h.log.Bytes(), []byte("\n")) {
		var m map[string]any
		if len(line) == 0 {
			continue
		}
		if err := json.Unmarshal(line, &m); err != nil {
			t.Fatalf("log line %q is not JSON: %v", line, err)
		}
		if id, _ := m["requestId"].(string); id != "" {
			lines[id] = m
		}
	}
	for _, tc := range []struct {
		name           string
		res            response
		tn             tenant
		errorID, route string
	}{
		{"success", ok, h.a, "", "/api/v1/sessions"},
		{"problem", missing, h.b, p.ErrorID, "/api/v1/sessions/{id}"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			line, found := lines[tc.res.header.Get("X-Request-Id")]
			if !found {
				t.Fatalf("no log line with requestId %q", tc.res.header.Get("X-Request-Id"))
			}
			for key, want := range map[string]string{"tenant": tc.tn.ID, "principal": tc.tn.KeyID, "errorId": tc.errorID, "route": tc.route} {
				if got, _ := line[key].(string); got != want {
					t.Errorf("log line %s = %q, want %q; line %v", key, got, want, line)
				}
			}
		})
	}
}

// TestUploadRaceForLastSlot sends concurrent uploads for the last free file
// slot of a session: exactly one wins, the others are 409 and leave no
// object behind.
func TestUploadRaceForLastSlot(t *testing.T) {
	h := newHarness(t)
	s := h.createSession(t, h.a, `{}`)
	img := testPNG(t, 2, 2)
	for range session.MaxFiles - 1 {
		h.upload(t, h.a, s.ID, "attachment", "image/png", img)
	}
	const racers = 4
	results := make([]response, racers)
	errs := make([]error, racers)
	var wg sync.WaitGroup
	for i := range racers {
		wg.Go(func() {
			results[i], errs[i] = h.try(t.Context(), request{method: "POST", path: "/api/v1/sessions/" + s.ID + "/files?kind=attachment",
				auth: h.a.Auth(), contentType: "image/png", body: img})
		})
	}
	wg.Wait()
	won := 0
	for i, res := range results {
		if errs[i] != nil {
			t.Fatalf("racing upload = %v, want a response", errs[i])
		}
		switch res.status {
		case http.StatusCreated:
			won++
		default:
			wantProblem(t, res, http.StatusConflict, "too-many-files")
		}
	}
	if won != 1 {
		t.Errorf("%d of %d racing uploads won the last slot, want 1", won, racers)
	}
	got := decodeJSON[sessionDoc](t, h.do(t, "GET", "/api/v1/sessions/"+s.ID, h.a.Auth(), "", nil))
	if len(got.Files) != session.MaxFiles {
		t.Errorf("session holds %d files, want %d", len(got.Files), session.MaxFiles)
	}
	if objects := h.snapshot(t).objects; len(objects) != session.MaxFiles {
		t.Errorf("bucket holds %d objects, want %d (one per recorded file)", len(objects), session.MaxFiles)
	}
}
