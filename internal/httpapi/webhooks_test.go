package httpapi_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/idvault/idvault/internal/audit"
	"github.com/idvault/idvault/internal/authz"
	"github.com/idvault/idvault/internal/httpapi"
	"github.com/idvault/idvault/internal/session"
	"github.com/idvault/idvault/internal/webhook"
)

// webhookDoc is a webhook subscription as the API returns it; Secret is
// set only in the answers of create and rotate-secret.
type webhookDoc struct {
	ID                  string     `json:"id"`
	URL                 string     `json:"url"`
	EventTypes          []string   `json:"eventTypes"`
	Active              bool       `json:"active"`
	CreatedAt           time.Time  `json:"createdAt"`
	UpdatedAt           time.Time  `json:"updatedAt"`
	SecretRotatedAt     *time.Time `json:"secretRotatedAt"`
	PreviousSecretUntil *time.Time `json:"previousSecretUntil"`
	Secret              string     `json:"secret"`
}

// deliveryDoc is a delivery as the API returns it.
type deliveryDoc struct {
	ID           string `json:"id"`
	Subscription string `json:"subscription"`
	EventID      string `json:"eventId"`
	EventType    string `json:"eventType"`
	Status       string `json:"status"`
	AttemptCount int    `json:"attemptCount"`
	Attempts     []struct {
		StatusCode int    `json:"statusCode"`
		Error      string `json:"error"`
	} `json:"attempts"`
	Redeliveries int `json:"redeliveries"`
}

type deliveryListDoc struct {
	Items      []deliveryDoc `json:"items"`
	NextCursor string        `json:"nextCursor"`
}

// createWebhook subscribes url for tn through the API and returns the
// answer, secret included.
func (h *harness) createWebhook(t *testing.T, tn tenant, url string, types ...string) webhookDoc {
	t.Helper()
	if len(types) == 0 {
		types = []string{"session.created", "session.completed"}
	}
	body, err := json.Marshal(map[string]any{"url": url, "eventTypes": types})
	if err != nil {
		t.Fatal(err)
	}
	res := h.do(t, "POST", "/api/v1/webhooks", tn.Auth(), "application/json", body)
	wantStatus(t, res, http.StatusCreated)
	return decodeJSON[webhookDoc](t, res)
}

// enqueue records a session.created event for tn's subscriptions, as the
// workflow does, and returns the deliveries' ids.
func (h *harness) enqueue(t *testing.T, tn tenant, eventID string) []string {
	t.Helper()
	ids, err := h.webhooks.Enqueue(t.Context(), tn.ID, webhook.Event{ID: eventID, Type: webhook.EventSessionCreated,
		Data: webhook.Data{SessionID: "sess-" + eventID, Status: session.StatusPending}})
	if err != nil {
		t.Fatalf("Enqueue(%s) = %v, want nil", eventID, err)
	}
	return ids
}

// webhookWithDelivery gives tn a subscription (to a port nothing listens
// on) and one delivery of it.
func (h *harness) webhookWithDelivery(t *testing.T, tn tenant) (webhookDoc, string) {
	t.Helper()
	hook := h.createWebhook(t, tn, "https://127.0.0.1:9/probe", "session.created")
	ids := h.enqueue(t, tn, "evt-"+newID())
	if len(ids) != 1 {
		t.Fatalf("Enqueue made %d deliveries, want 1", len(ids))
	}
	return hook, ids[0]
}

// deliverNext receives one delivery message and handles it as the webhook
// worker does, synchronously.
func (h *harness) deliverNext(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	d, err := h.broker.Receive(ctx, webhook.Topic)
	if err != nil {
		t.Fatalf("Receive(%s) = %v, want a message", webhook.Topic, err)
	}
	if err := h.webhooks.Handle(ctx, d.Body()); err != nil {
		t.Fatalf("Handle = %v, want nil", err)
	}
	if err := d.Ack(ctx); err != nil {
		t.Fatalf("Ack = %v, want nil", err)
	}
}

// hookRequest is one request a receiver got, with the outcome of
// webhook.Verify for each secret it knew then.
type hookRequest struct {
	eventID string
	verify  map[string]error
}

// receiver is the business's endpoint: https on loopback with the
// harness's receiver certificate; it verifies every request's signature
// with webhook.Verify against the secrets it was given.
type receiver struct {
	srv     *httptest.Server
	mu      sync.Mutex
	secrets map[string]string
	got     chan hookRequest
}

func (h *harness) newReceiver(t *testing.T) *receiver {
	t.Helper()
	rc := &receiver{secrets: map[string]string{}, got: make(chan hookRequest, 16)}
	rc.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		req := hookRequest{eventID: r.Header.Get("Idvault-Event-Id"), verify: map[string]error{}}
		rc.mu.Lock()
		for label, s := range rc.secrets {
			req.verify[label] = webhook.Verify([]byte(s), r.Header.Get(webhook.HeaderSignature), body, h.clock.Now(), webhook.DefaultTolerance)
		}
		rc.mu.Unlock()
		rc.got <- req
		w.WriteHeader(http.StatusNoContent)
	}))
	rc.srv.TLS = &tls.Config{Certificates: []tls.Certificate{h.receiverCert}}
	rc.srv.StartTLS()
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) URL() string { return rc.srv.URL + "/hooks/idvault?token=" }

func (rc *receiver) setSecret(label, s string) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.secrets[label] = s
}

// next returns the request the receiver got since the last call; the
// delivery was handled synchronously, so it is there or the test fails.
func (rc *receiver) next(t *testing.T) hookRequest {
	t.Helper()
	select {
	case req := <-rc.got:
		return req
	default:
		t.Fatal("the receiver got no request")
		return hookRequest{}
	}
}

// TestWebhookSecretShownOnce: the answer of create carries the signing
// secret; no other answer, the database files, the log or the audit events
// hold it, nor the URL's query.
func TestWebhookSecretShownOnce(t *testing.T) {
	h := newHarness(t)
	token := marker(t, "token")
	hook := h.createWebhook(t, h.a, "https://127.0.0.1:8443/hooks?token="+token, "session.completed", "session.created", "session.created")
	if !strings.HasPrefix(hook.Secret, webhook.SecretPrefix) || len(hook.Secret) < 40 {
		t.Fatalf("create secret = %q, want a whsec_ secret", hook.Secret)
	}
	if !hook.Active || strings.Join(hook.EventTypes, ",") != "session.created,session.completed" {
		t.Errorf("created = %+v, want active with session.created,session.completed", hook)
	}
	for _, path := range []string{"/api/v1/webhooks", "/api/v1/webhooks/" + hook.ID, "/api/v1/webhooks/" + hook.ID + "/deliveries"} {
		res := h.do(t, "GET", path, h.a.Auth(), "", nil)
		wantStatus(t, res, http.StatusOK)
		if contains(res.body, hook.Secret) || contains(res.body, `"secret"`) {
			t.Errorf("GET %s = %s, want no secret", path, res.body)
		}
	}
	list := decodeJSON[struct{ Items []webhookDoc }](t, h.do(t, "GET", "/api/v1/webhooks", h.a.Auth(), "", nil))
	if len(list.Items) != 1 || list.Items[0].ID != hook.ID {
		t.Errorf("list = %+v, want the one webhook", list.Items)
	}
	if found := filesContaining(t, h.dbDir, map[string][]byte{"secret": []byte(hook.Secret), "url token": []byte(token)}); len(found) > 0 {
		t.Errorf("found in clear in the database: %v", found)
	}
	if contains(h.log.Bytes(), hook.Secret) || contains(h.log.Bytes(), token) {
		t.Errorf("the log holds the secret or the URL's query")
	}
	evs, err := json.Marshal(h.auditEvents(t, h.a.ID))
	if err != nil {
		t.Fatal(err)
	}
	if contains(evs, hook.Secret) || contains(evs, token) || contains(evs, "127.0.0.1:8443") {
		t.Errorf("audit events hold the secret or the URL: %s", evs)
	}
	var created audit.Event
	for _, ev := range h.auditEvents(t, h.a.ID) {
		if ev.Action == "webhook.create" {
			created = ev
		}
	}
	if created.Resource.ID != hook.ID || created.Details["eventTypes"] != "session.created,session.completed" {
		t.Errorf("webhook.create event = %+v, want resource %s and its event types", created, hook.ID)
	}
}

// TestWebhookLifecycle: change, deactivate and delete a subscription, each
// audited; the signing secret goes with it.
func TestWebhookLifecycle(t *testing.T) {
	h := newHarness(t)
	hook := h.createWebhook(t, h.a, "https://127.0.0.1:8443/a")
	res := h.do(t, "PATCH", "/api/v1/webhooks/"+hook.ID, h.a.Auth(), "application/json",
		[]byte(`{"url":"https://127.0.0.1:8443/b","eventTypes":["review.required"],"active":false}`))
	wantStatus(t, res, http.StatusOK)
	got := decodeJSON[webhookDoc](t, res)
	if got.URL != "https://127.0.0.1:8443/b" || strings.Join(got.EventTypes, ",") != "review.required" || got.Active || got.Secret != "" {
		t.Errorf("PATCH = %+v, want the new url, review.required, inactive, no secret", got)
	}
	ev := h.auditEvent(t, h.a.ID, res.header.Get("X-Request-Id"), "webhook.update")
	if ev.Resource.ID != hook.ID || ev.Details["changed"] != "url,eventTypes,active" || ev.Details["active"] != "false" {
		t.Errorf("webhook.update event = %+v", ev)
	}
	if got := decodeJSON[webhookDoc](t, h.do(t, "GET", "/api/v1/webhooks/"+hook.ID, h.a.Auth(), "", nil)); got.URL != "https://127.0.0.1:8443/b" || got.Active {
		t.Errorf("GET after PATCH = %+v, want the change kept", got)
	}
	secrets, err := h.keyring.Secrets(t.Context(), h.a.ID)
	if err != nil || len(secrets) != 1 || !strings.HasPrefix(secrets[0].Name, webhook.SecretNamePrefix) {
		t.Fatalf("Secrets = %v, %v, want the webhook's signing secret", secrets, err)
	}

	res = h.do(t, "DELETE", "/api/v1/webhooks/"+hook.ID, h.a.Auth(), "", nil)
	wantStatus(t, res, http.StatusNoContent)
	if ev := h.auditEvent(t, h.a.ID, res.header.Get("X-Request-Id"), "webhook.delete"); ev.Resource.ID != hook.ID {
		t.Errorf("webhook.delete event = %+v, want resource %s", ev, hook.ID)
	}
	wantProblem(t, h.do(t, "GET", "/api/v1/webhooks/"+hook.ID, h.a.Auth(), "", nil), http.StatusNotFound, "not-found")
	wantProblem(t, h.do(t, "DELETE", "/api/v1/webhooks/"+hook.ID, h.a.Auth(), "", nil), http.StatusNotFound, "not-found")
	if secrets, err := h.keyring.Secrets(t.Context(), h.a.ID); err != nil || len(secrets) != 0 {
		t.Errorf("Secrets after delete = %v, %v, want none", secrets, err)
	}
}

// TestWebhookDeliveryRotateRedeliver: a receiver verifies deliveries with
// the secret from create; after a rotation with a grace period both
// secrets verify, after one without only the new one; a redelivered
// delivery reaches the receiver again, and its log records every attempt.
func TestWebhookDeliveryRotateRedeliver(t *testing.T) {
	h := newHarness(t)
	rc := h.newReceiver(t)
	hook := h.createWebhook(t, h.a, rc.URL()+marker(t, "q"), "session.created")
	rc.setSecret("first", hook.Secret)

	ids := h.enqueue(t, h.a, "evt-1")
	h.deliverNext(t)
	if req := rc.next(t); req.eventID != "evt-1" || req.verify["first"] != nil {
		t.Fatalf("first delivery = %+v, want evt-1 verified with the first secret", req)
	}

	// Rotate with the default grace (no body): both secrets sign.
	res := h.do(t, "POST", "/api/v1/webhooks/"+hook.ID+"/rotate-secret", h.a.Auth(), "", nil)
	wantStatus(t, res, http.StatusOK)
	second := decodeJSON[webhookDoc](t, res)
	if !strings.HasPrefix(second.Secret, webhook.SecretPrefix) || second.Secret == hook.Secret || second.PreviousSecretUntil == nil {
		t.Fatalf("rotate = %+v, want a new secret and a grace period", second)
	}
	if ev := h.auditEvent(t, h.a.ID, res.header.Get("X-Request-Id"), "webhook.rotate_secret"); ev.Details["graceSeconds"] != "86400" {
		t.Errorf("webhook.rotate_secret event = %+v, want graceSeconds 86400", ev)
	}
	rc.setSecret("second", second.Secret)
	res = h.do(t, "POST", "/api/v1/webhooks/"+hook.ID+"/deliveries/"+ids[0]+"/redeliver", h.a.Auth(), "", nil)
	wantStatus(t, res, http.StatusAccepted)
	if d := decodeJSON[deliveryDoc](t, res); d.Status != "pending" || d.Redeliveries != 1 {
		t.Errorf("redeliver = %+v, want pending with 1 redelivery", d)
	}
	ev := h.auditEvent(t, h.a.ID, res.header.Get("X-Request-Id"), "webhook.redeliver")
	if ev.Resource.ID != ids[0] || ev.Details["subscription"] != hook.ID || ev.Details["eventType"] != "session.created" {
		t.Errorf("webhook.redeliver event = %+v", ev)
	}
	h.deliverNext(t)
	if req := rc.next(t); req.eventID != "evt-1" || req.verify["first"] != nil || req.verify["second"] != nil {
		t.Fatalf("redelivery in the grace period = %+v, want evt-1 verified with both secrets", req)
	}

	// Rotate with grace 0: only the newest secret signs.
	res = h.do(t, "POST", "/api/v1/webhooks/"+hook.ID+"/rotate-secret", h.a.Auth(), "application/json", []byte(`{"graceSeconds":0}`))
	wantStatus(t, res, http.StatusOK)
	third := decodeJSON[webhookDoc](t, res)
	if third.Secret == "" || third.Secret == second.Secret || third.PreviousSecretUntil != nil {
		t.Fatalf("rotate with grace 0 = %+v, want a new secret and no grace", third)
	}
	rc.setSecret("third", third.Secret)
	wantStatus(t, h.do(t, "POST", "/api/v1/webhooks/"+hook.ID+"/deliveries/"+ids[0]+"/redeliver", h.a.Auth(), "", nil), http.StatusAccepted)
	h.deliverNext(t)
	req := rc.next(t)
	if req.verify["third"] != nil {
		t.Errorf("Verify(new secret) = %v, want nil", req.verify["third"])
	}
	if req.verify["second"] == nil || req.verify["first"] == nil {
		t.Errorf("Verify(revoked secrets) = %v, %v, want errors", req.verify["second"], req.verify["first"])
	}
	for _, path := range []string{"/api/v1/webhooks/" + hook.ID, "/api/v1/webhooks"} {
		body := h.do(t, "GET", path, h.a.Auth(), "", nil).body
		for _, s := range []string{hook.Secret, second.Secret, third.Secret} {
			if contains(body, s) {
				t.Errorf("GET %s shows a signing secret", path)
			}
		}
	}

	log := decodeJSON[deliveryListDoc](t, h.do(t, "GET", "/api/v1/webhooks/"+hook.ID+"/deliveries?limit=10", h.a.Auth(), "", nil))
	if len(log.Items) != 1 {
		t.Fatalf("delivery log = %+v, want 1 delivery", log)
	}
	d := log.Items[0]
	if d.ID != ids[0] || d.Status != "delivered" || d.AttemptCount != 3 || d.Redeliveries != 2 || len(d.Attempts) != 3 || d.Attempts[2].StatusCode != http.StatusNoContent {
		t.Errorf("delivery = %+v, want delivered after 3 attempts answered 204, 2 redeliveries", d)
	}
}

// TestWebhookDeliveryLogPages: the delivery log pages with a cursor,
// newest first.
func TestWebhookDeliveryLogPages(t *testing.T) {
	h := newHarness(t)
	hook := h.createWebhook(t, h.a, "https://127.0.0.1:9/x", "session.created")
	want := map[string]bool{}
	for i := range 3 {
		for _, id := range h.enqueue(t, h.a, "evt-"+string(rune('a'+i))) {
			want[id] = true
		}
		h.clock.Advance(time.Second)
	}
	var seen []string
	cursor := ""
	for range 4 {
		res := h.do(t, "GET", "/api/v1/webhooks/"+hook.ID+"/deliveries?limit=2&cursor="+cursor, h.a.Auth(), "", nil)
		wantStatus(t, res, http.StatusOK)
		page := decodeJSON[deliveryListDoc](t, res)
		for _, d := range page.Items {
			seen = append(seen, d.EventID)
			delete(want, d.ID)
		}
		if cursor = page.NextCursor; cursor == "" {
			break
		}
	}
	if strings.Join(seen, ",") != "evt-c,evt-b,evt-a" || len(want) != 0 {
		t.Errorf("pages = %v (missing %v), want evt-c,evt-b,evt-a", seen, want)
	}
}

// TestWebhookPermissions: the auditor and verifier roles hold no webhook
// permission; a key with webhook:read only reads. Every refusal is 403
// with an access.denied event and changes nothing.
func TestWebhookPermissions(t *testing.T) {
	h := newHarness(t)
	hook, delivery := h.webhookWithDelivery(t, h.a)
	_, auditor := h.newKey(t, h.a.ID, []string{authz.RoleAuditor}, nil)
	_, verifier := h.newKey(t, h.a.ID, []string{authz.RoleVerifier}, nil)
	res := h.do(t, "POST", "/api/v1/api-keys", h.a.Auth(), "application/json", []byte(`{"name":"reader","permissions":["webhook:read"]}`))
	wantStatus(t, res, http.StatusCreated)
	reader := decodeJSON[struct{ Key string }](t, res).Key

	id := "/api/v1/webhooks/" + hook.ID
	writes := []struct{ method, path, body string }{
		{"POST", "/api/v1/webhooks", `{"url":"https://127.0.0.1:8443/x","eventTypes":["session.created"]}`},
		{"PATCH", id, `{"active":false}`},
		{"DELETE", id, ""},
		{"POST", id + "/rotate-secret", `{}`},
		{"POST", id + "/deliveries/" + delivery + "/redeliver", ""},
	}
	reads := []string{"/api/v1/webhooks", id, id + "/deliveries"}
	for _, key := range []struct {
		name, key string
		read      bool
	}{{"auditor", auditor, false}, {"verifier", verifier, false}, {"webhook:read key", reader, true}} {
		t.Run(key.name, func(t *testing.T) {
			for _, w := range writes {
				before := h.snapshot(t)
				ctype := ""
				if w.body != "" {
					ctype = "application/json"
				}
				res := h.do(t, w.method, w.path, "ApiKey "+key.key, ctype, []byte(w.body))
				wantProblem(t, res, http.StatusForbidden, "forbidden")
				h.auditEvent(t, h.a.ID, res.header.Get("X-Request-Id"), "access.denied")
				h.unchanged(t, before)
			}
			for _, path := range reads {
				res := h.do(t, "GET", path, "ApiKey "+key.key, "", nil)
				if key.read {
					wantStatus(t, res, http.StatusOK)
					continue
				}
				wantProblem(t, res, http.StatusForbidden, "forbidden")
				h.auditEvent(t, h.a.ID, res.header.Get("X-Request-Id"), "access.denied")
			}
		})
	}
}

// TestWebhookRefusedTargets attacks the SSRF guard through the API: under
// the production policy (no allow-list) private, loopback, link-local,
// metadata and internal-name targets are refused with 400 naming url and
// nothing is stored; the metadata addresses stay refused where loopback is
// allowed, and plain http is refused.
func TestWebhookRefusedTargets(t *testing.T) {
	strict := newHarness(t, func(d *httpapi.Deps) { d.Webhooks = newWebhookService(t, d, webhook.Policy{}, nil) })
	loose := newHarness(t)
	looseHook := loose.createWebhook(t, loose.a, "https://127.0.0.1:8443/ok")
	cases := []struct {
		name string
		h    *harness
		url  string
	}{
		{"loopback", strict, "https://127.0.0.1/hook"},
		{"loopback v6", strict, "https://[::1]/hook"},
		{"localhost", strict, "https://localhost/hook"},
		{"private 10/8", strict, "https://10.0.0.5/hook"},
		{"private 192.168/16", strict, "https://192.168.1.1:8443/hook"},
		{"private 172.16/12", strict, "https://172.16.0.1/hook"},
		{"link-local", strict, "https://169.254.1.1/hook"},
		{"unique local v6", strict, "https://[fd12::1]/hook"},
		{"IPv4-mapped loopback", strict, "https://[::ffff:127.0.0.1]/hook"},
		{"unspecified", strict, "https://0.0.0.0/hook"},
		{"numeric host", strict, "https://2130706433/hook"},
		{"metadata", strict, "https://169.254.169.254/latest/meta-data/"},
		{"metadata where loopback is allowed", loose, "https://169.254.169.254/latest/meta-data/"},
		{"metadata v6 where loopback is allowed", loose, "https://[fd00:ec2::254]/"},
		{"http", loose, "http://127.0.0.1:8080/hook"},
		{"user info", loose, "https://user:pass@127.0.0.1/hook"},
		{"not a URL", loose, "::not a url"},
		{"other scheme", loose, "gopher://127.0.0.1/hook"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := tc.h
			before := h.snapshot(t)
			body, _ := json.Marshal(map[string]any{"url": tc.url, "eventTypes": []string{"session.created"}})
			res := h.do(t, "POST", "/api/v1/webhooks", h.a.Auth(), "application/json", body)
			wantField(t, wantProblem(t, res, http.StatusBadRequest, "invalid-request"), "url")
			if strings.Contains(tc.url, "://") && contains(res.body, strings.SplitN(tc.url, "://", 2)[1]) {
				t.Errorf("answer echoes the URL: %s", res.body)
			}
			h.unchanged(t, before)
			if h == loose {
				body, _ := json.Marshal(map[string]any{"url": tc.url})
				res := h.do(t, "PATCH", "/api/v1/webhooks/"+looseHook.ID, h.a.Auth(), "application/json", body)
				wantField(t, wantProblem(t, res, http.StatusBadRequest, "invalid-request"), "url")
				h.unchanged(t, before)
			}
		})
	}
	list := decodeJSON[struct{ Items []webhookDoc }](t, strict.do(t, "GET", "/api/v1/webhooks", strict.a.Auth(), "", nil))
	if len(list.Items) != 0 {
		t.Errorf("strict list = %+v, want none", list.Items)
	}
}

// TestWebhookBadInput: malformed or invalid requests are 400 (or 415) and
// change nothing.
func TestWebhookBadInput(t *testing.T) {
	h := newHarness(t)
	hook, delivery := h.webhookWithDelivery(t, h.a)
	id := "/api/v1/webhooks/" + hook.ID
	long := strings.Repeat("x", 100)
	cases := []struct {
		name, method, path, ctype, body string
		status                          int
		field                           string
	}{
		{"malformed JSON", "POST", "/api/v1/webhooks", "application/json", `{"url":`, 400, ""},
		{"not an object", "POST", "/api/v1/webhooks", "application/json", `["https://127.0.0.1/"]`, 400, ""},
		{"unknown field", "POST", "/api/v1/webhooks", "application/json", `{"url":"https://127.0.0.1:8443/","eventTypes":["session.created"],"secret":"mine"}`, 400, ""},
		{"bad event type", "POST", "/api/v1/webhooks", "application/json", `{"url":"https://127.0.0.1:8443/","eventTypes":["session.deleted"]}`, 400, "eventTypes"},
		{"long bad event type", "POST", "/api/v1/webhooks", "application/json", `{"url":"https://127.0.0.1:8443/","eventTypes":["` + long + `"]}`, 400, "eventTypes"},
		{"no event types", "POST", "/api/v1/webhooks", "application/json", `{"url":"https://127.0.0.1:8443/","eventTypes":[]}`, 400, "eventTypes"},
		{"no url", "POST", "/api/v1/webhooks", "application/json", `{"eventTypes":["session.created"]}`, 400, "url"},
		{"url too long", "POST", "/api/v1/webhooks", "application/json", `{"url":"https://127.0.0.1:8443/` + strings.Repeat("a", webhook.MaxURLLen) + `","eventTypes":["session.created"]}`, 400, "url"},
		{"http url", "POST", "/api/v1/webhooks", "application/json", `{"url":"http://127.0.0.1:8443/","eventTypes":["session.created"]}`, 400, "url"},
		{"wrong type", "POST", "/api/v1/webhooks", "application/json", `{"url":"https://127.0.0.1:8443/","eventTypes":"session.created"}`, 400, ""},
		{"not JSON", "POST", "/api/v1/webhooks", "text/plain", `url=https://127.0.0.1/`, 415, ""},
		{"patch nothing", "PATCH", id, "application/json", `{}`, 400, ""},
		{"patch unknown field", "PATCH", id, "application/json", `{"enabled":false}`, 400, ""},
		{"patch bad event type", "PATCH", id, "application/json", `{"eventTypes":["nope"]}`, 400, "eventTypes"},
		{"patch empty event types", "PATCH", id, "application/json", `{"eventTypes":[]}`, 400, "eventTypes"},
		{"patch http url", "PATCH", id, "application/json", `{"url":"http://127.0.0.1:8443/"}`, 400, "url"},
		{"patch wrong type", "PATCH", id, "application/json", `{"active":"no"}`, 400, ""},
		{"rotate negative grace", "POST", id + "/rotate-secret", "application/json", `{"graceSeconds":-1}`, 400, "graceSeconds"},
		{"rotate grace too long", "POST", id + "/rotate-secret", "application/json", `{"graceSeconds":604801}`, 400, "graceSeconds"},
		{"rotate unknown field", "POST", id + "/rotate-secret", "application/json", `{"grace":10}`, 400, ""},
		{"delete with a body", "DELETE", id, "application/json", `{}`, 400, ""},
		{"redeliver with a body", "POST", id + "/deliveries/" + delivery + "/redeliver", "application/json", `{}`, 400, ""},
		{"log limit 0", "GET", id + "/deliveries?limit=0", "", "", 400, "limit"},
		{"log limit 101", "GET", id + "/deliveries?limit=101", "", "", 400, "limit"},
		{"log unknown parameter", "GET", id + "/deliveries?status=failed", "", "", 400, "status"},
		{"log bad cursor", "GET", id + "/deliveries?cursor=bm90IGEgY3Vyc29y", "", "", 400, "cursor"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := h.snapshot(t)
			var body []byte
			if tc.body != "" {
				body = []byte(tc.body)
			}
			res := h.do(t, tc.method, tc.path, h.a.Auth(), tc.ctype, body)
			slug := "invalid-request"
			if tc.status == http.StatusUnsupportedMediaType {
				slug = "unsupported-media-type"
			}
			p := wantProblem(t, res, tc.status, slug)
			if tc.field != "" {
				wantField(t, p, tc.field)
			}
			if contains(res.body, long) {
				t.Errorf("answer echoes the caller's value: %s", res.body)
			}
			h.unchanged(t, before)
		})
	}
	got := decodeJSON[webhookDoc](t, h.do(t, "GET", id, h.a.Auth(), "", nil))
	if !got.Active || got.URL != hook.URL || got.SecretRotatedAt != nil || !got.UpdatedAt.Equal(hook.UpdatedAt) {
		t.Errorf("after the bad requests = %+v, want %+v", got, hook)
	}
}

// TestWebhookForeignIDs: a delivery id is found only under its own
// subscription of the caller's tenant: another subscription's, another
// tenant's, or an unknown one is 404 and nothing is redelivered.
func TestWebhookForeignIDs(t *testing.T) {
	h := newHarness(t)
	hookA, deliveryA := h.webhookWithDelivery(t, h.a)
	otherA := h.createWebhook(t, h.a, "https://127.0.0.1:9/other")
	hookB, _ := h.webhookWithDelivery(t, h.b)
	for _, tc := range []struct {
		name, auth, path string
	}{
		{"another subscription of the tenant", h.a.Auth(), "/api/v1/webhooks/" + otherA.ID + "/deliveries/" + deliveryA + "/redeliver"},
		{"own subscription, other tenant's delivery", h.b.Auth(), "/api/v1/webhooks/" + hookB.ID + "/deliveries/" + deliveryA + "/redeliver"},
		{"unknown delivery", h.a.Auth(), "/api/v1/webhooks/" + hookA.ID + "/deliveries/" + strings.Repeat("0", 32) + "/redeliver"},
		{"malformed delivery id", h.a.Auth(), "/api/v1/webhooks/" + hookA.ID + "/deliveries/%2e%2e/redeliver"},
		{"unknown subscription", h.a.Auth(), "/api/v1/webhooks/" + newID()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := h.snapshot(t)
			method := "POST"
			if !strings.HasSuffix(tc.path, "/redeliver") {
				method = "GET"
			}
			wantProblem(t, h.do(t, method, tc.path, tc.auth, "", nil), http.StatusNotFound, "not-found")
			h.unchanged(t, before)
		})
	}
	list := decodeJSON[struct{ Items []webhookDoc }](t, h.do(t, "GET", "/api/v1/webhooks", h.b.Auth(), "", nil))
	if len(list.Items) != 1 || list.Items[0].ID != hookB.ID {
		t.Errorf("tenant B's list = %+v, want only its own webhook", list.Items)
	}
}

// TestWebhooksNotConfigured: without a webhook service every webhook route
// is 404.
func TestWebhooksNotConfigured(t *testing.T) {
	h := newHarness(t, func(d *httpapi.Deps) { d.Webhooks = nil })
	for _, rt := range h.api.Routes() {
		if !strings.HasPrefix(rt.Pattern, "/api/v1/webhooks") {
			continue
		}
		path := strings.NewReplacer("{id}", newID(), "{deliveryId}", strings.Repeat("0", 32)).Replace(rt.Pattern)
		ctype, body := "", []byte(nil)
		if rt.Method == "POST" && rt.Pattern == "/api/v1/webhooks" {
			ctype, body = "application/json", []byte(`{"url":"https://127.0.0.1:8443/","eventTypes":["session.created"]}`)
		}
		t.Run(rt.Method+" "+rt.Pattern, func(t *testing.T) {
			wantProblem(t, h.do(t, rt.Method, path, h.a.Auth(), ctype, body), http.StatusNotFound, "not-found")
		})
	}
}

// TestWebhookSessionCreated: creating a session records a session.created
// delivery for each subscription of the tenant that takes it, in the same
// transaction as the session, and hands it over signed; a refused create
// records none, and another tenant's subscriptions hear nothing.
func TestWebhookSessionCreated(t *testing.T) {
	h := newHarness(t)
	rc := h.newReceiver(t)
	hook := h.createWebhook(t, h.a, rc.URL(), "session.created")
	rc.setSecret("current", hook.Secret)
	completedOnly := h.createWebhook(t, h.a, rc.URL(), "session.completed")
	other := h.createWebhook(t, h.b, rc.URL(), "session.created")
	deliveries := func(tn tenant, id string) []deliveryDoc {
		t.Helper()
		res := h.do(t, "GET", "/api/v1/webhooks/"+id+"/deliveries", tn.Auth(), "", nil)
		wantStatus(t, res, http.StatusOK)
		return decodeJSON[deliveryListDoc](t, res).Items
	}

	res := h.do(t, "POST", "/api/v1/sessions", h.a.Auth(), "application/json", []byte(`{"ttl":5}`))
	wantStatus(t, res, http.StatusBadRequest)
	if got := deliveries(h.a, hook.ID); len(got) != 0 {
		t.Fatalf("deliveries after a refused create = %+v, want none", got)
	}

	s := h.createSession(t, h.a, `{}`)
	got := deliveries(h.a, hook.ID)
	if len(got) != 1 || got[0].EventID != s.ID+".session.created" || got[0].EventType != "session.created" {
		t.Fatalf("deliveries = %+v, want one session.created for %s", got, s.ID)
	}
	h.deliverNext(t)
	if req := rc.next(t); req.eventID != s.ID+".session.created" || req.verify["current"] != nil {
		t.Errorf("received %+v, want %s.session.created with a valid signature", req, s.ID)
	}
	if d := deliveries(h.a, hook.ID); d[0].Status != "delivered" {
		t.Errorf("delivery = %+v, want delivered", d[0])
	}
	if d := deliveries(h.a, completedOnly.ID); len(d) != 0 {
		t.Errorf("a subscription without session.created got %+v", d)
	}
	if d := deliveries(h.b, other.ID); len(d) != 0 {
		t.Errorf("tenant B's subscription got tenant A's event: %+v", d)
	}
}
