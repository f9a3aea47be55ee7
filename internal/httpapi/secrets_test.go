package httpapi_test

import (
	"bytes"
	"encoding/json"
	"github.com/idvault/idvault/internal/audit"
	"github.com/idvault/idvault/internal/httpapi"
	"github.com/idvault/idvault/internal/identity"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/idvault/idvault/internal/authz"
)

// TestSecretsWriteOnly stores an admin-entered secret and then tries every
// way to get it back: no route returns it, and it is in clear neither in the
// database files nor in the log.
func TestSecretsWriteOnly(t *testing.T) {
	h := newHarness(t)
	value := marker(t, "webhook-secret")
	body := []byte(`{"value":"` + value + `"}`)

	res := h.do(t, "PUT", "/api/v1/settings/secrets/crm.signing", h.a.Auth(), "application/json", body)
	wantStatus(t, res, http.StatusNoContent)
	h.auditEvent(t, h.a.ID, res.header.Get("X-Request-Id"), "secret.write")

	res = h.do(t, "GET", "/api/v1/settings/secrets", h.a.Auth(), "", nil)
	wantStatus(t, res, http.StatusOK)
	var list struct {
		Items []struct{ Name string } `json:"items"`
	}
	if err := json.Unmarshal(res.body, &list); err != nil || len(list.Items) != 1 || list.Items[0].Name != "crm.signing" {
		t.Fatalf("GET secrets = %s, %v", res.body, err)
	}
	if bytes.Contains(res.body, []byte(value)) {
		t.Error("the secret list returns the value")
	}
	// The platform itself can read it back, sealed by the root key.
	got, err := h.keyring.Secret(t.Context(), h.a.ID, "crm.signing")
	if err != nil || string(got.Bytes()) != value {
		t.Errorf("keyring.Secret = %v, want the stored value", err)
	}

	for _, tc := range []struct {
		name, method, path, auth, ctype string
		body                            []byte
		status                          int
		slug                            string
	}{
		{"no GET of one secret", "GET", "/api/v1/settings/secrets/crm.signing", h.a.Auth(), "", nil, 405, "method-not-allowed"},
		{"bad name", "PUT", "/api/v1/settings/secrets/Bad%20Name", h.a.Auth(), "application/json", body, 400, "invalid-request"},
		{"empty value", "PUT", "/api/v1/settings/secrets/x", h.a.Auth(), "application/json", []byte(`{"value":""}`), 400, "invalid-request"},
		{"missing value", "PUT", "/api/v1/settings/secrets/x", h.a.Auth(), "application/json", []byte(`{}`), 400, "invalid-request"},
		{"value too long", "PUT", "/api/v1/settings/secrets/x", h.a.Auth(), "application/json", []byte(`{"value":"` + strings.Repeat("a", 4097) + `"}`), 400, "invalid-request"},
		{"value not a string", "PUT", "/api/v1/settings/secrets/x", h.a.Auth(), "application/json", []byte(`{"value":7}`), 400, "invalid-request"},
		{"other tenant deletes", "DELETE", "/api/v1/settings/secrets/crm.signing", h.b.Auth(), "", nil, 404, "not-found"},
		{"unknown secret", "DELETE", "/api/v1/settings/secrets/nope", h.a.Auth(), "", nil, 404, "not-found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := h.snapshot(t)
			wantProblem(t, h.do(t, tc.method, tc.path, tc.auth, tc.ctype, tc.body), tc.status, tc.slug)
			h.unchanged(t, before)
		})
	}

	_, integ := h.newKey(t, h.a.ID, []string{authz.RoleIntegration}, nil)
	wantProblem(t, h.do(t, "GET", "/api/v1/settings/secrets", "ApiKey "+integ, "", nil), http.StatusForbidden, "forbidden")
	wantProblem(t, h.do(t, "PUT", "/api/v1/settings/secrets/x", "ApiKey "+integ, "application/json", body), http.StatusForbidden, "forbidden")

	res = h.do(t, "GET", "/api/v1/settings/secrets", h.b.Auth(), "", nil)
	if bytes.Contains(res.body, []byte("crm.signing")) {
		t.Error("another tenant sees the secret's name")
	}
	if leaks := filesContaining(t, h.dbDir, map[string][]byte{"secret": []byte(value)}); len(leaks) > 0 {
		t.Errorf("the secret is in clear in %v", leaks)
	}
	if bytes.Contains(h.log.Bytes(), []byte(value)) {
		t.Error("the secret is in the log")
	}

	wantStatus(t, h.do(t, "DELETE", "/api/v1/settings/secrets/crm.signing", h.a.Auth(), "", nil), http.StatusNoContent)
	if _, err := h.keyring.Secret(t.Context(), h.a.ID, "crm.signing"); err == nil {
		t.Error("the deleted secret still opens")
	}
}

// TestReservedSecretNames checks that the admin secrets API can neither
// write, delete nor list the webhook signing secrets the platform keeps
// among the tenant's secrets.
func TestReservedSecretNames(t *testing.T) {
	h := newHarness(t)
	if err := h.keyring.PutSecret(t.Context(), h.a.ID, "webhook.sub1.abcd", []byte("whsec_platform")); err != nil {
		t.Fatal(err)
	}
	before := h.snapshot(t)
	wantProblem(t, h.do(t, "PUT", "/api/v1/settings/secrets/webhook.sub1.abcd", h.a.Auth(), jsonType, []byte(`{"value":"attacker"}`)),
		http.StatusBadRequest, "invalid-request")
	wantProblem(t, h.do(t, "DELETE", "/api/v1/settings/secrets/webhook.sub1.abcd", h.a.Auth(), "", nil),
		http.StatusBadRequest, "invalid-request")
	h.unchanged(t, before)
	v, err := h.keyring.Secret(t.Context(), h.a.ID, "webhook.sub1.abcd")
	if err != nil || string(v.Bytes()) != "whsec_platform" {
		t.Errorf("the platform's secret after the attempts = %v; want it unchanged", err)
	}
	res := h.do(t, "GET", "/api/v1/settings/secrets", h.a.Auth(), "", nil)
	wantStatus(t, res, http.StatusOK)
	if strings.Contains(string(res.body), "webhook.") {
		t.Errorf("secret list shows a reserved name: %s", res.body)
	}
}

// TestPolicyRetention sets and reads the tenant's session retention and
// refuses values outside 0..3650 days, changing nothing.
func TestPolicyRetention(t *testing.T) {
	h := newHarness(t)
	wantStatus(t, h.do(t, "PUT", "/api/v1/settings/policy", h.a.Auth(), jsonType, []byte(`{"requireMFA":false,"keepSessionsForDays":30}`)), http.StatusOK)
	res := h.do(t, "GET", "/api/v1/settings/policy", h.a.Auth(), "", nil)
	wantStatus(t, res, http.StatusOK)
	if !strings.Contains(string(res.body), `"keepSessionsForDays":30`) {
		t.Errorf("policy = %s, want keepSessionsForDays 30", res.body)
	}
	for _, bad := range []string{`{"requireMFA":false,"keepSessionsForDays":-1}`, `{"requireMFA":false,"keepSessionsForDays":3651}`,
		`{"requireMFA":false,"keepSessionsForDays":"30"}`, `{"requireMFA":false,"keepSessionsForDays":1.5}`} {
		wantProblem(t, h.do(t, "PUT", "/api/v1/settings/policy", h.a.Auth(), jsonType, []byte(bad)), http.StatusBadRequest, "invalid-request")
	}
	if res := h.do(t, "GET", "/api/v1/settings/policy", h.a.Auth(), "", nil); !strings.Contains(string(res.body), `"keepSessionsForDays":30`) {
		t.Errorf("policy after refused changes = %s, want keepSessionsForDays still 30", res.body)
	}
}

// TestReadyzAuditLag checks that /readyz reports the audit pipeline behind
// when an event has waited in the outbox longer than AuditLagWarning, and
// stays ready: the API goes on recording events in the outbox.
func TestReadyzAuditLag(t *testing.T) {
	h := newHarness(t)
	res := h.do(t, "GET", "/readyz", "", "", nil)
	wantStatus(t, res, http.StatusOK)
	if !strings.Contains(string(res.body), `"audit":"ok"`) {
		t.Fatalf("readyz with an empty outbox = %s, want audit ok", res.body)
	}
	em := audit.NewEmitter(h.backend, h.barrier, nil)
	if err := em.Emit(t.Context(), audit.Event{Tenant: h.a.ID, Actor: audit.Actor{Type: "system", ID: "test"}, Action: "test.old",
		Outcome: audit.Success, Time: h.clock.Now().Add(-httpapi.AuditLagWarning - time.Second)}); err != nil {
		t.Fatal(err)
	}
	res = h.do(t, "GET", "/readyz", "", "", nil)
	wantStatus(t, res, http.StatusOK)
	if !strings.Contains(string(res.body), `"audit":"behind"`) {
		t.Errorf("readyz with an event waiting past the warning = %s, want audit behind", res.body)
	}
}

// TestAccessPurposeHeader sends a stated purpose that is too long or holds
// control characters: refused with 400 before anything is read or recorded;
// a valid one is recorded in the read's audit event.
func TestAccessPurposeHeader(t *testing.T) {
	h := newHarness(t)
	s := h.createSession(t, h.a, `{}`)
	path := "/api/v1/sessions/" + s.ID
	before := len(h.auditEvents(t, h.a.ID))
	for _, bad := range []string{strings.Repeat("p", 201), "tab\there", "zero\u200bwidth", "no\u00a0break"} {
		wantProblem(t, h.get(t, path, h.a.Auth(), httpapi.PurposeHeader, bad), http.StatusBadRequest, "invalid-request")
	}
	if n := len(h.auditEvents(t, h.a.ID)); n != before {
		t.Errorf("refused reads wrote %d audit events, want none", n-before)
	}
	res := h.get(t, path, h.a.Auth(), httpapi.PurposeHeader, "customer complaint #1234")
	wantStatus(t, res, http.StatusOK)
	ev := h.auditEvent(t, h.a.ID, res.header.Get("X-Request-Id"), "session.read")
	if ev.Purpose != "customer complaint #1234" {
		t.Errorf("session.read purpose = %q, want the stated one", ev.Purpose)
	}
}

// TestSignInEvents checks that a console sign-in and a token sign-in are
// recorded with the signed-in user as the actor and the session or token
// they opened as the resource (the event commits with that record).
func TestSignInEvents(t *testing.T) {
	h := newHarness(t)
	var userID string
	if err := h.identity.Users(t.Context(), h.a.ID, func(u identity.User) error {
		if u.Username.Value() == h.a.Username {
			userID = u.ID
		}
		return nil
	}); err != nil || userID == "" {
		t.Fatalf("admin user of tenant a: %v", err)
	}
	cl := h.login(t, h.a)
	parts := strings.Split(cl.cookie, ".")
	res := h.do(t, "POST", "/api/v1/auth/token", "", jsonType,
		[]byte(`{"tenantId":"`+h.a.ID+`","username":"`+h.a.Username+`","password":"`+h.a.Password+`"}`))
	wantStatus(t, res, http.StatusOK)
	var tok struct {
		AccessToken string `json:"accessToken"`
	}
	if err := json.Unmarshal(res.body, &tok); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"auth.login": parts[2], "auth.token": strings.Split(tok.AccessToken, ".")[2]}
	for _, ev := range h.auditEvents(t, h.a.ID) {
		id, ok := want[ev.Action]
		if !ok {
			continue
		}
		delete(want, ev.Action)
		if ev.Actor.Type != "user" || ev.Actor.ID != userID || ev.Resource.ID != id {
			t.Errorf("%s event: actor %s/%s, resource %s; want user/%s and %s", ev.Action, ev.Actor.Type, ev.Actor.ID, ev.Resource.ID, userID, id)
		}
	}
	if len(want) > 0 {
		t.Errorf("no event for %v", want)
	}
}
