package lease_test

import (
	"context"
	"errors"
	"github.com/idvault/idvault/internal/queue"
	"github.com/idvault/idvault/internal/testenv"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/idvault/idvault/internal/barrier"
	"github.com/idvault/idvault/internal/lease"
	"github.com/idvault/idvault/internal/store"
	"github.com/idvault/idvault/internal/store/sqlite"
	"github.com/idvault/idvault/internal/testenv/testclock"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// patience bounds every wait for something that must happen.
const patience = 20 * time.Second

var t0 = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

type fixture struct {
	backend *sqlite.Store
	barrier *barrier.AESGCM
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	e := testenv.Open(t, queue.Options{})
	backend, bar := e.Backend, e.Barrier
	return &fixture{backend: backend, barrier: bar}
}

// manager returns a Manager reading clk; tests give each its own, like
// separate processes.
func (f *fixture) manager(t *testing.T, holder string, ttl time.Duration, clk *testclock.Clock) *lease.Manager {
	t.Helper()
	m, err := lease.NewManager(f.backend, f.barrier, holder, ttl, clk.Now, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("NewManager(%q) = %v", holder, err)
	}
	return m
}

// holderOf returns the holder named in the stored lease record.
func (f *fixture) holderOf(name string) (string, error) {
	v, err := store.NewView(f.backend, f.barrier, store.PlatformTenant)
	if err != nil {
		return "", err
	}
	var rec struct {
		Holder string `json:"holder"`
	}
	if _, err := v.Get(context.Background(), lease.Collection, name, &rec); err != nil {
		return "", err
	}
	return rec.Holder, nil
}

func (f *fixture) holder(t *testing.T, name string) string {
	t.Helper()
	h, err := f.holderOf(name)
	if err != nil {
		t.Fatalf("Get(lease %s) = %v", name, err)
	}
	return h
}

func tryAcquire(t *testing.T, m *lease.Manager, who, name string, want bool) {
	t.Helper()
	got, err := m.TryAcquire(context.Background(), name)
	if err != nil || got != want {
		t.Fatalf("%s.TryAcquire(%q) = %v, %v, want %v, nil", who, name, got, err, want)
	}
}

// acquireEventually calls TryAcquire until it succeeds: a concurrent
// renewal by the old holder may win one compare-and-swap, never every one.
func acquireEventually(t *testing.T, m *lease.Manager, who, name string) {
	t.Helper()
	deadline := time.Now().Add(patience)
	for {
		ok, err := m.TryAcquire(context.Background(), name)
		if err != nil {
			t.Fatalf("%s.TryAcquire(%q) = %v", who, name, err)
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s.TryAcquire(%q) = false for %v, want true", who, name, patience)
		}
	}
}

func TestTryAcquire(t *testing.T) {
	const ttl = time.Minute
	f := newFixture(t)
	clk := testclock.New(t0)
	a := f.manager(t, "a", ttl, clk)
	b := f.manager(t, "b", ttl, clk)

	tryAcquire(t, a, "a", "job", true)
	tryAcquire(t, b, "b", "job", false)
	tryAcquire(t, b, "b", "other", true) // leases are independent

	clk.Advance(ttl / 2)
	tryAcquire(t, a, "a", "job", true) // renewal: valid until t0 + 1.5 ttl
	clk.Advance(ttl/2 + time.Second)
	tryAcquire(t, b, "b", "job", false) // past the first term, inside the renewed one
	clk.Advance(ttl / 2)
	tryAcquire(t, b, "b", "job", true) // a stopped renewing: b takes over
	if got := f.holder(t, "job"); got != "b" {
		t.Errorf("holder of job after takeover = %q, want b", got)
	}
	tryAcquire(t, a, "a", "job", false)
}

func TestTryAcquireExactExpiry(t *testing.T) {
	const ttl = time.Minute
	f := newFixture(t)
	clk := testclock.New(t0)
	a := f.manager(t, "a", ttl, clk)
	b := f.manager(t, "b", ttl, clk)
	tryAcquire(t, a, "a", "job", true)
	clk.Advance(ttl - time.Nanosecond)
	tryAcquire(t, b, "b", "job", false)
	clk.Advance(time.Nanosecond)
	tryAcquire(t, b, "b", "job", true)
}

func TestRelease(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	clk := testclock.New(t0)
	a := f.manager(t, "a", time.Hour, clk)
	b := f.manager(t, "b", time.Hour, clk)

	t.Run("absent", func(t *testing.T) {
		if err := a.Release(ctx, "never-taken"); err != nil {
			t.Errorf("Release(never taken) = %v, want nil", err)
		}
	})

	t.Run("frees at once", func(t *testing.T) {
		tryAcquire(t, a, "a", "job", true)
		tryAcquire(t, b, "b", "job", false)
		if err := a.Release(ctx, "job"); err != nil {
			t.Fatalf("a.Release(job) = %v, want nil", err)
		}
		tryAcquire(t, b, "b", "job", true)
	})

	t.Run("not holder", func(t *testing.T) {
		if err := a.Release(ctx, "job"); err != nil {
			t.Fatalf("a.Release(job held by b) = %v, want nil", err)
		}
		if got := f.holder(t, "job"); got != "b" {
			t.Errorf("holder after a.Release(job held by b) = %q, want b", got)
		}
		tryAcquire(t, a, "a", "job", false)
	})
}

// TestRunExclusive checks that fn runs only while its manager holds the
// lease, and that its context is cancelled once another holder takes the
// lease over.
func TestRunExclusive(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) }) // runs last, after the database is closed
	// The renewal ticker runs on real time (ttl/3); expiry is judged by the
	// injected clocks, so a short ttl keeps the test fast without making it
	// depend on timing.
	const ttl = 30 * time.Millisecond
	f := newFixture(t)
	clkA, clkB := testclock.New(t0), testclock.New(t0) // like two processes
	a := f.manager(t, "a", ttl, clkA)
	b := f.manager(t, "b", ttl, clkB)

	tryAcquire(t, b, "b", "job", true)
	var released atomic.Bool

	type run struct {
		holder      string
		err         error
		releasedByB bool
	}
	started := make(chan run, 10)
	stopped := make(chan error, 10)
	var runs atomic.Int32
	fn := func(ctx context.Context) error {
		runs.Add(1)
		h, err := f.holderOf("job")
		started <- run{holder: h, err: err, releasedByB: released.Load()}
		<-ctx.Done()
		stopped <- ctx.Err()
		return ctx.Err()
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- a.RunExclusive(ctx, "job", fn) }()

	// a waits while b holds the lease; b's release lets it in.
	released.Store(true)
	if err := b.Release(context.Background(), "job"); err != nil {
		t.Fatalf("b.Release(job) = %v", err)
	}
	timeout := time.After(patience)
	select {
	case r := <-started:
		if !r.releasedByB || r.holder != "a" || r.err != nil {
			t.Errorf("fn started with b released = %v, holder %q, %v, want true, a, nil", r.releasedByB, r.holder, r.err)
		}
	case <-timeout:
		t.Fatalf("fn did not start within %v of b releasing the lease", patience)
	}

	// b's clock passes a's term: b takes over and a's fn is cancelled.
	clkB.Advance(time.Hour)
	acquireEventually(t, b, "b", "job")
	select {
	case err := <-stopped:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("fn ctx.Err() = %v, want context.Canceled", err)
		}
	case <-timeout:
		t.Fatalf("fn was not cancelled within %v of b taking the lease", patience)
	}
	if got := f.holder(t, "job"); got != "b" {
		t.Errorf("holder after a lost the lease = %q, want b (a's release must not drop b's lease)", got)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("RunExclusive() after cancel = %v, want nil", err)
		}
	case <-time.After(patience):
		t.Fatalf("RunExclusive() did not return within %v of cancel", patience)
	}
	if n := runs.Load(); n != 1 {
		t.Errorf("fn ran %d times, want 1 (b held the lease after a lost it)", n)
	}
}

// TestRunExclusiveCancel checks that cancelling ctx stops fn and releases
// the lease, so a standby takes over at once.
func TestRunExclusiveCancel(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) }) // runs last, after the database is closed
	const ttl = time.Hour
	f := newFixture(t)
	clk := testclock.New(t0)
	a := f.manager(t, "a", ttl, clk)
	b := f.manager(t, "b", ttl, clk)

	started := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- a.RunExclusive(ctx, "job", func(ctx context.Context) error {
			close(started)
			<-ctx.Done()
			return nil
		})
	}()
	select {
	case <-started:
	case <-time.After(patience):
		t.Fatalf("fn did not start within %v", patience)
	}
	tryAcquire(t, b, "b", "job", false)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("RunExclusive() after cancel = %v, want nil", err)
		}
	case <-time.After(patience):
		t.Fatalf("RunExclusive() did not return within %v of cancel", patience)
	}
	tryAcquire(t, b, "b", "job", true)
}
