// Package audit records security-relevant actions. Handlers and roles emit
// Events; each event is written to the outbox in the store — in the same
// atomic batch as the change it describes (Attach), or on its own for reads,
// denials and failures (Emit) — and the action fails when its event cannot be
// written (fail-closed). The Relay moves outbox events, in order, to the audit
// topic of the broker; while the broker is down they wait in the outbox. The
// audit role (Consumer) appends them, idempotently by event id, to the
// tenant's log.
//
// Threat model: an event may name an address or a user agent, which are
// personal data, so an event is sealed with the barrier under its tenant's
// key before it leaves the emitter (place: tenant, "audit", event id,
// "event"), and the outbox record holding it is sealed again like every
// record body. The broker sees only tenant and event ids. Details MUST NOT
// hold personal data or secrets: ids, counts, kinds and reasons only.
package audit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/idvault/idvault/internal/barrier"
	"github.com/idvault/idvault/internal/groupcommit"
	"github.com/idvault/idvault/internal/identity"
	"github.com/idvault/idvault/internal/pii"
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
	Type      string     `json:"type"`
	ID        string     `json:"id,omitempty"`
	Address   pii.String `json:"address,omitempty"`
	UserAgent pii.String `json:"userAgent,omitempty"`
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
	Purpose   string            `json:"purpose,omitempty"`
	Details   map[string]string `json:"details,omitempty"`
}

// LogValue shows only what identifies the event, never its actor's address
// or user agent, so that logging an event cannot leak personal data.
func (ev Event) LogValue() slog.Value {
	return slog.GroupValue(slog.String("id", ev.ID), slog.String("tenant", ev.Tenant),
		slog.String("action", ev.Action), slog.String("outcome", ev.Outcome))
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

// OutboxCollection holds events not yet relayed to the broker, under
// store.PlatformTenant, ordered by id (time, then event id).
const OutboxCollection = "audit_outbox"

// Emitter writes events to the outbox. It is safe for concurrent use.
type Emitter struct {
	backend store.Backend
	barrier barrier.Barrier
	now     func() time.Time
	commit  *groupcommit.Committer[store.Write]
	wake    chan struct{}
}

// NewEmitter returns an emitter writing to the outbox in backend. now is the
// clock (time.Now when nil).
func NewEmitter(backend store.Backend, b barrier.Barrier, now func() time.Time) *Emitter {
	if now == nil {
		now = time.Now
	}
	e := &Emitter{backend: backend, barrier: b, now: now, wake: make(chan struct{}, 1)}
	e.commit = groupcommit.New(store.MaxBatch, func(ws []store.Write) error {
		_, err := backend.Apply(context.Background(), ws)
		return err
	})
	return e
}

// Emit writes ev to the outbox on its own and returns when it is durable.
// Concurrent calls share one commit. It fills the event's id and time when
// empty; events of no tenant (a failed sign-in that names none) go to
// store.PlatformTenant.
func (e *Emitter) Emit(ctx context.Context, ev Event) error {
	w, err := e.prepare(ctx, ev)
	if err != nil {
		return err
	}
	if err := e.commit.Do(w); err != nil {
		return fmt.Errorf("audit: outbox: %w", err)
	}
	e.signal()
	return nil
}

// Pending is an event attached to a change (Attach) and not yet known to be
// committed.
type Pending struct {
	e   *Emitter
	att *store.Attached
}

// Attach returns ctx carrying ev, so that the next store.View write to
// collection made with it commits ev to the outbox in the same atomic batch
// as the change. An event without a resource id takes the id of the record
// that write made (the id of a created session, user, key). After the change
// the caller calls Pending.Commit, which writes ev on its own if the change
// wrote no such record, and fails when ev could not be written.
func (e *Emitter) Attach(ctx context.Context, ev Event, collection string) (context.Context, Pending) {
	return e.AttachWith(ctx, collection, func(main store.Write) Event {
		ev := ev
		if ev.Resource.ID == "" {
			ev.Resource.ID = main.Record.ID
		}
		return ev
	})
}

// AttachWith is Attach with the event made by build from the write that
// carries it (the zero Write when Pending.Commit writes it alone), for
// events that describe what the write stores, such as a new status taken
// from its clear index.
func (e *Emitter) AttachWith(ctx context.Context, collection string, build func(main store.Write) Event) (context.Context, Pending) {
	return e.AttachIf(ctx, collection, func(main store.Write) (Event, bool) { return build(main), true })
}

// AttachIf is AttachWith for an event that only some outcomes of a change
// record: build reports false when the write carrying it records none.
func (e *Emitter) AttachIf(ctx context.Context, collection string, build func(main store.Write) (Event, bool)) (context.Context, Pending) {
	ctx, att := store.Attach(ctx, collection, func(main store.Write) ([]store.Write, error) {
		ev, ok := build(main)
		if !ok {
			return nil, nil
		}
		w, err := e.prepare(ctx, ev)
		if err != nil {
			return nil, err
		}
		return []store.Write{w}, nil
	})
	return ctx, Pending{e: e, att: att}
}

// Commit makes sure the attached event is in the outbox.
func (p Pending) Commit(ctx context.Context) error {
	if p.e == nil {
		return nil
	}
	if err := p.att.Commit(ctx, p.e.backend); err != nil {
		return fmt.Errorf("audit: outbox: %w", err)
	}
	p.e.signal()
	return nil
}

// Wake returns a channel that receives after events were written, so a
// relay in this process can move them without waiting for its next poll.
func (e *Emitter) Wake() <-chan struct{} { return e.wake }

func (e *Emitter) signal() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// prepare completes ev, seals it and returns the outbox write holding it.
func (e *Emitter) prepare(ctx context.Context, ev Event) (store.Write, error) {
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
		return store.Write{}, fmt.Errorf("audit: encode: %w", err)
	}
	sealed, err := e.barrier.Seal(ctx, place(ev.Tenant, ev.ID), plain)
	if err != nil {
		return store.Write{}, fmt.Errorf("audit: seal: %w", err)
	}
	body, err := json.Marshal(envelope{Tenant: ev.Tenant, ID: ev.ID, Sealed: sealed})
	if err != nil {
		return store.Write{}, fmt.Errorf("audit: encode: %w", err)
	}
	id := ev.Time.UTC().Format(store.TimeFormat) + "." + ev.ID
	outer, err := e.barrier.Seal(ctx, store.BodyPlace(store.PlatformTenant, OutboxCollection, id), body)
	if err != nil {
		return store.Write{}, fmt.Errorf("audit: seal: %w", err)
	}
	return store.Write{Op: store.OpPut, Record: store.Record{
		Collection: OutboxCollection, Tenant: store.PlatformTenant, ID: id, Body: outer,
	}}, nil
}

// Opened is one event taken from the audit topic: the event and the
// canonical JSON it was sealed as.
type Opened struct {
	Event Event
	Data  []byte
}

// Appender appends events, in order, to the tamper-evident log. It must be
// idempotent by event id: the relay and the broker deliver at least once.
type Appender func(ctx context.Context, events []Opened) error

// Consumer is the audit role: it takes relayed events from the audit topic
// and appends them with an Appender.
type Consumer struct {
	broker  queue.Broker
	backend store.Backend
	barrier barrier.Barrier
	append  Appender
	log     *slog.Logger
	// appended, if set, is called after each message is appended.
	appended func(seq int64)
}

// OnAppended makes the consumer call fn with a message's sequence number
// after it has appended the message and recorded it, as Relay.Appended
// expects.
func (c *Consumer) OnAppended(fn func(seq int64)) { c.appended = fn }

// NewConsumer returns the audit role over broker, appending with appendFn
// and recording in backend which message it appended last (see Relay.Once).
func NewConsumer(broker queue.Broker, backend store.Backend, b barrier.Barrier, appendFn Appender, log *slog.Logger) *Consumer {
	return &Consumer{broker: broker, backend: backend, barrier: b, append: appendFn, log: log}
}

// Run consumes the audit topic until ctx is done or the broker closes. A
// message in progress when ctx ends is finished first.
func (c *Consumer) Run(ctx context.Context) error {
	return queue.Consume(ctx, c.broker, queue.TopicAudit, c.log, 5*time.Second, c.handle)
}

func (c *Consumer) handle(ctx context.Context, d queue.Delivery) {
	err := c.Handle(ctx, d.Body())
	if err == nil || errors.Is(err, ErrMalformed) {
		if err != nil {
			c.log.Error("audit: malformed message dropped", "messageId", d.ID())
		}
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

// ErrMalformed means an audit message, or an event in it, could not be
// opened or parsed.
var ErrMalformed = errors.New("audit: malformed message")

// Handle opens the events of one relayed message and appends them in order.
// Events that fail to open are left out and counted in the error (wrapping
// ErrMalformed) returned after the others were appended; a message that is
// not a batch at all is ErrMalformed.
func (c *Consumer) Handle(ctx context.Context, body []byte) error {
	var msg batch
	if err := json.Unmarshal(body, &msg); err != nil {
		return ErrMalformed
	}
	events := make([]Opened, 0, len(msg.Events))
	bad := 0
	for _, env := range msg.Events {
		o, err := c.open(ctx, env)
		if err != nil {
			bad++
			continue
		}
		events = append(events, o)
	}
	if len(events) > 0 {
		if err := c.append(ctx, events); err != nil {
			return fmt.Errorf("audit: append: %w", err)
		}
	}
	if msg.Seq > 0 {
		if err := c.markAppended(ctx, msg.Seq); err != nil {
			return err
		}
		if c.appended != nil {
			c.appended(msg.Seq)
		}
	}
	if bad > 0 {
		return fmt.Errorf("%w: %d of %d events", ErrMalformed, bad, len(msg.Events))
	}
	return nil
}

func (c *Consumer) open(ctx context.Context, env envelope) (Opened, error) {
	if env.Tenant == "" || env.ID == "" {
		return Opened{}, ErrMalformed
	}
	plain, err := c.barrier.Open(ctx, place(env.Tenant, env.ID), env.Sealed)
	if err != nil {
		return Opened{}, ErrMalformed
	}
	var ev Event
	if err := json.Unmarshal(plain, &ev); err != nil || ev.ID != env.ID || ev.Tenant != env.Tenant {
		return Opened{}, ErrMalformed
	}
	return Opened{Event: ev, Data: plain}, nil
}

// markAppended records that the message seq is appended, unless a later one
// already is.
func (c *Consumer) markAppended(ctx context.Context, seq int64) error {
	for {
		cur, version, err := readProgress(ctx, c.backend, c.barrier, "appended")
		if err != nil || cur >= seq {
			return err
		}
		w, err := progressWrite(ctx, c.barrier, "appended", seq, version)
		if err != nil {
			return err
		}
		_, err = c.backend.Apply(ctx, []store.Write{w})
		if !errors.Is(err, store.ErrConflict) {
			return err
		}
	}
}
