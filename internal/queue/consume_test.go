package queue_test

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/idvault/idvault/internal/queue"
	"github.com/idvault/idvault/internal/testenv"
)

// failingBroker is the real SQLite broker whose first Receive calls fail, as
// they do while the store is briefly locked or the broker unreachable.
type failingBroker struct {
	queue.Broker
	failures atomic.Int32
}

func (b *failingBroker) Receive(ctx context.Context, topic string) (queue.Delivery, error) {
	if b.failures.Add(-1) >= 0 {
		return nil, errors.New("database is locked")
	}
	return b.Broker.Receive(ctx, topic)
}

// TestConsumeSurvivesReceiveFailures checks that failed receives are retried
// instead of ending the consumer, that every message is handled, and that
// Consume returns nil when its context ends.
func TestConsumeSurvivesReceiveFailures(t *testing.T) {
	e := testenv.Open(t, queue.Options{})
	b := &failingBroker{Broker: e.Broker}
	b.failures.Store(3)
	ctx, cancel := context.WithCancel(context.Background())
	for _, m := range []string{"one", "two"} {
		if err := e.Broker.Publish(ctx, "t", []byte(m)); err != nil {
			t.Fatal(err)
		}
	}
	var (
		mu  sync.Mutex
		got []string
	)
	done := make(chan error, 1)
	go func() {
		done <- queue.Consume(ctx, b, "t", slog.New(slog.DiscardHandler), 100*time.Millisecond, func(ctx context.Context, d queue.Delivery) {
			mu.Lock()
			got = append(got, string(d.Body()))
			n := len(got)
			mu.Unlock()
			if err := d.Ack(ctx); err != nil {
				t.Error(err)
			}
			if n == 2 {
				cancel()
			}
		})
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Consume() = %v, want nil", err)
		}
	case <-time.After(20 * time.Second):
		cancel()
		t.Fatal("Consume did not handle both messages after the failures")
	}
	if len(got) != 2 || got[0] != "one" || got[1] != "two" {
		t.Errorf("handled %q, want [one two]", got)
	}
	if b.failures.Load() >= 0 {
		t.Errorf("Receive failed %d fewer times than planned: the failures were not exercised", b.failures.Load()+1)
	}
}
