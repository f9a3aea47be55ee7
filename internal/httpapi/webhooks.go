package httpapi

// Webhook subscriptions of the caller's tenant (package webhook holds them):
// create, list, read, change and delete them, rotate their signing secret,
// read their delivery log and redeliver. A signing secret is in the answer
// that creates it (create, rotate-secret) and in no other answer, log line
// or audit event. An id of another tenant's subscription or delivery is
// 404, exactly like an unknown one; without a webhook service every route
// is 404. Each change is audited in the transaction that writes it; its
// details hold ids, event types and the names of changed fields, never the
// URL (its query may carry a credential) or a secret.

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/idvault/idvault/internal/audit"
	"github.com/idvault/idvault/internal/store"
	"github.com/idvault/idvault/internal/webhook"
)

// createWebhookRequest is the body of POST /api/v1/webhooks.
type createWebhookRequest struct {
	URL        string   `json:"url"`
	EventTypes []string `json:"eventTypes"`
}

// updateWebhookRequest is the body of PATCH /api/v1/webhooks/{id}; absent
// fields stay as they are.
type updateWebhookRequest struct {
	URL        *string  `json:"url"`
	EventTypes []string `json:"eventTypes"`
	Active     *bool    `json:"active"`
}

// rotateSecretRequest is the optional body of
// POST /api/v1/webhooks/{id}/rotate-secret.
type rotateSecretRequest struct {
	GraceSeconds *int64 `json:"graceSeconds"`
}

// webhookWithSecret is a subscription with its signing secret, the one
// answer that carries it.
type webhookWithSecret struct {
	webhook.Subscription
	Secret string `json:"secret"`
}

// webhooks returns the webhook service, or 404 when none is configured.
func (a *API) webhooks() (*webhook.Service, error) {
	if a.d.Webhooks == nil {
		return nil, notFound()
	}
	return a.d.Webhooks, nil
}

// eventTypesOf validates the event types of a request and returns them
// as the webhook service stores them: without duplicates, in the order of
// webhook.EventTypes.
func eventTypesOf(in []string) ([]webhook.EventType, *FieldError) {
	detail := "1 or more of session.created, session.completed, session.expired, session.error, review.required"
	if len(in) == 0 || len(in) > 2*len(webhook.EventTypes) {
		return nil, &FieldError{"eventTypes", detail}
	}
	for _, s := range in {
		if !webhook.EventType(s).Valid() {
			return nil, &FieldError{"eventTypes", "unknown event type " + safeEventType(s) + "; " + detail}
		}
	}
	out := make([]webhook.EventType, 0, len(in))
	for _, t := range webhook.EventTypes {
		if slices.Contains(in, string(t)) {
			out = append(out, t)
		}
	}
	return out, nil
}

// safeEventType echoes a caller's value only if it looks like an event type.
func safeEventType(s string) string {
	if len(s) <= 64 && strings.Trim(s, "abcdefghijklmnopqrstuvwxyz._") == "" {
		return strconv.Quote(s)
	}
	return "(not shown)"
}

// urlProblem maps a refusal of a subscription URL by the webhook service
// to 400 naming the url field; the URL and the addresses it resolved to
// are not echoed.
func urlProblem(err error) error {
	if !errors.Is(err, webhook.ErrInvalid) {
		return err
	}
	detail := "must be an absolute https URL without user info or fragment, on an allowed port, with a host that is not a bare number"
	if _, ok := errors.AsType[*webhook.AddressError](err); ok {
		detail = "the host is or resolves to a refused address (private, loopback, link-local, reserved or cloud metadata)"
	}
	return badRequest("The webhook request is invalid.", FieldError{"url", detail})
}

func checkURLLength(u string, fields []FieldError) []FieldError {
	if u == "" || len(u) > webhook.MaxURLLen {
		return append(fields, FieldError{"url", fmt.Sprintf("1 to %d bytes", webhook.MaxURLLen)})
	}
	return fields
}

func joinTypes(types []webhook.EventType) string {
	s := make([]string, len(types))
	for i, t := range types {
		s[i] = string(t)
	}
	return strings.Join(s, ",")
}

func (a *API) createWebhook(w http.ResponseWriter, r *http.Request) error {
	svc, err := a.webhooks()
	if err != nil {
		return err
	}
	var req createWebhookRequest
	if err := decodeJSON(w, r, a.d.Limits.MaxJSONBytes, &req); err != nil {
		return err
	}
	fields := checkURLLength(req.URL, nil)
	types, fe := eventTypesOf(req.EventTypes)
	if fe != nil {
		fields = append(fields, *fe)
	}
	if len(fields) > 0 {
		return badRequest("The webhook request is invalid.", fields...)
	}
	tenant := principalOf(r.Context()).Tenant
	existing, err := svc.List(r.Context(), tenant)
	if err != nil {
		return err
	}
	if len(existing) >= webhook.MaxSubscriptions {
		return problem(http.StatusConflict, "too-many-webhooks", "Too many webhooks",
			fmt.Sprintf("A tenant has at most %d webhook subscriptions.", webhook.MaxSubscriptions))
	}
	r, commit := a.change(r, audit.Event{Action: "webhook.create", Outcome: audit.Success, Resource: audit.Resource{Type: "webhook"},
		Details: map[string]string{"eventTypes": joinTypes(types)}}, webhook.CollSubscriptions)
	sub, sec, err := svc.Create(r.Context(), tenant, webhook.Params{URL: req.URL, EventTypes: types})
	if err != nil {
		return urlProblem(err)
	}
	if err := commit(); err != nil {
		return err
	}
	b := sec.Bytes()
	defer clear(b)
	return writeJSON(w, http.StatusCreated, webhookWithSecret{Subscription: sub, Secret: string(b)})
}

func (a *API) listWebhooks(w http.ResponseWriter, r *http.Request) error {
	svc, err := a.webhooks()
	if err != nil {
		return err
	}
	subs, err := svc.List(r.Context(), principalOf(r.Context()).Tenant)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, map[string]any{"items": subs})
}

// subscriptionOr404 returns the service and the subscription of the
// request's {id}, or 404.
func (a *API) subscriptionOr404(r *http.Request) (*webhook.Service, webhook.Subscription, error) {
	svc, err := a.webhooks()
	if err != nil {
		return nil, webhook.Subscription{}, err
	}
	sub, err := svc.Get(r.Context(), principalOf(r.Context()).Tenant, r.PathValue("id"))
	if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrInvalid) {
		return nil, webhook.Subscription{}, notFound()
	}
	if err != nil {
		return nil, webhook.Subscription{}, err
	}
	return svc, sub, nil
}

func (a *API) getWebhook(w http.ResponseWriter, r *http.Request) error {
	_, sub, err := a.subscriptionOr404(r)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, sub)
}

// goneOr error maps the disappearance of a subscription or delivery between
// the lookup and the change (a concurrent delete) to 404.
func goneOr(err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return notFound()
	}
	return err
}

func (a *API) updateWebhook(w http.ResponseWriter, r *http.Request) error {
	svc, sub, err := a.subscriptionOr404(r)
	if err != nil {
		return err
	}
	var req updateWebhookRequest
	if err := decodeJSON(w, r, a.d.Limits.MaxJSONBytes, &req); err != nil {
		return err
	}
	var fields []FieldError
	var changed []string
	c := webhook.Changes{Active: req.Active}
	details := map[string]string{}
	if req.URL != nil {
		fields = checkURLLength(*req.URL, fields)
		c.URL = req.URL
		changed = append(changed, "url")
	}
	if req.EventTypes != nil {
		types, fe := eventTypesOf(req.EventTypes)
		if fe != nil {
			fields = append(fields, *fe)
		}
		c.EventTypes = types
		changed = append(changed, "eventTypes")
		details["eventTypes"] = joinTypes(types)
	}
	if req.Active != nil {
		changed = append(changed, "active")
		details["active"] = strconv.FormatBool(*req.Active)
	}
	if len(changed) == 0 {
		fields = append(fields, FieldError{"", "give at least one of url, eventTypes and active"})
	}
	if len(fields) > 0 {
		return badRequest("The webhook change is invalid.", fields...)
	}
	details["changed"] = strings.Join(changed, ",")
	r, commit := a.change(r, audit.Event{Action: "webhook.update", Outcome: audit.Success, Resource: audit.Resource{Type: "webhook", ID: sub.ID},
		Details: details}, webhook.CollSubscriptions)
	sub, err = svc.Update(r.Context(), principalOf(r.Context()).Tenant, sub.ID, c)
	if err != nil {
		return urlProblem(goneOr(err))
	}
	if err := commit(); err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, sub)
}

func (a *API) deleteWebhook(w http.ResponseWriter, r *http.Request) error {
	svc, sub, err := a.subscriptionOr404(r)
	if err != nil {
		return err
	}
	if err := drainEmpty(w, r); err != nil {
		return err
	}
	r, commit := a.change(r, audit.Event{Action: "webhook.delete", Outcome: audit.Success, Resource: audit.Resource{Type: "webhook", ID: sub.ID},
		Details: map[string]string{"eventTypes": joinTypes(sub.EventTypes)}}, webhook.CollSubscriptions)
	if err := svc.Delete(r.Context(), principalOf(r.Context()).Tenant, sub.ID); err != nil {
		return goneOr(err)
	}
	if err := commit(); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *API) rotateWebhookSecret(w http.ResponseWriter, r *http.Request) error {
	svc, sub, err := a.subscriptionOr404(r)
	if err != nil {
		return err
	}
	grace := webhook.DefaultSecretGrace
	if r.ContentLength != 0 || r.Header.Get("Content-Type") != "" {
		var req rotateSecretRequest
		if err := decodeJSON(w, r, a.d.Limits.MaxJSONBytes, &req); err != nil {
			return err
		}
		if req.GraceSeconds != nil {
			maxGrace := int64(webhook.MaxSecretGrace / time.Second)
			if *req.GraceSeconds < 0 || *req.GraceSeconds > maxGrace {
				return badRequest("The rotation request is invalid.", FieldError{"graceSeconds", fmt.Sprintf("0 to %d seconds", maxGrace)})
			}
			grace = time.Duration(*req.GraceSeconds) * time.Second
		}
	}
	r, commit := a.change(r, audit.Event{Action: "webhook.rotate_secret", Outcome: audit.Success, Resource: audit.Resource{Type: "webhook", ID: sub.ID},
		Details: map[string]string{"graceSeconds": strconv.FormatInt(int64(grace/time.Second), 10)}}, webhook.CollSubscriptions)
	sub, sec, err := svc.RotateSecret(r.Context(), principalOf(r.Context()).Tenant, sub.ID, grace)
	if err != nil {
		return goneOr(err)
	}
	if err := commit(); err != nil {
		return err
	}
	b := sec.Bytes()
	defer clear(b)
	return writeJSON(w, http.StatusOK, webhookWithSecret{Subscription: sub, Secret: string(b)})
}

func (a *API) listWebhookDeliveries(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	var fields []FieldError
	for key := range q {
		if key != "cursor" && key != "limit" {
			fields = append(fields, FieldError{key, "unknown query parameter"})
		}
	}
	limit := 20
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 100 {
			fields = append(fields, FieldError{"limit", "must be an integer from 1 to 100"})
		}
		limit = n
	}
	svc, sub, err := a.subscriptionOr404(r)
	if err != nil {
		return err
	}
	if len(fields) > 0 {
		return badRequest("The query is invalid.", fields...)
	}
	page, err := svc.Deliveries(r.Context(), principalOf(r.Context()).Tenant, sub.ID, limit, q.Get("cursor"))
	if errors.Is(err, store.ErrInvalid) {
		return badRequest("The cursor is invalid.", FieldError{"cursor", "not a cursor of this query"})
	}
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, map[string]any{"items": page.Deliveries, "nextCursor": page.Next})
}

func (a *API) redeliverWebhook(w http.ResponseWriter, r *http.Request) error {
	svc, sub, err := a.subscriptionOr404(r)
	if err != nil {
		return err
	}
	tenant := principalOf(r.Context()).Tenant
	d, err := svc.Delivery(r.Context(), tenant, r.PathValue("deliveryId"))
	if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrInvalid) || (err == nil && d.Subscription != sub.ID) {
		return notFound()
	}
	if err != nil {
		return err
	}
	if err := drainEmpty(w, r); err != nil {
		return err
	}
	r, commit := a.change(r, audit.Event{Action: "webhook.redeliver", Outcome: audit.Success, Resource: audit.Resource{Type: "webhook_delivery", ID: d.ID},
		Details: map[string]string{"subscription": sub.ID, "eventId": d.EventID, "eventType": string(d.EventType)}}, webhook.CollDeliveries)
	d, err = svc.Redeliver(r.Context(), tenant, d.ID)
	if err != nil {
		return goneOr(err)
	}
	if err := commit(); err != nil {
		return err
	}
	return writeJSON(w, http.StatusAccepted, d)
}
