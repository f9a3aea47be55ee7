// Package httpapi is the API role's HTTP surface: the route table, the
// middleware that authenticates, authorizes, limits and audits every
// request, and the handlers.
//
// Every route declares its permission in the routes table (a test fails if
// one does not, or if a route is missing from the OpenAPI document). Errors
// are RFC 9457 problem+json with an error id that also appears in the log.
// Handlers only ever hold a tenant view of the principal's tenant.
package httpapi

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"regexp"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/idvault/idvault/internal/audit"
	"github.com/idvault/idvault/internal/auditlog"
	"github.com/idvault/idvault/internal/authz"
	"github.com/idvault/idvault/internal/barrier"
	"github.com/idvault/idvault/internal/files"
	"github.com/idvault/idvault/internal/identity"
	"github.com/idvault/idvault/internal/keyring"
	"github.com/idvault/idvault/internal/media"
	"github.com/idvault/idvault/internal/pii"
	"github.com/idvault/idvault/internal/queue"
	"github.com/idvault/idvault/internal/ratelimit"
	"github.com/idvault/idvault/internal/store"
	"github.com/idvault/idvault/internal/webhook"
	"github.com/idvault/idvault/internal/workflow"
	"github.com/idvault/idvault/internal/workflow/engine"
)

// Limits bound what a request may carry.
type Limits struct {
	MaxJSONBytes   int64
	MaxUploadBytes int64
	MaxImagePixels int64
	DefaultTTL     time.Duration
	MaxTTL         time.Duration
}

// Deps are what the API needs.
type Deps struct {
	Backend  store.Backend
	Barrier  barrier.Barrier
	Identity *identity.Service
	Files    *files.Store
	Broker   queue.Broker
	Audit    *audit.Emitter
	// AuditLog is the tamper-evident log the audit routes read, verify and
	// prove from; AuditVerifierKey the public key of its checkpoints.
	AuditLog         *auditlog.Log
	AuditVerifierKey string
	// Workflows runs sessions through stored workflow definitions and takes
	// review decisions; Definitions stores those definitions. Nil when the
	// process has no workflow engine configured.
	Workflows   *engine.Engine
	Definitions *engine.Definitions
	// WorkflowLocal hands sessions to the workflow role when it runs in
	// this process (workflow.Local); nil publishes every one to Broker.
	WorkflowLocal *workflow.Local
	// Webhooks keeps the tenants' webhook subscriptions and deliveries; nil
	// turns the webhook routes off.
	Webhooks *webhook.Service
	// Keys shreds a session's data key when the session is deleted, and
	// keeps admin-entered secrets.
	Keys   KeyStore
	Log    *slog.Logger
	Limits Limits
	// RateLimit limits requests per client address, per principal and for
	// sign-in; nil turns rate limiting off.
	RateLimit *ratelimit.Limiter
	// TrustedProxies are the reverse proxies whose X-Forwarded-For names
	// the client address.
	TrustedProxies []netip.Prefix
	// Banner is the sign-in banner every sign-in must acknowledge; empty
	// for none.
	Banner string
	// PublicURL is the base URL of the platform, for deeplinks.
	PublicURL string
	// Now is the clock (time.Now when nil).
	Now func() time.Time
	// Gateway holds the Regula services behind /drapi and /faceapi.
	Gateway Gateway
}

// KeyStore is what the API needs of the key hierarchy (keyring.Keyring):
// shredding a session's data key, and write-only admin-entered secrets.
type KeyStore interface {
	// NewScope makes a new session's data key, to store with the session's
	// create (keyring.Keyring.NewScope).
	NewScope(ctx context.Context, tenant, scope string) (context.Context, []store.Write, func(), error)
	Shred(ctx context.Context, tenant, scope string) error
	PutSecret(ctx context.Context, tenant, name string, value []byte) error
	DeleteSecret(ctx context.Context, tenant, name string) error
	Secrets(ctx context.Context, tenant string) ([]keyring.SecretInfo, error)
}

// API serves the REST API.
type API struct {
	d      Deps
	routes []route
	mux    *http.ServeMux
	// checks bounds how many uploads are decoded at once: a full image
	// decode is CPU-bound and cannot be cancelled.
	checks chan struct{}
}

// route is one entry of the route table. perm is the permission the route
// needs; public routes need none and must say so, and self routes act only
// on the caller's own account.
type route struct {
	method  string
	pattern string
	perm    authz.Permission
	public  bool
	// signIn marks routes that check a password: they get the stricter
	// sign-in rate limit per address.
	signIn bool
	// self marks routes that act only on the caller's own user account
	// (its second factor): any signed-in user, no API key or device.
	self   bool
	handle func(w http.ResponseWriter, r *http.Request) error
}

// New returns the API with every route registered.
func New(d Deps) *API {
	if d.Now == nil {
		d.Now = time.Now
	}
	a := &API{d: d, mux: http.NewServeMux(), checks: make(chan struct{}, runtime.GOMAXPROCS(0))}
	a.routes = []route{
		{method: "GET", pattern: "/healthz", public: true, handle: a.healthz},
		{method: "GET", pattern: "/readyz", public: true, handle: a.readyz},
		{method: "GET", pattern: "/api/v1/openapi.json", public: true, handle: a.openapi},
		{method: "POST", pattern: "/api/v1/auth/token", public: true, signIn: true, handle: a.issueToken},
		{method: "POST", pattern: "/api/v1/auth/login", public: true, signIn: true, handle: a.login},
		{method: "POST", pattern: "/api/v1/auth/logout", public: true, handle: a.logout},
		{method: "GET", pattern: "/api/v1/auth/banner", public: true, handle: a.banner},
		{method: "POST", pattern: "/api/v1/auth/totp", self: true, handle: a.beginTOTP},
		{method: "POST", pattern: "/api/v1/auth/totp/confirm", self: true, handle: a.confirmTOTP},
		{method: "POST", pattern: "/api/v1/auth/login/scan", public: true, signIn: true, handle: a.loginScan},
		{method: "GET", pattern: "/api/v1/auth/oidc/{provider}/login", public: true, signIn: true, handle: a.oidcLogin},
		{method: "GET", pattern: "/api/v1/auth/oidc/{provider}/callback", public: true, signIn: true, handle: a.oidcCallback},
		{method: "GET", pattern: "/api/v1/settings/scan-mode", perm: authz.SettingsRead, handle: a.getScanMode},
		{method: "GET", pattern: "/api/v1/settings/policy", perm: authz.SettingsRead, handle: a.getPolicy},
		{method: "PUT", pattern: "/api/v1/settings/policy", perm: authz.SettingsWrite, handle: a.putPolicy},
		{method: "PUT", pattern: "/api/v1/settings/scan-mode", perm: authz.SettingsWrite, handle: a.putScanMode},
		{method: "POST", pattern: "/api/v1/sessions", perm: authz.SessionWrite, handle: a.createSession},
		{method: "GET", pattern: "/api/v1/sessions", perm: authz.SessionRead, handle: a.listSessions},
		{method: "GET", pattern: "/api/v1/sessions/{id}", perm: authz.SessionRead, handle: a.getSession},
		{method: "DELETE", pattern: "/api/v1/sessions/{id}", perm: authz.SessionDelete, handle: a.deleteSession},
		{method: "POST", pattern: "/api/v1/sessions/{id}/cancel", perm: authz.SessionWrite, handle: a.cancelSession},
		{method: "POST", pattern: "/api/v1/sessions/{id}/files", perm: authz.FileWrite, handle: a.uploadFile},
		{method: "GET", pattern: "/api/v1/sessions/{id}/files/{fileId}", perm: authz.FileRead, handle: a.downloadFile},
		{method: "PUT", pattern: "/api/v1/sessions/{id}/restriction", perm: authz.SessionRestrict, handle: a.restrictSession},
		{method: "POST", pattern: "/api/v1/sessions/{id}/review", perm: authz.SessionWriteAll, handle: a.reviewSession},
		{method: "GET", pattern: "/api/v1/sessions/{id}/run", perm: authz.SessionRead, handle: a.getRun},
		{method: "POST", pattern: "/api/v1/workflows", perm: authz.WorkflowWrite, handle: a.createWorkflow},
		{method: "GET", pattern: "/api/v1/workflows", perm: authz.WorkflowRead, handle: a.listWorkflows},
		{method: "GET", pattern: "/api/v1/workflows/{id}/versions/{version}", perm: authz.WorkflowRead, handle: a.getWorkflow},
		{method: "POST", pattern: "/api/v1/workflows/{id}/versions/{version}/deactivate", perm: authz.WorkflowWrite, handle: a.deactivateWorkflow},
		{method: "POST", pattern: "/api/v1/groups", perm: authz.GroupWrite, handle: a.createGroup},
		{method: "GET", pattern: "/api/v1/groups", perm: authz.GroupRead, handle: a.listGroups},
		{method: "PUT", pattern: "/api/v1/groups/{id}/members", perm: authz.GroupWrite, handle: a.setGroupMembers},
		{method: "PUT", pattern: "/api/v1/roles/{name}", perm: authz.RoleWrite, handle: a.putRole},
		{method: "GET", pattern: "/api/v1/roles", perm: authz.RoleRead, handle: a.listRoles},
		{method: "POST", pattern: "/api/v1/users", perm: authz.UserWrite, handle: a.createUser},
		{method: "GET", pattern: "/api/v1/users", perm: authz.UserRead, handle: a.listUsers},
		{method: "POST", pattern: "/api/v1/users/{id}/disable", perm: authz.UserWrite, handle: a.setUserDisabled(true)},
		{method: "POST", pattern: "/api/v1/users/{id}/enable", perm: authz.UserWrite, handle: a.setUserDisabled(false)},
		{method: "POST", pattern: "/api/v1/api-keys", perm: authz.APIKeyWrite, handle: a.createAPIKey},
		{method: "GET", pattern: "/api/v1/api-keys", perm: authz.APIKeyRead, handle: a.listAPIKeys},
		{method: "DELETE", pattern: "/api/v1/api-keys/{id}", perm: authz.APIKeyDelete, handle: a.revokeAPIKey},
		{method: "POST", pattern: "/api/v1/device-tokens", perm: authz.DeviceTokenWrite, handle: a.createDeviceToken},
		{method: "POST", pattern: "/api/v1/deeplinks", perm: authz.DeviceTokenWrite, handle: a.createDeeplink},
		{method: "GET", pattern: "/api/v1/settings/secrets", perm: authz.SettingsRead, handle: a.listSecrets},
		{method: "PUT", pattern: "/api/v1/settings/secrets/{name}", perm: authz.SettingsWrite, handle: a.putSecret},
		{method: "DELETE", pattern: "/api/v1/settings/secrets/{name}", perm: authz.SettingsDelete, handle: a.deleteSecret},
		{method: "POST", pattern: "/api/v1/webhooks", perm: authz.WebhookWrite, handle: a.createWebhook},
		{method: "GET", pattern: "/api/v1/webhooks", perm: authz.WebhookRead, handle: a.listWebhooks},
		{method: "GET", pattern: "/api/v1/webhooks/{id}", perm: authz.WebhookRead, handle: a.getWebhook},
		{method: "PATCH", pattern: "/api/v1/webhooks/{id}", perm: authz.WebhookWrite, handle: a.updateWebhook},
		{method: "DELETE", pattern: "/api/v1/webhooks/{id}", perm: authz.WebhookDelete, handle: a.deleteWebhook},
		{method: "POST", pattern: "/api/v1/webhooks/{id}/rotate-secret", perm: authz.WebhookWrite, handle: a.rotateWebhookSecret},
		{method: "GET", pattern: "/api/v1/webhooks/{id}/deliveries", perm: authz.WebhookRead, handle: a.listWebhookDeliveries},
		{method: "POST", pattern: "/api/v1/webhooks/{id}/deliveries/{deliveryId}/redeliver", perm: authz.WebhookWrite, handle: a.redeliverWebhook},
		{method: "GET", pattern: "/api/v1/audit/events", perm: authz.AuditRead, handle: a.auditEvents},
		{method: "GET", pattern: "/api/v1/audit/export", perm: authz.AuditRead, handle: a.auditExport},
		{method: "GET", pattern: "/api/v1/audit/verify", perm: authz.AuditRead, handle: a.auditVerify},
		{method: "POST", pattern: "/api/v1/audit/verify", perm: authz.AuditRead, handle: a.auditVerifyTrusted},
		{method: "GET", pattern: "/api/v1/audit/checkpoint", perm: authz.AuditRead, handle: a.auditCheckpoint},
		{method: "GET", pattern: "/api/v1/audit/proof", perm: authz.AuditRead, handle: a.auditProof},
		{method: "GET", pattern: "/api/v1/audit/consistency", perm: authz.AuditRead, handle: a.auditConsistency},
		{method: "GET", pattern: "/api/v1/audit/public-key", perm: authz.AuditRead, handle: a.auditPublicKey},
		{method: "GET", pattern: "/drapi/api/ping", perm: authz.FileWrite, handle: a.proxy(d.Gateway.DocReader, "GET", "/api/ping")},
		{method: "POST", pattern: "/drapi/api/process", perm: authz.FileWrite, handle: a.proxy(d.Gateway.DocReader, "POST", "/api/process")},
		{method: "POST", pattern: "/faceapi/api/match", perm: authz.FileWrite, handle: a.proxy(d.Gateway.FaceAPI, "POST", "/api/match")},
		{method: "POST", pattern: "/faceapi/api/detect", perm: authz.FileWrite, handle: a.proxy(d.Gateway.FaceAPI, "POST", "/api/detect")},
	}
	byPattern := map[string][]route{}
	var order []string
	for _, rt := range a.routes {
		if _, seen := byPattern[rt.pattern]; !seen {
			order = append(order, rt.pattern)
		}
		byPattern[rt.pattern] = append(byPattern[rt.pattern], rt)
	}
	for _, p := range order {
		a.mux.Handle(p, a.dispatch(byPattern[p]))
	}
	a.mux.Handle("/", a.wrap(route{pattern: "(unmatched)", public: true, handle: func(http.ResponseWriter, *http.Request) error { return notFound() }}))
	return a
}

// RouteInfo describes one route of the table.
type RouteInfo struct {
	Method     string
	Pattern    string
	Permission authz.Permission
	Public     bool
}

// Routes lists the route table, for tests that must cover every route
// (a new route is covered automatically).
func (a *API) Routes() []RouteInfo {
	out := make([]RouteInfo, len(a.routes))
	for i, rt := range a.routes {
		out[i] = RouteInfo{Method: rt.method, Pattern: rt.pattern, Permission: rt.perm, Public: rt.public}
	}
	return out
}

// dispatch routes one path pattern by method, answering 405 with Allow as
// problem+json.
func (a *API) dispatch(rts []route) http.Handler {
	handlers := map[string]http.Handler{}
	var allow []string
	for _, rt := range rts {
		handlers[rt.method] = a.wrap(rt)
		allow = append(allow, rt.method)
		if rt.method == http.MethodGet {
			allow = append(allow, http.MethodHead)
		}
	}
	notAllowed := a.wrap(route{pattern: rts[0].pattern, public: true, handle: func(w http.ResponseWriter, r *http.Request) error {
		p := problem(http.StatusMethodNotAllowed, "method-not-allowed", "Method not allowed",
			"The method is not allowed on this resource.")
		p.header = http.Header{"Allow": {strings.Join(allow, ", ")}}
		return p
	}})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if h, ok := handlers[r.Method]; ok {
			h.ServeHTTP(w, r)
			return
		}
		if r.Method == http.MethodHead {
			if h, ok := handlers[http.MethodGet]; ok {
				h.ServeHTTP(w, r)
				return
			}
		}
		notAllowed.ServeHTTP(w, r)
	})
}

// ServeHTTP serves a request.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Strict-Transport-Security", "max-age=63072000; includeSubDomains")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
	h.Set("Cache-Control", "no-store")
	id := r.Header.Get("X-Request-Id")
	if !requestIDPattern.MatchString(id) {
		id = newID()
	}
	h.Set("X-Request-Id", id)
	a.mux.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), requestIDKey{}, id)))
}

var requestIDPattern = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

type (
	requestIDKey struct{}
	principalKey struct{}
	permKey      struct{}
)

// subject is the authorization subject of a principal.
func subject(p identity.Principal) authz.Subject {
	return authz.Subject{Tenant: p.Tenant, ID: p.ID, Roles: p.Roles, Custom: p.Permissions, Groups: p.Groups, BoundSession: p.BoundSession}
}

// decide runs the one decision point on a record (nil: the collection, for
// a list or a create) for the request's route permission: NotFound is answered exactly like an absent record, Deny with
// 403 and an audit event.
func (a *API) decide(r *http.Request, rec *authz.Record) error {
	perm, _ := r.Context().Value(permKey{}).(authz.Permission)
	d := authz.Decide(subject(principalOf(r.Context())), perm, rec)
	switch d.Outcome {
	case authz.Allow:
		return nil
	case authz.NotFound:
		return notFound()
	}
	res := audit.Resource{Type: "collection"}
	if rec != nil {
		res = audit.Resource{Type: "record", ID: rec.ID}
	}
	a.emit(r, audit.Event{Action: "access.denied", Outcome: audit.Denied, Reason: d.Reason, Resource: res})
	return problem(http.StatusForbidden, "forbidden", "Forbidden", "The credential may not do this here.")
}

// visible reports whether the request's principal may see rec in a list.
func visible(r *http.Request, rec authz.Record) bool {
	perm, _ := r.Context().Value(permKey{}).(authz.Permission)
	return authz.Visible(subject(principalOf(r.Context())), perm, rec)
}

func requestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

func withPrincipal(ctx context.Context, p identity.Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

func principalOf(ctx context.Context) identity.Principal {
	p, _ := ctx.Value(principalKey{}).(identity.Principal)
	return p
}

func newID() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// wrap applies authentication, authorization, error rendering and access
// logging to one route.
func (a *API) wrap(rt route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := a.d.Now()
		sw := &statusWriter{ResponseWriter: w}
		p, err := a.serveRecover(sw, r, rt)
		errorID := ""
		if err != nil {
			errorID = newID()
			p, ok := errors.AsType[*Problem](err)
			if !ok {
				p = problem(http.StatusInternalServerError, "internal", "Internal error",
					"The request failed; quote the error id when you report it.")
			}
			if !sw.wroteHeader {
				writeProblem(sw, r, p, errorID)
			}
		}
		attrs := []any{"method", r.Method, "route", rt.pattern, "status", sw.status(),
			"durationMs", a.d.Now().Sub(start).Milliseconds(), "requestId", requestID(r.Context())}
		if p.Tenant != "" {
			attrs = append(attrs, "tenant", p.Tenant, "principal", p.ID)
		}
		switch {
		case err == nil:
			a.d.Log.Info("request", attrs...)
		case sw.status() >= 500:
			a.d.Log.Error("request failed", append(attrs, "errorId", errorID, "err", err)...)
		default:
			a.d.Log.Info("request rejected", append(attrs, "errorId", errorID, "problem", err.Error())...)
		}
	})
}

// serveRecover turns a handler panic into an internal error, so the client
// gets a problem+json answer and the log gets the panic under its error id.
// serveRecover runs serve, turning a handler panic into an internal error so
// the client gets a problem+json answer and the log gets the panic under its
// error id. It returns the authenticated principal (zero for public routes
// and failed authentication) for the access log.
func (a *API) serveRecover(w http.ResponseWriter, r *http.Request, rt route) (p identity.Principal, err error) {
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			err = fmt.Errorf("panic: %v\n%s", v, debug.Stack())
		}
	}()
	return a.serve(w, r, rt)
}

// serve authenticates and authorizes the request, then runs the handler with
// the principal in its context.
func (a *API) serve(w http.ResponseWriter, r *http.Request, rt route) (identity.Principal, error) {
	if rt.pattern != "/healthz" && rt.pattern != "/readyz" {
		addr := ratelimit.AddrKey(a.clientIP(r))
		if err := a.limit(ratelimit.Address, addr); err != nil {
			return identity.Principal{}, err
		}
		if rt.signIn {
			if err := a.limit(ratelimit.SignIn, addr); err != nil {
				return identity.Principal{}, err
			}
		}
	}
	// A query the standard parser reads only in part (a ';' separator, a
	// bad escape) would be acted on without the parts it dropped.
	if _, err := url.ParseQuery(r.URL.RawQuery); err != nil {
		return identity.Principal{}, badRequest("The query string is malformed: separate parameters with '&' and percent-encode reserved characters.",
			FieldError{"query", "malformed"})
	}
	if rt.public {
		return identity.Principal{}, rt.handle(w, r)
	}
	p, err := a.authenticate(r)
	switch {
	case errors.Is(err, identity.ErrUnauthenticated):
		a.emit(r, audit.Event{Action: "auth.failure", Outcome: audit.Denied, Reason: "invalid or missing credential",
			Resource: audit.Resource{Type: "route", ID: rt.method + " " + rt.pattern}})
		return identity.Principal{}, unauthenticated()
	case errors.Is(err, identity.ErrTenantSuspended):
		return identity.Principal{}, problem(http.StatusForbidden, "tenant-suspended", "Tenant suspended", "The tenant of this credential is suspended.")
	case err != nil:
		return identity.Principal{}, err
	}
	if p.Type == "user" {
		groups, err := a.d.Identity.UserGroups(r.Context(), p.Tenant, p.ID)
		if err != nil {
			return identity.Principal{}, err
		}
		custom, err := a.d.Identity.CustomPermissions(r.Context(), p.Tenant, p.Roles)
		if err != nil {
			return identity.Principal{}, err
		}
		p.Groups, p.Permissions = groups, append(p.Permissions, custom...)
	}
	r = r.WithContext(context.WithValue(withPrincipal(r.Context(), p), permKey{}, rt.perm))
	if p.Session != "" && r.Method != http.MethodGet && r.Method != http.MethodHead &&
		!identity.CheckCSRF(p, r.Header.Get(CSRFHeader)) {
		a.emit(r, audit.Event{Action: "auth.csrf_failure", Outcome: audit.Denied, Reason: "missing or wrong CSRF token",
			Resource: audit.Resource{Type: "route", ID: rt.method + " " + rt.pattern}})
		return p, problem(http.StatusForbidden, "csrf", "CSRF token required",
			"A state-changing request of a console session must carry its CSRF token in "+CSRFHeader+".")
	}
	if err := a.limit(ratelimit.Principal, ratelimit.PrincipalKey(p.Tenant, p.Type+"/"+p.ID)); err != nil {
		return p, err
	}
	if p.EnrolOnly && !rt.self {
		return p, problem(http.StatusForbidden, "mfa-enrolment-required", "Second factor required",
			"The tenant requires a second factor: enrol one with POST /api/v1/auth/totp, confirm it, then sign in again.")
	}
	if rt.self {
		if p.Type != "user" {
			return p, problem(http.StatusForbidden, "forbidden", "Forbidden", "Only a signed-in user can manage its own account.")
		}
		return p, rt.handle(w, r)
	}
	if !authz.Allowed(subject(p), rt.perm) {
		a.emit(r, audit.Event{Action: "access.denied", Outcome: audit.Denied, Reason: "missing permission " + string(rt.perm),
			Resource: audit.Resource{Type: "route", ID: rt.method + " " + rt.pattern}})
		return p, problem(http.StatusForbidden, "forbidden", "Forbidden", "The credential lacks the permission "+string(rt.perm)+".")
	}
	return p, rt.handle(w, r)
}

// emit records an audit event about the request, filling actor, tenant and
// request id. A failure to record is logged; callers that must fail closed
// check the error of emitErr instead.
func (a *API) emit(r *http.Request, ev audit.Event) {
	if err := a.emitErr(r, ev); err != nil {
		a.d.Log.Error("audit event not recorded", "action", ev.Action, "requestId", requestID(r.Context()), "err", err)
	}
}

func (a *API) emitErr(r *http.Request, ev audit.Event) error {
	a.fill(r, &ev)
	return a.d.Audit.Emit(context.WithoutCancel(r.Context()), ev)
}

// change attaches ev to the change the handler is about to make to a record
// of collection: the returned request's context carries it, so the store
// commits ev to the audit outbox in the same transaction as the change (an
// event without a resource id takes the id of the record written). After the
// change, and before it answers, the handler calls commit, which writes ev on
// its own if the change wrote no record of collection; the request fails if
// ev cannot be written.
func (a *API) change(r *http.Request, ev audit.Event, collection string) (*http.Request, func() error) {
	a.fill(r, &ev)
	ctx, p := a.d.Audit.Attach(r.Context(), ev, collection)
	return r.WithContext(ctx), func() error { return p.Commit(context.WithoutCancel(ctx)) }
}

// signIn is change for a sign-in: the event commits with the console
// session or token record the sign-in writes to collection, and names that
// record and, as the actor, the user the record was opened for.
func (a *API) signIn(r *http.Request, ev audit.Event, collection string) (*http.Request, func() error) {
	a.fill(r, &ev)
	ctx, p := a.d.Audit.AttachWith(r.Context(), collection, func(main store.Write) audit.Event {
		ev := ev
		ev.Resource.ID = main.Record.ID
		if user := main.Record.Index[identity.SubjectIndex]; user != "" {
			ev.Actor.Type, ev.Actor.ID = "user", user
		}
		return ev
	})
	return r.WithContext(ctx), func() error { return p.Commit(context.WithoutCancel(ctx)) }
}

// fill completes ev with the request's tenant, actor, request id and stated
// purpose of access.
func (a *API) fill(r *http.Request, ev *audit.Event) {
	p := principalOf(r.Context())
	if p.Tenant != "" {
		ev.Tenant = p.Tenant
	}
	ev.Actor = audit.Actor{Type: p.Type, ID: p.ID, Address: pii.String(a.clientAddr(r)), UserAgent: pii.String(r.UserAgent())}
	if ev.Actor.Type == "" {
		ev.Actor.Type = "anonymous"
	}
	ev.RequestID = requestID(r.Context())
}

// SessionCookie is the name of the console session cookie, and CSRFHeader
// the header that carries the session's CSRF token.
const (
	SessionCookie = "idvault_session"
	CSRFHeader    = "X-CSRF-Token"
)

// authenticate resolves the request's credential: the Authorization header
// (API key or bearer token) or, without one, the console session cookie.
func (a *API) authenticate(r *http.Request) (identity.Principal, error) {
	if h := r.Header.Get("Authorization"); h != "" {
		return a.d.Identity.AuthenticateFrom(r.Context(), h, a.clientAddr(r))
	}
	if c, err := r.Cookie(SessionCookie); err == nil {
		return a.d.Identity.AuthenticateSession(r.Context(), c.Value)
	}
	return identity.Principal{}, identity.ErrUnauthenticated
}

// limit takes a token of class for key, or returns 429 rate-limited with
// Retry-After. A refusal is not audited (a flood would fill the audit log);
// the request log line records it.
func (a *API) limit(c ratelimit.Class, k ratelimit.Key) error {
	if a.d.RateLimit == nil {
		return nil
	}
	ok, wait := a.d.RateLimit.Allow(k, c, a.d.Now())
	if ok {
		return nil
	}
	p := problem(http.StatusTooManyRequests, "rate-limited", "Too many requests",
		"The request rate limit is exceeded; retry after the number of seconds in Retry-After.")
	p.header = http.Header{"Retry-After": {strconv.FormatInt(ratelimit.RetryAfterSeconds(wait), 10)}}
	return p
}

// clientIP is the client's address: the peer, or behind a trusted proxy the
// address the proxy names.
func (a *API) clientIP(r *http.Request) netip.Addr {
	return ratelimit.ClientIP(r, a.d.TrustedProxies)
}

func (a *API) clientAddr(r *http.Request) string {
	if ip := a.clientIP(r); ip.IsValid() {
		return ip.String()
	}
	return r.RemoteAddr
}

// view returns the tenant view of the request's principal.
func (a *API) view(r *http.Request) (*store.View, error) {
	return store.NewView(a.d.Backend, a.d.Barrier, principalOf(r.Context()).Tenant)
}

type statusWriter struct {
	http.ResponseWriter
	code        int
	wroteHeader bool
}

func (s *statusWriter) WriteHeader(code int) {
	if !s.wroteHeader {
		s.code, s.wroteHeader = code, true
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	if !s.wroteHeader {
		s.WriteHeader(http.StatusOK)
	}
	return s.ResponseWriter.Write(b)
}

func (s *statusWriter) status() int {
	if !s.wroteHeader {
		return http.StatusOK
	}
	return s.code
}

func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

func (a *API) healthz(w http.ResponseWriter, _ *http.Request) error {
	return writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// AuditLagWarning is how long an event may wait in the audit outbox before
// /readyz reports the audit pipeline "behind".
const AuditLagWarning = time.Minute

func (a *API) readyz(w http.ResponseWriter, r *http.Request) error {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	checks := map[string]string{"store": "ok", "queue": "ok"}
	ready := true
	if err := a.d.Backend.Ping(ctx); err != nil {
		checks["store"], ready = "unavailable", false
		a.d.Log.Warn("readyz: store", "err", err)
	}
	if err := a.d.Broker.Ping(ctx); err != nil {
		checks["queue"], ready = "unavailable", false
		a.d.Log.Warn("readyz: queue", "err", err)
	}
	if !ready {
		p := problem(http.StatusServiceUnavailable, "not-ready", "Not ready", "A backend is unavailable: "+checks["store"]+" store, "+checks["queue"]+" queue.")
		return p
	}
	// The audit pipeline's lag does not make the API unready (every action
	// is still recorded in the outbox first); it is reported for monitoring.
	checks["audit"] = "ok"
	if at, waiting, err := audit.OldestWaiting(ctx, a.d.Backend); err != nil {
		checks["audit"] = "unknown"
	} else if lag := a.d.Now().Sub(at); waiting && lag > AuditLagWarning {
		checks["audit"] = "behind"
		a.d.Log.Warn("readyz: audit events wait in the outbox", "oldestSeconds", int(lag.Seconds()))
	}
	return writeJSON(w, http.StatusOK, map[string]any{"status": "ready", "checks": checks})
}

func writeJSON(w http.ResponseWriter, status int, v any) error {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	return jsonEncode(w, v)
}

// mediaProblem maps a media check failure to a problem.
func mediaProblem(err error) error {
	switch {
	case errors.Is(err, media.ErrUnsupportedType):
		return problem(http.StatusUnsupportedMediaType, "unsupported-media-type", "Unsupported media type",
			"Only JPEG, PNG, WebP and PDF files are accepted.")
	case errors.Is(err, media.ErrTypeMismatch):
		return problem(http.StatusUnsupportedMediaType, "content-type-mismatch", "Content type mismatch",
			"The Content-Type header does not match the file's content.")
	case errors.Is(err, media.ErrTooLarge):
		return problem(http.StatusRequestEntityTooLarge, "too-large", "Request body too large",
			"The file exceeds the upload limit.")
	case errors.Is(err, media.ErrTooManyPixels):
		return problem(http.StatusRequestEntityTooLarge, "too-many-pixels", "Image too large",
			"The image has more pixels than allowed.")
	case errors.Is(err, media.ErrCorrupt):
		return problem(http.StatusUnprocessableEntity, "corrupt-file", "Corrupt file",
			"The file is truncated or corrupt.")
	}
	return err
}
