package queue

import "context"

// Handoff hands items from the publishers of a process straight to that
// process's consumers, without a message: Offer succeeds only when a
// consumer is waiting in Serve (the channel is unbuffered, so an item is
// never left in memory with nobody on it). It is for topics whose
// publishers can recover a lost item on their own (the workflow's advance
// flag, a webhook delivery's schedule record): an item handed over is
// exactly as lost as a message when the process dies, and no more durable
// than the publisher's own record of it. A nil *Handoff takes nothing.
type Handoff[T any] struct {
	ch chan T
}

// NewHandoff returns a Handoff for one process.
func NewHandoff[T any]() *Handoff[T] { return &Handoff[T]{ch: make(chan T)} }

// Offer hands v to a consumer waiting in Serve and reports whether one
// took it; the caller publishes v as a message when none did.
func (h *Handoff[T]) Offer(v T) bool {
	if h == nil {
		return false
	}
	select {
	case h.ch <- v:
		return true
	default:
		return false
	}
}

// Serve calls fn with each item handed over, one at a time, until ctx is
// done. fn gets a context that carries ctx's values but is never
// cancelled, so an item taken is finished even when ctx ends meanwhile.
func (h *Handoff[T]) Serve(ctx context.Context, fn func(context.Context, T)) {
	for {
		select {
		case <-ctx.Done():
			return
		case v := <-h.ch:
			fn(context.WithoutCancel(ctx), v)
		}
	}
}
