package httpapi_test

import (
	"encoding/json"
	"net/http"
	"testing"
)

// TestCustomRoles defines a custom role, gives it to a user and tries to
// escalate through roles: a role can hold only its definer's permissions,
// built-in names cannot be redefined, and the user gets exactly the role's
// permissions.
func TestCustomRoles(t *testing.T) {
	h := newHarness(t)
	put := func(auth, name, body string) response {
		return h.do(t, "PUT", "/api/v1/roles/"+name, auth, "application/json", []byte(body))
	}
	wantStatus(t, put(h.a.Auth(), "reviewer", `{"permissions":["session:read_all","file:read_all"]}`), http.StatusOK)
	wantProblem(t, put(h.a.Auth(), "admin", `{"permissions":["session:read"]}`), http.StatusBadRequest, "invalid-request")
	wantProblem(t, put(h.a.Auth(), "x", `{"permissions":["root:all"]}`), http.StatusBadRequest, "invalid-request")
	res := h.do(t, "POST", "/api/v1/api-keys", h.a.Auth(), "application/json", []byte(`{"name":"rm","permissions":["role:write","session:read"]}`))
	wantStatus(t, res, http.StatusCreated)
	var k struct{ Key string }
	_ = json.Unmarshal(res.body, &k)
	before := h.snapshot(t)
	wantProblem(t, put("ApiKey "+k.Key, "sneaky", `{"permissions":["session:read_all"]}`), http.StatusForbidden, "escalation")
	h.unchanged(t, before)

	res = h.do(t, "GET", "/api/v1/roles", h.a.Auth(), "", nil)
	wantStatus(t, res, http.StatusOK)
	if !contains(res.body, `"reviewer"`) || !contains(res.body, `"verifier"`) {
		t.Errorf("roles = %s, want built-in and custom roles", res.body)
	}

	s := h.createSession(t, h.a, `{}`)
	res = h.do(t, "POST", "/api/v1/users", h.a.Auth(), "application/json", []byte(`{"username":"rita","roles":["reviewer"]}`))
	wantStatus(t, res, http.StatusCreated)
	var u struct{ Password string }
	_ = json.Unmarshal(res.body, &u)
	res = h.do(t, "POST", "/api/v1/auth/token", "", "application/json", []byte(`{"tenantId":"`+h.a.ID+`","username":"rita","password":"`+u.Password+`"}`))
	wantStatus(t, res, http.StatusOK)
	var tok struct{ AccessToken string }
	_ = json.Unmarshal(res.body, &tok)
	rita := "Bearer " + tok.AccessToken
	wantStatus(t, h.do(t, "GET", "/api/v1/sessions/"+s.ID, rita, "", nil), http.StatusOK)
	wantProblem(t, h.do(t, "POST", "/api/v1/sessions/"+s.ID+"/cancel", rita, "", nil), http.StatusForbidden, "forbidden")
	wantProblem(t, h.do(t, "GET", "/api/v1/users", rita, "", nil), http.StatusForbidden, "forbidden")
	// Narrowing the role takes effect at once.
	wantStatus(t, put(h.a.Auth(), "reviewer", `{"permissions":["file:read_all"]}`), http.StatusOK)
	wantProblem(t, h.do(t, "GET", "/api/v1/sessions/"+s.ID, rita, "", nil), http.StatusForbidden, "forbidden")
}
