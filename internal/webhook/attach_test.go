package webhook_test

import (
	"context"
	"errors"
	"testing"

	"github.com/idvault/idvault/internal/session"
	"github.com/idvault/idvault/internal/store"
	"github.com/idvault/idvault/internal/webhook"
)

// TestAttachCommitsWithTheChange: the deliveries of an attached event are
// written in the same batch as the change, so a change that fails leaves
// no delivery and one that succeeds leaves exactly one per subscription
// that takes the type; publish hands them over at once, and without it
// (a process that died after the change) their schedule does.
func TestAttachCommitsWithTheChange(t *testing.T) {
	f := newFixture(t, setup{opts: webhook.Options{Policy: loopback}})
	rcv := newReceiver(t, false, f.clock.Now, nil)
	ctx := context.Background()
	created, sec := f.create(t, "acme", rcv.URL(), webhook.EventSessionCreated)
	rcv.setSecret("current", sec)
	other, _ := f.create(t, "acme", rcv.URL(), webhook.EventSessionCompleted)
	v, err := store.NewView(f.env.Backend, f.keys, "acme")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Put(ctx, "things", "taken", nil, map[string]string{}); err != nil {
		t.Fatal(err)
	}
	deliveries := func(sub string) []webhook.Delivery {
		t.Helper()
		page, err := f.svc.Deliveries(ctx, "acme", sub, 0, "")
		if err != nil {
			t.Fatal(err)
		}
		return page.Deliveries
	}

	// The change fails: nothing is recorded, nothing is sent.
	actx, _, err := f.svc.Attach(ctx, "acme", "things", event("taken.session.created", webhook.EventSessionCreated))
	if err != nil {
		t.Fatalf("Attach() = %v", err)
	}
	if _, err := v.Put(actx, "things", "taken", nil, map[string]string{}); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("Put(taken) = %v, want ErrConflict", err)
	}
	if got := deliveries(created.ID); len(got) != 0 {
		t.Fatalf("deliveries after a failed change = %+v, want none", got)
	}

	// The change is made: one delivery, for the subscription that takes
	// the type, pending and handed over by publish.
	actx, publish, err := f.svc.Attach(ctx, "acme", "things", event("new.session.created", webhook.EventSessionCreated))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Put(actx, "things", "new", nil, map[string]string{}); err != nil {
		t.Fatal(err)
	}
	got := deliveries(created.ID)
	if len(got) != 1 || got[0].EventID != "new.session.created" || got[0].Status != webhook.DeliveryPending {
		t.Fatalf("deliveries = %+v, want the one pending delivery of new.session.created", got)
	}
	if d := deliveries(other.ID); len(d) != 0 {
		t.Errorf("a subscription without session.created got %+v", d)
	}
	publish(ctx)
	f.step(t)
	req := rcv.next(t)
	if err := req.verifyErr["current"]; err != nil || req.payload.ID != "new.session.created" || req.payload.Data.SessionID != "sess-new.session.created" {
		t.Fatalf("received %+v (verify: %v), want the signed new.session.created", req.payload, err)
	}
	if d := f.delivery(t, "acme", got[0].ID); d.Status != webhook.DeliveryDelivered {
		t.Errorf("delivery = %+v, want delivered", d)
	}

	// The process dies between the change and publish: the schedule
	// hands the delivery over after Options.Republish.
	actx, _, err = f.svc.Attach(ctx, "acme", "things", event("late.session.created", webhook.EventSessionCreated))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Put(actx, "things", "late", nil, map[string]string{}); err != nil {
		t.Fatal(err)
	}
	f.retry(t, webhook.Options{}.WithDefaults().Republish, 1)
	f.step(t)
	if req := rcv.next(t); req.payload.ID != "late.session.created" {
		t.Fatalf("received %s, want late.session.created", req.payload.ID)
	}

	// An event enqueued before is not written again, and the change it
	// rides with is made.
	f.enqueue(t, "acme", event("dup.session.created", webhook.EventSessionCreated))
	actx, _, err = f.svc.Attach(ctx, "acme", "things", event("dup.session.created", webhook.EventSessionCreated))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Put(actx, "things", "dup", nil, map[string]string{}); err != nil {
		t.Fatalf("Put(dup) with an event enqueued before = %v", err)
	}
	n := 0
	for _, d := range deliveries(created.ID) {
		if d.EventID == "dup.session.created" {
			n++
		}
	}
	if n != 1 {
		t.Errorf("deliveries of dup.session.created = %d, want 1", n)
	}

	// An invalid event is refused before anything is attached.
	bad := event("bad", webhook.EventSessionCompleted)
	bad.Data.Decision = ""
	if _, _, err := f.svc.Attach(ctx, "acme", "things", bad); !errors.Is(err, webhook.ErrInvalid) {
		t.Errorf("Attach(completed without decision) = %v, want ErrInvalid", err)
	}
}

// TestAttachWithoutSubscribers: a tenant without a subscription for the
// type gets no delivery and its change is made as usual.
func TestAttachWithoutSubscribers(t *testing.T) {
	f := newFixture(t, setup{opts: webhook.Options{Policy: loopback}})
	ctx := context.Background()
	f.create(t, "acme", "https://127.0.0.1:8443/hooks", webhook.EventSessionCompleted)
	ev := event("s1.session.expired", webhook.EventSessionExpired)
	ev.Data.Status = session.StatusExpired
	actx, publish, err := f.svc.Attach(ctx, "tenant-b", "things", ev)
	if err != nil {
		t.Fatal(err)
	}
	v, err := store.NewView(f.env.Backend, f.keys, "tenant-b")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Put(actx, "things", "s1", nil, map[string]string{}); err != nil {
		t.Fatal(err)
	}
	publish(ctx)
	if n, err := f.svc.PublishDue(ctx); err != nil || n != 0 {
		t.Errorf("PublishDue() = %d, %v, want nothing due", n, err)
	}
}
