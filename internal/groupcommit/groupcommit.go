// Package groupcommit lets concurrent callers share one durable commit:
// calls queue their items, and one of them, the leader, commits the whole
// queue at once, so N callers pay for one transaction (one fsync) instead of
// N. Every caller returns only after the commit that holds its item, with
// that commit's error.
package groupcommit

import "sync"

// Committer batches items of type T. The zero value is not usable; make one
// with New. A Committer is safe for concurrent use.
type Committer[T any] struct {
	commit func([]T) error
	max    int

	mu      sync.Mutex
	pending []*request[T]
	leading bool
}

type request[T any] struct {
	item T
	done chan error    // the result of the commit that holds this item
	lead chan struct{} // signalled when this call becomes the leader
}

// New returns a Committer that commits batches of at most max items (max <= 0
// means no limit) with commit. commit runs on one caller's goroutine at a
// time; it must not depend on that caller's context, since the commit is
// shared.
func New[T any](max int, commit func([]T) error) *Committer[T] {
	return &Committer[T]{commit: commit, max: max}
}

// Do queues item and returns when the commit holding it has finished, with
// its error.
func (c *Committer[T]) Do(item T) error {
	req := &request[T]{item: item, done: make(chan error, 1), lead: make(chan struct{}, 1)}
	c.mu.Lock()
	c.pending = append(c.pending, req)
	lead := !c.leading
	c.leading = true
	c.mu.Unlock()
	if lead {
		c.flush()
	}
	for {
		select {
		case err := <-req.done:
			return err
		case <-req.lead:
			c.flush()
		}
	}
}

// flush commits the queued items (up to max), answers each, and hands the
// lead to the next queued call, if any. Only the leader calls it.
func (c *Committer[T]) flush() {
	c.mu.Lock()
	n := len(c.pending)
	if c.max > 0 && n > c.max {
		n = c.max
	}
	batch := c.pending[:n:n]
	c.pending = c.pending[n:]
	c.mu.Unlock()
	items := make([]T, len(batch))
	for i, r := range batch {
		items[i] = r.item
	}
	err := c.commit(items)
	for _, r := range batch {
		r.done <- err
	}
	c.mu.Lock()
	if len(c.pending) > 0 {
		c.pending[0].lead <- struct{}{}
	} else {
		c.leading = false
	}
	c.mu.Unlock()
}

// Queued reports how many calls wait for a commit (not counting those of the
// commit running), for tests that must know when callers are queued.
func (c *Committer[T]) Queued() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.pending)
}
