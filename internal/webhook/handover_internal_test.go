package webhook

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/idvault/idvault/internal/keyring"
	"github.com/idvault/idvault/internal/queue"
	"github.com/idvault/idvault/internal/testenv"
	"github.com/idvault/idvault/internal/testenv/testlog"
)

// TestStaleHandOverIsReread: a delivery handed over in the process carries
// the record its transaction wrote, which the claim starts from. When the
// delivery has moved on since (here, delivered), the claim's
// compare-and-swap on that version fails, the claim reads the delivery and
// leaves it: the receiver is not called again.
func TestStaleHandOverIsReread(t *testing.T) {
	ctx := context.Background()
	env := testenv.Open(t, queue.Options{})
	root, err := keyring.NewRootKey("root", testenv.RandomKey(t))
	if err != nil {
		t.Fatal(err)
	}
	logger := (&testlog.Buffer{}).JSONLogger()
	keys, err := keyring.New(ctx, env.Backend, []keyring.KEK{root}, logger, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	svc, err := New(Deps{Backend: env.Backend, Barrier: keys, Secrets: keys, Broker: env.Broker, Log: logger, Now: time.Now},
		Options{Policy: Policy{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, AllowHTTP: true, AnyPort: true}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(svc.CloseIdleConnections)
	var calls atomic.Int64
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { calls.Add(1) }))
	t.Cleanup(rcv.Close)
	if _, _, err := svc.Create(ctx, "acme", Params{URL: rcv.URL, EventTypes: EventTypes}); err != nil {
		t.Fatal(err)
	}
	ids, err := svc.Enqueue(ctx, "acme", Event{ID: "e1", Type: EventSessionCreated, Data: Data{SessionID: "s1", Status: "pending"}})
	if err != nil || len(ids) != 1 {
		t.Fatalf("Enqueue() = %v, %v, want one delivery", ids, err)
	}
	v, err := svc.view("acme")
	if err != nil {
		t.Fatal(err)
	}
	written, version, err := getDelivery(ctx, v, ids[0])
	if err != nil || version != 1 {
		t.Fatalf("getDelivery() = version %d, %v, want the version 1 Enqueue wrote", version, err)
	}
	m := message{Tenant: "acme", Delivery: ids[0], Schedule: written.Schedule}
	if err := svc.handle(ctx, m); err != nil {
		t.Fatalf("handle() = %v", err)
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("receiver calls = %d, want 1", n)
	}
	m.written, m.version = &written, version
	if err := svc.handle(ctx, m); err != nil {
		t.Fatalf("handle(stale hand-over) = %v", err)
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("receiver calls after a stale hand-over = %d, want still 1", n)
	}
	d, err := svc.Delivery(ctx, "acme", ids[0])
	if err != nil || d.Status != DeliveryDelivered || d.AttemptCount != 1 {
		t.Errorf("delivery = %+v, %v, want delivered after one attempt", d, err)
	}
}
