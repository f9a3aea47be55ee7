package httpapi_test

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/idvault/idvault/internal/authz"
)

// TestOwnRecordsOnly checks layer 2's own/_all distinction end to end: an
// integration key reads, lists, uploads to and downloads only the sessions
// it created; another integration key of the same tenant sees them as
// absent; the admin (session:read_all) sees everything.
func TestOwnRecordsOnly(t *testing.T) {
	h := newHarness(t)
	_, k1 := h.newKey(t, h.a.ID, []string{authz.RoleIntegration}, nil)
	_, k2 := h.newKey(t, h.a.ID, []string{authz.RoleIntegration}, nil)
	key1, key2 := tenant{ID: h.a.ID, Key: k1}, tenant{ID: h.a.ID, Key: k2}
	s := h.createSession(t, key1, `{}`)
	f := h.upload(t, key1, s.ID, "selfie", "image/png", testPNG(t, 8, 8))

	wantStatus(t, h.do(t, "GET", "/api/v1/sessions/"+s.ID, key1.Auth(), "", nil), http.StatusOK)
	before := h.snapshot(t)
	for _, req := range []struct{ method, path, ctype string }{
		{"GET", "/api/v1/sessions/" + s.ID, ""},
		{"GET", "/api/v1/sessions/" + s.ID + "/files/" + f.ID, ""},
		{"POST", "/api/v1/sessions/" + s.ID + "/cancel", ""},
		{"POST", "/api/v1/sessions/" + s.ID + "/files?kind=document_front", "image/png"},
	} {
		var body []byte
		if req.ctype != "" {
			body = testPNG(t, 8, 8)
		}
		wantProblem(t, h.do(t, req.method, req.path, key2.Auth(), req.ctype, body), http.StatusNotFound, "not-found")
	}
	h.unchanged(t, before)
	count := func(auth string) int {
		res := h.do(t, "GET", "/api/v1/sessions", auth, "", nil)
		wantStatus(t, res, http.StatusOK)
		var l struct{ Items []json.RawMessage }
		if err := json.Unmarshal(res.body, &l); err != nil {
			t.Fatal(err)
		}
		return len(l.Items)
	}
	if n := count(key2.Auth()); n != 0 {
		t.Errorf("the other integration key lists %d sessions, want 0", n)
	}
	if n := count(key1.Auth()); n != 1 {
		t.Errorf("the creating key lists %d sessions, want 1", n)
	}
	if n := count(h.a.Auth()); n < 1 {
		t.Errorf("the admin lists %d sessions, want the integration's too", n)
	}
	wantStatus(t, h.do(t, "GET", "/api/v1/sessions/"+s.ID+"/files/"+f.ID, h.a.Auth(), "", nil), http.StatusOK)
}
