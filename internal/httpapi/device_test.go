package httpapi_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/idvault/idvault/internal/authz"
)

// TestDeviceTokens issues a device token and tries to make it do more than
// submit to its one session: reading anything, another session, creating
// sessions, outliving its expiry; and an integration key tries to issue one
// for a session it does not own.
func TestDeviceTokens(t *testing.T) {
	h := newHarness(t)
	_, integ := h.newKey(t, h.a.ID, []string{authz.RoleIntegration}, nil)
	key := tenant{ID: h.a.ID, Key: integ}
	s := h.createSession(t, key, `{}`)
	other := h.createSession(t, key, `{}`)
	foreign := h.createSession(t, h.a, `{}`) // the admin's, not the integration's

	res := h.do(t, "POST", "/api/v1/device-tokens", key.Auth(), "application/json", []byte(`{"sessionId":"`+s.ID+`","ttl":600}`))
	wantStatus(t, res, http.StatusCreated)
	var dt struct {
		Token     string
		ExpiresAt time.Time
	}
	if err := json.Unmarshal(res.body, &dt); err != nil || !strings.HasPrefix(dt.Token, "idvd."+h.a.ID+".") {
		t.Fatalf("device token = %s, %v", res.body, err)
	}
	dev := "Bearer " + dt.Token

	h.auditEvent(t, h.a.ID, res.header.Get("X-Request-Id"), "devicetoken.create")
	wantStatus(t, h.do(t, "POST", "/api/v1/sessions/"+s.ID+"/files?kind=selfie", dev, "image/png", testPNG(t, 8, 8)), http.StatusCreated)
	before := h.snapshot(t)
	wantProblem(t, h.do(t, "POST", "/api/v1/sessions/"+other.ID+"/files?kind=selfie", dev, "image/png", testPNG(t, 8, 8)), http.StatusNotFound, "not-found")
	wantProblem(t, h.do(t, "GET", "/api/v1/sessions/"+s.ID, dev, "", nil), http.StatusForbidden, "forbidden")
	wantProblem(t, h.do(t, "GET", "/api/v1/sessions", dev, "", nil), http.StatusForbidden, "forbidden")
	wantProblem(t, h.do(t, "POST", "/api/v1/sessions", dev, "application/json", []byte(`{}`)), http.StatusForbidden, "forbidden")
	wantProblem(t, h.do(t, "POST", "/api/v1/device-tokens", dev, "application/json", []byte(`{"sessionId":"`+s.ID+`"}`)), http.StatusForbidden, "forbidden")
	h.unchanged(t, before)

	// An integration key cannot issue a token for a session it does not own.
	wantProblem(t, h.do(t, "POST", "/api/v1/device-tokens", key.Auth(), "application/json", []byte(`{"sessionId":"`+foreign.ID+`"}`)), http.StatusNotFound, "not-found")
	wantProblem(t, h.do(t, "POST", "/api/v1/device-tokens", key.Auth(), "application/json", []byte(`{"sessionId":"`+s.ID+`","ttl":5}`)), http.StatusBadRequest, "invalid-request")
	wantProblem(t, h.do(t, "POST", "/api/v1/device-tokens", h.b.Auth(), "application/json", []byte(`{"sessionId":"`+s.ID+`"}`)), http.StatusNotFound, "not-found")

	res = h.do(t, "POST", "/api/v1/deeplinks", key.Auth(), "application/json", []byte(`{"sessionId":"`+other.ID+`"}`))
	wantStatus(t, res, http.StatusCreated)
	var dl struct{ URL string }
	if err := json.Unmarshal(res.body, &dl); err != nil || !strings.Contains(dl.URL, "/capture#token=idvd.") {
		t.Errorf("deeplink = %s, %v", res.body, err)
	}

	h.clock.Advance(11 * time.Minute)
	wantProblem(t, h.do(t, "POST", "/api/v1/sessions/"+s.ID+"/files?kind=document_front", dev, "image/png", testPNG(t, 8, 8)), http.StatusUnauthorized, "unauthenticated")
}
