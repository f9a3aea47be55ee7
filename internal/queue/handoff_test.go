package queue_test

import (
	"context"
	"testing"
	"time"

	"github.com/idvault/idvault/internal/queue"
)

// TestHandoff: Offer succeeds only into the hands of a consumer waiting in
// Serve, never into a buffer; Serve finishes the item it took with a
// context that is not cancelled, and returns once its context ends; a nil
// Handoff takes nothing.
func TestHandoff(t *testing.T) {
	var none *queue.Handoff[int]
	if none.Offer(1) {
		t.Fatal("nil Handoff took an item")
	}
	h := queue.NewHandoff[int]()
	if h.Offer(1) {
		t.Fatal("Offer with no consumer waiting succeeded")
	}
	ctx, cancel := context.WithCancel(context.Background())
	got := make(chan int, 1)
	release := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		h.Serve(ctx, func(ctx context.Context, v int) {
			<-release
			if ctx.Err() != nil {
				t.Errorf("item served with a cancelled context: %v", ctx.Err())
			}
			got <- v
		})
	}()
	deadline := time.Now().Add(20 * time.Second)
	for !h.Offer(7) {
		if time.Now().After(deadline) {
			t.Fatal("Offer never reached the waiting consumer")
		}
		time.Sleep(time.Millisecond)
	}
	if h.Offer(8) {
		t.Fatal("Offer succeeded while the only consumer was busy")
	}
	cancel()
	close(release)
	if v := <-got; v != 7 {
		t.Fatalf("served %d, want 7", v)
	}
	select {
	case <-stopped:
	case <-time.After(20 * time.Second):
		t.Fatal("Serve did not return after its context ended")
	}
}
