package webhook_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/idvault/idvault/internal/audit"
	"github.com/idvault/idvault/internal/keyring"
	"github.com/idvault/idvault/internal/queue"
	"github.com/idvault/idvault/internal/session"
	"github.com/idvault/idvault/internal/testenv"
	"github.com/idvault/idvault/internal/testenv/testclock"
	"github.com/idvault/idvault/internal/testenv/testlog"
	"github.com/idvault/idvault/internal/webhook"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// start is the fake clock's first reading.
var start = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// loopback lets tests reach their receivers on 127.0.0.1 and ::1.
var loopback = webhook.Policy{
	Allow:     []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")},
	AllowHTTP: true,
	AnyPort:   true,
}

// fixture is one test's service over real SQLite, queue and keyring.
type fixture struct {
	env   *testenv.Env
	keys  *keyring.Keyring
	clock *testclock.Clock
	log   *testlog.Buffer
	audit *audit.Emitter
	svc   *webhook.Service
	deps  webhook.Deps
	opts  webhook.Options
}

type setup struct {
	opts     webhook.Options
	queue    queue.Options
	resolver webhook.Resolver
	realTime bool
}

func newFixture(t testing.TB, s setup) *fixture {
	t.Helper()
	ctx := context.Background()
	f := &fixture{env: testenv.Open(t, s.queue), clock: testclock.New(start), log: &testlog.Buffer{}}
	now := f.clock.Now
	if s.realTime {
		now = time.Now
	}
	logger := f.log.JSONLogger()
	root, err := keyring.NewRootKey("root", testenv.RandomKey(t))
	if err != nil {
		t.Fatal(err)
	}
	if f.keys, err = keyring.New(ctx, f.env.Backend, []keyring.KEK{root}, logger, now); err != nil {
		t.Fatal(err)
	}
	f.audit = audit.NewEmitter(f.env.Backend, f.keys, now)
	f.deps = webhook.Deps{Backend: f.env.Backend, Barrier: f.keys, Secrets: f.keys, Broker: f.env.Broker,
		Resolver: s.resolver, Audit: f.audit, Log: logger, Now: now}
	f.opts = s.opts
	if f.svc, err = webhook.New(f.deps, f.opts); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.svc.CloseIdleConnections)
	return f
}

// run starts the worker. The returned stop cancels it and waits until it
// has returned, its attempts in progress settled; the test's end stops it
// too.
func (f *fixture) run(t testing.TB) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.svc.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run() = %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// step receives one delivery message and handles it as a worker does.
func (f *fixture) step(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	d, err := f.env.Broker.Receive(ctx, webhook.Topic)
	if err != nil {
		t.Fatalf("Receive() = %v", err)
	}
	if err := f.svc.Handle(ctx, d.Body()); err != nil {
		t.Fatalf("Handle() = %v", err)
	}
	if err := d.Ack(ctx); err != nil {
		t.Fatalf("Ack() = %v", err)
	}
}

// retry advances the clock by d and publishes what is then due, expecting
// n messages.
func (f *fixture) retry(t testing.TB, d time.Duration, n int) {
	t.Helper()
	f.clock.Advance(d)
	got, err := f.svc.PublishDue(context.Background())
	if err != nil || got != n {
		t.Fatalf("PublishDue() = %d, %v, want %d", got, err, n)
	}
}

func (f *fixture) create(t testing.TB, tenant, url string, types ...webhook.EventType) (webhook.Subscription, []byte) {
	t.Helper()
	if len(types) == 0 {
		types = webhook.EventTypes
	}
	sub, sec, err := f.svc.Create(context.Background(), tenant, webhook.Params{URL: url, EventTypes: types})
	if err != nil {
		t.Fatalf("Create(%q) = %v", url, err)
	}
	return sub, sec.Bytes()
}

func (f *fixture) enqueue(t testing.TB, tenant string, ev webhook.Event) []string {
	t.Helper()
	ids, err := f.svc.Enqueue(context.Background(), tenant, ev)
	if err != nil {
		t.Fatalf("Enqueue() = %v", err)
	}
	return ids
}

func (f *fixture) delivery(t testing.TB, tenant, id string) webhook.Delivery {
	t.Helper()
	d, err := f.svc.Delivery(context.Background(), tenant, id)
	if err != nil {
		t.Fatalf("Delivery(%s) = %v", id, err)
	}
	return d
}

// auditEvents returns the events waiting in the audit outbox.
func (f *fixture) auditEvents(t testing.TB) []audit.Event {
	t.Helper()
	var out []audit.Event
	err := audit.ReadOutbox(context.Background(), f.env.Backend, f.keys, func(ev audit.Event) error {
		out = append(out, ev)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func event(id string, typ webhook.EventType) webhook.Event {
	ev := webhook.Event{ID: id, Type: typ, Data: webhook.Data{SessionID: "sess-" + id, Status: session.StatusPending, WorkflowID: "default", WorkflowVersion: 1}}
	switch typ {
	case webhook.EventSessionCompleted:
		ev.Data.Status, ev.Data.Decision = session.StatusApproved, webhook.DecisionApproved
	case webhook.EventSessionExpired:
		ev.Data.Status = session.StatusExpired
	case webhook.EventSessionError:
		ev.Data.Status, ev.Data.ErrorCode = session.StatusError, "docreader.unavailable"
	case webhook.EventReviewRequired:
		ev.Data.Status = session.StatusReview
	}
	return ev
}

// received is one request a receiver got.
type received struct {
	n         int
	header    http.Header
	body      []byte
	payload   webhook.Payload
	verifyErr map[string]error // by secret label
}

// receiver is the business's system: it checks every request's signature
// with webhook.Verify and answers with respond(n) for its n-th request
// (1-based; 200 when respond is nil). The handler blocks until the client
// gives up when respond returns -1. wrap, when given, wraps the handler.
type receiver struct {
	srv     *httptest.Server
	now     func() time.Time
	respond func(n int) int

	mu      sync.Mutex
	secrets map[string][]byte
	got     []received
	ch      chan received
}

func newReceiver(t testing.TB, tlsServer bool, now func() time.Time, respond func(int) int, wrap ...func(http.Handler) http.Handler) *receiver {
	t.Helper()
	if now == nil {
		now = time.Now
	}
	r := &receiver{now: now, respond: respond, secrets: map[string][]byte{}, ch: make(chan received, 1000)}
	var h http.Handler = http.HandlerFunc(r.serve)
	for _, w := range wrap {
		h = w(h)
	}
	if tlsServer {
		r.srv = httptest.NewTLSServer(h)
	} else {
		r.srv = httptest.NewServer(h)
	}
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) URL() string { return r.srv.URL + "/hooks/idvault" }

// tlsConfig trusts the receiver's certificate.
func (r *receiver) tlsConfig() *tls.Config {
	pool := x509.NewCertPool()
	pool.AddCert(r.srv.Certificate())
	return &tls.Config{RootCAs: pool}
}

func (r *receiver) setSecret(label string, s []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.secrets[label] = s
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	rc := received{header: req.Header.Clone(), body: body, verifyErr: map[string]error{}}
	if err := json.Unmarshal(body, &rc.payload); err != nil {
		rc.verifyErr["json"] = err
	}
	r.mu.Lock()
	for label, s := range r.secrets {
		rc.verifyErr[label] = webhook.Verify(s, req.Header.Get(webhook.HeaderSignature), body, r.now(), webhook.DefaultTolerance)
	}
	rc.n = len(r.got) + 1
	r.got = append(r.got, rc)
	r.mu.Unlock()
	r.ch <- rc
	code := http.StatusOK
	if r.respond != nil {
		code = r.respond(rc.n)
	}
	if code < 0 {
		<-req.Context().Done()
		return
	}
	w.WriteHeader(code)
	_, _ = w.Write([]byte(`{"note":"response bodies are never stored"}`))
}

func (r *receiver) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.got)
}

// all returns every request so far.
func (r *receiver) all() []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

// port is the port the receiver listens on.
func (r *receiver) port() string {
	_, port, _ := net.SplitHostPort(r.srv.Listener.Addr().String())
	return port
}

// next waits for the receiver's next request.
func (r *receiver) next(t testing.TB) received {
	t.Helper()
	select {
	case rc := <-r.ch:
		return rc
	case <-time.After(30 * time.Second):
		t.Fatal("receiver got no request")
		return received{}
	}
}

// staticResolver answers every lookup with addrs, or with the next
// answer in turn when it has several.
type staticResolver struct {
	mu      sync.Mutex
	answers [][]netip.Addr
	calls   int
}

func resolverOf(answers ...[]netip.Addr) *staticResolver {
	return &staticResolver{answers: answers}
}

func (r *staticResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	i := min(r.calls, len(r.answers)-1)
	r.calls++
	if i < 0 || r.answers[i] == nil {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	return r.answers[i], nil
}

func addrs(s ...string) []netip.Addr {
	out := make([]netip.Addr, len(s))
	for i, a := range s {
		out[i] = netip.MustParseAddr(a)
	}
	return out
}
