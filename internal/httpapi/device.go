package httpapi

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/idvault/idvault/internal/audit"
	"github.com/idvault/idvault/internal/identity"
	"github.com/idvault/idvault/internal/store"
)

// Ephemeral device tokens: a short-lived bearer token bound to one session,
// for a phone or capture page that must upload a person's document and
// selfie and may read nothing. A deeplink is a capture URL carrying such a
// token in its fragment, so the token never reaches a server log.

const defaultDeviceTTL = 15 * time.Minute

type deviceTokenRequest struct {
	SessionID string `json:"sessionId"`
	TTL       *int64 `json:"ttl"`
}

// issueDeviceToken checks the request and the issuer's access to the
// session, and issues the token.
func (a *API) issueDeviceToken(w http.ResponseWriter, r *http.Request) (string, time.Time, string, error) {
	var req deviceTokenRequest
	if err := decodeJSON(w, r, a.d.Limits.MaxJSONBytes, &req); err != nil {
		return "", time.Time{}, "", err
	}
	ttl := defaultDeviceTTL
	if req.TTL != nil {
		if *req.TTL < 60 || *req.TTL > int64(identity.MaxDeviceTokenTTL/time.Second) {
			return "", time.Time{}, "", badRequest("The request is invalid.", FieldError{"ttl", "must be between 60 and 86400 seconds"})
		}
		ttl = time.Duration(*req.TTL) * time.Second
	}
	if req.SessionID == "" {
		return "", time.Time{}, "", badRequest("The request is invalid.", FieldError{"sessionId", "required"})
	}
	repo, err := a.repo(r)
	if err != nil {
		return "", time.Time{}, "", err
	}
	s, err := repo.Get(r.Context(), req.SessionID)
	if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrInvalid) {
		return "", time.Time{}, "", notFound()
	}
	if err != nil {
		return "", time.Time{}, "", err
	}
	rec := sessionRecord(principalOf(r.Context()).Tenant, s)
	if err := a.decide(r, &rec); err != nil {
		return "", time.Time{}, "", err
	}
	if !s.Status.Open() {
		return "", time.Time{}, "", problem(http.StatusConflict, "invalid-state", "Session closed",
			"A session in status "+string(s.Status)+" accepts no device.")
	}
	// A device token never outlives its session.
	if left := s.ExpiresAt.Sub(a.d.Now()); left < ttl {
		ttl = left
	}
	if ttl <= 0 {
		return "", time.Time{}, "", problem(http.StatusConflict, "invalid-state", "Session expired", "The session has expired.")
	}
	p := principalOf(r.Context())
	r, commit := a.change(r, audit.Event{Action: "devicetoken.create", Outcome: audit.Success, Resource: audit.Resource{Type: "session", ID: s.ID},
		Details: map[string]string{"ttlSeconds": strconv.FormatInt(int64(ttl/time.Second), 10)}}, identity.CollDeviceTokens)
	tok, exp, err := a.d.Identity.CreateDeviceToken(r.Context(), p.Tenant, s.ID, p.Type+"/"+p.ID, ttl)
	if err != nil {
		return "", time.Time{}, "", err
	}
	if err := commit(); err != nil {
		return "", time.Time{}, "", err
	}
	return tok, exp, s.ID, nil
}

func (a *API) createDeviceToken(w http.ResponseWriter, r *http.Request) error {
	tok, exp, sid, err := a.issueDeviceToken(w, r)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, map[string]any{"token": tok, "tokenType": "Bearer", "sessionId": sid, "expiresAt": exp})
}

func (a *API) createDeeplink(w http.ResponseWriter, r *http.Request) error {
	tok, exp, sid, err := a.issueDeviceToken(w, r)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, map[string]any{"url": a.d.PublicURL + "/capture#token=" + tok, "sessionId": sid, "expiresAt": exp})
}
