// Package audit records security-relevant actions. The API and the other
// roles emit Events; the emitter seals each event and publishes it on the
// audit topic; the audit role (Consumer) appends it, idempotently by event
// id, to the tenant's audit collection in the store.
//
// Threat model: an event may name an address or a user agent, which are
// personal data, so events are sealed with the barrier before they reach the
// broker (place: tenant, "audit", event id, "event") and stored sealed. The
// queue sees only the tenant and event ids. Details MUST NOT hold personal
// data or secrets: ids, counts, kinds and reasons only.
//
// This package delivers events at least once after the action (a publish
// failure is returned to the caller). The transactional outbox, the Merkle
// log and its signed checkpoints are built on top of it later.
package audit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/idvault/idvault/internal/barrier"
	"github.com/idvault/idvault/internal/identity"
	"github.com/idvault/idvault/internal/queue"
	"github.com/idvault/idvault/internal/store"
)

// Collection is the store collection of audit events.
const Collection = "audit"

// Outcomes of an action.
const (
	Success = "success"
	Denied  = "denied"
	Failure = "error"
)

// Actor is who acted.
type Actor struct {
	Type      string `json:"type"`
	ID        string `json:"id,omitempty"`
	Address   string `json:"address,omitempty"`
	UserAgent string `json:"userAgent,omitempty"`
}

// Resource is what was acted on.
type Resource struct {
	Type string `json:"type"`
	ID   string `json:"id,omitempty"`
}

// Event is one audited action.
type Event struct {
	ID        string            `json:"id"`
	Tenant    string            `json:"tenant"`
	Time      time.Time         `json:"time"`
	Actor     Actor             `json:"actor"`
	Action    string            `json:"action"`
	Resource  Resource          `json:"resource"`
	Outcome   string            `json:"outcome"`
	Reason    string            `json:"reason,omitempty"`
	RequestID string            `json:"requestId,omitempty"`
	Details   map[string]string `json:"details,omitempty"`
}

// envelope is the queue message: ids in clear, the event sealed.
type envelope struct {
	Tenant string `json:"tenant"`
	ID     string `json:"id"`
	Sealed []byte `json:"sealed"`
}

func place(tenant, id string) barrier.Place {
	return barrier.Place{Tenant: tenant, Collection: Collection, ID: id, Field: "event"}
}

// Emitter seals events and publishes them on the audit topic. It is safe for
// concurrent use.
type Emitter struct {
	broker  queue.Broker
	barrier barrier.Barrier
	now     func() time.Time
}

// NewEmitter returns an emitter publishing to broker. now is the clock
// (time.Now when nil).
func NewEmitter(broker queue.Broker, b barrier.Barrier, now func() time.Time) *Emitter {
	if now == nil {
		now = time.Now
	}
	return &Emitter{broker: broker, barrier: b, now: now}
}

// Emit fills the event's id and time when empty and publishes it. Events of
// no tenant (a failed sign-in that names none) go to store.PlatformTenant.
func (e *Emitter) Emit(ctx context.Context, ev Event) error {
	if ev.ID == "" {
		ev.ID = identity.NewID()
	}
	if ev.Time.IsZero() {
		ev.Time = e.now().UTC()
	}
	if ev.Tenant == "" {
		ev.Tenant = store.PlatformTenant
	}
	plain, err := json.Marshal(ev)
	if err != nil {
		return fmt.Errorf("audit: encode: %w", err)
	}
	sealed, err := e.barrier.Seal(ctx, place(ev.Tenant, ev.ID), plain)
	if err != nil {
		return fmt.Errorf("audit: seal: %w", err)
	}
	body, err := json.Marshal(envelope{Tenant: ev.Tenant, ID: ev.ID, Sealed: sealed})
	if err != nil {
		return fmt.Errorf("audit: encode: %w", err)
	}
	if err := e.broker.Publish(ctx, queue.TopicAudit, body); err != nil {
		return fmt.Errorf("audit: publish: %w", err)
	}
	return nil
}

// Consumer is the audit role: it appends published events to the store.
type Consumer struct {
	broker  queue.Broker
	backend store.Backend
	barrier barrier.Barrier
	log     *slog.Logger
}

// NewConsumer returns the audit role over broker and backend.
func NewConsumer(broker queue.Broker, backend store.Backend, b barrier.Barrier, log *slog.Logger) *Consumer {
	return &Consumer{broker: broker, backend: backend, barrier: b, log: log}
}

// Run consumes the audit topic until ctx is done or the broker closes. An
// event in progress when ctx ends is finished first.
func (c *Consumer) Run(ctx context.Context) error {
	for {
		d, err := c.broker.Receive(ctx, queue.TopicAudit)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, queue.ErrClosed) {
				return nil
			}
			return fmt.Errorf("audit: receive: %w", err)
		}
		c.handle(context.WithoutCancel(ctx), d)
	}
}

func (c *Consumer) handle(ctx context.Context, d queue.Delivery) {
	err := c.Append(ctx, d.Body())
	if err == nil {
		if err := d.Ack(ctx); err != nil {
			c.log.Warn("audit: ack", "messageId", d.ID(), "err", err)
		}
		return
	}
	c.log.Error("audit: append failed", "messageId", d.ID(), "attempt", d.Attempt(), "err", err)
	if err := d.Nack(ctx); err != nil {
		c.log.Warn("audit: nack", "messageId", d.ID(), "err", err)
	}
}

// ErrMalformed means an audit message could not be opened or parsed.
var ErrMalformed = errors.New("audit: malformed message")

// Append stores one published event; a repeated event (same id) is a no-op.
func (c *Consumer) Append(ctx context.Context, body []byte) error {
	var env envelope
	if err := json.Unmarshal(body, &env); err != nil || env.Tenant == "" || env.ID == "" {
		return ErrMalformed
	}
	plain, err := c.barrier.Open(ctx, place(env.Tenant, env.ID), env.Sealed)
	if err != nil {
		return ErrMalformed
	}
	var ev Event
	if err := json.Unmarshal(plain, &ev); err != nil || ev.ID != env.ID || ev.Tenant != env.Tenant {
		return ErrMalformed
	}
	v, err := store.NewView(c.backend, c.barrier, ev.Tenant)
	if err != nil {
		return err
	}
	index := map[string]string{
		"time":    ev.Time.UTC().Format(store.TimeFormat),
		"action":  ev.Action,
		"outcome": ev.Outcome,
	}
	if _, err := v.Put(ctx, Collection, ev.ID, index, ev); err != nil && !errors.Is(err, store.ErrConflict) {
		return fmt.Errorf("audit: append: %w", err)
	}
	return nil
}

// List returns up to limit events of tenant in time order, starting at
// cursor; it is the reading side used by tests and the CLI until the audit
// API arrives.
func List(ctx context.Context, backend store.Backend, b barrier.Barrier, tenant, cursor string, limit int) ([]Event, string, error) {
	v, err := store.NewView(backend, b, tenant)
	if err != nil {
		return nil, "", err
	}
	page, err := v.Query(ctx, store.Query{Collection: Collection, OrderBy: "time", Limit: limit, Cursor: cursor})
	if err != nil {
		return nil, "", fmt.Errorf("audit: list: %w", err)
	}
	out := make([]Event, 0, len(page.Records))
	for _, rec := range page.Records {
		var ev Event
		if err := v.Decode(ctx, rec, &ev); err != nil {
			return nil, "", err
		}
		out = append(out, ev)
	}
	return out, page.Next, nil
}
