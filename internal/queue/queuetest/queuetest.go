// Package queuetest is the conformance suite that every queue.Broker
// implementation runs from its own tests, and a shared benchmark.
//
// The suite checks only what package queue promises: delivery of the
// published body, per-topic independence, ack, nack with redelivery,
// visibility timeouts with queue.ErrLeaseLost for late settlement,
// dead-lettering after MaxAttempts, blocking Receive with cancellation and
// queue.ErrClosed, queue.ErrInvalid for malformed calls, at-least-once
// delivery under concurrency, and Ping.
//
// Order: package queue promises no global order. The suite requires only
// that messages published one after another on a topic reach a single
// consumer that acks each before receiving the next in publish order, as long
// as none is redelivered (what a RabbitMQ queue gives too).
//
// Timing: the suite runs brokers with short options (visibility 300ms,
// backoff 20ms) and waits on results with a generous deadline, but never
// asserts on durations. Absence ("not delivered again") is checked by a
// Receive that must still be waiting after several visibility timeouts.
package queuetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/idvault/idvault/internal/queue"
)

// Short options keep the suite fast; every subtest starts from these.
const (
	visibility = 300 * time.Millisecond
	backoff    = 20 * time.Millisecond
	// patience bounds every wait for something that must happen.
	patience = 20 * time.Second
	// absence is how long a Receive must find nothing to show that a
	// message is not delivered (again).
	absence = 2 * visibility
)

func shortOptions() queue.Options {
	return queue.Options{Visibility: visibility, MaxAttempts: 5, Backoff: backoff, MaxBackoff: 4 * backoff}
}

// Run runs the conformance suite as subtests of t. newBroker MUST return a
// new broker over empty storage that applies opts; it may register cleanups
// on t (the suite's own cleanup, which calls Close exactly once, runs before
// them).
func Run(t *testing.T, newBroker func(t *testing.T, opts queue.Options) queue.Broker) {
	s := suite{newBroker: newBroker}
	tests := []struct {
		name string
		run  func(*testing.T)
	}{
		{"PublishReceive", s.publishReceive},
		{"MaxBody", s.maxBody},
		{"Invalid", s.invalid},
		{"PublishOrder", s.publishOrder},
		{"TopicsIndependent", s.topicsIndependent},
		{"AckRemoves", s.ackRemoves},
		{"SettleTwice", s.settleTwice},
		{"NackRedelivers", s.nackRedelivers},
		{"VisibilityTimeout", s.visibilityTimeout},
		{"DeadLetterAfterNacks", s.deadLetterAfterNacks},
		{"DeadLetterAfterTimeouts", s.deadLetterAfterTimeouts},
		{"ReceiveBlocksUntilPublish", s.receiveBlocks},
		{"ReceiveCanceled", s.receiveCanceled},
		{"CloseUnblocksReceive", s.closeUnblocksReceive},
		{"Closed", s.closed},
		{"Concurrent", s.concurrent},
		{"Ping", s.ping},
	}
	for _, tt := range tests {
		t.Run(tt.name, tt.run)
	}
}

type suite struct {
	newBroker func(t *testing.T, opts queue.Options) queue.Broker
}

// open returns a new broker and a function that closes it once; the broker
// is closed at the end of the test if the test did not close it.
func (s suite) open(t *testing.T, opts queue.Options) (queue.Broker, func()) {
	t.Helper()
	b := s.newBroker(t, opts)
	var once sync.Once
	closeBroker := func() {
		once.Do(func() {
			if err := b.Close(); err != nil {
				t.Errorf("Close() = %v, want nil", err)
			}
		})
	}
	t.Cleanup(closeBroker)
	return b, closeBroker
}

func (s suite) publishReceive(t *testing.T) {
	b, _ := s.open(t, shortOptions())
	body := []byte(`{"kind":"session.created","id":"s1"}`)
	publish(t, b, "t", body)
	d := receive(t, b, "t")
	if !bytes.Equal(d.Body(), body) {
		t.Errorf("Body() = %q, want %q", d.Body(), body)
	}
	if d.Topic() != "t" {
		t.Errorf("Topic() = %q, want %q", d.Topic(), "t")
	}
	if d.ID() == "" {
		t.Error("ID() = \"\", want a message id")
	}
	if d.Attempt() != 1 {
		t.Errorf("Attempt() = %d, want 1", d.Attempt())
	}
	ack(t, d)
}

func (s suite) maxBody(t *testing.T) {
	b, _ := s.open(t, shortOptions())
	body := bytes.Repeat([]byte{0xA5}, queue.MaxBodyBytes)
	publish(t, b, "t", body)
	d := receive(t, b, "t")
	if !bytes.Equal(d.Body(), body) {
		t.Errorf("Body() of %d bytes differs from the published %d bytes", len(d.Body()), len(body))
	}
	ack(t, d)
}

func (s suite) invalid(t *testing.T) {
	b, _ := s.open(t, shortOptions())
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	tests := []struct {
		name string
		call func() error
	}{
		{"publish empty topic", func() error { return b.Publish(ctx, "", []byte("x")) }},
		{"publish oversized body", func() error {
			return b.Publish(ctx, "t", make([]byte, queue.MaxBodyBytes+1))
		}},
		{"receive empty topic", func() error {
			_, err := b.Receive(ctx, "")
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.call(); !errors.Is(err, queue.ErrInvalid) {
				t.Errorf("err = %v, want %v", err, queue.ErrInvalid)
			}
		})
	}
}

func (s suite) publishOrder(t *testing.T) {
	b, _ := s.open(t, shortOptions())
	const n = 20
	for i := range n {
		publish(t, b, "t", fmt.Appendf(nil, "m%02d", i))
	}
	for i := range n {
		d := receive(t, b, "t")
		if want := fmt.Sprintf("m%02d", i); string(d.Body()) != want {
			t.Errorf("Receive #%d: Body() = %q, want %q", i, d.Body(), want)
		}
		ack(t, d)
	}
}

func (s suite) topicsIndependent(t *testing.T) {
	b, _ := s.open(t, shortOptions())
	publish(t, b, "a", []byte("for a"))
	publish(t, b, "b", []byte("for b"))
	for _, topic := range []string{"b", "a"} {
		d := receive(t, b, topic)
		if want := "for " + topic; string(d.Body()) != want {
			t.Errorf("Receive(%q): Body() = %q, want %q", topic, d.Body(), want)
		}
		if d.Topic() != topic {
			t.Errorf("Receive(%q): Topic() = %q, want %q", topic, d.Topic(), topic)
		}
		ack(t, d)
	}
	expectNone(t, b, "a")
}

func (s suite) ackRemoves(t *testing.T) {
	b, _ := s.open(t, shortOptions())
	publish(t, b, "t", []byte("once"))
	ack(t, receive(t, b, "t"))
	expectNone(t, b, "t")
}

func (s suite) settleTwice(t *testing.T) {
	b, _ := s.open(t, shortOptions())
	ctx := context.Background()
	publish(t, b, "t", []byte("acked"))
	d := receive(t, b, "t")
	ack(t, d)
	if err := d.Ack(ctx); !errors.Is(err, queue.ErrLeaseLost) {
		t.Errorf("second Ack() = %v, want %v", err, queue.ErrLeaseLost)
	}
	if err := d.Nack(ctx); !errors.Is(err, queue.ErrLeaseLost) {
		t.Errorf("Nack() after Ack() = %v, want %v", err, queue.ErrLeaseLost)
	}

	publish(t, b, "t", []byte("nacked"))
	d = receive(t, b, "t")
	nack(t, d)
	if err := d.Nack(ctx); !errors.Is(err, queue.ErrLeaseLost) {
		t.Errorf("second Nack() = %v, want %v", err, queue.ErrLeaseLost)
	}
	if err := d.Ack(ctx); !errors.Is(err, queue.ErrLeaseLost) {
		t.Errorf("Ack() after Nack() = %v, want %v", err, queue.ErrLeaseLost)
	}
	ack(t, receive(t, b, "t"))
}

func (s suite) nackRedelivers(t *testing.T) {
	b, _ := s.open(t, shortOptions())
	body := []byte("retry me")
	publish(t, b, "t", body)
	first := receive(t, b, "t")
	nack(t, first)
	again := receive(t, b, "t")
	if again.ID() != first.ID() {
		t.Errorf("redelivery ID() = %q, want %q", again.ID(), first.ID())
	}
	if !bytes.Equal(again.Body(), body) {
		t.Errorf("redelivery Body() = %q, want %q", again.Body(), body)
	}
	if again.Attempt() != 2 {
		t.Errorf("redelivery Attempt() = %d, want 2", again.Attempt())
	}
	ack(t, again)
	expectNone(t, b, "t")
}

func (s suite) visibilityTimeout(t *testing.T) {
	b, _ := s.open(t, shortOptions())
	ctx := context.Background()
	publish(t, b, "t", []byte("slow"))
	first := receive(t, b, "t")
	// The second Receive gets the message only once the first delivery's
	// visibility timeout has run out.
	second := receive(t, b, "t")
	if second.ID() != first.ID() {
		t.Errorf("redelivery ID() = %q, want %q", second.ID(), first.ID())
	}
	if second.Attempt() != 2 {
		t.Errorf("redelivery Attempt() = %d, want 2", second.Attempt())
	}
	if err := first.Ack(ctx); !errors.Is(err, queue.ErrLeaseLost) {
		t.Errorf("late Ack() = %v, want %v", err, queue.ErrLeaseLost)
	}
	if err := first.Nack(ctx); !errors.Is(err, queue.ErrLeaseLost) {
		t.Errorf("late Nack() = %v, want %v", err, queue.ErrLeaseLost)
	}
	ack(t, second)
	expectNone(t, b, "t")
}

func (s suite) deadLetterAfterNacks(t *testing.T) {
	opts := shortOptions()
	opts.MaxAttempts = 3
	b, _ := s.open(t, opts)
	body := []byte("poison")
	publish(t, b, "t", body)
	for attempt := 1; attempt <= opts.MaxAttempts; attempt++ {
		d := receive(t, b, "t")
		if d.Attempt() != attempt {
			t.Errorf("Attempt() = %d, want %d", d.Attempt(), attempt)
		}
		nack(t, d)
	}
	dead := receive(t, b, queue.DeadLetter("t"))
	if !bytes.Equal(dead.Body(), body) {
		t.Errorf("dead letter Body() = %q, want %q", dead.Body(), body)
	}
	if dead.Topic() != queue.DeadLetter("t") {
		t.Errorf("dead letter Topic() = %q, want %q", dead.Topic(), queue.DeadLetter("t"))
	}
	ack(t, dead)
	expectNone(t, b, "t")
}

func (s suite) deadLetterAfterTimeouts(t *testing.T) {
	opts := shortOptions()
	opts.MaxAttempts = 2
	b, _ := s.open(t, opts)
	body := []byte("stuck")
	publish(t, b, "t", body)
	var last queue.Delivery
	for attempt := 1; attempt <= opts.MaxAttempts; attempt++ {
		last = receive(t, b, "t") // left to time out
		if last.Attempt() != attempt {
			t.Errorf("Attempt() = %d, want %d", last.Attempt(), attempt)
		}
	}
	dead := receive(t, b, queue.DeadLetter("t"))
	if !bytes.Equal(dead.Body(), body) {
		t.Errorf("dead letter Body() = %q, want %q", dead.Body(), body)
	}
	if err := last.Ack(context.Background()); !errors.Is(err, queue.ErrLeaseLost) {
		t.Errorf("Ack() of the timed-out last attempt = %v, want %v", err, queue.ErrLeaseLost)
	}
	ack(t, dead)
	expectNone(t, b, "t")
}

func (s suite) receiveBlocks(t *testing.T) {
	b, _ := s.open(t, shortOptions())
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	got := make(chan result, 1)
	go func() {
		d, err := b.Receive(ctx, "t")
		got <- result{d, err}
	}()
	published := make(chan error, 1)
	go func() { published <- b.Publish(ctx, "t", []byte("late")) }()
	if err := <-published; err != nil {
		t.Fatalf("Publish() = %v, want nil", err)
	}
	r := <-got
	if r.err != nil {
		t.Fatalf("Receive() = %v, want the message published later", r.err)
	}
	if string(r.d.Body()) != "late" {
		t.Errorf("Body() = %q, want %q", r.d.Body(), "late")
	}
	ack(t, r.d)
}

func (s suite) receiveCanceled(t *testing.T) {
	b, _ := s.open(t, shortOptions())
	ctx, cancel := context.WithCancel(context.Background())
	got := make(chan result, 1)
	go func() {
		d, err := b.Receive(ctx, "t")
		got <- result{d, err}
	}()
	cancel()
	r := await(t, got)
	if !errors.Is(r.err, context.Canceled) {
		t.Errorf("Receive() after cancel = %v, want %v", r.err, context.Canceled)
	}
}

func (s suite) closeUnblocksReceive(t *testing.T) {
	b, closeBroker := s.open(t, shortOptions())
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	got := make(chan result, 1)
	go func() {
		d, err := b.Receive(ctx, "t")
		got <- result{d, err}
	}()
	closeBroker()
	r := await(t, got)
	if !errors.Is(r.err, queue.ErrClosed) {
		t.Errorf("Receive() blocked across Close() = %v, want %v", r.err, queue.ErrClosed)
	}
}

func (s suite) closed(t *testing.T) {
	b, closeBroker := s.open(t, shortOptions())
	closeBroker()
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	if err := b.Publish(ctx, "t", []byte("x")); !errors.Is(err, queue.ErrClosed) {
		t.Errorf("Publish() after Close() = %v, want %v", err, queue.ErrClosed)
	}
	if _, err := b.Receive(ctx, "t"); !errors.Is(err, queue.ErrClosed) {
		t.Errorf("Receive() after Close() = %v, want %v", err, queue.ErrClosed)
	}
}

// concurrent publishes messages from several goroutines while several
// consumers receive and ack them: with no failures each message is received
// and acked exactly once.
func (s suite) concurrent(t *testing.T) {
	const (
		publishers = 2
		consumers  = 4
		perPub     = 100
		total      = publishers * perPub
	)
	opts := shortOptions()
	opts.Visibility = time.Minute // no redelivery while the machine is busy
	b, _ := s.open(t, opts)
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()

	var (
		mu       sync.Mutex
		received = make(map[string]int)
		ids      = make(map[string]string) // body -> id
		acked    int
		errs     []error
	)
	fail := func(err error) {
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
		cancel()
	}
	var wg sync.WaitGroup
	for p := range publishers {
		wg.Go(func() {
			for i := range perPub {
				if err := b.Publish(ctx, "t", fmt.Appendf(nil, "p%d-m%03d", p, i)); err != nil {
					fail(fmt.Errorf("Publish() = %w", err))
					return
				}
			}
		})
	}
	for range consumers {
		wg.Go(func() {
			for {
				d, err := b.Receive(ctx, "t")
				if err != nil {
					if ctx.Err() == nil {
						fail(fmt.Errorf("Receive() = %w", err))
					}
					return
				}
				mu.Lock()
				received[string(d.Body())]++
				ids[string(d.Body())] = d.ID()
				mu.Unlock()
				if err := d.Ack(ctx); err != nil {
					fail(fmt.Errorf("Ack() = %w", err))
					return
				}
				mu.Lock()
				acked++
				if acked == total {
					cancel()
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		t.Error(err)
	}
	if acked != total {
		t.Errorf("acked %d messages, want %d", acked, total)
	}
	seen := make(map[string]bool)
	for p := range publishers {
		for i := range perPub {
			body := fmt.Sprintf("p%d-m%03d", p, i)
			if n := received[body]; n != 1 {
				t.Errorf("message %q received %d times, want 1", body, n)
			}
			if id, ok := ids[body]; ok {
				if seen[id] {
					t.Errorf("message %q has ID() %q of another message", body, id)
				}
				seen[id] = true
			}
		}
	}
	if len(received) != total {
		t.Errorf("received %d distinct bodies, want %d", len(received), total)
	}
	expectNone(t, b, "t")
}

func (s suite) ping(t *testing.T) {
	b, _ := s.open(t, shortOptions())
	if err := b.Ping(context.Background()); err != nil {
		t.Errorf("Ping() = %v, want nil", err)
	}
}

type result struct {
	d   queue.Delivery
	err error
}

func await(t *testing.T, c <-chan result) result {
	t.Helper()
	select {
	case r := <-c:
		return r
	case <-time.After(patience):
		t.Fatalf("Receive() still blocked after %v", patience)
		return result{}
	}
}

func publish(t testing.TB, b queue.Broker, topic string, body []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	if err := b.Publish(ctx, topic, body); err != nil {
		t.Fatalf("Publish(%q) = %v, want nil", topic, err)
	}
}

func receive(t testing.TB, b queue.Broker, topic string) queue.Delivery {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	d, err := b.Receive(ctx, topic)
	if err != nil {
		t.Fatalf("Receive(%q) = %v, want a delivery", topic, err)
	}
	return d
}

func ack(t testing.TB, d queue.Delivery) {
	t.Helper()
	if err := d.Ack(context.Background()); err != nil {
		t.Fatalf("Ack() of %s = %v, want nil", d.ID(), err)
	}
}

func nack(t testing.TB, d queue.Delivery) {
	t.Helper()
	if err := d.Nack(context.Background()); err != nil {
		t.Fatalf("Nack() of %s = %v, want nil", d.ID(), err)
	}
}

// expectNone fails if a message of topic is delivered within a few
// visibility timeouts.
func expectNone(t testing.TB, b queue.Broker, topic string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), absence)
	defer cancel()
	d, err := b.Receive(ctx, topic)
	if err == nil {
		t.Fatalf("Receive(%q) = message %s (attempt %d, body %q), want none", topic, d.ID(), d.Attempt(), d.Body())
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Receive(%q) = %v, want %v", topic, err, context.DeadlineExceeded)
	}
}

// Benchmark measures one publish, receive and ack per operation on brokers
// made by newBroker, for a ladder of body sizes and with parallel clients,
// and reports msgs/s. newBroker MUST return a new broker over empty storage
// that applies opts; Benchmark closes it.
func Benchmark(b *testing.B, newBroker func(b *testing.B, opts queue.Options) queue.Broker) {
	for _, size := range []int{64, 1 << 10, queue.MaxBodyBytes} {
		b.Run(fmt.Sprintf("body=%dB", size), func(b *testing.B) {
			br := openBench(b, newBroker)
			body := bytes.Repeat([]byte{'x'}, size)
			ctx := context.Background()
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				if err := roundTrip(ctx, br, body); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
	b.Run("parallel/body=64B", func(b *testing.B) {
		br := openBench(b, newBroker)
		body := bytes.Repeat([]byte{'x'}, 64)
		ctx := context.Background()
		b.SetBytes(int64(len(body)))
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := roundTrip(ctx, br, body); err != nil {
					b.Error(err)
					return
				}
			}
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	})
}

func openBench(b *testing.B, newBroker func(b *testing.B, opts queue.Options) queue.Broker) queue.Broker {
	b.Helper()
	br := newBroker(b, queue.Options{Visibility: time.Minute})
	b.Cleanup(func() {
		if err := br.Close(); err != nil {
			b.Errorf("Close() = %v, want nil", err)
		}
	})
	return br
}

// roundTrip publishes body, receives a message of the topic (with parallel
// clients, not necessarily the same one) and acks it.
func roundTrip(ctx context.Context, br queue.Broker, body []byte) error {
	if err := br.Publish(ctx, "bench", body); err != nil {
		return fmt.Errorf("Publish() = %w", err)
	}
	d, err := br.Receive(ctx, "bench")
	if err != nil {
		return fmt.Errorf("Receive() = %w", err)
	}
	if err := d.Ack(ctx); err != nil {
		return fmt.Errorf("Ack() = %w", err)
	}
	return nil
}
