package httpapi_test

import (
	"bytes"
	"compress/zlib"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"image"
	"image/color"
	"image/color/palette"
	"image/gif"
	"image/jpeg"
	"image/png"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/mod/sumdb/note"

	"github.com/idvault/idvault/internal/audit"
	"github.com/idvault/idvault/internal/auditlog"
	"github.com/idvault/idvault/internal/authz"
	"github.com/idvault/idvault/internal/barrier"
	"github.com/idvault/idvault/internal/files"
	"github.com/idvault/idvault/internal/files/localfs"
	"github.com/idvault/idvault/internal/httpapi"
	"github.com/idvault/idvault/internal/identity"
	"github.com/idvault/idvault/internal/keyring"
	"github.com/idvault/idvault/internal/queue"
	"github.com/idvault/idvault/internal/queue/sqlitequeue"
	"github.com/idvault/idvault/internal/session"
	"github.com/idvault/idvault/internal/sqlitedb"
	"github.com/idvault/idvault/internal/store"
	"github.com/idvault/idvault/internal/store/sqlite"
	"github.com/idvault/idvault/internal/testenv/testclock"
	"github.com/idvault/idvault/internal/tlsconf"
	"github.com/idvault/idvault/internal/webhook"
	"github.com/idvault/idvault/internal/workflow/engine"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testLimits are the harness's limits: small, so that crossing them is
// cheap, and with MaxJSONBytes above the 16 KiB metadata limit so that both
// can be crossed separately.
var testLimits = httpapi.Limits{
	MaxJSONBytes:   32 << 10,
	MaxUploadBytes: 256 << 10,
	MaxImagePixels: 1 << 20,
	DefaultTTL:     time.Hour,
	MaxTTL:         48 * time.Hour,
}

// testEpoch is where the harness clock starts: far from the wall clock, so
// that code reading time.Now instead of the injected clock shows.
var testEpoch = time.Date(2031, time.March, 14, 15, 9, 26, 0, time.UTC)

// lockedBuffer is a log sink that is safe for concurrent use.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *lockedBuffer) Bytes() []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.buf.Bytes())
}

// tenant is one tenant of the harness with an admin user and an admin API
// key.
type tenant struct {
	ID       string
	Username string
	Password string
	KeyID    string
	// Key is the full admin API key, "idvk.<tenant>.<id>.<secret>".
	Key string
}

// Auth returns the Authorization header value of the tenant's admin key.
func (tn tenant) Auth() string { return "ApiKey " + tn.Key }

// harness is a real API over TLS on real SQLite, a real bucket directory,
// the real barrier, identity service, audit emitter and queue.
type harness struct {
	clock     *testclock.Clock
	log       *lockedBuffer
	dbDir     string
	bucketDir string
	db        *sqlitedb.DB
	backend   store.Backend
	broker    queue.Broker
	barrier   barrier.Barrier
	keyring   *keyring.Keyring
	identity  *identity.Service
	srv       *httptest.Server
	api       *httpapi.API
	roots     *x509.CertPool // trusts the server's certificate only
	client    *http.Client
	a, b      tenant
	// auditLog is the tamper-evident log the audit routes serve;
	// flushAudit moves the outbox into it. auditSigner is its private
	// checkpoint key (for forging checkpoints in tests), auditVerifier
	// the public one.
	auditLog      *auditlog.Log
	auditSigner   string
	auditVerifier string
	// webhooks is the webhook service of the API (policy
	// testWebhookPolicy); receivers serve receiverCert, which it trusts.
	webhooks     *webhook.Service
	receiverCert tls.Certificate
}

// auditOrigin is the checkpoint origin prefix of the harness's audit log.
const auditOrigin = "idvault.test/audit"

// newHarness starts a harness with two tenants, a and b; opts adjust the
// API's dependencies. Everything it opens is closed when the test ends.
func newHarness(t *testing.T, opts ...func(*httpapi.Deps)) *harness {
	t.Helper()
	ctx := t.Context()
	dir := t.TempDir()
	h := &harness{
		clock:     testclock.New(testEpoch),
		log:       &lockedBuffer{},
		dbDir:     filepath.Join(dir, "db"),
		bucketDir: filepath.Join(dir, "blobs"),
	}
	logger := slog.New(slog.NewJSONHandler(h.log, &slog.HandlerOptions{Level: slog.LevelDebug}))

	db, err := sqlitedb.Open(ctx, filepath.Join(h.dbDir, "idvault.db"))
	if err != nil {
		t.Fatalf("sqlitedb.Open = %v, want nil", err)
	}
	h.db = db
	t.Cleanup(func() { _ = db.Close() })
	backend, err := sqlite.New(ctx, db)
	if err != nil {
		t.Fatalf("sqlite.New = %v, want nil", err)
	}
	h.backend = backend
	t.Cleanup(func() { _ = backend.Close() })
	broker, err := sqlitequeue.New(ctx, db, queue.Options{})
	if err != nil {
		t.Fatalf("sqlitequeue.New = %v, want nil", err)
	}
	h.broker = broker
	t.Cleanup(func() { _ = broker.Close() })
	bucket, err := localfs.Open(ctx, h.bucketDir)
	if err != nil {
		t.Fatalf("localfs.Open = %v, want nil", err)
	}
	t.Cleanup(func() { _ = bucket.Close() })

	root, err := keyring.NewRootKey("root", randomBytes(t, 32))
	if err != nil {
		t.Fatalf("keyring.NewRootKey = %v, want nil", err)
	}
	kr, err := keyring.New(ctx, backend, []keyring.KEK{root}, logger, h.clock.Now)
	if err != nil {
		t.Fatalf("keyring.New = %v, want nil", err)
	}
	b := kr
	h.barrier, h.keyring = kr, kr
	blinder := kr
	h.identity = identity.NewService(backend, b, blinder, h.clock.Now)
	h.openAuditLog(t)
	receiverRoots := h.receiverTLS(t, filepath.Join(dir, "receiver-tls"))

	deps := httpapi.Deps{
		Backend:  backend,
		Barrier:  b,
		Identity: h.identity,
		Files:    files.New(bucket, b),
		Broker:   broker,
		Audit:    audit.NewEmitter(backend, b, h.clock.Now),
		Keys:     kr,
		Log:      logger,
		Limits:   testLimits,
		Now:      h.clock.Now,

		AuditLog:         h.auditLog,
		AuditVerifierKey: h.auditVerifier,
	}
	h.webhooks = newWebhookService(t, &deps, testWebhookPolicy, receiverRoots)
	deps.Webhooks = h.webhooks
	deps.Definitions = engine.NewDefinitions(backend, b, h.clock.Now)
	for _, o := range opts {
		o(&deps)
	}
	api := httpapi.New(deps)
	h.api = api
	h.startTLS(t, api, filepath.Join(dir, "tls"), logger)

	h.a = h.newTenant(t, "tenant-a")
	h.b = h.newTenant(t, "tenant-b")
	return h
}

// testWebhookPolicy lets the harness's webhook service reach https
// receivers on loopback, on any port; nothing else is lifted.
var testWebhookPolicy = webhook.Policy{
	Allow:   []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")},
	AnyPort: true,
}

// newWebhookService returns a webhook service on d's store, keyring,
// queue, audit emitter, log and clock with policy p, trusting roots (the
// system's when nil) for TLS.
func newWebhookService(t *testing.T, d *httpapi.Deps, p webhook.Policy, roots *x509.CertPool) *webhook.Service {
	t.Helper()
	secrets, ok := d.Keys.(webhook.Secrets)
	if !ok {
		t.Fatalf("Deps.Keys is %T, want a webhook.Secrets", d.Keys)
	}
	svc, err := webhook.New(webhook.Deps{Backend: d.Backend, Barrier: d.Barrier, Secrets: secrets, Broker: d.Broker,
		Audit: d.Audit, Log: d.Log, Now: d.Now}, webhook.Options{Policy: p, TLS: &tls.Config{RootCAs: roots}})
	if err != nil {
		t.Fatalf("webhook.New = %v, want nil", err)
	}
	t.Cleanup(svc.CloseIdleConnections)
	return svc
}

// receiverTLS makes the certificate webhook receivers serve (for
// localhost, 127.0.0.1 and ::1) in dir, keeps it in h.receiverCert and
// returns a pool that trusts it only.
func (h *harness) receiverTLS(t *testing.T, dir string) *x509.CertPool {
	t.Helper()
	certFile, keyFile, _, err := tlsconf.EnsureSelfSigned(dir, nil, time.Now())
	if err != nil {
		t.Fatalf("tlsconf.EnsureSelfSigned = %v, want nil", err)
	}
	if h.receiverCert, err = tls.LoadX509KeyPair(certFile, keyFile); err != nil {
		t.Fatalf("tls.LoadX509KeyPair = %v, want nil", err)
	}
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(certPEM) {
		t.Fatalf("AppendCertsFromPEM(%s) = false, want true", certFile)
	}
	return roots
}

// openAuditLog opens the tamper-evident audit log on the harness's store,
// with a new checkpoint key.
func (h *harness) openAuditLog(t *testing.T) {
	t.Helper()
	skey, vkey, err := auditlog.GenerateKey("idvault-test-audit")
	if err != nil {
		t.Fatal(err)
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	verifier, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	h.auditLog, err = auditlog.New(h.backend, h.barrier, signer, auditlog.Options{Origin: auditOrigin, Verifier: verifier, Now: h.clock.Now})
	if err != nil {
		t.Fatalf("auditlog.New = %v, want nil", err)
	}
	h.auditSigner, h.auditVerifier = skey, vkey
}

// flushAudit moves every event waiting in the outbox into the audit log
// synchronously, as the relay and the audit role do, and returns how many
// it moved.
func (h *harness) flushAudit(t *testing.T) int {
	t.Helper()
	ctx := t.Context()
	logger := slog.New(slog.NewJSONHandler(h.log, nil))
	relay, err := audit.NewRelay(h.backend, h.barrier, h.broker, nil, logger)
	if err != nil {
		t.Fatal(err)
	}
	consumer := audit.NewConsumer(h.broker, h.backend, h.barrier, audit.LogAppender(h.auditLog), logger)
	moved := 0
	for {
		n, err := relay.Once(ctx)
		if err != nil {
			t.Fatalf("relay.Once = %v, want nil", err)
		}
		if n == 0 {
			break
		}
		moved += n
		d, err := h.broker.Receive(ctx, queue.TopicAudit)
		if err != nil {
			t.Fatalf("Receive(audit) = %v, want a message", err)
		}
		if err := consumer.Handle(ctx, d.Body()); err != nil {
			t.Fatalf("consumer.Handle = %v, want nil", err)
		}
		if err := d.Ack(ctx); err != nil {
			t.Fatalf("Ack = %v, want nil", err)
		}
	}
	return moved
}

// startTLS serves api over TLS with a self-signed certificate from tlsconf
// and the package's server configuration, and makes a client that trusts
// only that certificate.
func (h *harness) startTLS(t *testing.T, api http.Handler, tlsDir string, logger *slog.Logger) {
	t.Helper()
	certFile, keyFile, _, err := tlsconf.EnsureSelfSigned(tlsDir, nil, time.Now())
	if err != nil {
		t.Fatalf("tlsconf.EnsureSelfSigned = %v, want nil", err)
	}
	reloader, err := tlsconf.NewReloader(certFile, keyFile, logger)
	if err != nil {
		t.Fatalf("tlsconf.NewReloader = %v, want nil", err)
	}
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(certPEM) {
		t.Fatalf("AppendCertsFromPEM(%s) = false, want true", certFile)
	}
	srv := httptest.NewUnstartedServer(api)
	srv.TLS = tlsconf.ServerConfig(reloader, nil)
	srv.EnableHTTP2 = true
	srv.Config.ErrorLog = slog.NewLogLogger(logger.Handler(), slog.LevelWarn)
	srv.Config.MaxHeaderBytes = 32 << 10
	srv.StartTLS()
	h.srv, h.roots = srv, roots
	// The client names "localhost" so that the server's GetCertificate
	// (the reloader) answers, and trusts nothing but that certificate.
	tr := &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: roots, ServerName: "localhost", MinVersion: tls.VersionTLS12},
		ForceAttemptHTTP2: true,
	}
	h.client = &http.Client{
		Transport:     tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	t.Cleanup(func() {
		srv.Close()
		tr.CloseIdleConnections()
	})
}

// newTenant creates a tenant with an admin user and an admin API key.
func (h *harness) newTenant(t *testing.T, name string) tenant {
	t.Helper()
	ctx := t.Context()
	tn, err := h.identity.CreateTenant(ctx, name)
	if err != nil {
		t.Fatalf("CreateTenant(%q) = %v, want nil", name, err)
	}
	out := tenant{ID: tn.ID, Username: "admin", Password: base64.RawURLEncoding.EncodeToString(randomBytes(t, 18))}
	_, err = h.identity.CreateUser(ctx, tn.ID, out.Username, out.Password, []string{authz.RoleAdmin})
	if err != nil {
		t.Fatalf("CreateUser = %v, want nil", err)
	}
	out.KeyID, out.Key = h.newKey(t, tn.ID, []string{authz.RoleAdmin}, nil)
	return out
}

// newKey creates an API key of tenant with roles, expiring at exp (never
// when nil).
func (h *harness) newKey(t *testing.T, tenantID string, roles []string, exp *time.Time) (id, key string) {
	t.Helper()
	id, key, err := h.identity.CreateAPIKey(t.Context(), tenantID, "test key", "test", roles, exp)
	if err != nil {
		t.Fatalf("CreateAPIKey = %v, want nil", err)
	}
	return id, key
}

// request is one HTTP request of a test.
type request struct {
	method      string
	path        string
	auth        string // the Authorization header value; none when empty
	contentType string // none when empty
	body        []byte
	header      map[string]string
	// unsized sends the body without a Content-Length (chunked in
	// HTTP/1.1, DATA frames without the header in HTTP/2).
	unsized bool
}

// response is what came back.
type response struct {
	status int
	proto  string
	header http.Header
	body   []byte
}

func (r response) String() string {
	return fmt.Sprintf("%d %s %q", r.status, r.header.Get("Content-Type"), truncate(r.body, 300))
}

func truncate(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}

// send performs r against the harness over TLS; a transport failure fails
// the test.
func (h *harness) send(t *testing.T, r request) response {
	t.Helper()
	res, err := h.try(t.Context(), r)
	if err != nil {
		t.Fatalf("%s %s = %v, want a response", r.method, r.path, err)
	}
	return res
}

// try performs r against the harness over TLS. Unlike send it may be called
// from any goroutine.
func (h *harness) try(ctx context.Context, r request) (response, error) {
	var body io.Reader = http.NoBody
	if r.body != nil {
		body = bytes.NewReader(r.body)
	}
	req, err := http.NewRequestWithContext(ctx, r.method, h.srv.URL+r.path, body)
	if err != nil {
		return response{}, err
	}
	if r.unsized {
		req.Body = io.NopCloser(bytes.NewReader(r.body))
		req.ContentLength = -1
	}
	if r.auth != "" {
		req.Header.Set("Authorization", r.auth)
	}
	if r.contentType != "" {
		req.Header.Set("Content-Type", r.contentType)
	}
	for k, v := range r.header {
		req.Header.Set(k, v)
	}
	res, err := h.client.Do(req)
	if err != nil {
		return response{}, err
	}
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	if err != nil {
		return response{}, fmt.Errorf("read body: %w", err)
	}
	return response{status: res.StatusCode, proto: res.Proto, header: res.Header, body: data}, nil
}

// do sends one request with an Authorization header value, a Content-Type
// and a body (each omitted when empty).
func (h *harness) do(t *testing.T, method, path, auth, contentType string, body []byte) response {
	t.Helper()
	return h.send(t, request{method: method, path: path, auth: auth, contentType: contentType, body: body})
}

// problemDoc is an RFC 9457 problem as the API writes it.
type problemDoc struct {
	Type      string `json:"type"`
	Title     string `json:"title"`
	Status    int    `json:"status"`
	Detail    string `json:"detail"`
	Instance  string `json:"instance"`
	ErrorID   string `json:"errorId"`
	RequestID string `json:"requestId"`
	Errors    []struct {
		Field  string `json:"field"`
		Detail string `json:"detail"`
	} `json:"errors"`
}

const problemBase = "urn:idvault:problem:"

var errorIDPattern = regexp.MustCompile(`^[0-9a-f]{24}$`)

// wantProblem checks that res is a problem+json of status and type slug
// with an error id and the request id, and returns it.
func wantProblem(t *testing.T, res response, status int, slug string) problemDoc {
	t.Helper()
	if res.status != status {
		t.Fatalf("status = %d, want %d; response %v", res.status, status, res)
	}
	if ct := res.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("Content-Type = %q, want application/problem+json; response %v", ct, res)
	}
	var p problemDoc
	dec := json.NewDecoder(bytes.NewReader(res.body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		t.Fatalf("decode problem = %v, want nil; body %q", err, res.body)
	}
	if p.Type != problemBase+slug {
		t.Errorf("problem type = %q, want %q (detail %q)", p.Type, problemBase+slug, p.Detail)
	}
	if p.Status != status {
		t.Errorf("problem status = %d, want %d", p.Status, status)
	}
	if p.Title == "" {
		t.Errorf("problem title is empty, want a title")
	}
	if !errorIDPattern.MatchString(p.ErrorID) {
		t.Errorf("problem errorId = %q, want 24 hex digits", p.ErrorID)
	}
	if rid := res.header.Get("X-Request-Id"); p.RequestID == "" || p.RequestID != rid {
		t.Errorf("problem requestId = %q, want the X-Request-Id header %q", p.RequestID, rid)
	}
	if cc := res.header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control = %q, want no-store", cc)
	}
	if v := res.header.Get("X-Content-Type-Options"); v != "nosniff" {
		t.Errorf("X-Content-Type-Options = %q, want nosniff", v)
	}
	if status == http.StatusUnauthorized && p.Type == problemBase+"unauthenticated" && res.header.Get("WWW-Authenticate") == "" {
		t.Errorf("401 without WWW-Authenticate")
	}
	if status == http.StatusMethodNotAllowed && res.header.Get("Allow") == "" {
		t.Errorf("405 without Allow")
	}
	return p
}

// wantField checks that p names field among its per-field errors.
func wantField(t *testing.T, p problemDoc, field string) {
	t.Helper()
	for _, e := range p.Errors {
		if e.Field == field {
			return
		}
	}
	t.Errorf("problem errors = %+v, want one for field %q", p.Errors, field)
}

// wantStatus checks res.status.
func wantStatus(t *testing.T, res response, status int) {
	t.Helper()
	if res.status != status {
		t.Fatalf("status = %d, want %d; response %v", res.status, status, res)
	}
}

// snapshot is the stored state a failed request must leave alone: every
// record (id, version, digest of the sealed body) of the sessions, identity
// and webhook collections of every tenant, the tenant list, every object in
// the bucket with its digest, and the workflow messages queued.
type snapshot struct {
	records  []string
	objects  []string
	workflow int
}

func (h *harness) snapshot(t *testing.T) snapshot {
	t.Helper()
	ctx := t.Context()
	var s snapshot
	places := [][2]string{{store.PlatformTenant, identity.CollTenants}}
	for _, tn := range h.tenantIDs(t) {
		for _, coll := range []string{session.Collection, identity.CollUsers, identity.CollAPIKeys, identity.CollTokens, webhook.CollSubscriptions, webhook.CollDeliveries} {
			places = append(places, [2]string{tn, coll})
		}
	}
	for _, p := range places {
		q := store.Query{Collection: p[1], Tenant: p[0], Limit: store.MaxLimit}
		for {
			page, err := h.backend.Query(ctx, q)
			if err != nil {
				t.Fatalf("Query(%s/%s) = %v, want nil", p[0], p[1], err)
			}
			for _, rec := range page.Records {
				sum := sha256.Sum256(rec.Body)
				s.records = append(s.records, fmt.Sprintf("%s/%s/%s@%d %x", rec.Tenant, rec.Collection, rec.ID, rec.Version, sum[:8]))
			}
			if page.Next == "" {
				break
			}
			q.Cursor = page.Next
		}
	}
	err := filepath.WalkDir(h.bucketDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(h.bucketDir, path)
		s.objects = append(s.objects, fmt.Sprintf("%s %x", rel, sha256.Sum256(data)))
		return nil
	})
	if err != nil {
		t.Fatalf("walk bucket = %v, want nil", err)
	}
	// The queue's table is documented in package sqlitequeue.
	if err := h.db.QueryRowContext(ctx, `SELECT count(*) FROM queue_messages WHERE topic = ?`, queue.TopicWorkflow).Scan(&s.workflow); err != nil {
		t.Fatalf("count workflow messages = %v, want nil", err)
	}
	return s
}

func (h *harness) tenantIDs(t *testing.T) []string {
	t.Helper()
	var ids []string
	if err := h.identity.Tenants(t.Context(), func(tn identity.Tenant) error {
		ids = append(ids, tn.ID)
		return nil
	}); err != nil {
		t.Fatalf("Tenants = %v, want nil", err)
	}
	return ids
}

// unchanged checks that the stored state equals before.
func (h *harness) unchanged(t *testing.T, before snapshot) {
	t.Helper()
	after := h.snapshot(t)
	if !slices.Equal(before.records, after.records) {
		t.Errorf("records changed by a failed request:\nbefore %q\nafter  %q", before.records, after.records)
	}
	if !slices.Equal(before.objects, after.objects) {
		t.Errorf("bucket changed by a failed request:\nbefore %q\nafter  %q", before.objects, after.objects)
	}
	if before.workflow != after.workflow {
		t.Errorf("workflow messages = %d after a failed request, want %d", after.workflow, before.workflow)
	}
}

// sessionDoc is a session as the API returns it.
type sessionDoc struct {
	ID         string          `json:"id"`
	WorkflowID string          `json:"workflowId"`
	Status     string          `json:"status"`
	Locale     string          `json:"locale"`
	Metadata   json.RawMessage `json:"metadata"`
	CreatedAt  time.Time       `json:"createdAt"`
	UpdatedAt  time.Time       `json:"updatedAt"`
	ExpiresAt  time.Time       `json:"expiresAt"`
	Reason     string          `json:"reason"`
	Files      []fileDoc       `json:"files"`
}

// fileDoc is a file as the API returns it.
type fileDoc struct {
	ID          string    `json:"id"`
	Kind        string    `json:"kind"`
	Size        int64     `json:"size"`
	SHA256      string    `json:"sha256"`
	ContentType string    `json:"contentType"`
	Width       int       `json:"width"`
	Height      int       `json:"height"`
	CreatedAt   time.Time `json:"createdAt"`
}

// listDoc is a page of sessions as the API returns it.
type listDoc struct {
	Items      []sessionDoc `json:"items"`
	NextCursor string       `json:"nextCursor"`
}

func decodeJSON[T any](t *testing.T, res response) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(res.body, &v); err != nil {
		t.Fatalf("decode %T = %v, want nil; body %q", v, err, truncate(res.body, 300))
	}
	return v
}

// createSession creates a session of tn with the JSON body and returns it.
func (h *harness) createSession(t *testing.T, tn tenant, body string) sessionDoc {
	t.Helper()
	res := h.do(t, "POST", "/api/v1/sessions", tn.Auth(), "application/json", []byte(body))
	wantStatus(t, res, http.StatusCreated)
	return decodeJSON[sessionDoc](t, res)
}

// upload uploads data as a file of kind to session id of tn.
func (h *harness) upload(t *testing.T, tn tenant, id, kind, contentType string, data []byte) fileDoc {
	t.Helper()
	res := h.do(t, "POST", "/api/v1/sessions/"+id+"/files?kind="+kind, tn.Auth(), contentType, data)
	wantStatus(t, res, http.StatusCreated)
	return decodeJSON[fileDoc](t, res)
}

// setStatus moves a session of tn to status as another role would (the
// scheduler, the workflow).
func (h *harness) setStatus(t *testing.T, tn tenant, id string, status session.Status) {
	t.Helper()
	v, err := store.NewView(h.backend, h.barrier, tn.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := session.NewRepo(v).Update(t.Context(), id, h.clock.Now(), func(s *session.Session) error {
		s.Status = status
		return nil
	}); err != nil {
		t.Fatalf("set status of %s to %s = %v, want nil", id, status, err)
	}
}

// objectPath is where the bucket keeps the object of a session file.
func (h *harness) objectPath(tn tenant, fileID string) string {
	return filepath.Join(h.bucketDir, string(files.Sessions), tn.ID, fileID)
}

// auditEvent returns the audit event of tenantID with action that the
// request with requestID caused. Events are durable in the outbox before the
// response is sent (fail-closed), so it is there or the test fails.
func (h *harness) auditEvent(t *testing.T, tenantID, requestID, action string) audit.Event {
	t.Helper()
	for _, ev := range h.auditEvents(t, tenantID) {
		if ev.RequestID == requestID && ev.Action == action {
			return ev
		}
	}
	t.Fatalf("no audit event %q of tenant %s for request %s", action, tenantID, requestID)
	return audit.Event{}
}

// auditEvents lists the audit events of tenantID written so far, in order.
func (h *harness) auditEvents(t *testing.T, tenantID string) []audit.Event {
	t.Helper()
	var all []audit.Event
	if err := audit.ReadOutbox(t.Context(), h.backend, h.barrier, func(ev audit.Event) error {
		if ev.Tenant == tenantID {
			all = append(all, ev)
		}
		return nil
	}); err != nil {
		t.Fatalf("audit.ReadOutbox = %v, want nil", err)
	}
	return all
}

func randomBytes(t testing.TB, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// marker returns a distinctive printable string to look for later.
func marker(t testing.TB, what string) string {
	t.Helper()
	return "mk" + what + hex.EncodeToString(randomBytes(t, 12))
}

// noisyImage is a w×h image of random pixels, so its encodings hold byte
// sequences found nowhere else.
func noisyImage(t testing.TB, w, h int) *image.NRGBA {
	t.Helper()
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	copy(img.Pix, randomBytes(t, len(img.Pix)))
	for i := 3; i < len(img.Pix); i += 4 {
		img.Pix[i] = 0xff
	}
	return img
}

func testPNG(t testing.TB, w, h int) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := png.Encode(&buf, noisyImage(t, w, h)); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func testJPEG(t testing.TB, w, h int) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, noisyImage(t, w, h), &jpeg.Options{Quality: 90}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func testGIF(t testing.TB) []byte {
	t.Helper()
	img := image.NewPaletted(image.Rect(0, 0, 16, 16), palette.Plan9)
	img.Set(3, 3, color.White)
	var buf bytes.Buffer
	if err := gif.Encode(&buf, img, nil); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// pngChunk returns one PNG chunk with its CRC.
func pngChunk(typ string, data []byte) []byte {
	out := binary.BigEndian.AppendUint32(nil, uint32(len(data)))
	out = append(out, typ...)
	out = append(out, data...)
	return binary.BigEndian.AppendUint32(out, crc32.ChecksumIEEE(append([]byte(typ), data...)))
}

// pixelBombPNG is a valid-looking PNG of a few dozen bytes whose IHDR (with
// a correct CRC) claims w×h RGB pixels.
func pixelBombPNG(t testing.TB, w, h uint32) []byte {
	t.Helper()
	ihdr := binary.BigEndian.AppendUint32(nil, w)
	ihdr = binary.BigEndian.AppendUint32(ihdr, h)
	ihdr = append(ihdr, 8, 2, 0, 0, 0) // 8-bit RGB, deflate, no filter, no interlace
	var idat bytes.Buffer
	zw := zlib.NewWriter(&idat)
	if _, err := zw.Write(make([]byte, 1024)); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	out := []byte("\x89PNG\r\n\x1a\n")
	out = append(out, pngChunk("IHDR", ihdr)...)
	out = append(out, pngChunk("IDAT", idat.Bytes())...)
	return append(out, pngChunk("IEND", nil)...)
}

// pngWithText inserts a tEXt chunk holding text right after the IHDR of a
// PNG; decoders skip it.
func pngWithText(t testing.TB, pngData []byte, text string) []byte {
	t.Helper()
	const afterIHDR = 8 + 4 + 4 + 13 + 4
	if !bytes.HasPrefix(pngData[12:], []byte("IHDR")) {
		t.Fatal("pngWithText: not a PNG")
	}
	out := slices.Clone(pngData[:afterIHDR])
	out = append(out, pngChunk("tEXt", append([]byte("Comment\x00"), text...))...)
	return append(out, pngData[afterIHDR:]...)
}

// testPDF is a minimal PDF carrying text in a comment.
func testPDF(text string) []byte {
	return []byte("%PDF-1.7\n% " + text + "\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n" +
		"2 0 obj << /Type /Pages /Kids [] /Count 0 >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n")
}

var htmlFile = []byte("<!DOCTYPE html><html><body><script>fetch('/api/v1/sessions')</script></body></html>")

// filesContaining names each needle found in a file under dir, with the file.
func filesContaining(t *testing.T, dir string, needles map[string][]byte) []string {
	t.Helper()
	var found []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for name, n := range needles {
			if bytes.Contains(data, n) {
				found = append(found, name+" in "+path)
			}
		}
		return nil
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("walk %s = %v, want nil", dir, err)
	}
	return found
}

// withoutIDs returns a problem's body without the fields that differ
// between any two requests (errorId, requestId, instance).
func withoutIDs(t *testing.T, body []byte) string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("decode %q = %v, want nil", body, err)
	}
	delete(m, "errorId")
	delete(m, "requestId")
	delete(m, "instance")
	out, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

// newID returns a well-formed id that names nothing.
func newID() string { return identity.NewID() }

// contains reports whether haystack holds needle, for readable asserts.
func contains(haystack []byte, needle string) bool { return strings.Contains(string(haystack), needle) }
