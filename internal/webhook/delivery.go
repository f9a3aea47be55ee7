package webhook

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/idvault/idvault/internal/store"
)

// DeliveryStatus is where a delivery stands.
type DeliveryStatus string

// Delivery statuses.
const (
	// DeliveryPending: not yet answered with 2xx; attempts continue.
	DeliveryPending DeliveryStatus = "pending"
	// DeliveryDelivered: the receiver answered 2xx.
	DeliveryDelivered DeliveryStatus = "delivered"
	// DeliveryFailed: the retry window ran out, or the subscription was
	// deleted or deactivated. Redeliver starts it again.
	DeliveryFailed DeliveryStatus = "failed"
)

// ErrorKind says why an attempt failed, without any text from the
// receiver.
type ErrorKind string

// Error kinds of attempts.
const (
	// KindHTTPStatus: the receiver answered with a status other than 2xx
	// or 3xx (Attempt.StatusCode says which).
	KindHTTPStatus ErrorKind = "http_status"
	// KindRedirect: the receiver answered 3xx; redirects are not followed.
	KindRedirect ErrorKind = "redirect"
	// KindTimeout: no complete answer within Options.Timeout.
	KindTimeout ErrorKind = "timeout"
	// KindConnection: the connection failed or broke.
	KindConnection ErrorKind = "connection"
	// KindTLS: the TLS handshake failed (certificate, protocol).
	KindTLS ErrorKind = "tls"
	// KindDNS: the host name did not resolve.
	KindDNS ErrorKind = "dns"
	// KindForbiddenAddress: the target resolved to an address the Policy
	// refuses (SSRF guard); nothing was sent.
	KindForbiddenAddress ErrorKind = "forbidden_address"
	// KindRefusedURL: the subscription's URL breaks the Policy as it is
	// now (a policy tightened after the URL was stored); nothing was sent.
	KindRefusedURL ErrorKind = "refused_url"
	// KindSecretMissing: the subscription's signing secret is gone;
	// nothing was sent.
	KindSecretMissing ErrorKind = "secret_missing"
	// KindSubscriptionDeleted and KindSubscriptionInactive end a delivery
	// at once; nothing was sent.
	KindSubscriptionDeleted  ErrorKind = "subscription_deleted"
	KindSubscriptionInactive ErrorKind = "subscription_inactive"
)

// Attempt is one try at a delivery. It records no response body and no
// text from the receiver.
type Attempt struct {
	At       time.Time     `json:"at"`
	Duration time.Duration `json:"duration"`
	// StatusCode is the HTTP status answered, 0 when none was.
	StatusCode int       `json:"statusCode,omitempty"`
	Error      ErrorKind `json:"error,omitempty"`
}

// MaxLoggedAttempts is how many attempts a delivery's log keeps, the
// latest ones; Delivery.AttemptCount counts them all.
const MaxLoggedAttempts = 100

// Delivery is one event sent to one subscription, with its attempt log.
type Delivery struct {
	ID           string         `json:"id"`
	Subscription string         `json:"subscription"`
	EventID      string         `json:"eventId"`
	EventType    EventType      `json:"eventType"`
	Status       DeliveryStatus `json:"status"`
	CreatedAt    time.Time      `json:"createdAt"`
	// NextAttemptAt is when the next attempt is due (pending only).
	NextAttemptAt *time.Time `json:"nextAttemptAt,omitempty"`
	AttemptCount  int        `json:"attemptCount"`
	Attempts      []Attempt  `json:"attempts"`
	// Redeliveries counts manual redeliveries.
	Redeliveries int `json:"redeliveries,omitempty"`
}

// deliveryRecord is the stored delivery: the delivery, the exact payload
// bytes that every attempt signs and sends, and the worker's state.
type deliveryRecord struct {
	Delivery
	Payload json.RawMessage `json:"payload"`
	// WindowStart is when the retry window began (enqueue or redelivery);
	// Failures counts failed attempts since then (the backoff exponent).
	WindowStart time.Time `json:"windowStart"`
	Failures    int       `json:"failures,omitempty"`
	NextAt      time.Time `json:"nextAt,omitzero"`
	// Claim and ClaimUntil hold the delivery for the attempt in progress.
	Claim      string    `json:"claim,omitempty"`
	ClaimUntil time.Time `json:"claimUntil,omitzero"`
	// Schedule is the id of the delivery's schedule record, if any;
	// ScheduleSeq numbers them, so a replaced record's id is never reused.
	Schedule    string `json:"schedule,omitempty"`
	ScheduleSeq int    `json:"scheduleSeq,omitempty"`
	// Blocked says the last attempt was refused by the SSRF guard.
	Blocked bool `json:"blocked,omitempty"`
}

func (r deliveryRecord) public() Delivery {
	d := r.Delivery
	d.Attempts = slices.Clone(d.Attempts)
	if d.Attempts == nil {
		d.Attempts = []Attempt{}
	}
	d.NextAttemptAt = nil
	if r.Status == DeliveryPending {
		t := r.NextAt
		if r.ClaimUntil.After(t) {
			t = r.ClaimUntil
		}
		d.NextAttemptAt = &t
	}
	return d
}

func (r deliveryRecord) index() map[string]string {
	return map[string]string{
		"subscription": r.Subscription,
		"status":       string(r.Status),
		"created":      r.CreatedAt.UTC().Format(store.TimeFormat),
	}
}

// deliveryID is the id of the delivery of event to subscription: the same
// pair always gives the same id, which makes Enqueue idempotent.
func deliveryID(subscription, event string) string {
	sum := sha256.Sum256([]byte(subscription + "\x00" + event))
	return hex.EncodeToString(sum[:16])
}

// message is the body of a queue message: ids only.
type message struct {
	Tenant   string `json:"tenant"`
	Delivery string `json:"delivery"`
	Schedule string `json:"schedule,omitempty"`
	// written is the delivery as this process last wrote or read it, at
	// version, when the process hands it over to itself: the claim starts
	// from it rather than reading it back. It never goes on the queue.
	written *deliveryRecord
	version int64
}

// reschedule returns the writes that replace r's schedule record by one due
// at due (by none when due is zero), and points r at the new record. They
// commit with r, so the schedule always matches the delivery.
func (s *Service) reschedule(ctx context.Context, tenant string, r *deliveryRecord, due time.Time) ([]store.Write, error) {
	var ws []store.Write
	if r.Schedule != "" {
		ws = append(ws, store.Write{Op: store.OpDelete, Record: store.Record{Collection: CollSchedule, Tenant: store.PlatformTenant, ID: r.Schedule}})
		r.Schedule = ""
	}
	if due.IsZero() {
		return ws, nil
	}
	r.ScheduleSeq++
	id := tenant + "/" + r.ID + "/" + strconv.Itoa(r.ScheduleSeq)
	rec, err := s.scheduleRecord(ctx, id, due)
	if err != nil {
		return nil, err
	}
	r.Schedule = id
	return append(ws, store.Write{Op: store.OpPut, Record: rec}), nil
}

// scheduleRecord returns the schedule record id due at due. Its id names
// the tenant and the delivery; its body is an empty sealed object.
func (s *Service) scheduleRecord(ctx context.Context, id string, due time.Time) (store.Record, error) {
	body, err := s.d.Barrier.Seal(ctx, store.BodyPlace(store.PlatformTenant, CollSchedule, id), []byte("{}"))
	if err != nil {
		return store.Record{}, fmt.Errorf("seal schedule: %w", err)
	}
	return store.Record{Collection: CollSchedule, Tenant: store.PlatformTenant, ID: id,
		Index: map[string]string{"due": due.UTC().Format(store.TimeFormat)}, Body: body}, nil
}

// parseScheduleID splits a schedule record id into tenant and delivery.
func parseScheduleID(id string) (tenant, delivery string, ok bool) {
	parts := strings.Split(id, "/")
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" {
		return "", "", false
	}
	return parts[0], parts[1], true
}

// saveDelivery writes r (creating it when version is 0) together with
// writes, in one atomic batch, and returns the new version. A schedule
// record to delete that is already gone (removed by hand) does not block
// the delivery: the batch is made again without that deletion.
func saveDelivery(ctx context.Context, v *store.View, r deliveryRecord, version int64, writes []store.Write) (int64, error) {
	for {
		wctx := ctx
		if len(writes) > 0 {
			extra := writes
			wctx, _ = store.Attach(ctx, CollDeliveries, func(store.Write) ([]store.Write, error) { return extra, nil })
		}
		var (
			rec store.Record
			err error
		)
		if version == 0 {
			rec, err = v.Put(wctx, CollDeliveries, r.ID, r.index(), r)
		} else {
			rec, err = v.Update(wctx, CollDeliveries, r.ID, version, r.index(), r)
		}
		var be *store.BatchError
		if errors.As(err, &be) && be.Index > 0 && errors.Is(be.Err, store.ErrNotFound) && writes[be.Index-1].Op == store.OpDelete {
			writes = slices.Delete(slices.Clone(writes), be.Index-1, be.Index)
			continue
		}
		return rec.Version, err
	}
}

func getDelivery(ctx context.Context, v *store.View, id string) (deliveryRecord, int64, error) {
	var r deliveryRecord
	rec, err := v.Get(ctx, CollDeliveries, id, &r)
	if err != nil {
		return deliveryRecord{}, 0, err
	}
	return r, rec.Version, nil
}

// publish hands a delivery, r as stored at version, to the worker. A
// failure is only logged: the delivery's schedule record publishes it again
// after Options.Republish.
func (s *Service) publish(ctx context.Context, tenant string, r deliveryRecord, version int64) {
	m := message{Tenant: tenant, Delivery: r.ID, Schedule: r.Schedule}
	held := m
	held.written, held.version = &r, version
	if !s.local.Offer(held) {
		s.enqueue(ctx, m)
	}
}

// enqueue publishes m to the queue; a delivery whose message is lost is
// published again by its schedule record.
func (s *Service) enqueue(ctx context.Context, m message) {
	body, err := json.Marshal(m)
	if err == nil {
		err = s.d.Broker.Publish(ctx, Topic, body)
	}
	if err != nil {
		s.d.Log.Warn("webhook: publish failed; the schedule publishes the delivery later", "tenant", m.Tenant, "delivery", m.Delivery, "err", err)
	}
}

// prepare completes and checks ev and returns its payload and the
// subscriptions of tenant that take it.
func (s *Service) prepare(ctx context.Context, v *store.View, tenant string, ev *Event) ([]byte, []string, error) {
	if ev.ID == "" {
		ev.ID = uuid.NewString()
	}
	if ev.CreatedAt.IsZero() {
		ev.CreatedAt = s.now()
	}
	if err := ev.validate(); err != nil {
		return nil, nil, err
	}
	payload, err := ev.payload(tenant)
	if err != nil {
		return nil, nil, err
	}
	all, err := s.subscriptions(ctx, v)
	if err != nil {
		return nil, nil, err
	}
	var subs []string
	for _, r := range all {
		if r.Active && slices.Contains(r.EventTypes, ev.Type) {
			subs = append(subs, r.ID)
		}
	}
	return payload, subs, nil
}

// maxCachedTenants bounds the tenants whose subscriptions are kept.
const maxCachedTenants = 10000

// cachedSubs are a tenant's subscriptions as read at a version of their
// stamp (store.Stamp): every change to a subscription bumps it.
type cachedSubs struct {
	stamp int64
	subs  []subRecord
}

// subscriptions returns the subscriptions of v's tenant: those kept from
// the last read while the collection's stamp has not moved since, else read
// anew. The stamp is read first, so what is kept is never older than the
// stamp it is kept with.
func (s *Service) subscriptions(ctx context.Context, v *store.View) ([]subRecord, error) {
	stamp, err := store.StampOf(ctx, v, CollSubscriptions)
	if err != nil {
		return nil, err
	}
	s.subsMu.Lock()
	c, ok := s.subs[v.Tenant()]
	s.subsMu.Unlock()
	if ok && c.stamp == stamp {
		return c.subs, nil
	}
	var all []subRecord
	err = v.Each(ctx, store.Query{Collection: CollSubscriptions, Limit: store.MaxLimit}, func(rec store.Record) error {
		var r subRecord
		if err := v.Decode(ctx, rec, &r); err != nil {
			return err
		}
		all = append(all, r)
		return nil
	})
	if err != nil {
		return nil, err
	}
	s.subsMu.Lock()
	if len(s.subs) >= maxCachedTenants {
		clear(s.subs)
	}
	s.subs[v.Tenant()] = cachedSubs{stamp: stamp, subs: all}
	s.subsMu.Unlock()
	return all, nil
}

// newDelivery returns the pending delivery of event ev to subscription sub
// and the writes of its schedule record.
func (s *Service) newDelivery(ctx context.Context, tenant, sub string, ev Event, payload []byte, now time.Time) (deliveryRecord, []store.Write, error) {
	r := deliveryRecord{
		Delivery: Delivery{ID: deliveryID(sub, ev.ID), Subscription: sub, EventID: ev.ID, EventType: ev.Type,
			Status: DeliveryPending, CreatedAt: now},
		Payload: payload, WindowStart: now, NextAt: now,
	}
	ws, err := s.reschedule(ctx, tenant, &r, now.Add(s.o.Republish))
	return r, ws, err
}

// Enqueue records the delivery of ev to every active subscription of tenant
// that takes ev's type, and hands each to the worker. It returns the
// delivery ids once the deliveries are durable; from then on each is
// attempted until delivered or failed, even if this process dies. It is
// idempotent by (subscription, ev.ID): enqueuing an event again adds no
// delivery and sends nothing twice that was delivered.
func (s *Service) Enqueue(ctx context.Context, tenant string, ev Event) ([]string, error) {
	v, err := s.view(tenant)
	if err != nil {
		return nil, err
	}
	payload, subs, err := s.prepare(ctx, v, tenant, &ev)
	if err != nil {
		return nil, fmt.Errorf("enqueue webhook event: %w", err)
	}
	now := s.now()
	ids := make([]string, 0, len(subs))
	for _, sub := range subs {
		r, ws, err := s.newDelivery(ctx, tenant, sub, ev, payload, now)
		if err != nil {
			return nil, err
		}
		version, err := saveDelivery(ctx, v, r, 0, ws)
		if errors.Is(err, store.ErrConflict) {
			// Enqueued before: hand it over again if it still waits,
			// since the earlier call may have died before publishing.
			if r, version, err = getDelivery(ctx, v, r.ID); err != nil {
				return nil, fmt.Errorf("enqueue webhook event: %w", err)
			}
			if r.Status != DeliveryPending {
				ids = append(ids, r.ID)
				continue
			}
		} else if err != nil {
			return nil, fmt.Errorf("enqueue webhook event: %w", err)
		}
		s.publish(ctx, tenant, r, version)
		ids = append(ids, r.ID)
	}
	return ids, nil
}

// Attach returns ctx carrying the deliveries of ev to tenant's
// subscriptions (store.Attach): they commit in the same transaction as the
// next write to collection made with the returned context, so subscribers
// hear of a change if and only if it is made. The subscriptions are those
// active when Attach is called. Like Enqueue it is idempotent by
// (subscription, ev.ID): a delivery of the event already stored is left as
// it is and not written again (one stored between that check and the
// commit makes the write fail with store.ErrConflict, and a
// compare-and-swap retry skips it).
//
// After that write has succeeded, call publish to hand the deliveries to
// the worker at once; a process that dies first leaves them to their
// schedule records, which hand them over after Options.Republish. Do not
// call publish when the write did not happen.
func (s *Service) Attach(ctx context.Context, tenant, collection string, ev Event) (actx context.Context, publish func(context.Context), err error) {
	v, err := s.view(tenant)
	if err != nil {
		return nil, nil, err
	}
	payload, subs, err := s.prepare(ctx, v, tenant, &ev)
	if err != nil {
		return nil, nil, fmt.Errorf("attach webhook event: %w", err)
	}
	if len(subs) == 0 {
		return ctx, func(context.Context) {}, nil
	}
	var built []deliveryRecord
	actx, _ = store.Attach(ctx, collection, func(store.Write) ([]store.Write, error) {
		now := s.now()
		built = built[:0]
		var writes []store.Write
		for _, sub := range subs {
			if _, _, err := getDelivery(ctx, v, deliveryID(sub, ev.ID)); err == nil {
				continue
			} else if !errors.Is(err, store.ErrNotFound) {
				return nil, err
			}
			r, ws, err := s.newDelivery(ctx, tenant, sub, ev, payload, now)
			if err != nil {
				return nil, err
			}
			w, err := v.Sealed(ctx, store.OpPut, CollDeliveries, r.ID, 0, r.index(), r)
			if err != nil {
				return nil, err
			}
			built = append(built, r)
			writes = append(append(writes, w), ws...)
		}
		return writes, nil
	})
	return actx, func(ctx context.Context) {
		for _, r := range built {
			s.publish(ctx, tenant, r, 1)
		}
	}, nil
}

// Delivery returns tenant's delivery id, or store.ErrNotFound.
func (s *Service) Delivery(ctx context.Context, tenant, id string) (Delivery, error) {
	v, err := s.view(tenant)
	if err != nil {
		return Delivery{}, err
	}
	r, _, err := getDelivery(ctx, v, id)
	if err != nil {
		return Delivery{}, fmt.Errorf("get webhook delivery: %w", err)
	}
	return r.public(), nil
}

// DeliveryPage is one page of a delivery log. Next is empty on the last
// page, otherwise the cursor of the next one.
type DeliveryPage struct {
	Deliveries []Delivery `json:"deliveries"`
	Next       string     `json:"next,omitempty"`
}

// Deliveries returns the delivery log of tenant's subscription, newest
// first, limit per page (store.DefaultLimit when <= 0), continuing after
// cursor when given.
func (s *Service) Deliveries(ctx context.Context, tenant, subscription string, limit int, cursor string) (DeliveryPage, error) {
	v, err := s.view(tenant)
	if err != nil {
		return DeliveryPage{}, err
	}
	page, err := v.Query(ctx, store.Query{Collection: CollDeliveries,
		Where:   []store.Cond{{Field: "subscription", Op: store.Eq, Value: subscription}},
		OrderBy: "created", Desc: true, Limit: limit, Cursor: cursor})
	if err != nil {
		return DeliveryPage{}, fmt.Errorf("list webhook deliveries: %w", err)
	}
	out := DeliveryPage{Deliveries: make([]Delivery, 0, len(page.Records)), Next: page.Next}
	for _, rec := range page.Records {
		var r deliveryRecord
		if err := v.Decode(ctx, rec, &r); err != nil {
			return DeliveryPage{}, fmt.Errorf("list webhook deliveries: %w", err)
		}
		out.Deliveries = append(out.Deliveries, r.public())
	}
	return out, nil
}

// Redeliver sends tenant's delivery id again: a delivered or failed one
// becomes pending with a fresh retry window; a pending one is made due
// now (unless an attempt is in progress). The receiver gets the same
// payload and event id with a new timestamp and signature. An audit event
// attached to ctx for CollDeliveries commits with the change.
func (s *Service) Redeliver(ctx context.Context, tenant, id string) (Delivery, error) {
	v, err := s.view(tenant)
	if err != nil {
		return Delivery{}, err
	}
	for {
		r, version, err := getDelivery(ctx, v, id)
		if err != nil {
			return Delivery{}, fmt.Errorf("redeliver webhook: %w", err)
		}
		now := s.now()
		if r.Status == DeliveryPending && r.ClaimUntil.After(now) {
			return r.public(), nil
		}
		if r.Status != DeliveryPending {
			r.Status = DeliveryPending
			r.WindowStart, r.Failures = now, 0
			r.Redeliveries++
		}
		r.NextAt = now
		ws, err := s.reschedule(ctx, tenant, &r, now.Add(s.o.Republish))
		if err != nil {
			return Delivery{}, err
		}
		version, err = saveDelivery(ctx, v, r, version, ws)
		if errors.Is(err, store.ErrConflict) {
			continue
		}
		if err != nil {
			return Delivery{}, fmt.Errorf("redeliver webhook: %w", err)
		}
		s.publish(ctx, tenant, r, version)
		return r.public(), nil
	}
}

// PruneDeliveries deletes tenant's delivered and failed deliveries created
// before before, and returns how many it deleted; pending ones stay. The
// retention job calls it.
func (s *Service) PruneDeliveries(ctx context.Context, tenant string, before time.Time) (int, error) {
	v, err := s.view(tenant)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, st := range []DeliveryStatus{DeliveryDelivered, DeliveryFailed} {
		q := store.Query{Collection: CollDeliveries, OrderBy: "created", Limit: store.MaxLimit, Where: []store.Cond{
			{Field: "status", Op: store.Eq, Value: string(st)},
			{Field: "created", Op: store.Lt, Value: before.UTC().Format(store.TimeFormat)},
		}}
		err := v.Each(ctx, q, func(rec store.Record) error {
			err := v.Delete(ctx, CollDeliveries, rec.ID, rec.Version)
			switch {
			case err == nil:
				n++
			case !errors.Is(err, store.ErrConflict) && !errors.Is(err, store.ErrNotFound):
				return err
			}
			return nil
		})
		if err != nil {
			return n, fmt.Errorf("prune webhook deliveries: %w", err)
		}
	}
	return n, nil
}
