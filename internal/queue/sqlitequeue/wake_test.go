package sqlitequeue

import "testing"

func closed(w *waiter) bool {
	select {
	case <-w.ch:
		return true
	default:
		return false
	}
}

// TestWakeOneAtATime checks the line of waiting Receive calls: a wake-up
// picks only the one waiting longest, a caller leaving the line learns
// whether a wake-up had picked it (to pass it on), and leaving takes a
// waiter out of the way of later wake-ups.
func TestWakeOneAtATime(t *testing.T) {
	b := &Broker{waiters: map[string][]*waiter{}}
	first, second, third := b.wait("t"), b.wait("t"), b.wait("t")
	other := b.wait("u")
	b.wake("t")
	if !closed(first) || closed(second) || closed(third) || closed(other) {
		t.Fatalf("after one wake: woken %v %v %v (other topic %v), want only the first", closed(first), closed(second), closed(third), closed(other))
	}
	if !b.leave("t", first) {
		t.Errorf("leave(first) = false, want true: a wake-up picked it")
	}
	if b.leave("t", second) {
		t.Errorf("leave(second) = true, want false: it was not woken")
	}
	b.wake("t")
	if closed(second) || !closed(third) {
		t.Errorf("second wake: woken second %v, third %v; want the third only (the second left the line)", closed(second), closed(third))
	}
	b.wake("t") // nobody waits: nothing happens
	if len(b.waiters["t"]) != 0 || len(b.waiters["u"]) != 1 {
		t.Errorf("lines = %d on t, %d on u; want 0 and 1", len(b.waiters["t"]), len(b.waiters["u"]))
	}
}
