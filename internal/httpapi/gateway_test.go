package httpapi_test

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/idvault/idvault/internal/audit"
	"github.com/idvault/idvault/internal/authz"
	"github.com/idvault/idvault/internal/httpapi"
	"github.com/idvault/idvault/internal/regula/httpx"
	"github.com/idvault/idvault/internal/regula/regulatest"
	"github.com/idvault/idvault/internal/session"
	"github.com/idvault/idvault/internal/store"
)

// upstreamClient is a client of a Regula service at url trusting caFile,
// with no retry, as the server builds from regula.* configuration.
func upstreamClient(t testing.TB, url, caFile string, maxRequest int64) *httpapi.Upstream {
	t.Helper()
	c, err := httpx.New(httpx.Config{URL: url, CAFile: caFile, Timeout: 10 * time.Second,
		Breaker: httpx.Breaker{Failures: 1000}}, httpx.Options{Service: "regula"})
	if err != nil {
		t.Fatalf("httpx.New(%s) = %v, want nil", url, err)
	}
	t.Cleanup(c.Close)
	return &httpapi.Upstream{Client: c, MaxRequestBytes: maxRequest}
}

// withGateway points the gateway at dr and fa (either may be nil).
func withGateway(dr, fa *httpapi.Upstream) func(*httpapi.Deps) {
	return func(d *httpapi.Deps) { d.Gateway = httpapi.Gateway{DocReader: dr, FaceAPI: fa} }
}

// processBody is a ProcessRequest that the Document Reader stand-in
// accepts, carrying tag as its transaction tag.
func processBody(t testing.TB, tag string) []byte {
	t.Helper()
	body, err := json.Marshal(map[string]any{
		"processParam": map[string]any{"scenario": "FullProcess"},
		"List":         []any{map[string]any{"ImageData": map[string]any{"image": base64.StdEncoding.EncodeToString(regulatest.JPEG(64, 40))}, "light": 6, "page_idx": 0}},
		"tag":          tag,
	})
	if err != nil {
		t.Fatal(err)
	}
	return body
}

// matchBody is a MatchRequest with two images.
func matchBody(t testing.TB) []byte {
	t.Helper()
	img := base64.StdEncoding.EncodeToString(regulatest.JPEG(48, 48))
	body, err := json.Marshal(map[string]any{"images": []any{
		map[string]any{"index": 0, "type": 1, "data": img},
		map[string]any{"index": 1, "type": 3, "data": img},
	}})
	if err != nil {
		t.Fatal(err)
	}
	return body
}

// recorder is a TLS server in front of a stand-in: it keeps the headers
// and query of every request it receives and the exact body of every answer
// it relays, so that tests see what idvault sends and what the service
// answered.
type recorder struct {
	srv    *httptest.Server
	caFile string

	mu      sync.Mutex
	headers []http.Header
	queries []string
	answers [][]byte
}

func newRecorder(t *testing.T, target, targetCA string) *recorder {
	t.Helper()
	pem, err := os.ReadFile(targetCA)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}}}
	rec := &recorder{}
	rec.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec.mu.Lock()
		rec.headers = append(rec.headers, r.Header.Clone())
		rec.queries = append(rec.queries, r.URL.RawQuery)
		rec.mu.Unlock()
		req, err := http.NewRequestWithContext(r.Context(), r.Method, target+r.URL.Path, r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		req.Header.Set("Content-Type", r.Header.Get("Content-Type"))
		res, err := client.Do(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer res.Body.Close()
		body, err := io.ReadAll(res.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		rec.mu.Lock()
		rec.answers = append(rec.answers, body)
		rec.mu.Unlock()
		w.Header().Set("Content-Type", res.Header.Get("Content-Type"))
		w.WriteHeader(res.StatusCode)
		_, _ = w.Write(body)
	}))
	t.Cleanup(rec.srv.Close)
	rec.caFile = t.TempDir() + "/recorder-ca.pem"
	if err := os.WriteFile(rec.caFile, pemCert(rec.srv.Certificate()), 0o600); err != nil {
		t.Fatal(err)
	}
	return rec
}

func pemCert(c *x509.Certificate) []byte {
	var b bytes.Buffer
	b.WriteString("-----BEGIN CERTIFICATE-----\n")
	enc := base64.StdEncoding.EncodeToString(c.Raw)
	for len(enc) > 64 {
		b.WriteString(enc[:64] + "\n")
		enc = enc[64:]
	}
	b.WriteString(enc + "\n-----END CERTIFICATE-----\n")
	return b.Bytes()
}

func (rec *recorder) last(t *testing.T) (http.Header, string, []byte) {
	t.Helper()
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.headers) == 0 || len(rec.answers) == 0 {
		t.Fatalf("the recorder saw no request")
	}
	return rec.headers[len(rec.headers)-1], rec.queries[len(rec.queries)-1], rec.answers[len(rec.answers)-1]
}

// deviceToken issues a device token for a new session of tenant A through
// an integration key, as a backend does for Regula's SDK on a phone, and
// returns the session's id and the token's Authorization header value.
func deviceToken(t *testing.T, h *harness) (sessionID, auth string) {
	t.Helper()
	_, integ := h.newKey(t, h.a.ID, []string{authz.RoleIntegration}, nil)
	key := tenant{ID: h.a.ID, Key: integ}
	s := h.createSession(t, key, `{}`)
	return s.ID, issueDeviceToken(t, h, key, s.ID)
}

// issueDeviceToken issues one more device token for session sessionID of
// tn through tn's key.
func issueDeviceToken(t *testing.T, h *harness, tn tenant, sessionID string) string {
	t.Helper()
	res := h.do(t, "POST", "/api/v1/device-tokens", tn.Auth(), "application/json", []byte(`{"sessionId":"`+sessionID+`","ttl":600}`))
	wantStatus(t, res, http.StatusCreated)
	var dt struct{ Token string }
	if err := json.Unmarshal(res.body, &dt); err != nil {
		t.Fatal(err)
	}
	return "Bearer " + dt.Token
}

// TestGatewayProxies: an authenticated call through /drapi and /faceapi
// reaches the stand-in over TLS and answers exactly the bytes the service
// answered, for the admin, an integration key and a device token; every
// call is audited with its route and status and without its body.
func TestGatewayProxies(t *testing.T) {
	dr := regulatest.NewDocReader(t, regulatest.Options{TLS: true})
	fa := regulatest.NewFaceAPI(t, regulatest.Options{TLS: true})
	drRec := newRecorder(t, dr.URL(), dr.CAFile())
	faRec := newRecorder(t, fa.URL(), fa.CAFile())
	h := newHarness(t, withGateway(upstreamClient(t, drRec.srv.URL, drRec.caFile, 1<<20), upstreamClient(t, faRec.srv.URL, faRec.caFile, 1<<20)))
	_, integ := h.newKey(t, h.a.ID, []string{authz.RoleIntegration}, nil)
	_, dev := deviceToken(t, h)
	tag := marker(t, "tag")

	for _, c := range []struct {
		name, auth string
	}{{"admin", h.a.Auth()}, {"integration", "ApiKey " + integ}, {"device token", dev}} {
		t.Run(c.name, func(t *testing.T) {
			for _, call := range []struct {
				path string
				rec  *recorder
				body []byte
			}{
				{"/drapi/api/process", drRec, processBody(t, tag)},
				{"/faceapi/api/match", faRec, matchBody(t)},
				{"/faceapi/api/detect", faRec, []byte(`{"image":"` + base64.StdEncoding.EncodeToString(regulatest.PNG(32, 32)) + `"}`)},
			} {
				res := h.do(t, "POST", call.path, c.auth, "application/json", call.body)
				wantStatus(t, res, http.StatusOK)
				_, _, answered := call.rec.last(t)
				if !bytes.Equal(res.body, answered) {
					t.Errorf("POST %s body = %q, want the service's answer %q", call.path, truncate(res.body, 200), truncate(answered, 200))
				}
				if ct := res.header.Get("Content-Type"); ct != "application/json" {
					t.Errorf("POST %s Content-Type = %q, want application/json", call.path, ct)
				}
				ev := h.auditEvent(t, h.a.ID, res.header.Get("X-Request-Id"), "gateway.request")
				if ev.Outcome != audit.Success || ev.Resource.Type != "gateway" || ev.Resource.ID != "POST "+call.path || ev.Details["status"] != "200" {
					t.Errorf("gateway.request = %+v, want success for POST %s with status 200", ev, call.path)
				}
			}
		})
	}
	if n := len(dr.Rejections()) + len(fa.Rejections()); n != 0 {
		t.Errorf("stand-ins rejected %d requests: %q %q, want none", n, dr.Rejections(), fa.Rejections())
	}
	// The body is personal data: it is in no audit event and no log line.
	all, err := json.Marshal(h.auditEvents(t, h.a.ID))
	if err != nil {
		t.Fatal(err)
	}
	if contains(all, tag) || contains(h.log.Bytes(), tag) {
		t.Errorf("a request body's content reached the audit log or the process log")
	}
}

// TestGatewayForwardsNoClientHeaders: the caller's credential, cookies,
// forwarding headers, any other header and the query string do not reach
// the service; only Content-Type and Accept of idvault's own do.
func TestGatewayForwardsNoClientHeaders(t *testing.T) {
	dr := regulatest.NewDocReader(t, regulatest.Options{TLS: true})
	rec := newRecorder(t, dr.URL(), dr.CAFile())
	h := newHarness(t, withGateway(upstreamClient(t, rec.srv.URL, rec.caFile, 1<<20), nil))
	secret := marker(t, "hdr")
	res := h.send(t, request{method: "POST", path: "/drapi/api/process?debug=" + secret, auth: h.a.Auth(),
		contentType: "application/json", body: processBody(t, "t"),
		header: map[string]string{
			"Cookie":              httpapi.SessionCookie + "=" + secret,
			"X-Forwarded-For":     "10.9.8.7",
			"X-Custom":            secret,
			"Proxy-Authorization": "Basic " + secret,
			httpapi.CSRFHeader:    secret,
		}})
	wantStatus(t, res, http.StatusOK)
	hdr, query, _ := rec.last(t)
	if query != "" {
		t.Errorf("service saw query %q, want none", query)
	}
	for name, values := range hdr {
		switch name {
		case "Content-Type", "Accept", "User-Agent", "Content-Length", "Accept-Encoding":
		default:
			t.Errorf("service saw header %s: %q; want only Content-Type, Accept and transport headers", name, values)
		}
		for _, v := range values {
			if strings.Contains(v, secret) || strings.Contains(v, h.a.Key) {
				t.Errorf("service saw header %s carrying the caller's value", name)
			}
		}
	}
}

// TestGatewayRefuses: no credential is 401, a credential without
// file:write is 403 and audited, a path or method outside the allow-list is
// 404 or 405, bodies that are too large, not JSON or not an object are
// refused, a service that is not configured is 404; none of them reaches
// the service.
func TestGatewayRefuses(t *testing.T) {
	dr := regulatest.NewDocReader(t, regulatest.Options{TLS: true})
	fa := regulatest.NewFaceAPI(t, regulatest.Options{TLS: true})
	h := newHarness(t, withGateway(upstreamClient(t, dr.URL(), dr.CAFile(), 4096), upstreamClient(t, fa.URL(), fa.CAFile(), 1<<20)))
	_, verifier := h.newKey(t, h.a.ID, []string{authz.RoleVerifier}, nil)
	_, auditor := h.newKey(t, h.a.ID, []string{authz.RoleAuditor}, nil)
	small := []byte(`{"processParam":{"scenario":"Mrz"},"List":[]}`)

	t.Run("unauthenticated", func(t *testing.T) {
		for _, auth := range []string{"", "ApiKey idvk.nope.nope.nope", "Bearer " + h.a.Key} {
			wantProblem(t, h.do(t, "POST", "/drapi/api/process", auth, "application/json", small), http.StatusUnauthorized, "unauthenticated")
		}
	})
	t.Run("without file:write", func(t *testing.T) {
		for _, key := range []string{verifier, auditor} {
			res := h.do(t, "POST", "/faceapi/api/match", "ApiKey "+key, "application/json", matchBody(t))
			wantProblem(t, res, http.StatusForbidden, "forbidden")
			ev := h.auditEvent(t, h.a.ID, res.header.Get("X-Request-Id"), "access.denied")
			if ev.Outcome != audit.Denied || ev.Resource.ID != "POST /faceapi/api/match" || !strings.Contains(ev.Reason, string(authz.FileWrite)) {
				t.Errorf("access.denied = %+v, want denied for the route, missing file:write", ev)
			}
		}
	})
	t.Run("outside the allow-list", func(t *testing.T) {
		for _, path := range []string{
			"/drapi/api/v2/transaction/1/results", "/drapi/api/healthz", "/drapi/", "/drapi/api/process/x",
			"/faceapi/api/v2/liveness?transactionId=0f8fad5b-d9cb-469f-a165-70867728950e",
			"/faceapi/api/persons", "/faceapi/api/groups", "/faceapi/api/search", "/faceapi/api/match_and_search",
			"/faceapi/api/../api/persons", "/faceapi/api/%2e%2e/persons", "/api/process",
		} {
			for _, method := range []string{"GET", "POST"} {
				res := h.do(t, method, path, h.a.Auth(), "application/json", small)
				// A path with a dot segment is redirected to its clean
				// form, which the list checks on its own.
				redirect := strings.Contains(path, "/../") && res.status/100 == 3 && res.header.Get("Location") == "/faceapi/api/persons"
				if res.status != http.StatusNotFound && !redirect {
					t.Errorf("%s %s status = %d, want 404", method, path, res.status)
				}
			}
		}
		for _, c := range []struct{ method, path string }{
			{"GET", "/drapi/api/process"}, {"PUT", "/drapi/api/process"}, {"DELETE", "/faceapi/api/match"},
			{"POST", "/drapi/api/ping"}, {"GET", "/faceapi/api/detect"},
		} {
			wantProblem(t, h.do(t, c.method, c.path, h.a.Auth(), "application/json", small), http.StatusMethodNotAllowed, "method-not-allowed")
		}
	})
	t.Run("bodies", func(t *testing.T) {
		big := processBody(t, strings.Repeat("x", 5000))
		wantProblem(t, h.do(t, "POST", "/drapi/api/process", h.a.Auth(), "application/json", big), http.StatusRequestEntityTooLarge, "too-large")
		wantProblem(t, h.send(t, request{method: "POST", path: "/drapi/api/process", auth: h.a.Auth(), contentType: "application/json", body: big, unsized: true}),
			http.StatusRequestEntityTooLarge, "too-large")
		wantProblem(t, h.do(t, "POST", "/drapi/api/process", h.a.Auth(), "text/plain", small), http.StatusUnsupportedMediaType, "unsupported-media-type")
		for _, body := range []string{``, `[1]`, `{"a":`, `"x"`} {
			wantProblem(t, h.do(t, "POST", "/drapi/api/process", h.a.Auth(), "application/json", []byte(body)), http.StatusBadRequest, "invalid-request")
		}
	})
	if n := dr.Requests() + fa.Requests(); n != 0 {
		t.Errorf("stand-ins received %d requests, want none", n)
	}

	t.Run("not configured", func(t *testing.T) {
		h := newHarness(t)
		wantProblem(t, h.do(t, "POST", "/drapi/api/process", h.a.Auth(), "application/json", small), http.StatusNotFound, "not-found")
		wantProblem(t, h.do(t, "GET", "/drapi/api/ping", h.a.Auth(), "", nil), http.StatusNotFound, "not-found")
		wantProblem(t, h.do(t, "POST", "/faceapi/api/detect", h.a.Auth(), "application/json", small), http.StatusNotFound, "not-found")
	})
}

// TestGatewayUpstreamFailures: a service that is down, answers 5xx or
// malformed JSON is 502 upstream-unavailable; one that rejects the request
// is 422 upstream-rejected; both are audited with the status answered.
func TestGatewayUpstreamFailures(t *testing.T) {
	dr := regulatest.NewDocReader(t, regulatest.Options{TLS: true})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := "https://" + ln.Addr().String()
	_ = ln.Close()
	h := newHarness(t, withGateway(upstreamClient(t, dr.URL(), dr.CAFile(), 1<<20), upstreamClient(t, down, dr.CAFile(), 1<<20)))
	body := processBody(t, "t")

	dr.Inject(regulatest.Status(503), regulatest.Status(500), regulatest.MalformedJSON())
	for range 3 {
		res := h.do(t, "POST", "/drapi/api/process", h.a.Auth(), "application/json", body)
		wantProblem(t, res, http.StatusBadGateway, "upstream-unavailable")
		ev := h.auditEvent(t, h.a.ID, res.header.Get("X-Request-Id"), "gateway.request")
		if ev.Outcome != audit.Failure || ev.Details["status"] != "502" {
			t.Errorf("gateway.request = %+v, want error with status 502", ev)
		}
	}
	res := h.do(t, "POST", "/faceapi/api/match", h.a.Auth(), "application/json", matchBody(t))
	wantProblem(t, res, http.StatusBadGateway, "upstream-unavailable")

	// The stand-in answers the spec's 400 to a request it rejects, and
	// serves no /api/ping.
	res = h.do(t, "POST", "/drapi/api/process", h.a.Auth(), "application/json", []byte(`{"processParam":{"scenario":"NoSuchScenario"},"List":[]}`))
	wantProblem(t, res, http.StatusUnprocessableEntity, "upstream-rejected")
	if ev := h.auditEvent(t, h.a.ID, res.header.Get("X-Request-Id"), "gateway.request"); ev.Details["status"] != "422" {
		t.Errorf("gateway.request status = %q, want 422", ev.Details["status"])
	}
	wantProblem(t, h.do(t, "GET", "/drapi/api/ping", h.a.Auth(), "", nil), http.StatusUnprocessableEntity, "upstream-rejected")
	if got := len(dr.Rejections()); got != 2 {
		t.Errorf("stand-in rejections = %d, want 2", got)
	}
	wantStatus(t, h.do(t, "POST", "/drapi/api/process", h.a.Auth(), "application/json", body), http.StatusOK)
}

// withQuota sets the gateway's call quota per device session to n.
func withQuota(n int) func(*httpapi.Deps) {
	return func(d *httpapi.Deps) { d.Gateway.MaxCallsPerSession = n }
}

// callCount returns the gateway call count stored for session sessionID
// of tenantID, or found false when there is no count record.
func (h *harness) callCount(t *testing.T, tenantID, sessionID string) (n int, found bool) {
	t.Helper()
	v, err := store.NewView(h.backend, h.barrier, tenantID)
	if err != nil {
		t.Fatal(err)
	}
	var c struct{ Calls int }
	_, err = v.Get(t.Context(), session.GatewayCallsCollection, sessionID, &c)
	if errors.Is(err, store.ErrNotFound) {
		return 0, false
	}
	if err != nil {
		t.Fatalf("Get(%s, %s) = %v, want nil", session.GatewayCallsCollection, sessionID, err)
	}
	return c.Calls, true
}

// wantGatewayDenied checks that the refused request res was audited as
// gateway.request, denied, for route, with status, the session and a
// reason containing reason.
func (h *harness) wantGatewayDenied(t *testing.T, res response, route string, status int, sessionID, reason string) {
	t.Helper()
	ev := h.auditEvent(t, h.a.ID, res.header.Get("X-Request-Id"), "gateway.request")
	if ev.Outcome != audit.Denied || ev.Resource.Type != "gateway" || ev.Resource.ID != route ||
		ev.Details["status"] != strconv.Itoa(status) || ev.Details["session"] != sessionID || !strings.Contains(ev.Reason, reason) {
		t.Errorf("gateway.request = %+v, want denied for %s with status %d, session %s and a reason containing %q", ev, route, status, sessionID, reason)
	}
}

// TestGatewayDeviceSessionClosed: the attack of a leaked device token. Once
// its session is finished (approved, rejected, in review, cancelled,
// expired, in error), past its expiresAt or deleted, the token is refused
// 409 session-closed on every gateway route, the refusal is audited, and
// the services are never called. The deleted session's call count is gone
// with it.
func TestGatewayDeviceSessionClosed(t *testing.T) {
	dr := regulatest.NewDocReader(t, regulatest.Options{TLS: true})
	fa := regulatest.NewFaceAPI(t, regulatest.Options{TLS: true})
	h := newHarness(t, withGateway(upstreamClient(t, dr.URL(), dr.CAFile(), 1<<20), upstreamClient(t, fa.URL(), fa.CAFile(), 1<<20)))
	tag := marker(t, "tag")
	calls := []struct {
		method, path string
		body         []byte
	}{
		{"POST", "/drapi/api/process", processBody(t, tag)},
		{"GET", "/drapi/api/ping", nil},
		{"POST", "/faceapi/api/match", matchBody(t)},
		{"POST", "/faceapi/api/detect", []byte(`{"image":"` + base64.StdEncoding.EncodeToString(regulatest.PNG(32, 32)) + `"}`)},
	}
	setExpiry := func(t *testing.T, id string, at time.Time) {
		t.Helper()
		v, err := store.NewView(h.backend, h.barrier, h.a.ID)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := session.NewRepo(v).Update(t.Context(), id, h.clock.Now(), func(s *session.Session) error {
			s.ExpiresAt = at
			return nil
		}); err != nil {
			t.Fatalf("set expiry of %s = %v, want nil", id, err)
		}
	}
	tests := []struct {
		name   string
		close  func(t *testing.T, id string)
		reason string
	}{
		{"approved", func(t *testing.T, id string) { h.setStatus(t, h.a, id, session.StatusApproved) }, "bound session is approved"},
		{"rejected", func(t *testing.T, id string) { h.setStatus(t, h.a, id, session.StatusRejected) }, "bound session is rejected"},
		{"in review", func(t *testing.T, id string) { h.setStatus(t, h.a, id, session.StatusReview) }, "bound session is review"},
		{"in error", func(t *testing.T, id string) { h.setStatus(t, h.a, id, session.StatusError) }, "bound session is error"},
		{"marked expired", func(t *testing.T, id string) { h.setStatus(t, h.a, id, session.StatusExpired) }, "bound session is expired"},
		{"cancelled", func(t *testing.T, id string) {
			wantStatus(t, h.do(t, "POST", "/api/v1/sessions/"+id+"/cancel", h.a.Auth(), "", nil), http.StatusOK)
		}, "bound session is cancelled"},
		// The scheduler has not marked it expired yet: the expiry itself
		// closes it.
		{"past expiresAt, still pending", func(t *testing.T, id string) { setExpiry(t, id, h.clock.Now().Add(-time.Second)) }, "bound session expired"},
		{"expiring now", func(t *testing.T, id string) { setExpiry(t, id, h.clock.Now()) }, "bound session expired"},
		{"deleted", func(t *testing.T, id string) {
			if _, found := h.callCount(t, h.a.ID, id); !found {
				t.Fatalf("no call count for session %s before it is deleted, want one", id)
			}
			wantStatus(t, h.do(t, "DELETE", "/api/v1/sessions/"+id, h.a.Auth(), "", nil), http.StatusNoContent)
			if n, found := h.callCount(t, h.a.ID, id); found {
				t.Errorf("call count of the deleted session = %d, want no record", n)
			}
		}, "bound session not found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, dev := deviceToken(t, h)
			// The token works while the session is open.
			wantStatus(t, h.do(t, "POST", "/drapi/api/process", dev, "application/json", processBody(t, tag)), http.StatusOK)
			tt.close(t, id)
			before := dr.Requests() + fa.Requests()
			for _, c := range calls {
				contentType := ""
				if c.body != nil {
					contentType = "application/json"
				}
				res := h.do(t, c.method, c.path, dev, contentType, c.body)
				wantProblem(t, res, http.StatusConflict, "session-closed")
				h.wantGatewayDenied(t, res, c.method+" "+c.path, http.StatusConflict, id, tt.reason)
			}
			if n := dr.Requests() + fa.Requests() - before; n != 0 {
				t.Errorf("services received %d requests from a closed session's token, want none", n)
			}
			if n, _ := h.callCount(t, h.a.ID, id); n > 1 {
				t.Errorf("call count = %d after refused calls, want at most the one forwarded call", n)
			}
		})
	}

	t.Run("admin unaffected", func(t *testing.T) {
		for _, c := range calls[:1] {
			wantStatus(t, h.do(t, c.method, c.path, h.a.Auth(), "application/json", c.body), http.StatusOK)
		}
	})
	all, err := json.Marshal(h.auditEvents(t, h.a.ID))
	if err != nil {
		t.Fatal(err)
	}
	if contains(all, tag) || contains(h.log.Bytes(), tag) {
		t.Errorf("a request body's content reached the audit log or the process log")
	}
}

// TestGatewayDeviceQuota: a session's device tokens get at most
// MaxCallsPerSession forwarded calls, across both services and every token
// of the session; the next is 429 gateway-quota-exceeded without
// Retry-After, audited, and not forwarded. A call whose body is refused
// takes nothing; another session has its own quota; admin and integration
// keys are not counted.
func TestGatewayDeviceQuota(t *testing.T) {
	const quota = 3
	dr := regulatest.NewDocReader(t, regulatest.Options{TLS: true})
	fa := regulatest.NewFaceAPI(t, regulatest.Options{TLS: true})
	h := newHarness(t, withGateway(upstreamClient(t, dr.URL(), dr.CAFile(), 1<<20), upstreamClient(t, fa.URL(), fa.CAFile(), 1<<20)), withQuota(quota))
	_, integ := h.newKey(t, h.a.ID, []string{authz.RoleIntegration}, nil)
	id, dev := deviceToken(t, h)

	// Bodies refused before forwarding take no call.
	wantProblem(t, h.do(t, "POST", "/drapi/api/process", dev, "text/plain", []byte(`{}`)), http.StatusUnsupportedMediaType, "unsupported-media-type")
	wantProblem(t, h.do(t, "POST", "/faceapi/api/match", dev, "application/json", []byte(`[1]`)), http.StatusBadRequest, "invalid-request")
	if n, found := h.callCount(t, h.a.ID, id); found {
		t.Fatalf("call count = %d after refused bodies, want no record", n)
	}

	wantStatus(t, h.do(t, "POST", "/drapi/api/process", dev, "application/json", processBody(t, "t")), http.StatusOK)
	wantStatus(t, h.do(t, "POST", "/faceapi/api/match", dev, "application/json", matchBody(t)), http.StatusOK)
	// A second token of the same session shares its quota.
	dev2 := issueDeviceToken(t, h, h.a, id)
	wantStatus(t, h.do(t, "POST", "/drapi/api/process", dev2, "application/json", processBody(t, "t")), http.StatusOK)
	if n, _ := h.callCount(t, h.a.ID, id); n != quota {
		t.Fatalf("call count = %d, want %d", n, quota)
	}

	forwarded := dr.Requests() + fa.Requests()
	for _, auth := range []string{dev, dev2} {
		res := h.do(t, "POST", "/faceapi/api/match", auth, "application/json", matchBody(t))
		wantProblem(t, res, http.StatusTooManyRequests, "gateway-quota-exceeded")
		if ra := res.header.Get("Retry-After"); ra != "" {
			t.Errorf("Retry-After = %q, want none: the quota does not refill", ra)
		}
		h.wantGatewayDenied(t, res, "POST /faceapi/api/match", http.StatusTooManyRequests, id, "quota")
	}
	if n := dr.Requests() + fa.Requests() - forwarded; n != 0 {
		t.Errorf("services received %d requests over the quota, want none", n)
	}
	if n, _ := h.callCount(t, h.a.ID, id); n != quota {
		t.Errorf("call count = %d after refusals, want %d", n, quota)
	}

	// Another session has its own quota.
	_, other := deviceToken(t, h)
	wantStatus(t, h.do(t, "POST", "/drapi/api/process", other, "application/json", processBody(t, "t")), http.StatusOK)
	// Admin and integration keys are not counted.
	for _, auth := range []string{h.a.Auth(), "ApiKey " + integ} {
		for range quota + 1 {
			wantStatus(t, h.do(t, "POST", "/faceapi/api/detect", auth, "application/json",
				[]byte(`{"image":"`+base64.StdEncoding.EncodeToString(regulatest.PNG(32, 32))+`"}`)), http.StatusOK)
		}
	}
}

// TestGatewayDeviceQuotaRace: many calls of one session's device token at
// once, through two API instances over the same store (as two API
// processes), forward exactly the quota; the rest are 429.
func TestGatewayDeviceQuotaRace(t *testing.T) {
	const quota, callers = 5, 24
	dr := regulatest.NewDocReader(t, regulatest.Options{TLS: true})
	var deps httpapi.Deps
	h := newHarness(t, withGateway(upstreamClient(t, dr.URL(), dr.CAFile(), 1<<20), nil), withQuota(quota),
		func(d *httpapi.Deps) { deps = *d })
	second := httptest.NewTLSServer(httpapi.New(deps))
	t.Cleanup(second.Close)
	id, dev := deviceToken(t, h)
	body := processBody(t, "t")

	start := make(chan struct{})
	statuses := make(chan int, callers)
	errs := make(chan error, callers)
	var wg sync.WaitGroup
	for i := range callers {
		wg.Go(func() {
			<-start
			if i%2 == 0 {
				res, err := h.try(t.Context(), request{method: "POST", path: "/drapi/api/process", auth: dev, contentType: "application/json", body: body})
				if err != nil {
					errs <- err
					return
				}
				statuses <- res.status
				return
			}
			req, err := http.NewRequestWithContext(t.Context(), "POST", second.URL+"/drapi/api/process", bytes.NewReader(body))
			if err != nil {
				errs <- err
				return
			}
			req.Header.Set("Authorization", dev)
			req.Header.Set("Content-Type", "application/json")
			res, err := second.Client().Do(req)
			if err != nil {
				errs <- err
				return
			}
			_, _ = io.Copy(io.Discard, res.Body)
			_ = res.Body.Close()
			statuses <- res.StatusCode
		})
	}
	close(start)
	wg.Wait()
	close(statuses)
	close(errs)
	for err := range errs {
		t.Errorf("call = %v, want a response", err)
	}
	got := map[int]int{}
	for s := range statuses {
		got[s]++
	}
	if got[http.StatusOK] != quota || got[http.StatusTooManyRequests] != callers-quota || len(got) != 2 {
		t.Errorf("statuses = %v, want %d × 200 and %d × 429", got, quota, callers-quota)
	}
	if n := dr.Requests(); n != quota {
		t.Errorf("service received %d requests, want exactly the quota %d", n, quota)
	}
	if n, _ := h.callCount(t, h.a.ID, id); n != quota {
		t.Errorf("call count = %d, want %d", n, quota)
	}
	denied := 0
	for _, ev := range h.auditEvents(t, h.a.ID) {
		if ev.Action == "gateway.request" && ev.Outcome == audit.Denied && ev.Details["status"] == "429" && ev.Details["session"] == id {
			denied++
		}
	}
	if denied != callers-quota {
		t.Errorf("denied gateway.request events = %d, want %d", denied, callers-quota)
	}
}
