package sqlitequeue_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/idvault/idvault/internal/queue"
	"github.com/idvault/idvault/internal/queue/queuetest"
	"github.com/idvault/idvault/internal/queue/sqlitequeue"
	"github.com/idvault/idvault/internal/sqlitedb"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// patience bounds every wait for something that must happen.
const patience = 20 * time.Second

// openDB opens the SQLite database at path and closes it when the test ends.
func openDB(tb testing.TB, path string) *sqlitedb.DB {
	tb.Helper()
	db, err := sqlitedb.Open(context.Background(), path)
	if err != nil {
		tb.Fatalf("sqlitedb.Open(%q) = %v", path, err)
	}
	tb.Cleanup(func() {
		if err := db.Close(); err != nil {
			tb.Errorf("db.Close() = %v", err)
		}
	})
	return db
}

func newBroker(tb testing.TB, db *sqlitedb.DB, opts queue.Options) *sqlitequeue.Broker {
	tb.Helper()
	b, err := sqlitequeue.New(context.Background(), db, opts)
	if err != nil {
		tb.Fatalf("New() = %v", err)
	}
	return b
}

func closeBroker(tb testing.TB, b *sqlitequeue.Broker) {
	tb.Helper()
	if err := b.Close(); err != nil {
		tb.Fatalf("Close() = %v, want nil", err)
	}
}

func TestConformance(t *testing.T) {
	queuetest.Run(t, func(t *testing.T, opts queue.Options) queue.Broker {
		return newBroker(t, openDB(t, filepath.Join(t.TempDir(), "idvault.db")), opts)
	})
}

func BenchmarkBroker(b *testing.B) {
	queuetest.Benchmark(b, func(b *testing.B, opts queue.Options) queue.Broker {
		return newBroker(b, openDB(b, filepath.Join(b.TempDir(), "idvault.db")), opts)
	})
}

func receive(t *testing.T, b queue.Broker, topic string) queue.Delivery {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	d, err := b.Receive(ctx, topic)
	if err != nil {
		t.Fatalf("Receive(%q) = %v, want a delivery", topic, err)
	}
	return d
}

// TestDurable checks that a published message survives closing and
// reopening the database.
func TestDurable(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "idvault.db")
	db, err := sqlitedb.Open(ctx, path)
	if err != nil {
		t.Fatalf("sqlitedb.Open() = %v", err)
	}
	b := newBroker(t, db, queue.Options{})
	if err := b.Publish(ctx, queue.TopicWorkflow, []byte("session s1 step 2")); err != nil {
		t.Fatalf("Publish() = %v", err)
	}
	closeBroker(t, b)
	if err := db.Close(); err != nil {
		t.Fatalf("db.Close() = %v", err)
	}

	b = newBroker(t, openDB(t, path), queue.Options{})
	defer closeBroker(t, b)
	d := receive(t, b, queue.TopicWorkflow)
	if got, want := string(d.Body()), "session s1 step 2"; got != want {
		t.Errorf("Body() after reopen = %q, want %q", got, want)
	}
	if d.Attempt() != 1 {
		t.Errorf("Attempt() after reopen = %d, want 1", d.Attempt())
	}
	if err := d.Ack(ctx); err != nil {
		t.Errorf("Ack() = %v, want nil", err)
	}
}

// TestLeaseSurvivesRestart checks that a message received but never settled
// before the process stopped is delivered again, by a new Broker on the
// reopened database, once its visibility timeout has run out.
func TestLeaseSurvivesRestart(t *testing.T) {
	ctx := context.Background()
	opts := queue.Options{Visibility: 300 * time.Millisecond}
	path := filepath.Join(t.TempDir(), "idvault.db")
	db, err := sqlitedb.Open(ctx, path)
	if err != nil {
		t.Fatalf("sqlitedb.Open() = %v", err)
	}
	b := newBroker(t, db, opts)
	if err := b.Publish(ctx, "t", []byte("in flight")); err != nil {
		t.Fatalf("Publish() = %v", err)
	}
	first := receive(t, b, "t")
	closeBroker(t, b)
	if err := first.Ack(ctx); !errors.Is(err, queue.ErrClosed) {
		t.Errorf("Ack() after Close() = %v, want %v", err, queue.ErrClosed)
	}
	if err := db.Close(); err != nil {
		t.Fatalf("db.Close() = %v", err)
	}

	b = newBroker(t, openDB(t, path), opts)
	defer closeBroker(t, b)
	again := receive(t, b, "t")
	if again.ID() != first.ID() {
		t.Errorf("ID() after restart = %q, want %q", again.ID(), first.ID())
	}
	if again.Attempt() != 2 {
		t.Errorf("Attempt() after restart = %d, want 2", again.Attempt())
	}
	if err := again.Ack(ctx); err != nil {
		t.Errorf("Ack() = %v, want nil", err)
	}
}

// TestSharedFile checks that two Brokers on separate connections to one
// database file, as two processes would have, see each other's messages and
// never hand out one message twice.
func TestSharedFile(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "idvault.db")
	producer := newBroker(t, openDB(t, path), queue.Options{})
	defer closeBroker(t, producer)
	consumer := newBroker(t, openDB(t, path), queue.Options{})
	defer closeBroker(t, consumer)

	// The consumer is (most likely) already waiting when the message is
	// published; only its polling can notice a row written by another Broker.
	got := make(chan queue.Delivery, 1)
	errs := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(ctx, patience)
		defer cancel()
		d, err := consumer.Receive(ctx, "t")
		if err != nil {
			errs <- err
			return
		}
		got <- d
	}()
	if err := producer.Publish(ctx, "t", []byte("cross-process")); err != nil {
		t.Fatalf("Publish() = %v", err)
	}
	select {
	case err := <-errs:
		t.Fatalf("Receive() on the other Broker = %v, want the message", err)
	case d := <-got:
		if string(d.Body()) != "cross-process" {
			t.Errorf("Body() = %q, want %q", d.Body(), "cross-process")
		}
		short, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		defer cancel()
		if d2, err := producer.Receive(short, "t"); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Receive() of a leased message on the other Broker = %v, %v, want %v", d2, err, context.DeadlineExceeded)
		}
		if err := d.Ack(ctx); err != nil {
			t.Errorf("Ack() = %v, want nil", err)
		}
	}
}

// TestCloseKeepsDB checks that Close leaves the shared database open, and
// that New on an already migrated database works.
func TestCloseKeepsDB(t *testing.T) {
	ctx := context.Background()
	db := openDB(t, filepath.Join(t.TempDir(), "idvault.db"))
	closeBroker(t, newBroker(t, db, queue.Options{}))
	if err := db.PingContext(ctx); err != nil {
		t.Fatalf("db.PingContext() after Close() = %v, want nil", err)
	}
	b := newBroker(t, db, queue.Options{})
	if err := b.Ping(ctx); err != nil {
		t.Errorf("Ping() = %v, want nil", err)
	}
	closeBroker(t, b)
	closeBroker(t, b) // idempotent
	if err := b.Ping(ctx); !errors.Is(err, queue.ErrClosed) {
		t.Errorf("Ping() after Close() = %v, want %v", err, queue.ErrClosed)
	}
}

func TestNewNilDB(t *testing.T) {
	if _, err := sqlitequeue.New(context.Background(), nil, queue.Options{}); err == nil {
		t.Error("New(nil db) = nil error, want an error")
	}
}

// TestNoLeakAfterClose checks that Close ends every Receive it unblocks, and
// that no goroutine outlives the Broker and its database.
func TestNoLeakAfterClose(t *testing.T) {
	ctx := context.Background()
	db, err := sqlitedb.Open(ctx, filepath.Join(t.TempDir(), "idvault.db"))
	if err != nil {
		t.Fatalf("sqlitedb.Open() = %v", err)
	}
	b := newBroker(t, db, queue.Options{})
	const waiters = 4
	errs := make(chan error, waiters)
	for range waiters {
		go func() {
			_, err := b.Receive(ctx, "t")
			errs <- err
		}()
	}
	closeBroker(t, b)
	for range waiters {
		if err := <-errs; !errors.Is(err, queue.ErrClosed) {
			t.Errorf("Receive() = %v, want %v", err, queue.ErrClosed)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatalf("db.Close() = %v", err)
	}
	goleak.VerifyNone(t)
}

func TestEmptyBody(t *testing.T) {
	ctx := context.Background()
	b := newBroker(t, openDB(t, filepath.Join(t.TempDir(), "idvault.db")), queue.Options{})
	defer closeBroker(t, b)
	for _, body := range [][]byte{nil, {}} {
		if err := b.Publish(ctx, "t", body); err != nil {
			t.Fatalf("Publish(%q) = %v, want nil", body, err)
		}
		d := receive(t, b, "t")
		if len(d.Body()) != 0 {
			t.Errorf("Body() = %q, want empty", d.Body())
		}
		if err := d.Ack(ctx); err != nil {
			t.Errorf("Ack() = %v, want nil", err)
		}
	}
}

// TestOneConnection runs publishers and consumers that ack and nack at once
// on a database pool of a single connection. A transaction that asked the
// pool for a second connection (to prepare a statement, say) would wait for
// itself forever; here every call must still return.
func TestOneConnection(t *testing.T) {
	const (
		publishers = 3
		consumers  = 3
		perPub     = 50
		total      = publishers * perPub
	)
	db := openDB(t, filepath.Join(t.TempDir(), "idvault.db"))
	db.SetMaxOpenConns(1)
	b := newBroker(t, db, queue.Options{Visibility: time.Minute, Backoff: time.Millisecond, MaxBackoff: time.Millisecond})
	defer closeBroker(t, b)
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()

	var (
		mu    sync.Mutex
		acked = make(map[string]int)
		errs  []error
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
				// Every other message is nacked once, then acked.
				if body := d.Body(); d.Attempt() == 1 && body[len(body)-1]%2 == 0 {
					if err := d.Nack(ctx); err != nil {
						fail(fmt.Errorf("Nack() = %w", err))
						return
					}
					continue
				}
				if err := d.Ack(ctx); err != nil {
					fail(fmt.Errorf("Ack() = %w", err))
					return
				}
				mu.Lock()
				acked[string(d.Body())]++
				if len(acked) == total {
					cancel()
				}
				mu.Unlock()
			}
		})
	}
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(2 * patience):
		t.Fatalf("publishers and consumers still running after %v on one connection", 2*patience)
	}
	for _, err := range errs {
		t.Error(err)
	}
	if len(acked) != total {
		t.Errorf("acked %d distinct messages, want %d", len(acked), total)
	}
	for body, n := range acked {
		if n != 1 {
			t.Errorf("message %q acked %d times, want 1", body, n)
		}
	}
}
