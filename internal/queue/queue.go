// Package queue defines the broker seam through which the roles talk: a
// durable, at-least-once message queue with named topics, visibility
// timeouts, retries with backoff and dead-lettering.
//
// Delivery semantics: a received message is invisible to other consumers
// until it is acked, nacked or its visibility timeout runs out; then it is
// delivered again. A message nacked or timed out on its MaxAttempts-th
// delivery is moved to the topic DeadLetter(topic), where it can be received like any
// other message. Consumers MUST therefore be idempotent.
//
// Message bodies carry ids and event kinds only, never personal data or
// secrets: a broker is not behind the barrier.
package queue

import (
	"context"
	"errors"
	"time"
)

// Topics used by the roles.
const (
	TopicWorkflow = "workflow"
	TopicAudit    = "audit"
	TopicIndex    = "index"
)

// DeadLetter returns the name of the topic that receives the messages of
// topic that ran out of attempts.
func DeadLetter(topic string) string { return topic + ".dead" }

// Sentinel errors returned by every Broker.
var (
	// ErrClosed means the broker was closed.
	ErrClosed = errors.New("queue: closed")
	// ErrLeaseLost means an Ack or Nack came after the visibility timeout
	// ran out and the message was handed to another consumer (or its
	// delivery was already settled).
	ErrLeaseLost = errors.New("queue: delivery no longer held")
	// ErrInvalid means a malformed call (empty topic, oversized body).
	ErrInvalid = errors.New("queue: invalid argument")
)

// MaxBodyBytes is the largest message body a broker accepts.
const MaxBodyBytes = 1 << 20

// Options tune a broker's delivery behaviour. Zero fields take the defaults
// documented on each field.
type Options struct {
	// Visibility is how long a received message stays invisible before it is
	// delivered again. Default 30s.
	Visibility time.Duration
	// MaxAttempts is how many deliveries a message gets before it is
	// dead-lettered. Default 5.
	MaxAttempts int
	// Backoff is the base delay before a nacked message is delivered again;
	// attempt n waits Backoff * 2^(n-1), capped at MaxBackoff. Default 1s.
	Backoff time.Duration
	// MaxBackoff caps the retry delay. Default 5m.
	MaxBackoff time.Duration
}

// WithDefaults returns o with zero fields replaced by their defaults.
func (o Options) WithDefaults() Options {
	if o.Visibility <= 0 {
		o.Visibility = 30 * time.Second
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 5
	}
	if o.Backoff <= 0 {
		o.Backoff = time.Second
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 5 * time.Minute
	}
	return o
}

// RetryDelay returns the delay before redelivery after the given (1-based)
// failed attempt.
func (o Options) RetryDelay(attempt int) time.Duration {
	d := o.Backoff
	for i := 1; i < attempt && d < o.MaxBackoff; i++ {
		d *= 2
	}
	return min(d, o.MaxBackoff)
}

// Delivery is one received message. Exactly one of Ack or Nack should be
// called; both return ErrLeaseLost if the visibility timeout already ran out.
type Delivery interface {
	// ID is the message id assigned at publish; it is stable across
	// redeliveries and may be used for idempotency.
	ID() string
	Topic() string
	Body() []byte
	// Attempt is 1 on the first delivery and grows with each redelivery.
	Attempt() int
	// Ack removes the message for good.
	Ack(ctx context.Context) error
	// Nack returns the message for redelivery after the retry delay, or
	// dead-letters it when it has used its attempts.
	Nack(ctx context.Context) error
}

// Broker is the queue seam. Implementations MUST be safe for concurrent use.
type Broker interface {
	// Publish stores body durably on topic before it returns.
	Publish(ctx context.Context, topic string, body []byte) error
	// Receive blocks until a message of topic is available, ctx is done
	// (returning ctx.Err()) or the broker is closed (ErrClosed).
	Receive(ctx context.Context, topic string) (Delivery, error)
	// Ping reports whether the broker is reachable.
	Ping(ctx context.Context) error
	// Close stops the broker; blocked Receive calls return ErrClosed.
	Close() error
}
