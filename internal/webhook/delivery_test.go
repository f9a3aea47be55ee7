package webhook_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/idvault/idvault/internal/queue"
	"github.com/idvault/idvault/internal/queue/queuetest"
	"github.com/idvault/idvault/internal/queue/sqlitequeue"
	"github.com/idvault/idvault/internal/store"
	"github.com/idvault/idvault/internal/webhook"
)

// TestDeliveryEndToEnd runs the worker against a TLS receiver that checks
// every signature with Verify and fails a third of first attempts: every
// event of every type arrives at least once, signed, with headers that
// match the payload, and every delivery ends delivered.
func TestDeliveryEndToEnd(t *testing.T) {
	rcv := newReceiver(t, true, time.Now, func(n int) int {
		if n%3 == 0 {
			return http.StatusServiceUnavailable
		}
		return http.StatusNoContent
	})
	f := newFixture(t, setup{realTime: true, opts: webhook.Options{Policy: webhook.Policy{
		Allow: loopback.Allow, AnyPort: true}, TLS: rcv.tlsConfig(),
		Backoff: 5 * time.Millisecond, MaxBackoff: 20 * time.Millisecond, PollInterval: 10 * time.Millisecond}})
	sub, sec := f.create(t, "acme", rcv.URL())
	rcv.setSecret("current", sec)
	stop := f.run(t)

	want := map[string]webhook.EventType{}
	var ids []string
	for i := range 5 {
		for _, typ := range webhook.EventTypes {
			id := fmt.Sprintf("evt-%d-%s", i, typ)
			want[id] = typ
			ids = append(ids, f.enqueue(t, "acme", event(id, typ))...)
		}
	}
	answered := map[string]bool{} // event ids answered 2xx
	for len(answered) < len(want) {
		got := rcv.next(t)
		p := got.payload
		if err := got.verifyErr["current"]; err != nil {
			t.Fatalf("receiver: Verify() = %v", err)
		}
		if p.Type != want[p.ID] || p.Tenant != "acme" || p.Data.SessionID != "sess-"+p.ID || !p.Data.Status.Valid() {
			t.Errorf("payload %+v does not match the event enqueued", p)
		}
		if got.header.Get(webhook.HeaderEventID) != p.ID || got.header.Get(webhook.HeaderEventType) != string(p.Type) {
			t.Errorf("headers %v do not match payload %s/%s", got.header, p.ID, p.Type)
		}
		if got.header.Get("Content-Type") != "application/json" || got.header.Get("User-Agent") != webhook.UserAgent {
			t.Errorf("headers %v", got.header)
		}
		if got.n%3 != 0 {
			answered[p.ID] = true
		}
	}
	stop() // settles the attempts in progress

	ctx := context.Background()
	for _, id := range ids {
		d := f.delivery(t, "acme", id)
		last := d.Attempts[len(d.Attempts)-1]
		if d.Status != webhook.DeliveryDelivered || last.StatusCode != http.StatusNoContent || last.Error != "" || last.Duration <= 0 {
			t.Errorf("delivery %s = %+v, want delivered with 204", id, d)
		}
		for _, a := range d.Attempts[:len(d.Attempts)-1] {
			if a.StatusCode != http.StatusServiceUnavailable || a.Error != webhook.KindHTTPStatus {
				t.Errorf("delivery %s: earlier attempt %+v, want 503 http_status", id, a)
			}
		}
	}
	var logged []string
	for page, cursor := (webhook.DeliveryPage{}), ""; ; cursor = page.Next {
		var err error
		if page, err = f.svc.Deliveries(ctx, "acme", sub.ID, 7, cursor); err != nil {
			t.Fatal(err)
		}
		for _, d := range page.Deliveries {
			logged = append(logged, d.ID)
		}
		if page.Next == "" {
			break
		}
	}
	slices.Sort(logged)
	sorted := slices.Sorted(slices.Values(ids))
	if !slices.Equal(logged, sorted) {
		t.Errorf("delivery log lists %d deliveries, want the %d enqueued", len(logged), len(ids))
	}
}

// TestRetryBackoff drives one delivery through 500s and a timeout with the
// fake clock: each failure schedules the next attempt within the jittered
// exponential bound, nothing is attempted before it is due, and a 2xx ends
// it.
func TestRetryBackoff(t *testing.T) {
	f := newFixture(t, setup{opts: webhook.Options{Policy: loopback, Timeout: 300 * time.Millisecond,
		Backoff: time.Minute, MaxBackoff: 3 * time.Minute}})
	rcv := newReceiver(t, false, f.clock.Now, func(n int) int {
		switch n {
		case 1, 2, 4:
			return http.StatusInternalServerError
		case 3:
			return -1 // hang until the client gives up
		}
		return http.StatusOK
	})
	_, sec := f.create(t, "acme", rcv.URL())
	rcv.setSecret("s", sec)
	ids := f.enqueue(t, "acme", event("e1", webhook.EventSessionCompleted))
	f.step(t)

	bounds := []time.Duration{time.Minute, 2 * time.Minute, 3 * time.Minute, 3 * time.Minute}
	for i, bound := range bounds {
		d := f.delivery(t, "acme", ids[0])
		now := f.clock.Now()
		if d.Status != webhook.DeliveryPending || d.AttemptCount != i+1 || d.NextAttemptAt == nil {
			t.Fatalf("after attempt %d: %+v", i+1, d)
		}
		wait := d.NextAttemptAt.Sub(now)
		if wait < bound/2 || wait > bound {
			t.Errorf("after attempt %d: next in %v, want within [%v, %v]", i+1, wait, bound/2, bound)
		}
		f.retry(t, wait-time.Second, 0) // not yet due: nothing published
		f.retry(t, time.Second, 1)
		f.step(t)
	}
	d := f.delivery(t, "acme", ids[0])
	kinds := make([]string, len(d.Attempts))
	for i, a := range d.Attempts {
		kinds[i] = fmt.Sprintf("%d/%s", a.StatusCode, a.Error)
	}
	want := []string{"500/http_status", "500/http_status", "0/timeout", "500/http_status", "200/"}
	if d.Status != webhook.DeliveryDelivered || !slices.Equal(kinds, want) {
		t.Errorf("attempts = %v, status %s; want %v, delivered", kinds, d.Status, want)
	}
	if d.NextAttemptAt != nil {
		t.Errorf("delivered delivery still has a next attempt at %v", d.NextAttemptAt)
	}
	if n, err := f.svc.PublishDue(context.Background()); n != 0 || err != nil {
		t.Errorf("PublishDue() after delivery = %d, %v; want nothing left scheduled", n, err)
	}
	for i, got := range rcv.all() {
		if got.verifyErr["s"] != nil {
			t.Errorf("request %d: Verify() = %v", i+1, got.verifyErr["s"])
		}
	}
}

// TestGivesUpAfterRetryWindow fails every attempt for a simulated day: the
// delivery ends failed within the window, is recorded in the audit log,
// and leaves nothing scheduled.
func TestGivesUpAfterRetryWindow(t *testing.T) {
	rcv := newReceiver(t, false, nil, func(int) int { return http.StatusServiceUnavailable })
	f := newFixture(t, setup{opts: webhook.Options{Policy: loopback}})
	ids := f.enqueue(t, "acme", event("e1", webhook.EventSessionCreated))
	if len(ids) != 0 {
		t.Fatalf("Enqueue() without subscriptions = %v, want none", ids)
	}
	sub, _ := f.create(t, "acme", rcv.URL())
	ids = f.enqueue(t, "acme", event("e2", webhook.EventSessionCreated))
	f.step(t)
	for range 200 {
		if d := f.delivery(t, "acme", ids[0]); d.Status != webhook.DeliveryPending {
			break
		}
		f.retry(t, time.Hour, 1)
		f.step(t)
	}
	d := f.delivery(t, "acme", ids[0])
	if d.Status != webhook.DeliveryFailed {
		t.Fatalf("after a day of 503s: %+v, want failed", d)
	}
	first, last := d.Attempts[0].At, d.Attempts[len(d.Attempts)-1].At
	if last.Sub(d.CreatedAt) > 24*time.Hour || last.Sub(first) < 23*time.Hour {
		t.Errorf("attempts from %v to %v; want them to span the 24h window and stay inside it", first, last)
	}
	if d.AttemptCount < 20 || d.AttemptCount != len(d.Attempts) || d.NextAttemptAt != nil {
		t.Errorf("AttemptCount = %d (%d logged), next %v; want about 30, all logged, none next", d.AttemptCount, len(d.Attempts), d.NextAttemptAt)
	}
	f.retry(t, 48*time.Hour, 0)
	var found bool
	for _, ev := range f.auditEvents(t) {
		if ev.Action == "webhook.delivery_failed" && ev.Resource.ID == ids[0] && ev.Tenant == "acme" &&
			ev.Details["subscription"] == sub.ID && ev.Details["lastStatusCode"] == "503" && ev.Actor.Type == "system" {
			found = true
		}
	}
	if !found {
		t.Error("no webhook.delivery_failed audit event for the delivery")
	}
}

// TestRedirectNotFollowed checks that a 3xx is recorded as a failed
// attempt and its target never sees a request.
func TestRedirectNotFollowed(t *testing.T) {
	inner := newReceiver(t, false, nil, nil)
	outer := newReceiver(t, false, nil, nil, func(http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, inner.URL(), http.StatusTemporaryRedirect)
		})
	})
	f := newFixture(t, setup{opts: webhook.Options{Policy: loopback}})
	f.create(t, "acme", outer.URL())
	ids := f.enqueue(t, "acme", event("e1", webhook.EventSessionCreated))
	f.step(t)
	d := f.delivery(t, "acme", ids[0])
	if a := d.Attempts[0]; a.StatusCode != http.StatusTemporaryRedirect || a.Error != webhook.KindRedirect || d.Status != webhook.DeliveryPending {
		t.Errorf("attempt = %+v, status %s; want 307 redirect, pending", a, d.Status)
	}
	if inner.count() != 0 {
		t.Errorf("redirect target got %d requests, want 0", inner.count())
	}
}

// TestDNSRebinding attacks with a name that resolves to a public address
// when the subscription is made and to loopback when it is delivered:
// the connection is refused at dial time, the receiver on loopback sees
// nothing, and the refusal is audited once.
func TestDNSRebinding(t *testing.T) {
	rcv := newReceiver(t, false, nil, nil)
	rebind := resolverOf(addrs("93.184.215.14"), addrs("127.0.0.1"))
	f := newFixture(t, setup{resolver: rebind, opts: webhook.Options{Policy: webhook.Policy{AllowHTTP: true, AnyPort: true}}})
	url := "http://rebind.example:" + rcv.port() + "/hook"
	f.create(t, "acme", url)
	ids := f.enqueue(t, "acme", event("e1", webhook.EventSessionCreated))
	f.step(t)
	f.retry(t, time.Minute, 1)
	f.step(t)
	d := f.delivery(t, "acme", ids[0])
	for _, a := range d.Attempts {
		if a.Error != webhook.KindForbiddenAddress || a.StatusCode != 0 {
			t.Errorf("attempt = %+v, want forbidden_address", a)
		}
	}
	if len(d.Attempts) != 2 || d.Status != webhook.DeliveryPending {
		t.Errorf("delivery = %+v, want 2 refused attempts, still pending", d)
	}
	if rcv.count() != 0 {
		t.Errorf("loopback receiver got %d requests through DNS rebinding", rcv.count())
	}
	blocked := 0
	for _, ev := range f.auditEvents(t) {
		if ev.Action == "webhook.delivery_blocked" && ev.Resource.ID == ids[0] {
			blocked++
		}
	}
	if blocked != 1 {
		t.Errorf("webhook.delivery_blocked events = %d, want 1 for consecutive refusals", blocked)
	}
}

// TestLoopbackNeedsAllowList checks that a subscription to a loopback
// receiver, made while the allow-list permitted it, is refused at delivery
// by a worker whose policy no longer does, and reached by one whose does.
func TestLoopbackNeedsAllowList(t *testing.T) {
	rcv := newReceiver(t, false, nil, nil)
	allowed := newFixture(t, setup{opts: webhook.Options{Policy: loopback}})
	allowed.create(t, "acme", rcv.URL())

	strict, err := webhook.New(allowed.deps, webhook.Options{Policy: webhook.Policy{AllowHTTP: true, AnyPort: true}})
	if err != nil {
		t.Fatal(err)
	}
	defer strict.CloseIdleConnections()
	ids := allowed.enqueue(t, "acme", event("e1", webhook.EventSessionCreated))
	ctx := context.Background()
	d, err := allowed.env.Broker.Receive(ctx, webhook.Topic)
	if err != nil {
		t.Fatal(err)
	}
	if err := strict.Handle(ctx, d.Body()); err != nil {
		t.Fatal(err)
	}
	if err := d.Ack(ctx); err != nil {
		t.Fatal(err)
	}
	if got := allowed.delivery(t, "acme", ids[0]); got.Attempts[0].Error != webhook.KindRefusedURL || rcv.count() != 0 {
		t.Errorf("strict policy: attempt %+v, receiver %d requests; want refused_url, 0", got.Attempts[0], rcv.count())
	}
	allowed.retry(t, time.Minute, 1)
	allowed.step(t)
	if got := allowed.delivery(t, "acme", ids[0]); got.Status != webhook.DeliveryDelivered || rcv.count() != 1 {
		t.Errorf("allow-listed: %+v, receiver %d requests; want delivered, 1", got, rcv.count())
	}
}

// TestEnqueueIdempotent checks that enqueuing the same event again adds no
// delivery and sends nothing twice, and that a duplicate message is
// dropped.
func TestEnqueueIdempotent(t *testing.T) {
	rcv := newReceiver(t, false, nil, nil)
	f := newFixture(t, setup{opts: webhook.Options{Policy: loopback}})
	sub, _ := f.create(t, "acme", rcv.URL())
	ev := event("e1", webhook.EventSessionCreated)
	first := f.enqueue(t, "acme", ev)
	again := f.enqueue(t, "acme", ev)
	if !slices.Equal(first, again) || len(first) != 1 {
		t.Fatalf("Enqueue twice = %v, %v; want the same one delivery", first, again)
	}
	f.step(t) // delivers
	f.step(t) // the second message: already delivered, dropped
	if ids := f.enqueue(t, "acme", ev); !slices.Equal(ids, first) {
		t.Fatalf("Enqueue after delivery = %v, want %v", ids, first)
	}
	if d := f.delivery(t, "acme", first[0]); d.AttemptCount != 1 || rcv.count() != 1 {
		t.Errorf("after enqueuing 3 times: %d attempts, %d requests; want 1, 1", d.AttemptCount, rcv.count())
	}
	if page, _ := f.svc.Deliveries(context.Background(), "acme", sub.ID, 0, ""); len(page.Deliveries) != 1 {
		t.Errorf("delivery log has %d entries, want 1", len(page.Deliveries))
	}
}

// TestEventFiltering checks that only active subscriptions of the event's
// type get a delivery, and that a deactivated or deleted subscription's
// pending delivery ends failed without a request.
func TestEventFiltering(t *testing.T) {
	rcv := newReceiver(t, false, nil, nil)
	f := newFixture(t, setup{opts: webhook.Options{Policy: loopback}})
	ctx := context.Background()
	created, _ := f.create(t, "acme", rcv.URL(), webhook.EventSessionCreated)
	completed, _ := f.create(t, "acme", rcv.URL(), webhook.EventSessionCompleted)
	inactive, _ := f.create(t, "acme", rcv.URL())
	off := false
	if _, err := f.svc.Update(ctx, "acme", inactive.ID, webhook.Changes{Active: &off}); err != nil {
		t.Fatal(err)
	}
	ids := f.enqueue(t, "acme", event("c1", webhook.EventSessionCompleted))
	if len(ids) != 1 || f.delivery(t, "acme", ids[0]).Subscription != completed.ID {
		t.Fatalf("Enqueue(completed) = %v, want one delivery to %s", ids, completed.ID)
	}

	toDeactivate := f.enqueue(t, "acme", event("c2", webhook.EventSessionCreated))
	if _, err := f.svc.Update(ctx, "acme", created.ID, webhook.Changes{Active: &off}); err != nil {
		t.Fatal(err)
	}
	toDelete := f.enqueue(t, "acme", event("c3", webhook.EventSessionCompleted))
	if err := f.svc.Delete(ctx, "acme", completed.ID); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		f.step(t)
	}
	if d := f.delivery(t, "acme", ids[0]); d.Status != webhook.DeliveryFailed || d.Attempts[0].Error != webhook.KindSubscriptionDeleted {
		t.Errorf("delivery of a deleted subscription = %+v, want failed subscription_deleted", d)
	}
	if d := f.delivery(t, "acme", toDelete[0]); d.Status != webhook.DeliveryFailed {
		t.Errorf("delivery of a deleted subscription = %+v, want failed", d)
	}
	if d := f.delivery(t, "acme", toDeactivate[0]); d.Status != webhook.DeliveryFailed || d.Attempts[0].Error != webhook.KindSubscriptionInactive {
		t.Errorf("delivery of a deactivated subscription = %+v, want failed subscription_inactive", d)
	}
	if rcv.count() != 0 {
		t.Errorf("receiver got %d requests, want 0", rcv.count())
	}
}

// TestEventValidation checks that Enqueue refuses events that are
// malformed or carry anything but ids and states (personal data).
func TestEventValidation(t *testing.T) {
	f := newFixture(t, setup{opts: webhook.Options{Policy: loopback}})
	f.create(t, "acme", "https://127.0.0.1/x")
	tests := []struct {
		name string
		edit func(*webhook.Event)
	}{
		{"unknown type", func(e *webhook.Event) { e.Type = "session.deleted" }},
		{"email as session id", func(e *webhook.Event) { e.Data.SessionID = "jane.doe@example.com" }},
		{"name as session id", func(e *webhook.Event) { e.Data.SessionID = "Jane Doe" }},
		{"no session id", func(e *webhook.Event) { e.Data.SessionID = "" }},
		{"unknown status", func(e *webhook.Event) { e.Data.Status = "weird" }},
		{"decision on created", func(e *webhook.Event) { e.Data.Decision = webhook.DecisionApproved }},
		{"free text error code", func(e *webhook.Event) {
			e.Type, e.Data.ErrorCode = webhook.EventSessionError, "Document of Jane Doe unreadable"
		}},
		{"error code on created", func(e *webhook.Event) { e.Data.ErrorCode = "x" }},
		{"bad event id", func(e *webhook.Event) { e.ID = "has space" }},
		{"bad workflow id", func(e *webhook.Event) { e.Data.WorkflowID = "a/b" }},
	}
	for _, tt := range tests {
		ev := event("e1", webhook.EventSessionCreated)
		tt.edit(&ev)
		if _, err := f.svc.Enqueue(context.Background(), "acme", ev); !errors.Is(err, webhook.ErrInvalid) {
			t.Errorf("%s: Enqueue() = %v, want ErrInvalid", tt.name, err)
		}
	}
	ev := event("e1", webhook.EventSessionCompleted)
	ev.Data.Decision = ""
	if _, err := f.svc.Enqueue(context.Background(), "acme", ev); !errors.Is(err, webhook.ErrInvalid) {
		t.Errorf("completed without decision: Enqueue() = %v, want ErrInvalid", err)
	}
	for _, typ := range webhook.EventTypes {
		if _, err := f.svc.Enqueue(context.Background(), "acme", event("ok-"+string(typ), typ)); err != nil {
			t.Errorf("valid %s: Enqueue() = %v", typ, err)
		}
	}
	noID := event("", webhook.EventSessionCreated)
	a, err1 := f.svc.Enqueue(context.Background(), "acme", noID)
	b, err2 := f.svc.Enqueue(context.Background(), "acme", noID)
	if err1 != nil || err2 != nil || slices.Equal(a, b) {
		t.Errorf("events without id: %v %v, %v %v; want two distinct deliveries", a, err1, b, err2)
	}
}

// TestManualRedelivery redelivers a delivered and a failed delivery: the
// receiver gets the same event id again with a fresh, valid signature.
func TestManualRedelivery(t *testing.T) {
	fail := true
	var mu sync.Mutex
	f := newFixture(t, setup{opts: webhook.Options{Policy: loopback, RetryWindow: time.Hour}})
	rcv := newReceiver(t, false, f.clock.Now, func(int) int {
		mu.Lock()
		defer mu.Unlock()
		if fail {
			return http.StatusBadGateway
		}
		return http.StatusOK
	})
	_, sec := f.create(t, "acme", rcv.URL())
	rcv.setSecret("s", sec)
	ctx := context.Background()

	ids := f.enqueue(t, "acme", event("e1", webhook.EventSessionCompleted))
	f.step(t)
	for f.delivery(t, "acme", ids[0]).Status == webhook.DeliveryPending {
		f.retry(t, time.Hour, 1)
		f.step(t)
	}
	failed := f.delivery(t, "acme", ids[0])
	if failed.Status != webhook.DeliveryFailed {
		t.Fatalf("delivery = %+v, want failed", failed)
	}
	mu.Lock()
	fail = false
	mu.Unlock()
	f.clock.Advance(time.Hour)
	d, err := f.svc.Redeliver(ctx, "acme", ids[0])
	if err != nil || d.Status != webhook.DeliveryPending || d.Redeliveries != 1 {
		t.Fatalf("Redeliver(failed) = %+v, %v", d, err)
	}
	f.step(t)
	if d := f.delivery(t, "acme", ids[0]); d.Status != webhook.DeliveryDelivered || d.AttemptCount != failed.AttemptCount+1 {
		t.Errorf("after redelivery: %+v, want delivered with one more attempt", d)
	}

	f.clock.Advance(time.Minute)
	if _, err := f.svc.Redeliver(ctx, "acme", ids[0]); err != nil {
		t.Fatal(err)
	}
	f.step(t)
	d = f.delivery(t, "acme", ids[0])
	if d.Status != webhook.DeliveryDelivered || d.Redeliveries != 2 {
		t.Errorf("after second redelivery: %+v", d)
	}
	all := rcv.all()
	a, b := all[len(all)-2], all[len(all)-1]
	if a.payload.ID != "e1" || b.payload.ID != "e1" || string(a.body) != string(b.body) {
		t.Errorf("redeliveries carried %s and %s, want the same event e1 and body", a.payload.ID, b.payload.ID)
	}
	if a.header.Get(webhook.HeaderSignature) == b.header.Get(webhook.HeaderSignature) {
		t.Error("redelivery reused the old signature; want a fresh timestamp")
	}
	for _, r := range []received{a, b} {
		if r.verifyErr["s"] != nil {
			t.Errorf("redelivered request: Verify() = %v", r.verifyErr["s"])
		}
	}
}

// TestWorkerDiesBeforeAck takes a delivery message and never acks it (the
// worker died): once the queue's visibility timeout runs out, a live
// worker gets it again and delivers it.
func TestWorkerDiesBeforeAck(t *testing.T) {
	rcv := newReceiver(t, false, time.Now, nil)
	f := newFixture(t, setup{realTime: true, queue: queue.Options{Visibility: 300 * time.Millisecond},
		opts: webhook.Options{Policy: loopback, PollInterval: time.Hour}})
	_, sec := f.create(t, "acme", rcv.URL())
	rcv.setSecret("s", sec)
	ids := f.enqueue(t, "acme", event("e1", webhook.EventSessionCreated))
	ctx := context.Background()
	dead, err := f.env.Broker.Receive(ctx, webhook.Topic)
	if err != nil {
		t.Fatal(err)
	}
	stop := f.run(t)
	got := rcv.next(t)
	stop() // settles the attempt in progress
	if got.payload.ID != "e1" || got.verifyErr["s"] != nil {
		t.Errorf("redelivered request: %+v", got)
	}
	if err := dead.Ack(ctx); !errors.Is(err, queue.ErrLeaseLost) {
		t.Errorf("dead worker's Ack() = %v, want ErrLeaseLost (the message went to another worker)", err)
	}
	if d := f.delivery(t, "acme", ids[0]); d.Status != webhook.DeliveryDelivered || d.AttemptCount != 1 {
		t.Errorf("delivery = %+v, want delivered", d)
	}
}

// TestLostPublishRecovered enqueues while the broker is down: Enqueue
// still succeeds (the delivery is durable), and the schedule publishes it
// once the broker is back.
func TestLostPublishRecovered(t *testing.T) {
	rcv := newReceiver(t, false, nil, nil)
	f := newFixture(t, setup{opts: webhook.Options{Policy: loopback}})
	f.create(t, "acme", rcv.URL())
	ctx := context.Background()
	down, err := sqlitequeue.New(ctx, f.env.DB, queue.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := down.Close(); err != nil {
		t.Fatal(err)
	}
	deps := f.deps
	deps.Broker = down
	broken, err := webhook.New(deps, f.opts)
	if err != nil {
		t.Fatal(err)
	}
	ids, err := broken.Enqueue(ctx, "acme", event("e1", webhook.EventSessionCreated))
	if err != nil || len(ids) != 1 {
		t.Fatalf("Enqueue() with the broker down = %v, %v; want the delivery recorded", ids, err)
	}
	f.retry(t, time.Minute-time.Second, 0)
	f.retry(t, time.Second, 1)
	f.step(t)
	if d := f.delivery(t, "acme", ids[0]); d.Status != webhook.DeliveryDelivered || rcv.count() != 1 {
		t.Errorf("delivery = %+v, receiver %d; want delivered once", d, rcv.count())
	}
}

// TestConcurrentHandleSendsOnce hands the same delivery to two workers at
// once: the second finds it claimed and sends nothing.
func TestConcurrentHandleSendsOnce(t *testing.T) {
	release := make(chan struct{})
	arrived := make(chan struct{})
	rcv := newReceiver(t, false, nil, nil, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			close(arrived) // a second request would panic here
			<-release
			next.ServeHTTP(w, r)
		})
	})
	f := newFixture(t, setup{opts: webhook.Options{Policy: loopback}})
	f.create(t, "acme", rcv.URL())
	ids := f.enqueue(t, "acme", event("e1", webhook.EventSessionCreated))
	ctx := context.Background()
	d, err := f.env.Broker.Receive(ctx, webhook.Topic)
	if err != nil {
		t.Fatal(err)
	}
	first := make(chan error, 1)
	go func() { first <- f.svc.Handle(ctx, d.Body()) }()
	<-arrived
	if err := f.svc.Handle(ctx, d.Body()); err != nil {
		t.Fatalf("second Handle() = %v", err)
	}
	close(release)
	if err := <-first; err != nil {
		t.Fatalf("first Handle() = %v", err)
	}
	if err := d.Ack(ctx); err != nil {
		t.Fatal(err)
	}
	if got := f.delivery(t, "acme", ids[0]); got.AttemptCount != 1 || rcv.count() != 1 || got.Status != webhook.DeliveryDelivered {
		t.Errorf("two workers at once: %+v, receiver %d; want one attempt, one request", got, rcv.count())
	}
}

// TestPruneDeliveries checks that the retention job removes settled
// deliveries older than the cutoff and keeps pending and newer ones.
func TestPruneDeliveries(t *testing.T) {
	ok := newReceiver(t, false, nil, nil)
	down := newReceiver(t, false, nil, func(int) int { return http.StatusInternalServerError })
	f := newFixture(t, setup{opts: webhook.Options{Policy: loopback}})
	f.create(t, "acme", ok.URL())
	f.create(t, "acme", down.URL())
	old := f.enqueue(t, "acme", event("old", webhook.EventSessionCreated))
	f.step(t)
	f.step(t)
	f.clock.Advance(time.Hour)
	cutoff := f.clock.Now()
	recent := f.enqueue(t, "acme", event("recent", webhook.EventSessionCreated))
	f.step(t)
	f.step(t)
	n, err := f.svc.PruneDeliveries(context.Background(), "acme", cutoff)
	if err != nil || n != 1 {
		t.Fatalf("PruneDeliveries() = %d, %v; want 1 (the old delivered one)", n, err)
	}
	remaining := 0
	for _, id := range append(old, recent...) {
		if _, err := f.svc.Delivery(context.Background(), "acme", id); err == nil {
			remaining++
		}
	}
	if remaining != 3 {
		t.Errorf("%d deliveries remain, want 3 (old pending, both recent)", remaining)
	}
}

// TestClaimExpiresAfterWorkerDeath hangs the first worker inside its
// attempt (as if it died holding the claim): once the claim runs out, the
// schedule publishes the delivery again and a second worker delivers it;
// the first worker's late outcome is dropped, not recorded over it.
func TestClaimExpiresAfterWorkerDeath(t *testing.T) {
	release := make(chan struct{})
	first := make(chan struct{})
	var calls sync.Map
	rcv := newReceiver(t, false, nil, nil, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if _, again := calls.LoadOrStore("first", true); !again {
				close(first)
				<-release
				w.WriteHeader(http.StatusInternalServerError)
				return
			}
			next.ServeHTTP(w, r)
		})
	})
	f := newFixture(t, setup{opts: webhook.Options{Policy: loopback}})
	f.create(t, "acme", rcv.URL())
	ids := f.enqueue(t, "acme", event("e1", webhook.EventSessionCreated))
	ctx := context.Background()
	d, err := f.env.Broker.Receive(ctx, webhook.Topic)
	if err != nil {
		t.Fatal(err)
	}
	hung := make(chan error, 1)
	go func() { hung <- f.svc.Handle(ctx, d.Body()) }()
	<-first

	f.retry(t, 14*time.Second, 0) // the claim (Timeout 10s + 5s) still holds
	f.retry(t, time.Second, 1)
	f.step(t)
	if got := f.delivery(t, "acme", ids[0]); got.Status != webhook.DeliveryDelivered || got.AttemptCount != 1 {
		t.Fatalf("after takeover: %+v, want delivered by the second worker", got)
	}
	close(release)
	if err := <-hung; err != nil {
		t.Fatalf("hung worker's Handle() = %v", err)
	}
	if got := f.delivery(t, "acme", ids[0]); got.Status != webhook.DeliveryDelivered || got.AttemptCount != 1 || got.Attempts[0].StatusCode != http.StatusOK {
		t.Errorf("after the hung worker returned: %+v, want its 500 dropped", got)
	}
	if rcv.count() != 1 {
		t.Errorf("receiver's own handler ran %d times, want 1 (the takeover)", rcv.count())
	}
	if !strings.Contains(f.log.String(), "claim lost") {
		t.Error("the dropped outcome was not logged")
	}
}

// TestScheduleRecordRemovedByHand checks that a delivery whose schedule
// record was deleted outside idvault is still attempted and settled.
func TestScheduleRecordRemovedByHand(t *testing.T) {
	rcv := newReceiver(t, false, nil, nil)
	f := newFixture(t, setup{opts: webhook.Options{Policy: loopback}})
	f.create(t, "acme", rcv.URL())
	ids := f.enqueue(t, "acme", event("e1", webhook.EventSessionCreated))
	ctx := context.Background()
	page, err := f.env.Backend.Query(ctx, store.Query{Collection: webhook.CollSchedule, Tenant: store.PlatformTenant})
	if err != nil || len(page.Records) != 1 {
		t.Fatalf("schedule records = %v, %v; want 1", page.Records, err)
	}
	if err := f.env.Backend.Delete(ctx, webhook.CollSchedule, store.PlatformTenant, page.Records[0].ID, 0); err != nil {
		t.Fatal(err)
	}
	f.step(t)
	if d := f.delivery(t, "acme", ids[0]); d.Status != webhook.DeliveryDelivered || rcv.count() != 1 {
		t.Errorf("delivery = %+v, receiver %d; want delivered once", d, rcv.count())
	}
}

// TestHandOverInProcess: while the worker runs in this process, a delivery
// the process stores goes to one of its idle workers without a queue
// message, and is delivered; the worker claims it from the record it was
// handed, without reading it back. With the worker stopped it goes to the
// queue again.
func TestHandOverInProcess(t *testing.T) {
	rcv := newReceiver(t, false, time.Now, nil)
	f := newFixture(t, setup{realTime: true, opts: webhook.Options{Policy: loopback, PollInterval: time.Hour}})
	counted := &queuetest.Counting{Broker: f.env.Broker}
	reads := &getCounter{Backend: f.env.Backend, collection: webhook.CollDeliveries}
	deps := f.deps
	deps.Broker = counted
	deps.Backend = reads
	svc, err := webhook.New(deps, f.opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(svc.CloseIdleConnections)
	f.svc = svc
	_, sec := f.create(t, "acme", rcv.URL())
	rcv.setSecret("s", sec)
	stop := f.run(t)
	const warm, measured = 3, 10
	var ids []string
	for i := range warm + measured {
		if i == warm {
			counted.Reset()
			reads.gets.Store(0)
		}
		ids = append(ids, f.enqueue(t, "acme", event(fmt.Sprintf("e%d", i), webhook.EventSessionCreated))...)
		if got := rcv.next(t); got.payload.ID != fmt.Sprintf("e%d", i) || got.verifyErr["s"] != nil {
			t.Fatalf("received %+v, want e%d signed", got, i)
		}
	}
	if n := counted.Published(); n != 0 {
		t.Errorf("queue messages for %d deliveries handed to idle workers = %d, want 0", measured, n)
	}
	stop() // settles the attempts in progress
	if n := reads.gets.Load(); n != 0 {
		t.Errorf("delivery reads for %d deliveries handed over = %d, want 0", measured, n)
	}
	for _, id := range ids {
		if d := f.delivery(t, "acme", id); d.Status != webhook.DeliveryDelivered || d.AttemptCount != 1 {
			t.Errorf("delivery %s = %+v, want delivered at the first attempt", id, d)
		}
	}

	ids = f.enqueue(t, "acme", event("after-stop", webhook.EventSessionCreated))
	if n := counted.Published(); n != 1 {
		t.Fatalf("queue messages with the worker stopped = %d, want 1", n)
	}
	f.step(t)
	if d := f.delivery(t, "acme", ids[0]); d.Status != webhook.DeliveryDelivered {
		t.Errorf("delivery after the stop = %+v, want delivered from the queue", d)
	}
}

// getCounter counts the reads of one collection's records.
type getCounter struct {
	store.Backend
	collection string
	gets       atomic.Int64
}

func (b *getCounter) Get(ctx context.Context, collection, tenant, id string) (store.Record, error) {
	if collection == b.collection {
		b.gets.Add(1)
	}
	return b.Backend.Get(ctx, collection, tenant, id)
}

// queryCounter counts the queries of the subscriptions collection.
type queryCounter struct {
	store.Backend
	queries atomic.Int64
}

func (b *queryCounter) Query(ctx context.Context, q store.Query) (store.Page, error) {
	if q.Collection == webhook.CollSubscriptions {
		b.queries.Add(1)
	}
	return b.Backend.Query(ctx, q)
}

// TestSubscriptionsKept: a service keeps a tenant's subscriptions while
// their stamp stays, so enqueuing reads them once; a change made through
// another service (another process) moves the stamp, and the next event
// follows it: a new subscription gets it, a deactivated or deleted one
// does not.
func TestSubscriptionsKept(t *testing.T) {
	f := newFixture(t, setup{opts: webhook.Options{Policy: loopback}})
	counted := &queryCounter{Backend: f.env.Backend}
	deps := f.deps
	deps.Backend = counted
	svc, err := webhook.New(deps, f.opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(svc.CloseIdleConnections)
	ctx := context.Background()
	enqueue := func(id string) int {
		t.Helper()
		ids, err := svc.Enqueue(ctx, "acme", event(id, webhook.EventSessionCreated))
		if err != nil {
			t.Fatal(err)
		}
		return len(ids)
	}
	first, _ := f.create(t, "acme", "https://127.0.0.1:8443/a") // f.svc: another process
	if n := enqueue("e1"); n != 1 {
		t.Fatalf("deliveries of e1 = %d, want 1", n)
	}
	for _, id := range []string{"e2", "e3", "e4"} {
		if n := enqueue(id); n != 1 {
			t.Fatalf("deliveries of %s = %d, want 1", id, n)
		}
	}
	if q := counted.queries.Load(); q != 1 {
		t.Errorf("subscription queries for 4 events without a change = %d, want 1", q)
	}
	second, _ := f.create(t, "acme", "https://127.0.0.1:8443/b")
	if n := enqueue("e5"); n != 2 {
		t.Fatalf("deliveries after another process subscribed = %d, want 2", n)
	}
	inactive := false
	if _, err := f.svc.Update(ctx, "acme", first.ID, webhook.Changes{Active: &inactive}); err != nil {
		t.Fatal(err)
	}
	if n := enqueue("e6"); n != 1 {
		t.Fatalf("deliveries after another process deactivated one = %d, want 1", n)
	}
	if err := f.svc.Delete(ctx, "acme", second.ID); err != nil {
		t.Fatal(err)
	}
	if n := enqueue("e7"); n != 0 {
		t.Fatalf("deliveries after another process deleted the other = %d, want 0", n)
	}
}
