package httpapi_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/idvault/idvault/internal/authz"
)

// TestAPIKeys creates scoped keys and tries to escalate: a key never holds
// more than its creator, works only within its permissions, is listed and
// revoked only by who may, stops at revocation and expiry, and records its
// last use.
func TestAPIKeys(t *testing.T) {
	h := newHarness(t)
	create := func(auth, body string) response {
		return h.do(t, "POST", "/api/v1/api-keys", auth, "application/json", []byte(body))
	}
	exp := h.clock.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	res := create(h.a.Auth(), `{"name":"reader","permissions":["session:read_all","session:write"],"expiresAt":"`+exp+`"}`)
	wantStatus(t, res, http.StatusCreated)
	var k struct{ ID, Key string }
	if err := json.Unmarshal(res.body, &k); err != nil || k.Key == "" {
		t.Fatalf("create = %s, %v", res.body, err)
	}
	scoped := "ApiKey " + k.Key
	wantStatus(t, h.do(t, "GET", "/api/v1/sessions", scoped, "", nil), http.StatusOK)
	s := h.createSession(t, tenant{ID: h.a.ID, Key: k.Key}, `{}`)
	wantProblem(t, h.do(t, "POST", "/api/v1/sessions/"+s.ID+"/files?kind=selfie", scoped, "image/png", testPNG(t, 8, 8)), http.StatusForbidden, "forbidden")
	wantProblem(t, create(scoped, `{"name":"x","permissions":["session:read"]}`), http.StatusForbidden, "forbidden") // no apikey:write

	// A key that may write keys cannot mint a stronger one.
	res = create(h.a.Auth(), `{"name":"minter","permissions":["apikey:write","apikey:read","apikey:delete","session:read"]}`)
	wantStatus(t, res, http.StatusCreated)
	var m struct{ Key string }
	_ = json.Unmarshal(res.body, &m)
	integ := m.Key
	_, plain := h.newKey(t, h.a.ID, []string{authz.RoleIntegration}, nil)
	wantProblem(t, create("ApiKey "+plain, `{"name":"x","permissions":["session:read"]}`), http.StatusForbidden, "forbidden")
	before := h.snapshot(t)
	res = create("ApiKey "+integ, `{"name":"up","permissions":["session:read_all"]}`)
	wantProblem(t, res, http.StatusForbidden, "escalation")
	h.auditEvent(t, h.a.ID, res.header.Get("X-Request-Id"), "access.denied")
	wantProblem(t, create("ApiKey "+integ, `{"name":"up","permissions":["apikey:write_all"]}`), http.StatusForbidden, "escalation")
	h.unchanged(t, before)
	for _, bad := range []string{`{"name":"","permissions":["session:read"]}`, `{"name":"n","permissions":[]}`,
		`{"name":"n","permissions":["root:everything"]}`, `{"name":"n","permissions":["session:read"],"expiresAt":"2000-01-01T00:00:00Z"}`} {
		wantProblem(t, create("ApiKey "+integ, bad), http.StatusBadRequest, "invalid-request")
	}
	res = create("ApiKey "+integ, `{"name":"sub","permissions":["session:read"]}`)
	wantStatus(t, res, http.StatusCreated)
	var sub struct{ ID string }
	_ = json.Unmarshal(res.body, &sub)

	// Lists: the integration key sees the key it made; the admin all.
	list := func(auth string) []struct {
		ID, LastUsedFrom string
		LastUsedAt       *time.Time
	} {
		res := h.do(t, "GET", "/api/v1/api-keys", auth, "", nil)
		wantStatus(t, res, http.StatusOK)
		if bytes.Contains(res.body, []byte(k.Key[len(k.Key)-20:])) {
			t.Error("the key list holds a key secret")
		}
		var l struct {
			Items []struct {
				ID, LastUsedFrom string
				LastUsedAt       *time.Time
			}
		}
		if err := json.Unmarshal(res.body, &l); err != nil {
			t.Fatal(err)
		}
		return l.Items
	}
	if got := list("ApiKey " + integ); len(got) != 1 || got[0].ID != sub.ID {
		t.Errorf("integration key list = %+v, want only its own key", got)
	}
	found := false
	for _, it := range list(h.a.Auth()) {
		if it.ID == k.ID {
			found = true
			if it.LastUsedAt == nil || it.LastUsedFrom == "" {
				t.Errorf("the used key's last use is not recorded: %+v", it)
			}
		}
	}
	if !found {
		t.Error("the admin does not list the scoped key")
	}

	// Revocation and expiry.
	wantProblem(t, h.do(t, "DELETE", "/api/v1/api-keys/"+k.ID, "ApiKey "+integ, "", nil), http.StatusNotFound, "not-found")
	wantProblem(t, h.do(t, "DELETE", "/api/v1/api-keys/"+k.ID, h.b.Auth(), "", nil), http.StatusNotFound, "not-found")
	h.clock.Advance(time.Hour + time.Second)
	wantProblem(t, h.do(t, "GET", "/api/v1/sessions", scoped, "", nil), http.StatusUnauthorized, "unauthenticated")
	wantStatus(t, h.do(t, "DELETE", "/api/v1/api-keys/"+sub.ID, h.a.Auth(), "", nil), http.StatusNoContent)
	wantStatus(t, h.do(t, "GET", "/api/v1/api-keys", "ApiKey "+integ, "", nil), http.StatusOK)
}
