package audit_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"testing"

	"github.com/idvault/idvault/internal/audit"
	"github.com/idvault/idvault/internal/auditlog"
	"github.com/idvault/idvault/internal/queue"
)

// TestIntoTheLog runs events through the outbox, the relay and the broker
// into the real tamper-evident log, delivers one message twice, and checks
// that each event is in the log once, in order, findable by its filter
// fields, and that the log verifies.
func TestIntoTheLog(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	lg := newLog(t, f)
	for _, a := range []string{"session.create", "session.read", "file.read"} {
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
	c := audit.NewConsumer(f.env.Broker, f.env.Backend, f.env.Barrier, audit.LogAppender(lg), slog.New(slog.DiscardHandler))
	for range 2 { // at-least-once delivery: the same message twice
		if err := c.Handle(ctx, d.Body()); err != nil {
			t.Fatalf("Handle() = %v", err)
		}
	}
	all, _, err := lg.Events(ctx, "tenant-a", auditlog.Filter{}, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range all {
		var ev audit.Event
		if err := json.Unmarshal(s.Data, &ev); err != nil {
			t.Fatal(err)
		}
		got = append(got, ev.Action)
	}
	if want := []string{"session.create", "session.read", "file.read"}; len(got) != 3 || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
		t.Fatalf("log holds %v, want %v once each in order", got, want)
	}
	reads, _, err := lg.Events(ctx, "tenant-a", auditlog.Filter{Action: "session.read", ActorID: "u1", ResourceType: "session"}, "", 0)
	if err != nil || len(reads) != 1 {
		t.Errorf("Events(action session.read, actor u1) = %d events, %v; want 1", len(reads), err)
	}
	rep, err := lg.Verify(ctx, "tenant-a", auditlog.VerifyOptions{})
	if err != nil || !rep.Verified() || rep.Events != 3 {
		t.Errorf("Verify() = %+v, %v; want 3 events verified", rep, err)
	}
}
