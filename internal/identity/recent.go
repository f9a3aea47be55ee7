package identity

import (
	"sync"
	"time"
)

// RecentTTL is how long a Service reuses a credential, tenant status or
// policy it read, instead of reading it on every request. A change made
// through the same Service takes effect at once; a change made by another
// process (a revocation on another API replica, `idvault tenant suspend`)
// takes effect within RecentTTL.
const RecentTTL = time.Second

// recentMax bounds each cache; a full cache is emptied, so a flood of
// distinct keys costs reads, never memory.
const recentMax = 100_000

// recent is a small cache of records read on every request.
type recent[V any] struct {
	mu sync.Mutex
	m  map[string]recentEntry[V]
}

type recentEntry[V any] struct {
	v       V
	expires time.Time
}

func (c *recent[V]) get(key string, now time.Time) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[key]
	if !ok || !now.Before(e.expires) {
		var zero V
		return zero, false
	}
	return e.v, true
}

func (c *recent[V]) put(key string, v V, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= recentMax {
		c.m = make(map[string]recentEntry[V])
	}
	c.m[key] = recentEntry[V]{v: v, expires: now.Add(RecentTTL)}
}

func (c *recent[V]) drop(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, key)
}
