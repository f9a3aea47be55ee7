package webhook

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/idvault/idvault/internal/audit"
	"github.com/idvault/idvault/internal/queue"
	"github.com/idvault/idvault/internal/secret"
	"github.com/idvault/idvault/internal/store"
)

// UserAgent is the User-Agent of every delivery.
const UserAgent = "idvault-webhook/1"

// Run is the webhook worker: Options.Concurrency consumers of Topic that
// attempt deliveries, as many that attempt the deliveries this process
// hands over itself, and a poller that publishes due retries every
// Options.PollInterval (PublishDue). It returns when ctx is done or the
// broker is closed, after the attempts in progress have finished. Several
// workers, in one process or many, may run against the same store and
// broker: each attempt claims its delivery first.
//
// A delivery this process stores (Enqueue, Attach, Redeliver) goes to one
// of its own idle workers when there is one, without a queue message: its
// publish, claim and acknowledgement would be three store writes more. It
// is as durable: its schedule record, written with the delivery, hands it
// over again after Options.Republish should this process die first, as it
// does for a lost message; and a store failure while attempting it puts it
// on the queue.
func (s *Service) Run(ctx context.Context) error {
	defer s.CloseIdleConnections()
	var wg sync.WaitGroup
	for range s.o.Concurrency {
		wg.Go(func() { s.consume(ctx) })
		wg.Go(func() { s.consumeLocal(ctx) })
	}
	wg.Go(func() { s.poll(ctx) })
	wg.Wait()
	return nil
}

// consumeLocal attempts the deliveries handed over by this process.
func (s *Service) consumeLocal(ctx context.Context) {
	s.local.Serve(ctx, func(ctx context.Context, m message) {
		if err := s.handle(ctx, m); err != nil {
			s.d.Log.Warn("webhook: delivery handed over in the process failed; queued", "delivery", m.Delivery, "err", err)
			s.enqueue(ctx, m)
		}
	})
}

func (s *Service) consume(ctx context.Context) {
	pause := 100 * time.Millisecond
	for {
		d, err := s.d.Broker.Receive(ctx, Topic)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, queue.ErrClosed) {
				return
			}
			s.d.Log.Warn("webhook: receive failed", "err", err, "retryIn", pause)
			if !sleep(ctx, pause) {
				return
			}
			pause = min(2*pause, 5*time.Second)
			continue
		}
		pause = 100 * time.Millisecond
		hctx := context.WithoutCancel(ctx)
		if err := s.Handle(hctx, d.Body()); err != nil {
			s.d.Log.Warn("webhook: delivery message returned to the queue", "messageId", d.ID(), "attempt", d.Attempt(), "err", err)
			if err := d.Nack(hctx); err != nil {
				s.d.Log.Warn("webhook: nack", "messageId", d.ID(), "err", err)
			}
			continue
		}
		if err := d.Ack(hctx); err != nil {
			s.d.Log.Warn("webhook: ack", "messageId", d.ID(), "err", err)
		}
	}
}

func (s *Service) poll(ctx context.Context) {
	t := time.NewTicker(s.o.PollInterval)
	defer t.Stop()
	for {
		if _, err := s.PublishDue(ctx); err != nil && ctx.Err() == nil {
			s.d.Log.Warn("webhook: publishing due deliveries failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// maxDuePerCall bounds the schedule records one PublishDue handles.
const maxDuePerCall = 1000

// PublishDue publishes every delivery whose schedule record is due: retries
// whose backoff has passed, attempts whose worker died (claim expired) and
// deliveries whose message was lost. Each record is first moved
// Options.Republish into the future with compare-and-swap, so concurrent
// pollers do not publish it twice. It returns how many it published.
func (s *Service) PublishDue(ctx context.Context) (int, error) {
	now := s.now()
	q := store.Query{Collection: CollSchedule, OrderBy: "due", Limit: 100,
		Where: []store.Cond{{Field: "due", Op: store.Lte, Value: now.Format(store.TimeFormat)}}}
	n := 0
	for n < maxDuePerCall {
		page, err := s.platform.Query(ctx, q)
		if err != nil {
			return n, fmt.Errorf("webhook schedule: %w", err)
		}
		for _, rec := range page.Records {
			tenant, delivery, ok := parseScheduleID(rec.ID)
			if !ok {
				s.d.Log.Error("webhook: malformed schedule record skipped", "id", rec.ID)
				continue
			}
			next, err := s.scheduleRecord(ctx, rec.ID, now.Add(s.o.Republish))
			if err != nil {
				return n, err
			}
			next.Version = rec.Version
			if _, err := s.d.Backend.Update(ctx, next); errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound) {
				continue
			} else if err != nil {
				return n, fmt.Errorf("webhook schedule: %w", err)
			}
			body, err := json.Marshal(message{Tenant: tenant, Delivery: delivery, Schedule: rec.ID})
			if err != nil {
				return n, err
			}
			if err := s.d.Broker.Publish(ctx, Topic, body); err != nil {
				return n, fmt.Errorf("webhook schedule: publish: %w", err)
			}
			n++
		}
		if page.Next == "" {
			break
		}
		q.Cursor = page.Next
	}
	return n, nil
}

// Handle processes one message of Topic: it claims the delivery, attempts
// it if it is due, and records the outcome, scheduling the next attempt or
// ending the delivery. It returns nil when the message is done with (acked),
// including when it names a delivery that is gone, settled, not yet due or
// claimed by another worker; an error means a store failure, and the
// message should be returned to the queue.
func (s *Service) Handle(ctx context.Context, body []byte) error {
	var m message
	if err := json.Unmarshal(body, &m); err != nil || m.Tenant == "" || m.Delivery == "" {
		s.d.Log.Error("webhook: malformed delivery message dropped")
		return nil
	}
	return s.handle(ctx, m)
}

func (s *Service) handle(ctx context.Context, m message) error {
	v, err := s.view(m.Tenant)
	if err != nil {
		return err
	}
	r, version, token, err := s.claim(ctx, v, m)
	if err != nil || token == "" {
		return err
	}
	a, terminal, err := s.attempt(ctx, v, r)
	if err != nil {
		return err
	}
	return s.settle(ctx, v, r, version, token, a, terminal)
}

// claim takes the delivery of m for one attempt, if it is due and no other
// worker holds it, and returns it as claimed, with its version. The token
// is empty when there is nothing to attempt.
func (s *Service) claim(ctx context.Context, v *store.View, m message) (deliveryRecord, int64, string, error) {
	for {
		var (
			r       deliveryRecord
			version int64
			err     error
		)
		if m.written != nil {
			// The compare-and-swap on its version fails if anything
			// changed the delivery since, and the next round reads it.
			r, version, m.written = *m.written, m.version, nil
		} else {
			r, version, err = getDelivery(ctx, v, m.Delivery)
		}
		if errors.Is(err, store.ErrNotFound) {
			if strings.HasPrefix(m.Schedule, v.Tenant()+"/"+m.Delivery+"/") {
				s.dropSchedule(ctx, m.Schedule)
			}
			return r, 0, "", nil
		}
		if err != nil {
			return r, 0, "", fmt.Errorf("webhook claim: %w", err)
		}
		now := s.now()
		if r.Status != DeliveryPending || r.NextAt.After(now) || r.ClaimUntil.After(now) {
			return r, 0, "", nil
		}
		token := rand.Text()
		r.Claim, r.ClaimUntil = token, now.Add(s.o.ClaimTTL)
		ws, err := s.reschedule(ctx, v.Tenant(), &r, r.ClaimUntil)
		if err != nil {
			return r, 0, "", err
		}
		version, err = saveDelivery(ctx, v, r, version, ws)
		if errors.Is(err, store.ErrConflict) {
			continue
		}
		if err != nil {
			return r, 0, "", fmt.Errorf("webhook claim: %w", err)
		}
		return r, version, token, nil
	}
}

// dropSchedule deletes the schedule record of a delivery that is gone.
func (s *Service) dropSchedule(ctx context.Context, id string) {
	if id == "" {
		return
	}
	if err := s.d.Backend.Delete(ctx, CollSchedule, store.PlatformTenant, id, 0); err != nil && !errors.Is(err, store.ErrNotFound) {
		s.d.Log.Warn("webhook: schedule record of a deleted delivery not removed", "id", id, "err", err)
	}
}

// attempt sends r once. terminal means the delivery cannot succeed (its
// subscription is deleted or inactive); err means a store failure.
func (s *Service) attempt(ctx context.Context, v *store.View, r deliveryRecord) (Attempt, bool, error) {
	sub, _, err := s.getRecord(ctx, v, r.Subscription)
	if errors.Is(err, store.ErrNotFound) {
		return Attempt{At: s.now(), Error: KindSubscriptionDeleted}, true, nil
	}
	if err != nil {
		return Attempt{}, false, fmt.Errorf("webhook attempt: %w", err)
	}
	if !sub.Active {
		return Attempt{At: s.now(), Error: KindSubscriptionInactive}, true, nil
	}
	if _, err := s.o.Policy.checkURL(sub.URL); err != nil {
		return Attempt{At: s.now(), Error: KindRefusedURL}, false, nil
	}
	secrets, err := s.signingSecrets(ctx, v.Tenant(), sub)
	if err != nil {
		return Attempt{}, false, err
	}
	if len(secrets) == 0 {
		return Attempt{At: s.now(), Error: KindSecretMissing}, false, nil
	}
	keys := make([][]byte, len(secrets))
	for i, sec := range secrets {
		keys[i] = sec.Bytes()
	}
	at := s.now()
	sig := SignatureHeader(at, r.Payload, keys...)
	for _, k := range keys {
		clear(k)
	}
	actx, cancel := context.WithTimeout(ctx, s.o.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(actx, http.MethodPost, sub.URL, bytes.NewReader(r.Payload))
	if err != nil {
		return Attempt{At: at, Error: KindConnection}, false, nil
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", UserAgent)
	req.Header.Set(HeaderSignature, sig)
	req.Header.Set(HeaderEventID, r.EventID)
	req.Header.Set(HeaderEventType, string(r.EventType))
	req.Header.Set(HeaderDeliveryID, r.ID)
	start := time.Now()
	resp, err := s.client.Do(req)
	a := Attempt{At: at}
	if err != nil {
		a.Duration, a.Error = time.Since(start), classify(err)
		return a, false, nil
	}
	_, rerr := io.Copy(io.Discard, io.LimitReader(resp.Body, MaxResponseBytes))
	_ = resp.Body.Close()
	a.Duration, a.StatusCode = time.Since(start), resp.StatusCode
	switch {
	case resp.StatusCode >= 300 && resp.StatusCode < 400:
		a.Error = KindRedirect
	case resp.StatusCode < 200 || resp.StatusCode >= 300:
		a.Error = KindHTTPStatus
	case rerr != nil:
		// A 2xx whose body broke off still counts: the receiver has
		// answered, and the body is discarded anyway.
		s.d.Log.Debug("webhook: response body read failed after 2xx", "delivery", r.ID, "err", classify(rerr))
	}
	return a, false, nil
}

// signingSecrets returns the subscription's current secret and, during a
// rotation's grace period, the previous one.
func (s *Service) signingSecrets(ctx context.Context, tenant string, sub subRecord) ([]secret.Value, error) {
	var out []secret.Value
	names := []string{sub.SecretName}
	if sub.PrevSecretName != "" && s.now().Before(sub.PrevUntil) {
		names = append(names, sub.PrevSecretName)
	}
	for _, name := range names {
		sec, err := s.d.Secrets.Secret(ctx, tenant, name)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("webhook signing secret: %w", err)
		}
		out = append(out, sec)
	}
	return out, nil
}

// classify names the kind of a transport error without its text (which
// holds the URL).
func classify(err error) ErrorKind {
	var (
		dnsErr   *net.DNSError
		netErr   net.Error
		certErr  *tls.CertificateVerificationError
		unknown  x509.UnknownAuthorityError
		hostErr  x509.HostnameError
		invalid  x509.CertificateInvalidError
		recErr   tls.RecordHeaderError
		alertErr tls.AlertError
	)
	switch {
	case errors.Is(err, ErrForbiddenTarget):
		return KindForbiddenAddress
	case errors.As(err, &dnsErr):
		return KindDNS
	case errors.As(err, &certErr), errors.As(err, &unknown), errors.As(err, &hostErr),
		errors.As(err, &invalid), errors.As(err, &recErr), errors.As(err, &alertErr):
		return KindTLS
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		return KindTimeout
	}
	return KindConnection
}

// settle records attempt a of the delivery claimed with token and decides
// what follows: delivered, failed, or another attempt after a backoff. If
// the claim was lost meanwhile (it ran out and another worker took over),
// the other worker's outcome stands and a is dropped.
//
// claimed is the delivery as claim wrote it, at version: the first
// compare-and-swap starts from it, and only a conflict reads it again.
func (s *Service) settle(ctx context.Context, v *store.View, claimed deliveryRecord, version int64, token string, a Attempt, terminal bool) error {
	id := claimed.ID
	for r := &claimed; ; r = nil {
		if r == nil {
			got, ver, err := getDelivery(ctx, v, id)
			if err != nil {
				return fmt.Errorf("webhook settle: %w", err)
			}
			r, version = &got, ver
		}
		if r.Claim != token {
			s.d.Log.Warn("webhook: claim lost before the attempt was recorded", "tenant", v.Tenant(), "delivery", id)
			return nil
		}
		s.d.Log.Debug("webhook: attempt", "tenant", v.Tenant(), "delivery", id, "subscription", r.Subscription,
			"statusCode", a.StatusCode, "error", string(a.Error), "duration", a.Duration)
		if err := s.outcome(ctx, v.Tenant(), r, a, terminal); err != nil {
			return err
		}
		var due time.Time
		if r.Status == DeliveryPending {
			due = r.NextAt
		}
		ws, err := s.reschedule(ctx, v.Tenant(), r, due)
		if err != nil {
			return err
		}
		_, err = saveDelivery(ctx, v, *r, version, ws)
		if errors.Is(err, store.ErrConflict) {
			continue
		}
		if err != nil {
			return fmt.Errorf("webhook settle: %w", err)
		}
		return nil
	}
}

// outcome applies attempt a to r.
func (s *Service) outcome(ctx context.Context, tenant string, r *deliveryRecord, a Attempt, terminal bool) error {
	r.Claim, r.ClaimUntil = "", time.Time{}
	r.AttemptCount++
	r.Attempts = append(r.Attempts, a)
	if len(r.Attempts) > MaxLoggedAttempts {
		r.Attempts = slices.Clone(r.Attempts[len(r.Attempts)-MaxLoggedAttempts:])
	}
	blocked := a.Error == KindForbiddenAddress
	if blocked && !r.Blocked {
		ev := audit.Event{Action: "webhook.delivery_blocked", Reason: "target resolved to a refused address"}
		if err := s.emit(ctx, tenant, r, ev); err != nil {
			s.d.Log.Error("webhook: audit event not recorded", "action", ev.Action, "tenant", tenant, "delivery", r.ID, "err", err)
		}
	}
	r.Blocked = blocked
	now := s.now()
	switch {
	case a.Error == "":
		r.Status, r.NextAt = DeliveryDelivered, time.Time{}
		return nil
	case terminal:
		r.Status, r.NextAt = DeliveryFailed, time.Time{}
		return nil
	}
	r.Failures++
	next := now.Add(s.backoff(r.Failures))
	if next.Sub(r.WindowStart) <= s.o.RetryWindow {
		r.NextAt = next
		return nil
	}
	ev := audit.Event{Action: "webhook.delivery_failed", Reason: "retry window exhausted"}
	if err := s.emit(ctx, tenant, r, ev); err != nil {
		// The event MUST be recorded before the delivery ends: try again
		// after a backoff rather than fail without it.
		s.d.Log.Error("webhook: audit event not recorded; delivery kept pending", "tenant", tenant, "delivery", r.ID, "err", err)
		r.NextAt = now.Add(s.o.Backoff)
		return nil
	}
	r.Status, r.NextAt = DeliveryFailed, time.Time{}
	return nil
}

// backoff returns the delay after the n-th failed attempt: Backoff·2^(n-1)
// capped at MaxBackoff, drawn at random from its upper half.
func (s *Service) backoff(n int) time.Duration {
	d := s.o.Backoff
	for i := 1; i < n && d < s.o.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, s.o.MaxBackoff)
	half := d / 2
	return half + mrand.N(d-half+1)
}

// emit records ev, an event about delivery r, completed with its tenant,
// actor, resource and details.
func (s *Service) emit(ctx context.Context, tenant string, r *deliveryRecord, ev audit.Event) error {
	if s.d.Audit == nil {
		return nil
	}
	last := r.Attempts[len(r.Attempts)-1]
	ev.Tenant = tenant
	ev.Actor = audit.Actor{Type: "system", ID: "webhook"}
	ev.Resource = audit.Resource{Type: "webhook_delivery", ID: r.ID}
	ev.Outcome = audit.Failure
	ev.Details = map[string]string{
		"subscription": r.Subscription,
		"eventType":    string(r.EventType),
		"attempts":     strconv.Itoa(r.AttemptCount),
		"lastError":    string(last.Error),
	}
	if last.StatusCode != 0 {
		ev.Details["lastStatusCode"] = strconv.Itoa(last.StatusCode)
	}
	if err := s.d.Audit.Emit(ctx, ev); err != nil {
		return fmt.Errorf("audit %s: %w", ev.Action, err)
	}
	return nil
}
