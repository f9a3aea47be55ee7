package httpapi_test

import (
	"bytes"
	"errors"
	"net/http"
	"os"
	"testing"

	"github.com/idvault/idvault/internal/authz"
	"github.com/idvault/idvault/internal/barrier"
	"github.com/idvault/idvault/internal/session"
	"github.com/idvault/idvault/internal/store"
)

// TestDeleteShredsSession deletes a session and then plays the attacker who
// kept a backup: the session's raw record and its stored objects, copied
// before the deletion and put back next to the live keyring, stay
// unreadable, because the session's data key is gone.
func TestDeleteShredsSession(t *testing.T) {
	h := newHarness(t)
	ctx := t.Context()
	secretRef := marker(t, "metadata")
	s := h.createSession(t, h.a, `{"metadata":{"ref":"`+secretRef+`"}}`)
	img := testPNG(t, 24, 24)
	f := h.upload(t, h.a, s.ID, "document_front", "image/png", img)
	keep := h.createSession(t, h.a, `{}`)
	kf := h.upload(t, h.a, keep.ID, "selfie", "image/png", testPNG(t, 8, 8))

	// The backup: the raw record and the stored object, as a thief of the
	// database and the bucket would have them.
	rawRecord, err := h.backend.Get(ctx, session.Collection, h.a.ID, s.ID)
	if err != nil {
		t.Fatal(err)
	}
	rawObject, err := os.ReadFile(h.objectPath(h.a, f.ID))
	if err != nil {
		t.Fatal(err)
	}

	// Only the right permission deletes, and never another tenant's session.
	_, integ := h.newKey(t, h.a.ID, []string{authz.RoleIntegration}, nil)
	wantProblem(t, h.do(t, "DELETE", "/api/v1/sessions/"+s.ID, "ApiKey "+integ, "", nil), http.StatusForbidden, "forbidden")
	wantProblem(t, h.do(t, "DELETE", "/api/v1/sessions/"+s.ID, h.b.Auth(), "", nil), http.StatusNotFound, "not-found")
	wantProblem(t, h.do(t, "DELETE", "/api/v1/sessions/"+s.ID, h.a.Auth(), "application/json", []byte(`{}`)), http.StatusBadRequest, "invalid-request")

	res := h.do(t, "DELETE", "/api/v1/sessions/"+s.ID, h.a.Auth(), "", nil)
	wantStatus(t, res, http.StatusNoContent)
	h.auditEvent(t, h.a.ID, res.header.Get("X-Request-Id"), "session.delete")
	wantProblem(t, h.do(t, "GET", "/api/v1/sessions/"+s.ID, h.a.Auth(), "", nil), http.StatusNotFound, "not-found")
	wantProblem(t, h.do(t, "GET", "/api/v1/sessions/"+s.ID+"/files/"+f.ID, h.a.Auth(), "", nil), http.StatusNotFound, "not-found")
	wantProblem(t, h.do(t, "DELETE", "/api/v1/sessions/"+s.ID, h.a.Auth(), "", nil), http.StatusNotFound, "not-found")
	if _, err := os.Stat(h.objectPath(h.a, f.ID)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the deleted session's object is still stored: %v", err)
	}

	// Restore the backup next to the live keyring.
	rawRecord.Version = 0
	if _, err := h.backend.Put(ctx, rawRecord); err != nil {
		t.Fatalf("restore record: %v", err)
	}
	if err := os.WriteFile(h.objectPath(h.a, f.ID), rawObject, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := h.keyring.Open(ctx, store.BodyPlace(h.a.ID, session.Collection, s.ID), rawRecord.Body); !errors.Is(err, barrier.ErrOpen) {
		t.Errorf("Open(restored record) = %v, want barrier.ErrOpen", err)
	}
	res = h.do(t, "GET", "/api/v1/sessions/"+s.ID, h.a.Auth(), "", nil)
	if res.status == http.StatusOK || bytes.Contains(res.body, []byte(secretRef)) {
		t.Errorf("GET of the restored session = %d %s; want a failure that reveals nothing", res.status, res.body)
	}
	if bytes.Contains(res.body, img[len(img)/2:len(img)/2+16]) {
		t.Error("the restored session's response holds image bytes")
	}

	// The other session of the tenant is untouched.
	res = h.do(t, "GET", "/api/v1/sessions/"+keep.ID+"/files/"+kf.ID, h.a.Auth(), "", nil)
	wantStatus(t, res, http.StatusOK)
}
