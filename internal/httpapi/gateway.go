package httpapi

// The Regula gateway. Regula's SDKs talk to the Document Reader service
// under /drapi and to the Face API under /faceapi; the services have no
// authentication of their own, so idvault stands in front of them.
//
// What it forwards: only the endpoints of the route table (an allow-list
// taken from Regula's public OpenAPI specifications; any other path under
// the prefixes is 404 and never reaches a service), with the route's own
// method, and only the JSON body. The caller's headers (Authorization,
// cookies, X-Forwarded-*, anything else) and query string are not
// forwarded: internal/regula/httpx builds a fresh request carrying only
// Content-Type and Accept. The answer is the service's JSON body, byte for
// byte, as application/json.
//
// Who may: routes need file:write, the permission to submit personal data
// for processing. The integration role and admins hold it, and so does a
// device token, on its bound session: a device token is what Regula's SDKs
// on the person's device carry, and what they send through the gateway is
// the document and selfie they are capturing. A device token gains no read:
// the answer is derived from the body the caller itself sent. Endpoints that
// read stored results by id (GET /api/v2/liveness) are left out, because the
// services keep no tenants: through the gateway any credential of any
// tenant could read any transaction whose id it learnt. The workflow role
// reads them itself.
//
// Device tokens: a device token is a bearer credential that lives up to a
// day on a phone, and the services are paid per call, so a leaked token
// must not become a free, unmetered proxy to them. A call of a principal
// bound to a session (a device token) is forwarded only
//   - while the bound session is open for capture: it exists in the token's
//     tenant (the tenant view sees no other), its status is pending or
//     in_progress, and its expiresAt has not passed, even if the scheduler
//     has not marked it expired yet; otherwise 409 session-closed, decided
//     before the body is read;
//   - and at most Gateway.MaxCallsPerSession times per session, all its
//     device tokens together: after the body is checked and before the call
//     is forwarded, the session's count in session.GatewayCallsCollection
//     (one record under the session's id, sealed under the tenant's key,
//     deleted by session.Destroy with the session) is raised with
//     compare-and-swap, so concurrent calls and several API processes cannot
//     pass the quota; over it, 429 gateway-quota-exceeded, without
//     Retry-After since the quota does not refill. A call whose body is
//     refused takes nothing; a call the service then fails keeps its place.
// Both refusals are audited and nothing of them is forwarded. Admins, users
// and API keys are not bounded this way: they are the tenant's own staff and
// servers, limited by api.rateLimit only.
//
// Bounds and failures: the request body is bounded by the service's
// MaxRequestBytes (413), the answer by the client's maxResponseBytes. A
// service that is down, slow, open-circuited or answers 5xx or malformed
// JSON is 502 upstream-unavailable; a 4xx from the service is 422
// upstream-rejected (its body, which may echo personal data, is dropped); a
// service that is not configured is 404.
//
// Audit: each forwarded call is recorded as gateway.request with the route
// and the status answered (and, for a device token, its session),
// fail-closed before the answer is written; never a body, which is personal
// data. A device token's call refused by the bounds above is recorded as
// gateway.request with outcome denied, the reason, the status and the
// session.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"strconv"

	"github.com/idvault/idvault/internal/audit"
	"github.com/idvault/idvault/internal/regula/httpx"
	"github.com/idvault/idvault/internal/session"
)

// Upstream is one Regula service behind the gateway.
type Upstream struct {
	// Client calls the service: TLS or mutual TLS, timeout, bounded
	// retries, circuit breaker and response size.
	Client *httpx.Client
	// MaxRequestBytes bounds a forwarded request body; it MUST be positive.
	MaxRequestBytes int64
}

// Gateway holds the services of the /drapi and /faceapi gateway. A nil
// service is not configured: its routes answer 404.
type Gateway struct {
	DocReader *Upstream
	FaceAPI   *Upstream
	// MaxCallsPerSession is how many calls the gateway forwards for the
	// device tokens of one session, counted in the store across every API
	// process (regula.gateway.maxCallsPerSession); below 1 it stands for
	// that key's default, 50, so that no value turns the bound off.
	MaxCallsPerSession int
}

// proxy returns the handler that forwards a request to endpoint (an
// endpoint path of the service, such as "/api/process") of up with method.
func (a *API) proxy(up *Upstream, method, endpoint string) func(http.ResponseWriter, *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		if up == nil {
			return notFound()
		}
		route := method + " " + r.URL.Path
		device := metered(r)
		var repo *session.Repo
		if device {
			var err error
			if repo, err = a.repo(r); err != nil {
				return err
			}
			if err := a.checkBoundSession(r, repo, route); err != nil {
				return err
			}
		}
		var in any
		if method == http.MethodPost {
			body, err := readJSONBody(w, r, up.MaxRequestBytes)
			if err != nil {
				return err
			}
			in = json.RawMessage(body)
		}
		if device {
			if err := a.takeGatewayCall(r, repo, route); err != nil {
				return err
			}
		}
		var out json.RawMessage
		err := up.Client.Do(r.Context(), method, endpoint, nil, in, &out)
		if err != nil && r.Context().Err() != nil {
			return err // the caller went away; there is no one to answer
		}
		var p *Problem
		if err != nil {
			p = upstreamProblem(err)
		}
		status := http.StatusOK
		if p != nil {
			status = p.Status
		}
		outcome := audit.Success
		if p != nil {
			outcome = audit.Failure
		}
		details := map[string]string{"status": strconv.Itoa(status)}
		if device {
			details["session"] = principalOf(r.Context()).BoundSession
		}
		if aerr := a.emitErr(r, audit.Event{Action: "gateway.request", Outcome: outcome,
			Resource: audit.Resource{Type: "gateway", ID: route}, Details: details}); aerr != nil {
			return errors.Join(aerr, err)
		}
		if p != nil {
			a.d.Log.WarnContext(context.WithoutCancel(r.Context()), "gateway: upstream call failed",
				"route", route, "requestId", requestID(r.Context()), "err", err)
			return p
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", strconv.Itoa(len(out)))
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(out)
		return nil
	}
}

// readJSONBody reads a request body of at most limit bytes that must be an
// application/json object.
func readJSONBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		return nil, problem(http.StatusUnsupportedMediaType, "unsupported-media-type", "Unsupported media type",
			"The request body must be application/json.")
	}
	if r.ContentLength > limit {
		return nil, tooLarge(limit)
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return nil, tooLarge(limit)
		}
		return nil, badRequest("The request body could not be read.")
	}
	if trimmed := bytes.TrimSpace(body); len(trimmed) == 0 || trimmed[0] != '{' || !json.Valid(trimmed) {
		return nil, badRequest("The request body must be a JSON object.")
	}
	return body, nil
}

// upstreamProblem maps a failed call to the service to the caller's
// problem: a 4xx answer of the service is the request's fault, anything
// else the service's.
func upstreamProblem(err error) *Problem {
	if se, ok := errors.AsType[*httpx.StatusError](err); ok && se.StatusCode >= 400 && se.StatusCode < 500 && se.StatusCode != http.StatusTooManyRequests {
		return problem(http.StatusUnprocessableEntity, "upstream-rejected", "Rejected by the service",
			"The service rejected the request ("+strconv.Itoa(se.StatusCode)+"); check the request against the service's API.")
	}
	return problem(http.StatusBadGateway, "upstream-unavailable", "Service unavailable",
		"The service behind the gateway is unavailable or failed; retry later.")
}
