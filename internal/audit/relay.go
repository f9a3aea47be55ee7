package audit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/idvault/idvault/internal/barrier"
	"github.com/idvault/idvault/internal/queue"
	"github.com/idvault/idvault/internal/store"
)

// OutboxQuarantine keeps, byte for byte, outbox records that failed to
// open, for investigation.
const OutboxQuarantine = "audit_outbox_quarantine"

// batch is the audit queue message: events in outbox order.
type batch struct {
	Events []envelope `json:"events"`
}

// maxMessage bounds the events of one queue message, below the broker's
// limit with room for the framing.
const maxMessage = queue.MaxBodyBytes - 1024

// Relay moves events from the outbox to the audit topic, oldest first, and
// deletes them from the outbox once the broker has them. A crash between
// publish and delete publishes them again; the audit role appends by event
// id, so they are stored once. Run one relay per deployment (the api role
// holds a lease for it); two relays are safe but publish twice.
type Relay struct {
	backend store.Backend
	outbox  *store.View
	broker  queue.Broker
	emit    *Emitter
	log     *slog.Logger
	// Poll is how long the relay sleeps when the outbox is empty and no
	// emitter in this process has signalled.
	Poll time.Duration
	// MaxBackoff caps the wait between attempts while the broker fails.
	MaxBackoff time.Duration
	// Gather is how long the relay lets events gather after an emitter's
	// signal before it moves them: one message and two commits then carry
	// many events instead of a few, which under load leaves the store's
	// writer free for the requests.
	Gather time.Duration
}

// NewRelay returns a relay over the outbox in backend, publishing to broker.
// emit, when not nil, wakes the relay as soon as it writes an event.
func NewRelay(backend store.Backend, b barrier.Barrier, broker queue.Broker, emit *Emitter, log *slog.Logger) (*Relay, error) {
	v, err := store.NewView(backend, b, store.PlatformTenant)
	if err != nil {
		return nil, err
	}
	return &Relay{backend: backend, outbox: v, broker: broker, emit: emit, log: log, Poll: 250 * time.Millisecond, MaxBackoff: 5 * time.Second, Gather: 20 * time.Millisecond}, nil
}

// Run relays until ctx is done. While the broker or the store fails, it
// retries with a growing pause; nothing leaves the outbox before the broker
// has accepted it.
func (r *Relay) Run(ctx context.Context) error {
	var wake <-chan struct{}
	if r.emit != nil {
		wake = r.emit.Wake()
	}
	backoff := r.Poll
	for {
		n, err := r.Once(ctx)
		var pause time.Duration
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil:
			r.log.Warn("audit relay: events wait in the outbox", "err", err, "retryIn", backoff)
			pause, backoff = backoff, min(2*backoff, r.MaxBackoff)
		case n > 0:
			backoff = r.Poll
			continue
		default:
			backoff = r.Poll
			pause = r.Poll
		}
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-wake:
			if err != nil {
				<-t.C // keep backing off while failing
			} else if r.Gather > 0 {
				time.Sleep(r.Gather)
			}
		case <-t.C:
		}
		t.Stop()
	}
}

// Once relays the oldest outbox events that fit in one message and returns
// how many left the outbox.
func (r *Relay) Once(ctx context.Context) (int, error) {
	page, err := r.outbox.Query(ctx, store.Query{Collection: OutboxCollection, Limit: store.MaxBatch})
	if err != nil {
		return 0, fmt.Errorf("read outbox: %w", err)
	}
	// The message is {"events":[envelope,...]}, each envelope passed
	// through as the emitter encoded it (see batch).
	var (
		body  = append(make([]byte, 0, 64<<10), `{"events":[`...)
		count int
		done  []store.Write
	)
	for _, rec := range page.Records {
		var env json.RawMessage
		if err := r.outbox.Decode(ctx, rec, &env); err != nil {
			if errors.Is(err, barrier.ErrOpen) {
				if err := r.quarantine(ctx, rec); err != nil {
					return len(done), err
				}
				continue
			}
			return 0, err
		}
		if len(body)+len(env)+3 > maxMessage && count > 0 {
			break
		}
		if count > 0 {
			body = append(body, ',')
		}
		body = append(body, env...)
		count++
		done = append(done, store.Write{Op: store.OpDelete, Record: store.Record{
			Collection: OutboxCollection, Tenant: store.PlatformTenant, ID: rec.ID, Version: rec.Version}})
	}
	if count == 0 {
		return len(done), nil
	}
	body = append(body, "]}"...)
	if err := r.broker.Publish(ctx, queue.TopicAudit, body); err != nil {
		return 0, fmt.Errorf("publish: %w", err)
	}
	if _, err := r.backend.Apply(ctx, done); err != nil {
		return 0, fmt.Errorf("clear outbox: %w", err)
	}
	return len(done), nil
}

// quarantine moves an outbox record that fails to open (altered in the
// store, or sealed under a key that is gone) out of the way, so it cannot
// block the events behind it, and records that it did.
func (r *Relay) quarantine(ctx context.Context, rec store.Record) error {
	r.log.Error("audit relay: outbox record fails to open; moved aside", "id", rec.ID)
	kept := rec
	kept.Collection, kept.Index = OutboxQuarantine, nil
	if _, err := r.backend.Apply(ctx, []store.Write{
		{Op: store.OpPut, Record: kept},
		{Op: store.OpDelete, Record: rec},
	}); err != nil {
		return fmt.Errorf("quarantine outbox record: %w", err)
	}
	if r.emit == nil {
		return nil
	}
	return r.emit.Emit(ctx, Event{Actor: Actor{Type: "system", ID: "audit-relay"}, Action: "audit.outbox_tampered",
		Outcome: Failure, Reason: "outbox record fails to open", Resource: Resource{Type: "audit-outbox", ID: rec.ID}})
}

// ReadOutbox calls fn for every event waiting in the outbox, oldest first,
// opened. An event that fails to open is an error wrapping barrier.ErrOpen.
func ReadOutbox(ctx context.Context, backend store.Backend, b barrier.Barrier, fn func(Event) error) error {
	v, err := store.NewView(backend, b, store.PlatformTenant)
	if err != nil {
		return err
	}
	return v.Each(ctx, store.Query{Collection: OutboxCollection}, func(rec store.Record) error {
		var env envelope
		if err := v.Decode(ctx, rec, &env); err != nil {
			return err
		}
		plain, err := b.Open(ctx, place(env.Tenant, env.ID), env.Sealed)
		if err != nil {
			return fmt.Errorf("open outbox event %s: %w", env.ID, err)
		}
		var ev Event
		if err := json.Unmarshal(plain, &ev); err != nil {
			return fmt.Errorf("decode outbox event %s: %w", env.ID, err)
		}
		return fn(ev)
	})
}
