package audit_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/idvault/idvault/internal/audit"
	"github.com/idvault/idvault/internal/queue"
	"github.com/idvault/idvault/internal/store"
	"github.com/idvault/idvault/internal/testenv"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// patience bounds every wait for something that must happen.
const patience = 20 * time.Second

var t0 = time.Date(2030, 1, 2, 3, 4, 5, 6, time.UTC)

type fixture struct {
	env     *testenv.Env
	emitter *audit.Emitter
	relay   *audit.Relay
	broker  *flakyBroker

	mu       sync.Mutex
	appended []audit.Opened
	failNext error
}

// flakyBroker is the real SQLite broker with a switch that makes Publish
// fail, as a broker that is down does.
type flakyBroker struct {
	queue.Broker
	mu   sync.Mutex
	down bool
}

func (b *flakyBroker) setDown(down bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.down = down
}

func (b *flakyBroker) Publish(ctx context.Context, topic string, body []byte) error {
	b.mu.Lock()
	down := b.down
	b.mu.Unlock()
	if down {
		return errors.New("broker unreachable")
	}
	return b.Broker.Publish(ctx, topic, body)
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	t.Cleanup(func() { goleak.VerifyNone(t) }) // runs last, after everything below is closed
	e := testenv.Open(t, queue.Options{})
	f := &fixture{env: e, broker: &flakyBroker{Broker: e.Broker}}
	f.emitter = audit.NewEmitter(e.Backend, e.Barrier, func() time.Time { return t0 })
	var err error
	if f.relay, err = audit.NewRelay(e.Backend, e.Barrier, f.broker, f.emitter, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	return f
}

// appender records what the consumer appends, in order; it stands for the
// log, whose own tests are in package auditlog.
func (f *fixture) appender(_ context.Context, evs []audit.Opened) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.failNext; err != nil {
		f.failNext = nil
		return err
	}
	f.appended = append(f.appended, evs...)
	return nil
}

func (f *fixture) consumer() *audit.Consumer {
	return audit.NewConsumer(f.env.Broker, f.env.Backend, f.env.Barrier, f.appender, slog.New(slog.DiscardHandler))
}

// outbox returns the ids of the events waiting in the outbox, in order.
func (f *fixture) outbox(t *testing.T) []string {
	t.Helper()
	v, err := store.NewView(f.env.Backend, f.env.Barrier, store.PlatformTenant)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	if err := v.Each(context.Background(), store.Query{Collection: audit.OutboxCollection}, func(rec store.Record) error {
		ids = append(ids, rec.ID)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return ids
}

// drain relays the whole outbox and hands every message to the consumer, as
// the audit role does: one message in flight at a time.
func (f *fixture) drain(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	c := f.consumer()
	for {
		n, err := f.relay.Once(ctx)
		switch {
		case errors.Is(err, audit.ErrInFlight): // redelivered after the visibility timeout
		case err != nil:
			t.Fatalf("relay.Once() = %v", err)
		case n == 0:
			return
		}
		rctx, cancel := context.WithTimeout(ctx, patience)
		d, err := f.env.Broker.Receive(rctx, queue.TopicAudit)
		cancel()
		if err != nil {
			t.Fatalf("Receive(audit) after relaying %d events = %v", n, err)
		}
		if err := c.Handle(ctx, d.Body()); err != nil {
			t.Fatalf("Handle() = %v", err)
		}
		if err := d.Ack(ctx); err != nil {
			t.Fatal(err)
		}
	}
}

func (f *fixture) actions() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]string, len(f.appended))
	for i, o := range f.appended {
		out[i] = o.Event.Tenant + "/" + o.Event.Action
	}
	return out
}

func event(tenant, action string) audit.Event {
	return audit.Event{
		Tenant:   tenant,
		Actor:    audit.Actor{Type: "user", ID: "u1", Address: "198.51.100.23", UserAgent: "Mozilla/5.0 marker"},
		Action:   action,
		Resource: audit.Resource{Type: "session", ID: "s1"},
		Outcome:  audit.Success,
	}
}

// TestEmitRelayConsume follows events from Emit through the outbox, the
// relay and the broker to the consumer, and checks order, content and that
// the outbox empties.
func TestEmitRelayConsume(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	var want []string
	for i := range 300 { // more than one queue message holds
		tenant := []string{"tenant-a", "tenant-b"}[i%2]
		action := fmt.Sprintf("session.read.%03d", i)
		if err := f.emitter.Emit(ctx, event(tenant, action)); err != nil {
			t.Fatalf("Emit() = %v", err)
		}
		want = append(want, tenant+"/"+action)
	}
	if got := len(f.outbox(t)); got != 300 {
		t.Fatalf("outbox holds %d events after 300 emits, want 300", got)
	}
	f.drain(t)
	if got := f.actions(); !slices.Equal(got, want) {
		t.Fatalf("appended %d events, want %d in emit order; first difference at %d", len(got), len(want), firstDiff(got, want))
	}
	if got := f.outbox(t); len(got) != 0 {
		t.Errorf("outbox holds %d events after the relay, want 0", len(got))
	}
	got := f.appended[0]
	if got.Event.ID == "" || !got.Event.Time.Equal(t0) || got.Event.Actor.Address != "198.51.100.23" {
		t.Errorf("appended event = %+v, want an id, the emit time and the actor", got.Event)
	}
	var decoded audit.Event
	if err := json.Unmarshal(got.Data, &decoded); err != nil || decoded.ID != got.Event.ID {
		t.Errorf("Opened.Data does not hold the event: %v", err)
	}
}

func firstDiff(a, b []string) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// TestAttachCommitsWithTheChange checks that an event attached to a change
// commits in the same batch as the change: both or neither.
func TestAttachCommitsWithTheChange(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	v, err := store.NewView(f.env.Backend, f.env.Barrier, "tenant-a")
	if err != nil {
		t.Fatal(err)
	}

	t.Run("carried by the write", func(t *testing.T) {
		cctx, p := f.emitter.Attach(ctx, event("tenant-a", "thing.create"), "things")
		if _, err := v.Put(cctx, "other", "unrelated", nil, "x"); err != nil { // another collection: not carried
			t.Fatal(err)
		}
		if n := len(f.outbox(t)); n != 0 {
			t.Fatalf("outbox holds %d events after a write to another collection, want 0", n)
		}
		if _, err := v.Put(cctx, "things", "t1", nil, "x"); err != nil {
			t.Fatal(err)
		}
		if n := len(f.outbox(t)); n != 1 {
			t.Fatalf("outbox holds %d events after the change, want 1", n)
		}
		if err := p.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		if n := len(f.outbox(t)); n != 1 {
			t.Errorf("outbox holds %d events after Commit of a carried event, want 1", n)
		}
		f.drain(t)
		last := f.appended[len(f.appended)-1].Event
		if last.Resource.ID != "s1" {
			t.Errorf("resource id = %q, want the given s1", last.Resource.ID)
		}
	})

	t.Run("resource id from the record", func(t *testing.T) {
		ev := event("tenant-a", "thing.create")
		ev.Resource.ID = ""
		cctx, _ := f.emitter.Attach(ctx, ev, "things")
		if _, err := v.Put(cctx, "things", "t-new", nil, "x"); err != nil {
			t.Fatal(err)
		}
		f.drain(t)
		if got := f.appended[len(f.appended)-1].Event.Resource.ID; got != "t-new" {
			t.Errorf("resource id = %q, want the created record's t-new", got)
		}
	})

	t.Run("failed change writes no event", func(t *testing.T) {
		before := len(f.outbox(t))
		cctx, _ := f.emitter.Attach(ctx, event("tenant-a", "thing.create"), "things")
		if _, err := v.Put(cctx, "things", "t1", nil, "x"); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("Put(existing) = %v, want ErrConflict", err)
		}
		if n := len(f.outbox(t)); n != before {
			t.Errorf("outbox grew from %d to %d on a failed change", before, n)
		}
	})

	t.Run("retry after conflict carries the event", func(t *testing.T) {
		rec, err := v.Get(ctx, "things", "t1", new(string))
		if err != nil {
			t.Fatal(err)
		}
		before := len(f.outbox(t))
		cctx, p := f.emitter.Attach(ctx, event("tenant-a", "thing.update"), "things")
		if _, err := v.Update(cctx, "things", "t1", rec.Version+7, nil, "y"); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("Update(stale) = %v, want ErrConflict", err)
		}
		if _, err := v.Update(cctx, "things", "t1", rec.Version, nil, "y"); err != nil {
			t.Fatal(err)
		}
		if err := p.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		if n := len(f.outbox(t)); n != before+1 {
			t.Errorf("outbox holds %d events, want %d: one for the retried change", n, before+1)
		}
	})

	t.Run("commit without a change writes it alone", func(t *testing.T) {
		f.drain(t)
		_, p := f.emitter.Attach(ctx, event("tenant-a", "thing.noop"), "things")
		if err := p.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		if err := p.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		if n := len(f.outbox(t)); n != 1 {
			t.Errorf("outbox holds %d events after two Commits, want 1", n)
		}
	})
}

// TestBrokerDown checks that while the broker refuses messages, events wait
// in the outbox and actions go on, and that they flow, in order, when it
// returns.
func TestBrokerDown(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.broker.setDown(true)
	var want []string
	for i := range 20 {
		a := fmt.Sprintf("a.%02d", i)
		if err := f.emitter.Emit(ctx, event("tenant-a", a)); err != nil {
			t.Fatalf("Emit() with the broker down = %v, want nil", err)
		}
		want = append(want, "tenant-a/"+a)
	}
	if n, err := f.relay.Once(ctx); err == nil || n != 0 {
		t.Fatalf("relay.Once() with the broker down = %d, %v; want an error and nothing moved", n, err)
	}
	if n := len(f.outbox(t)); n != 20 {
		t.Fatalf("outbox holds %d events with the broker down, want 20", n)
	}
	f.broker.setDown(false)
	f.drain(t)
	if got := f.actions(); !slices.Equal(got, want) {
		t.Fatalf("appended %v, want %v", got, want)
	}
}

// TestRelayRun runs the relay and the consumer as the audit role does and
// checks that emitted events arrive without polling delays mattering, and
// that both stop with their context.
func TestRelayRun(t *testing.T) {
	f := newFixture(t)
	f.relay.Poll = time.Hour // only the emitter's signal can wake it
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = f.relay.Run(ctx) })
	wg.Go(func() { _ = f.consumer().Run(ctx) })
	defer func() { cancel(); wg.Wait() }()
	for i := range 5 {
		if err := f.emitter.Emit(ctx, event("tenant-a", fmt.Sprint("run.", i))); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(patience)
	for len(f.actions()) < 5 {
		if time.Now().After(deadline) {
			t.Fatalf("appended %d of 5 events", len(f.actions()))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestRelayWokenByAppend checks that a relay waiting for its message in
// flight publishes the next one as soon as the consumer of its process has
// appended, without its poll: each event is emitted after the previous one
// is appended, so each is a message of its own, published while the
// previous one may still be in flight.
func TestRelayWokenByAppend(t *testing.T) {
	f := newFixture(t)
	f.relay.Poll, f.relay.InFlightPoll = time.Hour, time.Hour // only signals wake it
	c := f.consumer()
	c.OnAppended(f.relay.Appended)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = f.relay.Run(ctx) })
	wg.Go(func() { _ = c.Run(ctx) })
	defer func() { cancel(); wg.Wait() }()
	for i := range 5 {
		if err := f.emitter.Emit(ctx, event("tenant-a", fmt.Sprint("woken.", i))); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			continue // the second emit finds the first in flight or appended
		}
		deadline := time.Now().Add(patience)
		for len(f.actions()) < i {
			if time.Now().After(deadline) {
				t.Fatalf("appended %d of %d events", len(f.actions()), i)
			}
			time.Sleep(time.Millisecond)
		}
	}
	deadline := time.Now().Add(patience)
	for len(f.actions()) < 5 {
		if time.Now().After(deadline) {
			t.Fatalf("appended %d of 5 events", len(f.actions()))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestConcurrentEmits checks the group commit: concurrent emits all land,
// each once.
func TestConcurrentEmits(t *testing.T) {
	f := newFixture(t)
	var wg sync.WaitGroup
	for i := range 64 {
		wg.Go(func() {
			if err := f.emitter.Emit(context.Background(), event("tenant-a", fmt.Sprint("c.", i))); err != nil {
				t.Errorf("Emit() = %v", err)
			}
		})
	}
	wg.Wait()
	f.drain(t)
	got := f.actions()
	slices.Sort(got)
	if len(slices.Compact(got)) != 64 {
		t.Errorf("appended %d distinct events, want 64", len(got))
	}
}

// TestFailClosed checks that Emit reports a store it cannot write to, so the
// action can fail.
func TestFailClosed(t *testing.T) {
	f := newFixture(t)
	if err := f.env.Backend.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.emitter.Emit(context.Background(), event("tenant-a", "x")); err == nil {
		t.Fatal("Emit() on a closed store = nil, want an error")
	}
}

// TestNoPersonalDataInClear checks that an event's address and user agent
// reach neither the queue nor the database files in clear.
func TestNoPersonalDataInClear(t *testing.T) {
	f := newFixture(t)
	const addr, agent = "203.0.113.77", "MarkerAgent/9.9 (c4f1)"
	ev := event("tenant-a", "session.read")
	ev.Actor.Address, ev.Actor.UserAgent = addr, agent
	if err := f.emitter.Emit(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	if _, err := f.relay.Once(context.Background()); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, s := range []string{addr, agent} {
		entries, err := os.ReadDir(f.env.Dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			b, err := os.ReadFile(filepath.Join(f.env.Dir, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			found = found || bytes.Contains(b, []byte("tenant-a"))
			if bytes.Contains(b, []byte(s)) {
				t.Errorf("%s contains %q in clear", e.Name(), s)
			}
		}
	}
	if !found {
		t.Fatal("no database file names the tenant; the scan sees nothing")
	}
}

// TestTamperedOutboxRecord alters an outbox record in the store: the relay
// moves it aside byte for byte, records that it did, and the events behind
// it still flow.
func TestTamperedOutboxRecord(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	for _, a := range []string{"first", "second", "third"} {
		if err := f.emitter.Emit(ctx, event("tenant-a", a)); err != nil {
			t.Fatal(err)
		}
	}
	ids := f.outbox(t)
	rec, err := f.env.Backend.Get(ctx, audit.OutboxCollection, store.PlatformTenant, ids[1])
	if err != nil {
		t.Fatal(err)
	}
	rec.Body[len(rec.Body)-1] ^= 1
	if _, err := f.env.Backend.Update(ctx, rec); err != nil {
		t.Fatal(err)
	}
	f.drain(t)
	want := []string{"tenant-a/first", "tenant-a/third", store.PlatformTenant + "/audit.outbox_tampered"}
	if got := f.actions(); !slices.Equal(got, want) {
		t.Fatalf("appended %v, want %v", got, want)
	}
	kept, err := f.env.Backend.Get(ctx, audit.OutboxQuarantine, store.PlatformTenant, ids[1])
	if err != nil || !bytes.Equal(kept.Body, rec.Body) {
		t.Errorf("quarantined record = %v, want the altered bytes kept", err)
	}
}

// TestConsumerRejectsForgedEvents hands the consumer messages a party with
// access to the broker but not the keys could make: each forged event is
// left out, the genuine ones in the same message are appended.
func TestConsumerRejectsForgedEvents(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	for _, a := range []string{"one", "two"} {
		if err := f.emitter.Emit(ctx, event("tenant-a", a)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := f.relay.Once(ctx); err != nil {
		t.Fatal(err)
	}
	d, err := f.env.Broker.Receive(ctx, queue.TopicAudit)
	if err != nil {
		t.Fatal(err)
	}
	var msg struct {
		Events []struct {
			Tenant string `json:"tenant"`
			ID     string `json:"id"`
			Sealed []byte `json:"sealed"`
		} `json:"events"`
	}
	if err := json.Unmarshal(d.Body(), &msg); err != nil || len(msg.Events) != 2 {
		t.Fatalf("message = %s, %v; want two events", d.Body(), err)
	}
	forged := msg
	forged.Events = slices.Clone(msg.Events)
	moved := msg.Events[0]
	moved.Tenant = "tenant-b" // another tenant's log
	flipped := msg.Events[0]
	flipped.Sealed = slices.Clone(flipped.Sealed)
	flipped.Sealed[len(flipped.Sealed)-1] ^= 1
	renamed := msg.Events[0]
	renamed.ID = "other-id"
	forged.Events = append(forged.Events, moved, flipped, renamed)
	body, err := json.Marshal(forged)
	if err != nil {
		t.Fatal(err)
	}
	c := f.consumer()
	if err := c.Handle(ctx, body); !errors.Is(err, audit.ErrMalformed) {
		t.Fatalf("Handle(forged) = %v, want ErrMalformed", err)
	}
	if got := f.actions(); !slices.Equal(got, []string{"tenant-a/one", "tenant-a/two"}) {
		t.Errorf("appended %v, want only the two genuine events", got)
	}
	for _, junk := range [][]byte{[]byte("not json"), []byte(`{"events":"x"}`)} {
		if err := c.Handle(ctx, junk); !errors.Is(err, audit.ErrMalformed) {
			t.Errorf("Handle(%q) = %v, want ErrMalformed", junk, err)
		}
	}
}

// TestAppendFailureRedelivers checks that a message whose append fails is
// not lost: the consumer does not ack it and it comes again.
func TestAppendFailureRedelivers(t *testing.T) {
	f := newFixture(t)
	ctx, cancel := context.WithCancel(context.Background())
	f.failNext = errors.New("log unavailable")
	if err := f.emitter.Emit(ctx, event("tenant-a", "retry")); err != nil {
		t.Fatal(err)
	}
	if _, err := f.relay.Once(ctx); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() { _ = f.consumer().Run(ctx) })
	defer func() { cancel(); wg.Wait() }()
	deadline := time.Now().Add(patience)
	for len(f.actions()) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the event was not appended after the failed attempt")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestOrderAfterConsumerDies claims a message as a consumer that then dies
// (never acks): newer events must not overtake it. The relay publishes
// nothing new until the message, redelivered after the visibility timeout,
// is appended; the log then holds every event once, in emit order.
func TestOrderAfterConsumerDies(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) })
	ctx := context.Background()
	e := testenv.Open(t, queue.Options{Visibility: 200 * time.Millisecond})
	f := &fixture{env: e, broker: &flakyBroker{Broker: e.Broker}}
	f.emitter = audit.NewEmitter(e.Backend, e.Barrier, func() time.Time { return t0 })
	var err error
	if f.relay, err = audit.NewRelay(e.Backend, e.Barrier, f.broker, f.emitter, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{"a.1", "a.2"} {
		if err := f.emitter.Emit(ctx, event("tenant-a", a)); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := f.relay.Once(ctx); err != nil || n != 2 {
		t.Fatalf("relay.Once() = %d, %v; want the first two events published", n, err)
	}
	if _, err := e.Broker.Receive(ctx, queue.TopicAudit); err != nil { // the consumer that dies
		t.Fatal(err)
	}
	for _, a := range []string{"a.3", "a.4"} {
		if err := f.emitter.Emit(ctx, event("tenant-a", a)); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := f.relay.Once(ctx); !errors.Is(err, audit.ErrInFlight) || n != 0 {
		t.Fatalf("relay.Once() with the first message unappended = %d, %v; want ErrInFlight", n, err)
	}
	if n := len(f.outbox(t)); n != 2 {
		t.Fatalf("outbox holds %d events, want the 2 newer ones waiting", n)
	}
	f.drain(t) // takes the redelivered first message, then the rest
	want := []string{"tenant-a/a.1", "tenant-a/a.2", "tenant-a/a.3", "tenant-a/a.4"}
	if got := f.actions(); !slices.Equal(got, want) {
		t.Fatalf("appended %v, want %v", got, want)
	}
}

// TestRelayKeptMarkGoesStale: a relay keeps the "published" mark it wrote
// and the "appended" mark its consumer reported instead of reading them
// back. When another relay publishes meanwhile (two relays are safe, if
// wasteful), the kept mark is stale: the next mark write conflicts, the
// relay drops what it kept and reads the marks again, and no event is lost.
func TestRelayKeptMarkGoesStale(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	c := f.consumer()
	c.OnAppended(f.relay.Appended)
	other, err := audit.NewRelay(f.env.Backend, f.env.Barrier, f.broker, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	consume := func() {
		t.Helper()
		rctx, cancel := context.WithTimeout(ctx, patience)
		defer cancel()
		d, err := f.env.Broker.Receive(rctx, queue.TopicAudit)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Handle(ctx, d.Body()); err != nil {
			t.Fatal(err)
		}
		if err := d.Ack(ctx); err != nil {
			t.Fatal(err)
		}
	}
	emit := func(action string) {
		t.Helper()
		if err := f.emitter.Emit(ctx, event("tenant-a", action)); err != nil {
			t.Fatal(err)
		}
	}
	emit("a.1")
	if n, err := f.relay.Once(ctx); err != nil || n != 1 {
		t.Fatalf("relay.Once() = %d, %v; want a.1 published", n, err)
	}
	consume()
	emit("a.2")
	if n, err := other.Once(ctx); err != nil || n != 1 {
		t.Fatalf("other relay's Once() = %d, %v; want a.2 published", n, err)
	}
	consume()
	emit("a.3")
	if n, err := f.relay.Once(ctx); err == nil || n != 0 {
		t.Fatalf("relay.Once() on a stale mark = %d, %v; want the mark's conflict", n, err)
	}
	consume() // the message went out before its mark failed
	if n, err := f.relay.Once(ctx); err != nil || n != 1 {
		t.Fatalf("relay.Once() after the conflict = %d, %v; want a.3 published again and cleared", n, err)
	}
	consume()
	if left := f.outbox(t); len(left) != 0 {
		t.Fatalf("outbox holds %v, want nothing", left)
	}
	want := []string{"tenant-a/a.1", "tenant-a/a.2", "tenant-a/a.3", "tenant-a/a.3"} // at least once: the log dedupes by id
	if got := f.actions(); !slices.Equal(got, want) {
		t.Fatalf("appended %v, want %v", got, want)
	}
	if n, err := f.relay.Once(ctx); err != nil || n != 0 {
		t.Fatalf("relay.Once() with nothing left = %d, %v; want nothing to do, not in flight", n, err)
	}
}

// TestRelayFullPages relays more events than one store batch holds: every
// page of the outbox, with its sequence mark, must fit one atomic batch.
func TestRelayFullPages(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	const n = 2*store.MaxBatch + 7
	for i := range n {
		if err := f.emitter.Emit(ctx, event("tenant-a", fmt.Sprintf("bulk.%04d", i))); err != nil {
			t.Fatal(err)
		}
	}
	f.drain(t)
	if got := len(f.actions()); got != n {
		t.Fatalf("appended %d events, want %d", got, n)
	}
	if left := len(f.outbox(t)); left != 0 {
		t.Errorf("outbox holds %d events after draining, want 0", left)
	}
}
