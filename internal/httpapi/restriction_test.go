package httpapi_test

import (
	"encoding/json"
	"net/http"
	"testing"
)

// TestRestriction proves layer 3: a session restricted to a group is absent
// for everyone outside it, the admin included (who can still change the
// restriction); an ro member reads but cannot change it; lifting the
// restriction makes it visible again.
func TestRestriction(t *testing.T) {
	h := newHarness(t)
	user := func(name string) (id, bearer string) {
		t.Helper()
		res := h.do(t, "POST", "/api/v1/users", h.a.Auth(), "application/json", []byte(`{"username":"`+name+`","roles":["verifier"]}`))
		wantStatus(t, res, http.StatusCreated)
		var u struct{ ID, Password string }
		_ = json.Unmarshal(res.body, &u)
		res = h.do(t, "POST", "/api/v1/auth/token", "", "application/json", []byte(`{"tenantId":"`+h.a.ID+`","username":"`+name+`","password":"`+u.Password+`"}`))
		wantStatus(t, res, http.StatusOK)
		var tok struct{ AccessToken string }
		_ = json.Unmarshal(res.body, &tok)
		return u.ID, "Bearer " + tok.AccessToken
	}
	veraID, vera := user("vera")
	_, walt := user("walt")
	res := h.do(t, "POST", "/api/v1/groups", h.a.Auth(), "application/json", []byte(`{"name":"fraud team"}`))
	wantStatus(t, res, http.StatusCreated)
	var g struct{ ID string }
	_ = json.Unmarshal(res.body, &g)
	wantStatus(t, h.do(t, "PUT", "/api/v1/groups/"+g.ID+"/members", h.a.Auth(), "application/json", []byte(`{"members":["`+veraID+`"]}`)), http.StatusOK)
	wantProblem(t, h.do(t, "PUT", "/api/v1/groups/"+g.ID+"/members", h.a.Auth(), "application/json", []byte(`{"members":["no-such-user"]}`)), http.StatusBadRequest, "invalid-request")

	s := h.createSession(t, h.a, `{"metadata":{"case":"restricted"}}`)
	restrict := func(body string) response {
		return h.do(t, "PUT", "/api/v1/sessions/"+s.ID+"/restriction", h.a.Auth(), "application/json", []byte(body))
	}
	wantProblem(t, restrict(`{"groups":[{"group":"no-such-group","mode":"ro"}]}`), http.StatusBadRequest, "invalid-request")
	wantProblem(t, restrict(`{"groups":[{"group":"`+g.ID+`","mode":"admin"}]}`), http.StatusBadRequest, "invalid-request")
	res = restrict(`{"groups":[{"group":"` + g.ID + `","mode":"ro"}]}`)
	wantStatus(t, res, http.StatusOK)
	if contains(res.body, "restricted\"}") || contains(res.body, "case") {
		t.Errorf("the restriction answer shows session content: %s", res.body)
	}
	h.auditEvent(t, h.a.ID, res.header.Get("X-Request-Id"), "session.restrict")

	listed := func(auth string) bool {
		res := h.do(t, "GET", "/api/v1/sessions", auth, "", nil)
		wantStatus(t, res, http.StatusOK)
		return contains(res.body, s.ID)
	}
	// Outside the group: absent, for the admin too.
	for _, auth := range []string{h.a.Auth(), walt} {
		wantProblem(t, h.do(t, "GET", "/api/v1/sessions/"+s.ID, auth, "", nil), http.StatusNotFound, "not-found")
		if listed(auth) {
			t.Error("a non-member lists the restricted session")
		}
	}
	// The ro member reads, cannot change.
	wantStatus(t, h.do(t, "GET", "/api/v1/sessions/"+s.ID, vera, "", nil), http.StatusOK)
	if !listed(vera) {
		t.Error("the member does not list the restricted session")
	}
	before := h.snapshot(t)
	wantProblem(t, h.do(t, "POST", "/api/v1/sessions/"+s.ID+"/cancel", vera, "", nil), http.StatusForbidden, "forbidden")
	h.unchanged(t, before)
	// rw lets the member change it; lifting the restriction shows it again.
	wantStatus(t, restrict(`{"groups":[{"group":"`+g.ID+`","mode":"rw"}]}`), http.StatusOK)
	wantStatus(t, h.do(t, "POST", "/api/v1/sessions/"+s.ID+"/cancel", vera, "", nil), http.StatusOK)
	wantStatus(t, restrict(`{"groups":[]}`), http.StatusOK)
	wantStatus(t, h.do(t, "GET", "/api/v1/sessions/"+s.ID, walt, "", nil), http.StatusOK)
	// Another tenant cannot restrict it.
	wantProblem(t, h.do(t, "PUT", "/api/v1/sessions/"+s.ID+"/restriction", h.b.Auth(), "application/json", []byte(`{"groups":[]}`)), http.StatusNotFound, "not-found")
}
