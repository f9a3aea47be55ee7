package groupcommit

// Queued reports how many calls wait for a commit, for tests that must know
// when callers are queued.
func (c *Committer[T]) Queued() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.pending)
}
