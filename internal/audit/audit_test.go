package audit_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"github.com/idvault/idvault/internal/testenv"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/idvault/idvault/internal/audit"
	"github.com/idvault/idvault/internal/barrier"
	"github.com/idvault/idvault/internal/queue"
	"github.com/idvault/idvault/internal/queue/sqlitequeue"
	"github.com/idvault/idvault/internal/store"
	"github.com/idvault/idvault/internal/store/sqlite"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// patience bounds every wait for something that must happen.
const patience = 20 * time.Second

var t0 = time.Date(2030, 1, 2, 3, 4, 5, 6, time.UTC)

// envelope mirrors the audit queue message: ids in clear, the event sealed.
type envelope struct {
	Tenant string `json:"tenant"`
	ID     string `json:"id"`
	Sealed []byte `json:"sealed"`
}

type fixture struct {
	dir      string
	backend  *sqlite.Store
	barrier  *barrier.AESGCM
	broker   *sqlitequeue.Broker
	emitter  *audit.Emitter
	consumer *audit.Consumer
}

func newFixture(t *testing.T, opts queue.Options) *fixture {
	t.Helper()
	t.Cleanup(func() { goleak.VerifyNone(t) }) // runs last, after everything below is closed
	e := testenv.Open(t, opts)
	dir, backend, broker, bar := e.Dir, e.Backend, e.Broker, e.Barrier
	return &fixture{
		dir:      dir,
		backend:  backend,
		barrier:  bar,
		broker:   broker,
		emitter:  audit.NewEmitter(broker, bar, func() time.Time { return t0 }),
		consumer: audit.NewConsumer(broker, backend, bar, slog.New(slog.DiscardHandler)),
	}
}

// receive takes the next message of topic and acks it.
func (f *fixture) receive(t *testing.T, topic string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	d, err := f.broker.Receive(ctx, topic)
	if err != nil {
		t.Fatalf("Receive(%s) = %v", topic, err)
	}
	if err := d.Ack(ctx); err != nil {
		t.Fatalf("Ack() = %v", err)
	}
	return d.Body()
}

// emit emits ev and returns the queue message it produced.
func (f *fixture) emit(t *testing.T, ev audit.Event) []byte {
	t.Helper()
	if err := f.emitter.Emit(context.Background(), ev); err != nil {
		t.Fatalf("Emit(%+v) = %v", ev, err)
	}
	return f.receive(t, queue.TopicAudit)
}

func (f *fixture) list(t *testing.T, tenant string) []audit.Event {
	t.Helper()
	evs, next, err := audit.List(context.Background(), f.backend, f.barrier, tenant, "", 0)
	if err != nil || next != "" {
		t.Fatalf("List(%s) = %q, %v, want no next page", tenant, next, err)
	}
	return evs
}

// dbContains reports whether any file of the database (main file, WAL,
// shared memory) holds s.
func (f *fixture) dbContains(t *testing.T, s string) bool {
	t.Helper()
	entries, err := os.ReadDir(f.dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(f.dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte(s)) {
			return true
		}
	}
	return false
}

func sampleEvent() audit.Event {
	return audit.Event{
		Tenant:    "tenant-a",
		Actor:     audit.Actor{Type: "user", ID: "u1", Address: "198.51.100.23", UserAgent: "Mozilla/5.0 marker"},
		Action:    "session.read",
		Resource:  audit.Resource{Type: "session", ID: "s1"},
		Outcome:   audit.Success,
		RequestID: "req-1",
		Details:   map[string]string{"files": "2"},
	}
}

func equalEvents(a, b audit.Event) bool {
	return a.ID == b.ID && a.Tenant == b.Tenant && a.Time.Equal(b.Time) && a.Actor == b.Actor &&
		a.Action == b.Action && a.Resource == b.Resource && a.Outcome == b.Outcome && a.Reason == b.Reason &&
		a.RequestID == b.RequestID && maps.Equal(a.Details, b.Details)
}

func TestEmitAppend(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, queue.Options{})
	ev := sampleEvent()
	body := f.emit(t, ev)

	var env envelope
	if err := json.Unmarshal(body, &env); err != nil {
		t.Fatalf("message body %q is not an envelope: %v", body, err)
	}
	if env.Tenant != ev.Tenant || env.ID == "" || len(env.Sealed) == 0 {
		t.Fatalf("envelope = %+v, want tenant %s, an id and a sealed event", env, ev.Tenant)
	}

	if err := f.consumer.Append(ctx, body); err != nil {
		t.Fatalf("Append() = %v, want nil", err)
	}
	got := f.list(t, ev.Tenant)
	want := ev
	want.ID, want.Time = env.ID, t0
	if len(got) != 1 || !equalEvents(got[0], want) {
		t.Fatalf("List() = %+v, want [%+v]", got, want)
	}

	t.Run("idempotent", func(t *testing.T) {
		if err := f.consumer.Append(ctx, body); err != nil {
			t.Fatalf("Append() again = %v, want nil", err)
		}
		if got := f.list(t, ev.Tenant); len(got) != 1 {
			t.Errorf("List() after a repeated Append = %d events, want 1", len(got))
		}
	})

	t.Run("given id and time kept", func(t *testing.T) {
		ev := sampleEvent()
		ev.ID, ev.Time = "fixed-id", t0.Add(-time.Hour)
		if err := f.consumer.Append(ctx, f.emit(t, ev)); err != nil {
			t.Fatalf("Append() = %v", err)
		}
		got := f.list(t, ev.Tenant)
		if len(got) != 2 || !equalEvents(got[0], ev) {
			t.Errorf("List() = %+v, want the fixed event first of 2", got)
		}
	})

	t.Run("no tenant", func(t *testing.T) {
		ev := audit.Event{Actor: audit.Actor{Type: "anonymous"}, Action: "auth.signin", Outcome: audit.Denied, Reason: "bad credentials"}
		body := f.emit(t, ev)
		if err := f.consumer.Append(ctx, body); err != nil {
			t.Fatalf("Append() = %v", err)
		}
		got := f.list(t, store.PlatformTenant)
		if len(got) != 1 || got[0].Tenant != store.PlatformTenant || got[0].Action != ev.Action {
			t.Errorf("List(%s) = %+v, want the tenantless event", store.PlatformTenant, got)
		}
	})
}

// TestNoPersonalDataInClear checks that an event's address and user agent
// reach neither the queue nor the database in clear.
func TestNoPersonalDataInClear(t *testing.T) {
	f := newFixture(t, queue.Options{})
	const addr, agent = "203.0.113.77", "MarkerAgent/9.9 (c4f1)"
	ev := sampleEvent()
	ev.Actor.Address, ev.Actor.UserAgent = addr, agent
	body := f.emit(t, ev)
	if !bytes.Contains(body, []byte(ev.Tenant)) {
		t.Fatalf("message body %q does not name the tenant; the check sees nothing", body)
	}
	for _, s := range []string{addr, agent} {
		if bytes.Contains(body, []byte(s)) {
			t.Errorf("message body %q contains %q in clear", body, s)
		}
	}
	if err := f.consumer.Append(context.Background(), body); err != nil {
		t.Fatalf("Append() = %v", err)
	}
	for _, s := range []string{addr, agent} {
		if f.dbContains(t, s) {
			t.Errorf("database files contain %q in clear", s)
		}
	}
}

func TestAppendTampered(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, queue.Options{})
	body := f.emit(t, sampleEvent())
	var env envelope
	if err := json.Unmarshal(body, &env); err != nil {
		t.Fatal(err)
	}
	encode := func(e envelope) []byte {
		b, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	with := func(fn func(e *envelope)) []byte {
		e := env
		e.Sealed = slices.Clone(env.Sealed)
		fn(&e)
		return encode(e)
	}
	flip := func(i int) []byte {
		return with(func(e *envelope) { e.Sealed[i] ^= 0x01 })
	}
	// sealedAt seals ev with key for the envelope's own place, as a forger
	// holding the key could.
	sealedAt := func(b barrier.Barrier, ev audit.Event) []byte {
		plain, err := json.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		sealed, err := b.Seal(context.Background(), barrier.Place{Tenant: env.Tenant, Collection: audit.Collection, ID: env.ID, Field: "event"}, plain)
		if err != nil {
			t.Fatal(err)
		}
		return with(func(e *envelope) { e.Sealed = sealed })
	}
	other, err := barrier.NewAESGCM(testenv.RandomKey(t))
	if err != nil {
		t.Fatal(err)
	}
	inner := sampleEvent()
	inner.ID = env.ID

	tests := []struct {
		name string
		body []byte
	}{
		{"empty", nil},
		{"not json", []byte("not json")},
		{"null", []byte("null")},
		{"flip version", flip(0)},
		{"flip key id", flip(2)},
		{"flip nonce", flip(8)},
		{"flip ciphertext", flip(len(env.Sealed) / 2)},
		{"flip tag", flip(len(env.Sealed) - 1)},
		{"truncated", with(func(e *envelope) { e.Sealed = e.Sealed[:len(e.Sealed)-1] })},
		{"no sealed", with(func(e *envelope) { e.Sealed = nil })},
		{"other tenant", with(func(e *envelope) { e.Tenant = "tenant-b" })},
		{"platform tenant", with(func(e *envelope) { e.Tenant = store.PlatformTenant })},
		{"empty tenant", with(func(e *envelope) { e.Tenant = "" })},
		{"other id", with(func(e *envelope) { e.ID = "other-id" })},
		{"empty id", with(func(e *envelope) { e.ID = "" })},
		{"other key", sealedAt(other, inner)},
		{"inner id differs", sealedAt(f.barrier, func() audit.Event { ev := inner; ev.ID = "other-id"; return ev }())},
		{"inner tenant differs", sealedAt(f.barrier, func() audit.Event { ev := inner; ev.Tenant = "tenant-b"; return ev }())},
		{"inner not json", with(func(e *envelope) {
			sealed, err := f.barrier.Seal(context.Background(), barrier.Place{Tenant: env.Tenant, Collection: audit.Collection, ID: env.ID, Field: "event"}, []byte("not json"))
			if err != nil {
				t.Fatal(err)
			}
			e.Sealed = sealed
		})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := f.consumer.Append(ctx, tt.body); !errors.Is(err, audit.ErrMalformed) {
				t.Errorf("Append(%s) = %v, want ErrMalformed", tt.name, err)
			}
		})
	}
	for _, tenant := range []string{"tenant-a", "tenant-b", store.PlatformTenant} {
		if got := f.list(t, tenant); len(got) != 0 {
			t.Errorf("List(%s) after tampered messages = %+v, want none", tenant, got)
		}
	}
	if err := f.consumer.Append(ctx, body); err != nil {
		t.Errorf("Append(untouched message) = %v, want nil", err)
	}
}

func TestList(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, queue.Options{})
	offsets := []time.Duration{3 * time.Hour, time.Hour, 5 * time.Hour, 0, 2 * time.Hour}
	for i, d := range offsets {
		ev := sampleEvent()
		ev.Time = t0.Add(d)
		ev.Resource.ID = string(rune('a' + i))
		if err := f.consumer.Append(ctx, f.emit(t, ev)); err != nil {
			t.Fatalf("Append(event %d) = %v", i, err)
		}
	}
	other := sampleEvent()
	other.Tenant = "tenant-b"
	if err := f.consumer.Append(ctx, f.emit(t, other)); err != nil {
		t.Fatalf("Append(tenant-b event) = %v", err)
	}

	want := []time.Time{t0, t0.Add(time.Hour), t0.Add(2 * time.Hour), t0.Add(3 * time.Hour), t0.Add(5 * time.Hour)}
	var got []time.Time
	cursor, pages := "", 0
	for {
		evs, next, err := audit.List(ctx, f.backend, f.barrier, "tenant-a", cursor, 2)
		if err != nil {
			t.Fatalf("List(page %d) = %v", pages+1, err)
		}
		pages++
		for _, ev := range evs {
			if ev.Tenant != "tenant-a" {
				t.Errorf("List(tenant-a) returned an event of %s", ev.Tenant)
			}
			got = append(got, ev.Time)
		}
		if next == "" {
			break
		}
		cursor = next
	}
	if !slices.EqualFunc(got, want, time.Time.Equal) || pages != 3 {
		t.Errorf("List(tenant-a) in pages of 2 = %v over %d pages, want %v over 3", got, pages, want)
	}
}

// TestConsumerRun runs the audit role against the broker: events are
// appended, a malformed message is dead-lettered, and Run stops on cancel.
func TestConsumerRun(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, queue.Options{MaxAttempts: 1})
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- f.consumer.Run(runCtx) }()

	const n = 3
	for range n {
		if err := f.emitter.Emit(ctx, sampleEvent()); err != nil {
			t.Fatalf("Emit() = %v", err)
		}
	}
	if err := f.broker.Publish(ctx, queue.TopicAudit, []byte(`{"tenant":"tenant-a","id":"x","sealed":"AAAA"}`)); err != nil {
		t.Fatalf("Publish(malformed) = %v", err)
	}
	if body := f.receive(t, queue.DeadLetter(queue.TopicAudit)); !bytes.Contains(body, []byte(`"id":"x"`)) {
		t.Errorf("dead letter = %q, want the malformed message", body)
	}
	deadline := time.Now().Add(patience)
	for {
		evs, _, err := audit.List(ctx, f.backend, f.barrier, "tenant-a", "", 0)
		if err != nil {
			t.Fatalf("List() = %v", err)
		}
		if len(evs) == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("List() = %d events after %v, want %d", len(evs), patience, n)
		}
		time.Sleep(10 * time.Millisecond)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run() after cancel = %v, want nil", err)
		}
	case <-time.After(patience):
		t.Fatalf("Run() did not return within %v of cancel", patience)
	}
}
