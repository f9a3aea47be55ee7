package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/idvault/idvault/internal/audit"
	"github.com/idvault/idvault/internal/session"
	"github.com/idvault/idvault/internal/store"
)

// The gateway's bounds on device tokens (see the comment at the top of
// gateway.go): a call is forwarded only while the token's bound session is
// open for capture, and at most Gateway.MaxCallsPerSession times per
// session, counted in session.GatewayCallsCollection.

// defaultMaxCallsPerSession is what a Gateway.MaxCallsPerSession below 1
// stands for; it is regula.gateway.maxCallsPerSession's default too.
const defaultMaxCallsPerSession = 50

// maxCalls returns the session quota of device-token calls.
func (g Gateway) maxCalls() int {
	if g.MaxCallsPerSession < 1 {
		return defaultMaxCallsPerSession
	}
	return g.MaxCallsPerSession
}

// gatewayCount is the body of a session's record in
// session.GatewayCallsCollection: how many calls were taken.
type gatewayCount struct {
	Calls int `json:"calls"`
}

// metered reports whether the request's principal is bound to a session (a
// device token), whose gateway calls are bounded.
func metered(r *http.Request) bool { return principalOf(r.Context()).BoundSession != "" }

// sessionClosed is the refusal of a call whose bound session is not open
// for capture.
func sessionClosed() *Problem {
	return problem(http.StatusConflict, "session-closed", "Session closed",
		"The session this device token is bound to is finished, expired or deleted; the gateway forwards nothing for it.")
}

// quotaExceeded is the refusal of a call over the session's quota. It has
// no Retry-After: the quota does not refill.
func quotaExceeded(limit int) *Problem {
	return problem(http.StatusTooManyRequests, "gateway-quota-exceeded", "Gateway quota exceeded",
		"The session this device token is bound to has used its "+strconv.Itoa(limit)+" gateway calls; the quota does not refill.")
}

// refuseGateway audits the refusal of a gateway call on route (method and
// path) for reason, and returns p.
func (a *API) refuseGateway(r *http.Request, route, reason string, p *Problem) error {
	a.emit(r, audit.Event{Action: "gateway.request", Outcome: audit.Denied, Reason: reason,
		Resource: audit.Resource{Type: "gateway", ID: route},
		Details:  map[string]string{"status": strconv.Itoa(p.Status), "session": principalOf(r.Context()).BoundSession}})
	return p
}

// checkBoundSession refuses (409 session-closed, audited) a call of a
// device token whose bound session does not exist in the token's tenant,
// is not pending or in_progress, or has passed its expiresAt.
func (a *API) checkBoundSession(r *http.Request, repo *session.Repo, route string) error {
	id := principalOf(r.Context()).BoundSession
	s, err := repo.Get(r.Context(), id)
	var reason string
	switch {
	case errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrInvalid):
		reason = "bound session not found"
	case err != nil:
		return fmt.Errorf("gateway: load bound session: %w", err)
	case !s.Status.Open():
		reason = "bound session is " + string(s.Status)
	case !a.d.Now().Before(s.ExpiresAt):
		reason = "bound session expired"
	default:
		return nil
	}
	return a.refuseGateway(r, route, reason, sessionClosed())
}

// takeGatewayCall takes one call of the bound session's quota before the
// call is forwarded, or refuses it (429 gateway-quota-exceeded, audited)
// when none is left. The count is a record of the session's id in
// session.GatewayCallsCollection, raised with compare-and-swap, so
// concurrent calls and several API processes take at most the quota
// between them. A call that fails afterwards (the service is down, say)
// keeps its place: the service may have been reached.
//
// The record is created by the session's first call and deleted by
// session.Destroy. A Destroy that ran after checkBoundSession and before
// the record was created would leave it behind, so the call that creates it
// reads the session again and, if it is gone, deletes the record and
// refuses: Destroy deletes the session before the count, so either that
// read sees the session gone or Destroy's delete comes after the creation.
func (a *API) takeGatewayCall(r *http.Request, repo *session.Repo, route string) error {
	ctx := r.Context()
	id := principalOf(ctx).BoundSession
	limit := a.d.Gateway.maxCalls()
	v, err := a.view(r)
	if err != nil {
		return err
	}
	taken, created, err := countCall(ctx, v, id, limit)
	switch {
	case err != nil:
		return err
	case !taken:
		return a.refuseGateway(r, route, "gateway quota of the session used up ("+strconv.Itoa(limit)+" calls)", quotaExceeded(limit))
	case !created:
		return nil
	}
	_, err = repo.Get(ctx, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		if err := v.Delete(context.WithoutCancel(ctx), session.GatewayCallsCollection, id, 0); err != nil && !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("gateway: delete call count of a deleted session: %w", err)
		}
		return a.refuseGateway(r, route, "bound session not found", sessionClosed())
	case err != nil:
		return fmt.Errorf("gateway: load bound session: %w", err)
	}
	return nil
}

// countCall raises the call count of session id in v by one unless it has
// reached limit, with compare-and-swap. It reports whether the call was
// taken and whether this raise created the record. It retries on conflict;
// each conflict is another caller's successful raise, and raises stop at
// limit, so it ends; a store that keeps conflicting beyond that is an
// error.
func countCall(ctx context.Context, v *store.View, id string, limit int) (taken, created bool, err error) {
	for range 2*limit + 10 {
		var c gatewayCount
		rec, err := v.Get(ctx, session.GatewayCallsCollection, id, &c)
		if errors.Is(err, store.ErrNotFound) {
			_, err = v.Put(ctx, session.GatewayCallsCollection, id, nil, gatewayCount{Calls: 1})
			if errors.Is(err, store.ErrConflict) {
				continue
			}
			if err != nil {
				return false, false, fmt.Errorf("gateway: count call: %w", err)
			}
			return true, true, nil
		}
		if err != nil {
			return false, false, fmt.Errorf("gateway: read call count: %w", err)
		}
		if c.Calls >= limit {
			return false, false, nil
		}
		_, err = v.Update(ctx, session.GatewayCallsCollection, id, rec.Version, nil, gatewayCount{Calls: c.Calls + 1})
		if errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return false, false, fmt.Errorf("gateway: count call: %w", err)
		}
		return true, false, nil
	}
	return false, false, fmt.Errorf("gateway: count call: %w", store.ErrConflict)
}
