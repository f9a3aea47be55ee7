package webhook

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/idvault/idvault/internal/audit"
	"github.com/idvault/idvault/internal/barrier"
	"github.com/idvault/idvault/internal/queue"
	"github.com/idvault/idvault/internal/secret"
	"github.com/idvault/idvault/internal/store"
)

// Store collections.
const (
	// CollSubscriptions holds subscriptions, one record each, per tenant.
	CollSubscriptions = "webhooks"
	// CollDeliveries holds deliveries (one event to one subscription) and
	// their attempt logs, per tenant.
	CollDeliveries = "webhook_deliveries"
	// CollSchedule holds, under store.PlatformTenant, one record per
	// delivery that still needs an attempt, with its due time in clear.
	CollSchedule = "webhook_schedule"
)

// Topic is the broker topic of delivery messages.
const Topic = "webhook"

// ErrInvalid means a malformed argument: a bad URL, event type or event.
// It wraps store.ErrInvalid.
var ErrInvalid = fmt.Errorf("webhook: invalid argument: %w", store.ErrInvalid)

// Secrets keeps signing secrets sealed and write-only: the platform reads
// them to sign, no API returns them. *keyring.Keyring implements it,
// sealing each secret directly under the primary root key.
type Secrets interface {
	PutSecret(ctx context.Context, tenant, name string, value []byte) error
	Secret(ctx context.Context, tenant, name string) (secret.Value, error)
	DeleteSecret(ctx context.Context, tenant, name string) error
}

// Deps are what a Service needs. Backend, Barrier, Secrets and Broker are
// required.
type Deps struct {
	Backend store.Backend
	Barrier barrier.Barrier
	Secrets Secrets
	Broker  queue.Broker
	// Resolver resolves target host names (net.DefaultResolver when nil).
	Resolver Resolver
	// Audit, when set, records webhook.delivery_failed and
	// webhook.delivery_blocked.
	Audit *audit.Emitter
	// Log receives operational messages: ids, kinds and counts, never a
	// URL, payload, secret or response body (discarded when nil).
	Log *slog.Logger
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

// Options tune a Service. Zero fields take the defaults named on each.
type Options struct {
	// Policy is the SSRF guard for subscription URLs and every connection.
	Policy Policy
	// Timeout bounds one attempt: connect, TLS, request and reading the
	// response. Default 10s.
	Timeout time.Duration
	// Backoff is the delay after the first failed attempt; each further
	// failure doubles it, up to MaxBackoff, and each delay is drawn at
	// random from its upper half (jitter). Default 30s.
	Backoff time.Duration
	// MaxBackoff caps the delay between attempts. Default 1h.
	MaxBackoff time.Duration
	// RetryWindow is how long after its first attempt (or its manual
	// redelivery) a delivery is retried before it is marked failed.
	// Default 24h.
	RetryWindow time.Duration
	// PollInterval is how often Run publishes due retries. Default 5s.
	PollInterval time.Duration
	// Republish is how long after publishing a delivery the schedule
	// publishes it again if no attempt settled it (a lost message).
	// Default 1m.
	Republish time.Duration
	// ClaimTTL is how long an attempt holds its delivery against other
	// workers; it MUST exceed Timeout and SHOULD be below the broker's
	// visibility timeout, so that a message redelivered after a worker
	// died finds the claim expired. Default Timeout + 5s.
	ClaimTTL time.Duration
	// Concurrency is how many deliveries from the queue Run attempts at
	// once, and as many again of those handed over within the process.
	// Default 4.
	Concurrency int
	// TLS is the client TLS configuration (cloned; MinVersion raised to
	// TLS 1.2). Default: system roots.
	TLS *tls.Config
}

// WithDefaults returns o with zero fields replaced by their defaults.
func (o Options) WithDefaults() Options {
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	if o.Backoff <= 0 {
		o.Backoff = 30 * time.Second
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = time.Hour
	}
	if o.RetryWindow <= 0 {
		o.RetryWindow = 24 * time.Hour
	}
	if o.PollInterval <= 0 {
		o.PollInterval = 5 * time.Second
	}
	if o.Republish <= 0 {
		o.Republish = time.Minute
	}
	if o.ClaimTTL <= o.Timeout {
		o.ClaimTTL = o.Timeout + 5*time.Second
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 4
	}
	return o
}

// MaxResponseBytes is how much of a response body an attempt reads (and
// discards) before it closes the connection.
const MaxResponseBytes = 64 << 10

// Service manages a deployment's webhooks: subscriptions, deliveries and
// the worker that sends them. It is safe for concurrent use.
type Service struct {
	d         Deps
	o         Options
	client    *http.Client
	transport *http.Transport
	platform  *store.View
	// local hands a delivery this process publishes to one of its own
	// workers that is waiting for one (Run), instead of a queue message.
	local *queue.Handoff[message]
	// subs keeps each tenant's subscriptions with the stamp they were read
	// at (subscriptions).
	subsMu sync.Mutex
	subs   map[string]cachedSubs
}

// New returns a Service. It fails if a required dependency is missing.
func New(d Deps, o Options) (*Service, error) {
	if d.Backend == nil || d.Barrier == nil || d.Secrets == nil || d.Broker == nil {
		return nil, errors.New("webhook: backend, barrier, secrets and broker are required")
	}
	if d.Resolver == nil {
		d.Resolver = net.DefaultResolver
	}
	if d.Log == nil {
		d.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	o = o.WithDefaults()
	platform, err := store.NewView(d.Backend, d.Barrier, store.PlatformTenant)
	if err != nil {
		return nil, err
	}
	s := &Service{d: d, o: o, platform: platform, local: queue.NewHandoff[message](), subs: map[string]cachedSubs{}}
	s.transport = newTransport(o, newDialer(o.Policy, d.Resolver, o.Timeout))
	s.client = &http.Client{
		Transport: s.transport,
		Timeout:   o.Timeout,
		// A redirect is answered as it is: never followed, since its
		// target was never validated, and recorded as a failed attempt.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return s, nil
}

func newTransport(o Options, d *dialer) *http.Transport {
	var tc *tls.Config
	if o.TLS != nil {
		tc = o.TLS.Clone()
	} else {
		tc = &tls.Config{}
	}
	tc.MinVersion = max(tc.MinVersion, tls.VersionTLS12)
	return &http.Transport{
		// No proxy, whatever the environment says: a proxy would connect
		// on our behalf to addresses the dialer never sees.
		Proxy:                  nil,
		DialContext:            d.DialContext,
		TLSClientConfig:        tc,
		TLSHandshakeTimeout:    o.Timeout,
		ResponseHeaderTimeout:  o.Timeout,
		ExpectContinueTimeout:  time.Second,
		MaxResponseHeaderBytes: 16 << 10,
		MaxIdleConns:           100,
		MaxIdleConnsPerHost:    4,
		IdleConnTimeout:        30 * time.Second,
		ForceAttemptHTTP2:      true,
	}
}

// CloseIdleConnections closes the idle connections of the delivery client;
// the Service stays usable. Run calls it when it returns.
func (s *Service) CloseIdleConnections() { s.transport.CloseIdleConnections() }

func (s *Service) view(tenant string) (*store.View, error) {
	return store.NewView(s.d.Backend, s.d.Barrier, tenant)
}

func (s *Service) now() time.Time { return s.d.Now().UTC() }
