package queuetest

import (
	"context"
	"sync/atomic"

	"github.com/idvault/idvault/internal/queue"
)

// Counting is a queue.Broker that counts the messages published through
// it, for tests of what publishes and what does not.
type Counting struct {
	queue.Broker
	published atomic.Int64
}

// Publish counts and publishes.
func (b *Counting) Publish(ctx context.Context, topic string, body []byte) error {
	b.published.Add(1)
	return b.Broker.Publish(ctx, topic, body)
}

// Published returns how many messages were published so far.
func (b *Counting) Published() int64 { return b.published.Load() }

// Reset sets the count back to zero.
func (b *Counting) Reset() { b.published.Store(0) }
