package scheduler_test

import (
	"context"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/idvault/idvault/internal/keyring"
	"github.com/idvault/idvault/internal/scheduler"
	"github.com/idvault/idvault/internal/session"
	"github.com/idvault/idvault/internal/testenv"
	"github.com/idvault/idvault/internal/webhook"
)

// TestExpireWebhook: each session the scheduler expires yields one
// session.expired delivery for the tenant's subscriptions, committed with
// the expiry and handed to the webhook worker; sessions it leaves alone
// yield none, and a second pass adds none.
func TestExpireWebhook(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	clock := func() time.Time { return now }
	root, err := keyring.NewRootKey("root", testenv.RandomKey(t))
	if err != nil {
		t.Fatal(err)
	}
	keys, err := keyring.New(ctx, f.backend, []keyring.KEK{root}, f.log, clock)
	if err != nil {
		t.Fatal(err)
	}
	hooks, err := webhook.New(webhook.Deps{Backend: f.backend, Barrier: keys, Secrets: keys, Broker: f.broker, Log: f.log, Now: clock},
		webhook.Options{Policy: webhook.Policy{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, AnyPort: true}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(hooks.CloseIdleConnections)
	deps := f.deps
	deps.Now, deps.Webhooks = clock, hooks
	sch := scheduler.New(deps)

	a, b := f.tenant(t, "Acme"), f.tenant(t, "Globex")
	expiredOnly, _, err := hooks.Create(ctx, a, webhook.Params{URL: "https://127.0.0.1:9/hooks", EventTypes: []webhook.EventType{webhook.EventSessionExpired}})
	if err != nil {
		t.Fatal(err)
	}
	createdOnly, _, err := hooks.Create(ctx, a, webhook.Params{URL: "https://127.0.0.1:9/other", EventTypes: []webhook.EventType{webhook.EventSessionCreated}})
	if err != nil {
		t.Fatal(err)
	}
	for _, sp := range []spec{
		{id: "pending-past", status: session.StatusPending, expires: -time.Minute},
		{id: "in-progress-past", status: session.StatusInProgress, expires: -time.Hour},
		{id: "pending-future", status: session.StatusPending, expires: time.Minute},
		{id: "review-past", status: session.StatusReview, expires: -time.Hour},
	} {
		f.create(t, a, sp)
	}
	f.create(t, b, spec{id: "b-past", status: session.StatusPending, expires: -time.Minute})

	for range 2 {
		if _, err := sch.RunOnce(ctx); err != nil {
			t.Fatalf("RunOnce() = %v", err)
		}
	}
	page, err := hooks.Deliveries(ctx, a, expiredOnly.ID, 0, "")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, d := range page.Deliveries {
		if d.EventType != webhook.EventSessionExpired || d.Status != webhook.DeliveryPending {
			t.Errorf("delivery %+v, want a pending session.expired", d)
		}
		got = append(got, d.EventID)
	}
	slices.Sort(got)
	if want := []string{"in-progress-past.session.expired", "pending-past.session.expired"}; !slices.Equal(got, want) {
		t.Errorf("session.expired deliveries = %v, want %v", got, want)
	}
	if page, err := hooks.Deliveries(ctx, a, createdOnly.ID, 0, ""); err != nil || len(page.Deliveries) != 0 {
		t.Errorf("deliveries of the session.created subscription = %+v, %v, want none", page.Deliveries, err)
	}
	if n := f.queued(t, webhook.Topic); n != 2 {
		t.Errorf("webhook messages = %d, want 2 (one per expired session of a subscribed tenant)", n)
	}
}
