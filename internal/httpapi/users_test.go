package httpapi_test

import (
	"encoding/json"
	"net/http"
	"testing"
)

// TestUsers creates users through the API and tries to escalate: a key
// that may write users cannot create an admin, and cannot disable one.
func TestUsers(t *testing.T) {
	h := newHarness(t)
	res := h.do(t, "POST", "/api/v1/users", h.a.Auth(), "application/json", []byte(`{"username":"Vera@Example.com","roles":["verifier"]}`))
	wantStatus(t, res, http.StatusCreated)
	var u struct{ ID, Username, Password string }
	if err := json.Unmarshal(res.body, &u); err != nil || u.Username != "vera@example.com" || len(u.Password) < 20 {
		t.Fatalf("create user = %s, %v", res.body, err)
	}
	wantProblem(t, h.do(t, "POST", "/api/v1/users", h.a.Auth(), "application/json", []byte(`{"username":"vera@example.com","roles":["auditor"]}`)), http.StatusConflict, "exists")
	for _, bad := range []string{`{"username":"","roles":["auditor"]}`, `{"username":"x","roles":[]}`, `{"username":"x","roles":["root"]}`, `{"username":"x","roles":["device"]}`} {
		wantProblem(t, h.do(t, "POST", "/api/v1/users", h.a.Auth(), "application/json", []byte(bad)), http.StatusBadRequest, "invalid-request")
	}
	// A key holding user:write and the verifier's permissions only.
	res = h.do(t, "POST", "/api/v1/api-keys", h.a.Auth(), "application/json",
		[]byte(`{"name":"hr","permissions":["user:write","user:read","session:read_all","session:write_all","file:read_all","profile:read_all"]}`))
	wantStatus(t, res, http.StatusCreated)
	var k struct{ Key string }
	_ = json.Unmarshal(res.body, &k)
	hr := "ApiKey " + k.Key
	before := h.snapshot(t)
	wantProblem(t, h.do(t, "POST", "/api/v1/users", hr, "application/json", []byte(`{"username":"mallory","roles":["admin"]}`)), http.StatusForbidden, "escalation")
	h.unchanged(t, before)
	wantStatus(t, h.do(t, "POST", "/api/v1/users", hr, "application/json", []byte(`{"username":"val","roles":["verifier"]}`)), http.StatusCreated)

	res = h.do(t, "GET", "/api/v1/users", hr, "", nil)
	wantStatus(t, res, http.StatusOK)
	var l struct {
		Items []struct {
			ID, Username string
			Roles        []string
		}
	}
	_ = json.Unmarshal(res.body, &l)
	adminID := ""
	for _, it := range l.Items {
		if it.Username == "admin" {
			adminID = it.ID
		}
	}
	wantProblem(t, h.do(t, "POST", "/api/v1/users/"+adminID+"/disable", hr, "", nil), http.StatusForbidden, "escalation")
	wantStatus(t, h.do(t, "POST", "/api/v1/users/"+u.ID+"/disable", hr, "", nil), http.StatusNoContent)
	wantProblem(t, h.do(t, "POST", "/api/v1/auth/token", "", "application/json", []byte(`{"tenantId":"`+h.a.ID+`","username":"vera@example.com","password":"`+u.Password+`"}`)), http.StatusUnauthorized, "invalid-credentials")
	wantStatus(t, h.do(t, "POST", "/api/v1/users/"+u.ID+"/enable", h.a.Auth(), "", nil), http.StatusNoContent)
	wantStatus(t, h.do(t, "POST", "/api/v1/auth/token", "", "application/json", []byte(`{"tenantId":"`+h.a.ID+`","username":"vera@example.com","password":"`+u.Password+`"}`)), http.StatusOK)
	wantProblem(t, h.do(t, "POST", "/api/v1/users/"+u.ID+"/disable", h.b.Auth(), "", nil), http.StatusNotFound, "not-found")
}
