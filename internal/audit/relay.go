package audit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/idvault/idvault/internal/barrier"
	"github.com/idvault/idvault/internal/queue"
	"github.com/idvault/idvault/internal/store"
)

// OutboxQuarantine keeps, byte for byte, outbox records that failed to
// open, for investigation.
const OutboxQuarantine = "audit_outbox_quarantine"

// batch is the audit queue message: its sequence number and events in
// outbox order.
type batch struct {
	Seq    int64      `json:"seq"`
	Events []envelope `json:"events"`
}

// ProgressCollection holds, under store.PlatformTenant, the sequence
// numbers that keep the log in outbox order: "published" (the last message
// the relay published) and "appended" (the last the consumer appended).
const ProgressCollection = "audit_progress"

type progress struct {
	Seq int64 `json:"seq"`
}

// readProgress returns the sequence number stored under id (0 when none)
// and its record version.
func readProgress(ctx context.Context, backend store.Backend, b barrier.Barrier, id string) (int64, int64, error) {
	rec, err := backend.Get(ctx, ProgressCollection, store.PlatformTenant, id)
	if errors.Is(err, store.ErrNotFound) {
		return 0, 0, nil
	}
	if err != nil {
		return 0, 0, fmt.Errorf("read %s sequence: %w", id, err)
	}
	plain, err := b.Open(ctx, store.BodyPlace(store.PlatformTenant, ProgressCollection, id), rec.Body)
	if err != nil {
		return 0, 0, fmt.Errorf("open %s sequence: %w", id, err)
	}
	var p progress
	if err := json.Unmarshal(plain, &p); err != nil {
		return 0, 0, fmt.Errorf("decode %s sequence: %w", id, err)
	}
	return p.Seq, rec.Version, nil
}

// ErrInFlight is what Relay.Once returns while the last message it published
// is not appended yet: it publishes one message at a time.
var ErrInFlight = errors.New("audit relay: previous message not appended yet")

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
	barrier barrier.Barrier
	outbox  *store.View
	broker  queue.Broker
	emit    *Emitter
	log     *slog.Logger
	// Poll is how long the relay sleeps when the outbox is empty and no
	// emitter in this process has signalled.
	Poll time.Duration
	// MaxBackoff caps the wait between attempts while the broker fails.
	MaxBackoff time.Duration
	// Gather is how long the relay lets events gather before it moves them,
	// after an emitter's signal and after the append of the message in
	// flight: one message, its two commits and the audit role's four then
	// carry many events instead of a few, which under load leaves the
	// store's writer free for the requests. It delays an event's arrival in
	// the log by as much.
	Gather time.Duration
	// InFlightPoll is how often the relay looks whether the message in
	// flight has been appended, unless a consumer of this process wakes it
	// first (see Appended).
	InFlightPoll time.Duration
	// StallAfter is how long the relay waits for a message in flight (one
	// whose consumer died waits for the broker's visibility timeout) before
	// it logs an error and goes on, accepting that the late message's events
	// may land after newer ones.
	StallAfter time.Duration

	waitingSince time.Time
	appended     chan struct{} // signalled by Appended
	// appendedSeq is the highest sequence number Appended reported.
	appendedSeq atomic.Int64
	// published is the "published" mark as this relay last wrote it, while
	// known: no other relay writes it (a lease), and one that does makes
	// this relay's next mark a conflict, which drops it.
	published struct {
		seq, version int64
		known        bool
	}
}

// Appended tells the relay that message seq is appended and recorded, and
// wakes it if it waits for its message in flight. The audit consumer of the
// same process calls it after each append (Consumer.OnAppended), so the
// relay publishes the next message after Gather instead of at its next
// InFlightPoll, without reading the "appended" mark back; the poll then
// only matters for consumers in other processes.
func (r *Relay) Appended(seq int64) {
	for {
		cur := r.appendedSeq.Load()
		if seq <= cur || r.appendedSeq.CompareAndSwap(cur, seq) {
			break
		}
	}
	select {
	case r.appended <- struct{}{}:
	default:
	}
}

// NewRelay returns a relay over the outbox in backend, publishing to broker.
// emit, when not nil, wakes the relay as soon as it writes an event.
func NewRelay(backend store.Backend, b barrier.Barrier, broker queue.Broker, emit *Emitter, log *slog.Logger) (*Relay, error) {
	v, err := store.NewView(backend, b, store.PlatformTenant)
	if err != nil {
		return nil, err
	}
	return &Relay{backend: backend, barrier: b, outbox: v, broker: broker, emit: emit, log: log, Poll: 250 * time.Millisecond, MaxBackoff: 5 * time.Second, Gather: 50 * time.Millisecond,
		InFlightPoll: 5 * time.Millisecond, StallAfter: 10 * time.Minute, appended: make(chan struct{}, 1)}, nil
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
		case errors.Is(err, ErrInFlight):
			pause = r.InFlightPoll
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
		// While a message is in flight new events cannot leave, so only
		// its append (or the poll for one elsewhere) is worth waking for.
		events, appended := wake, (<-chan struct{})(nil)
		if errors.Is(err, ErrInFlight) {
			events, appended = nil, r.appended
		}
		gather := false
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-appended:
			gather = true
		case <-events:
			if err != nil {
				<-t.C // keep backing off while failing
			} else {
				gather = true
			}
		case <-t.C:
		}
		t.Stop()
		if gather && r.Gather > 0 {
			t.Reset(r.Gather)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil
			case <-t.C:
			}
		}
	}
}

// Once relays the oldest outbox events that fit in one message and returns
// how many left the outbox.
//
// Order: one message is in flight at a time. Each message carries the next
// sequence number, recorded as "published" in the same store transaction
// that clears its events from the outbox; the consumer records "appended"
// after appending. Until the message in flight is appended, Once publishes
// nothing (ErrInFlight): a message whose consumer died is redelivered after
// the broker's visibility timeout, and newer events must not overtake it in
// the log.
func (r *Relay) Once(ctx context.Context) (int, error) {
	published, pubVersion := r.published.seq, r.published.version
	if !r.published.known {
		var err error
		if published, pubVersion, err = readProgress(ctx, r.backend, r.barrier, "published"); err != nil {
			return 0, err
		}
	}
	appended := r.appendedSeq.Load()
	if appended < published {
		var err error
		if appended, _, err = readProgress(ctx, r.backend, r.barrier, "appended"); err != nil {
			return 0, err
		}
	}
	if appended < published {
		now := time.Now()
		if r.waitingSince.IsZero() {
			r.waitingSince = now
		}
		if now.Sub(r.waitingSince) < r.StallAfter {
			return 0, ErrInFlight
		}
		r.log.Error("audit relay: message not appended in time; going on, its events may land after newer ones (check the audit dead-letter topic)",
			"seq", published, "waited", now.Sub(r.waitingSince))
	}
	r.waitingSince = time.Time{}
	seq := max(published, appended) + 1
	page, err := r.outbox.Query(ctx, store.Query{Collection: OutboxCollection, Limit: store.MaxBatch - 1}) // its deletes and the sequence mark are one batch
	if err != nil {
		return 0, fmt.Errorf("read outbox: %w", err)
	}
	// The message is {"events":[envelope,...]}, each envelope passed
	// through as the emitter encoded it (see batch).
	var (
		body  = append(make([]byte, 0, 64<<10), `{"seq":`+strconv.FormatInt(seq, 10)+`,"events":[`...)
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
	mark, err := r.progressWrite(ctx, "published", seq, pubVersion)
	if err != nil {
		return 0, err
	}
	recs, err := r.backend.Apply(ctx, append(done, mark))
	if err != nil {
		r.published.known = false
		return 0, fmt.Errorf("clear outbox: %w", err)
	}
	r.published.seq, r.published.version, r.published.known = seq, recs[len(recs)-1].Version, true
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

// progressWrite returns the write that records seq under id, over the
// record at version (0: none yet).
func (r *Relay) progressWrite(ctx context.Context, id string, seq, version int64) (store.Write, error) {
	return progressWrite(ctx, r.barrier, id, seq, version)
}

func progressWrite(ctx context.Context, b barrier.Barrier, id string, seq, version int64) (store.Write, error) {
	plain, err := json.Marshal(progress{Seq: seq})
	if err != nil {
		return store.Write{}, err
	}
	sealed, err := b.Seal(ctx, store.BodyPlace(store.PlatformTenant, ProgressCollection, id), plain)
	if err != nil {
		return store.Write{}, fmt.Errorf("seal %s sequence: %w", id, err)
	}
	w := store.Write{Op: store.OpPut, Record: store.Record{Collection: ProgressCollection, Tenant: store.PlatformTenant, ID: id, Body: sealed}}
	if version > 0 {
		w.Op, w.Record.Version = store.OpUpdate, version
	}
	return w, nil
}

// OldestWaiting returns when the oldest event still in the outbox happened,
// and false when the outbox is empty. An old one means the relay or the
// audit role is not keeping up, or is failing.
func OldestWaiting(ctx context.Context, backend store.Backend) (time.Time, bool, error) {
	page, err := backend.Query(ctx, store.Query{Collection: OutboxCollection, Tenant: store.PlatformTenant, Limit: 1})
	if err != nil {
		return time.Time{}, false, fmt.Errorf("read outbox: %w", err)
	}
	if len(page.Records) == 0 {
		return time.Time{}, false, nil
	}
	id := page.Records[0].ID
	at, err := time.Parse(store.TimeFormat, id[:min(len(id), len(store.TimeFormat))])
	if err != nil {
		return time.Time{}, false, fmt.Errorf("outbox record %s: %w", id, store.ErrInvalid)
	}
	return at, true, nil
}
