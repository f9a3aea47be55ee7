package httpapi_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// TestCrossTenantProbe walks the route table: for every route with an id
// in its path, tenant B's admin uses tenant A's ids and gets 404, exactly
// as for an unknown id, and nothing of tenant A changes. A new route is
// probed as soon as it is in the table.
func TestCrossTenantProbe(t *testing.T) {
	h := newHarness(t)
	s := h.createSession(t, h.a, `{"metadata":{"probe":true}}`)
	f := h.upload(t, h.a, s.ID, "selfie", "image/png", testPNG(t, 8, 8))
	wantStatus(t, h.do(t, "PUT", "/api/v1/settings/secrets/probe-secret", h.a.Auth(), "application/json", []byte(`{"value":"a's secret"}`)), http.StatusNoContent)
	ids := map[string]string{"{id}": s.ID, "{fileId}": f.ID, "{name}": "probe-secret"}
	// Routes whose {id} names another kind of record get one of tenant A's.
	res := h.do(t, "POST", "/api/v1/groups", h.a.Auth(), "application/json", []byte(`{"name":"probe group"}`))
	wantStatus(t, res, http.StatusCreated)
	var grp struct{ ID string }
	_ = json.Unmarshal(res.body, &grp)
	res = h.do(t, "POST", "/api/v1/users", h.a.Auth(), "application/json", []byte(`{"username":"probe-user","roles":["auditor"]}`))
	wantStatus(t, res, http.StatusCreated)
	var usr struct{ ID string }
	_ = json.Unmarshal(res.body, &usr)
	hook, delivery := h.webhookWithDelivery(t, h.a)
	ids["{deliveryId}"] = delivery
	wantStatus(t, h.do(t, "POST", "/api/v1/workflows", h.a.Auth(), "application/yaml", []byte(probeWorkflow)), http.StatusCreated)
	ids["{version}"] = "1"
	idOf := map[string]string{"/api/v1/groups/": grp.ID, "/api/v1/users/": usr.ID, "/api/v1/api-keys/": h.a.KeyID, "/api/v1/webhooks/": hook.ID}
	idOf["/api/v1/workflows/"] = "probe-wf"

	probed := 0
	for _, rt := range h.api.Routes() {
		if rt.Public || !strings.Contains(rt.Pattern, "{") {
			continue
		}
		path := rt.Pattern
		for prefix, id := range idOf {
			if strings.HasPrefix(path, prefix) {
				path = strings.Replace(path, "{id}", id, 1)
			}
		}
		for param, id := range ids {
			path = strings.ReplaceAll(path, param, id)
		}
		if strings.Contains(path, "{") {
			t.Errorf("%s %s: the probe knows no id for its parameter; add one", rt.Method, rt.Pattern)
			continue
		}
		var body []byte
		ctype := ""
		switch {
		case strings.HasSuffix(rt.Pattern, "/files") && rt.Method == "POST":
			path += "?kind=document_front"
			body, ctype = testPNG(t, 8, 8), "image/png"
		case strings.HasSuffix(rt.Pattern, "/restriction"):
			body, ctype = []byte(`{"groups":[]}`), "application/json"
		case strings.HasPrefix(rt.Pattern, "/api/v1/roles/"):
			body, ctype = []byte(`{"permissions":["session:read"]}`), "application/json"
		case strings.HasSuffix(rt.Pattern, "/members"):
			body, ctype = []byte(`{"members":[]}`), "application/json"
		case rt.Method == "PATCH":
			body, ctype = []byte(`{"active":false}`), "application/json"
		case rt.Method == "PUT":
			body, ctype = []byte(`{"value":"b's attempt"}`), "application/json"
		}
		t.Run(rt.Method+" "+rt.Pattern, func(t *testing.T) {
			before := h.snapshot(t)
			res := h.do(t, rt.Method, path, h.b.Auth(), ctype, body)
			if rt.Method == "PUT" && strings.HasPrefix(rt.Pattern, "/api/v1/roles/") {
				// Role names are per tenant too: B defines a role of its own.
				wantStatus(t, res, http.StatusOK)
			} else if rt.Method == "PUT" && strings.Contains(rt.Pattern, "/secrets/") {
				// Secret names are per tenant: B writes a secret of its
				// own, which the probe then removes again.
				wantStatus(t, res, http.StatusNoContent)
				if err := h.keyring.DeleteSecret(t.Context(), h.b.ID, "probe-secret"); err != nil {
					t.Fatal(err)
				}
			} else {
				wantProblem(t, res, http.StatusNotFound, "not-found")
				h.unchanged(t, before)
			}
			got, err := h.keyring.Secret(t.Context(), h.a.ID, "probe-secret")
			if err != nil || string(got.Bytes()) != "a's secret" {
				t.Errorf("tenant A's secret changed: %v", err)
			}
		})
		probed++
	}
	if probed < 6 {
		t.Errorf("probed %d routes; the route table has more with ids", probed)
	}
	wantStatus(t, h.do(t, "GET", "/api/v1/sessions/"+s.ID+"/files/"+f.ID, h.a.Auth(), "", nil), http.StatusOK)
	wantStatus(t, h.do(t, "GET", "/api/v1/sessions", h.a.Auth(), "", nil), http.StatusOK) // A's own key still works
}
