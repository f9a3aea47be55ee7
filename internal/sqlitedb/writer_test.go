package sqlitedb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
)

// openTest opens a database in a temporary directory with one table, t.
func openTest(tb testing.TB) *DB {
	tb.Helper()
	db, err := Open(tb.Context(), filepath.Join(tb.TempDir(), "w.db"))
	if err != nil {
		tb.Fatalf("Open() = %v", err)
	}
	tb.Cleanup(func() {
		if err := db.Close(); err != nil {
			tb.Errorf("Close() = %v", err)
		}
	})
	if _, err := db.ExecContext(tb.Context(), `CREATE TABLE t (k TEXT PRIMARY KEY)`); err != nil {
		tb.Fatalf("create table: %v", err)
	}
	return db
}

func insert(k string) func(context.Context, *sql.Tx) error {
	return func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO t (k) VALUES (?)`, k)
		return err
	}
}

// stored returns whether row k is committed, read on a pooled connection.
func stored(tb testing.TB, db *DB, k string) bool {
	tb.Helper()
	var n int
	if err := db.QueryRowContext(tb.Context(), `SELECT count(*) FROM t WHERE k = ?`, k).Scan(&n); err != nil {
		tb.Fatalf("read %s: %v", k, err)
	}
	return n == 1
}

// batch holds the writer on a first call until every one of calls is queued
// behind it, runs queued (if not nil), then lets them run in the next
// transaction. It returns each call's result, in order.
func batch(t *testing.T, db *DB, calls []func() error, queued func()) []error {
	t.Helper()
	hold, held := make(chan struct{}), make(chan struct{})
	first := make(chan error, 1)
	go func() {
		first <- db.Write(t.Context(), func(ctx context.Context, tx *sql.Tx) error {
			close(held)
			<-hold
			return insert("first")(ctx, tx)
		})
	}()
	<-held
	errs := make([]error, len(calls))
	var wg sync.WaitGroup
	for i, call := range calls {
		wg.Go(func() { errs[i] = call() })
	}
	for db.commits.Queued() < len(calls) {
		runtime.Gosched()
	}
	if queued != nil {
		queued()
	}
	close(hold)
	wg.Wait()
	if err := <-first; err != nil {
		t.Fatalf("first Write() = %v, want nil", err)
	}
	return errs
}

// TestWritesQueuedTogetherShareOneTransaction checks that calls queued
// while a commit runs all run in the next transaction, and all commit.
func TestWritesQueuedTogetherShareOneTransaction(t *testing.T) {
	db := openTest(t)
	const n = 10
	var mu sync.Mutex
	txs := map[*sql.Tx]int{}
	calls := make([]func() error, n)
	for i := range calls {
		calls[i] = func() error {
			return db.Write(t.Context(), func(ctx context.Context, tx *sql.Tx) error {
				mu.Lock()
				txs[tx]++
				mu.Unlock()
				return insert(fmt.Sprint("k", i))(ctx, tx)
			})
		}
	}
	for i, err := range batch(t, db, calls, nil) {
		if err != nil {
			t.Errorf("Write(k%d) = %v, want nil", i, err)
		}
	}
	if len(txs) != 1 {
		t.Errorf("%d queued calls ran in %d transactions, want 1: %v", n, len(txs), txs)
	}
	for i := range n {
		if !stored(t, db, fmt.Sprint("k", i)) {
			t.Errorf("k%d not committed", i)
		}
	}
}

// TestFailedWriteRollsBackOnlyItself checks that a call failing in a shared
// transaction leaves nothing of its own writes and nothing of the others'
// undone: its savepoint alone is rolled back.
func TestFailedWriteRollsBackOnlyItself(t *testing.T) {
	db := openTest(t)
	boom := errors.New("boom")
	dup := func() error { // fails on a constraint after a first insert
		return db.Write(t.Context(), func(ctx context.Context, tx *sql.Tx) error {
			if err := insert("dup-a")(ctx, tx); err != nil {
				return err
			}
			return insert("dup-a")(ctx, tx)
		})
	}
	errs := batch(t, db, []func() error{
		func() error { return db.Write(t.Context(), insert("before")) },
		func() error {
			return db.Write(t.Context(), func(ctx context.Context, tx *sql.Tx) error {
				if err := insert("failed")(ctx, tx); err != nil {
					return err
				}
				return boom
			})
		},
		dup,
		func() error { return db.Write(t.Context(), insert("after")) },
	}, nil)
	if errs[0] != nil || errs[3] != nil {
		t.Errorf("Write(before), Write(after) = %v, %v; want nil, nil", errs[0], errs[3])
	}
	if !errors.Is(errs[1], boom) {
		t.Errorf("failing Write() = %v, want %v", errs[1], boom)
	}
	if errs[2] == nil {
		t.Errorf("Write(duplicate key) = nil, want a constraint error")
	}
	for k, want := range map[string]bool{"before": true, "after": true, "first": true, "failed": false, "dup-a": false} {
		if got := stored(t, db, k); got != want {
			t.Errorf("row %s stored = %v, want %v", k, got, want)
		}
	}
}

// TestLoneFailedWriteKeepsNothing checks a call that fails alone.
func TestLoneFailedWriteKeepsNothing(t *testing.T) {
	db := openTest(t)
	boom := errors.New("boom")
	err := db.Write(t.Context(), func(ctx context.Context, tx *sql.Tx) error {
		if err := insert("x")(ctx, tx); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Write() = %v, want %v", err, boom)
	}
	if stored(t, db, "x") {
		t.Errorf("row of a failed Write committed")
	}
	if err := db.Write(t.Context(), insert("y")); err != nil || !stored(t, db, "y") {
		t.Errorf("Write after a failed one = %v, stored %v; want nil, true", err, stored(t, db, "y"))
	}
}

// TestCancelledCallerIsSkipped checks that a caller that gives up while
// queued gets its context's error and its function never runs, while the
// others commit.
func TestCancelledCallerIsSkipped(t *testing.T) {
	db := openTest(t)
	ctx, cancel := context.WithCancel(t.Context())
	ran := false
	errs := batch(t, db, []func() error{
		func() error {
			return db.Write(ctx, func(ctx context.Context, tx *sql.Tx) error {
				ran = true
				return insert("cancelled")(ctx, tx)
			})
		},
		func() error { return db.Write(t.Context(), insert("other")) },
	}, cancel)
	if !errors.Is(errs[0], context.Canceled) || ran {
		t.Errorf("cancelled Write() = %v (ran %v), want %v without running", errs[0], ran, context.Canceled)
	}
	if errs[1] != nil || !stored(t, db, "other") {
		t.Errorf("other Write() = %v, stored %v; want nil, true", errs[1], stored(t, db, "other"))
	}
}

// TestCancelWhileRunningInterruptsNothing cancels a caller's context while
// its function runs: the statements it runs after still succeed (an
// interrupted statement would roll back the shared transaction), and the
// call commits.
func TestCancelWhileRunningInterruptsNothing(t *testing.T) {
	db := openTest(t)
	ctx, cancel := context.WithCancel(t.Context())
	errs := batch(t, db, []func() error{
		func() error {
			return db.Write(ctx, func(ctx context.Context, tx *sql.Tx) error {
				cancel()
				return insert("late")(ctx, tx)
			})
		},
		func() error { return db.Write(t.Context(), insert("other")) },
	}, nil)
	for i, err := range errs {
		if err != nil {
			t.Errorf("Write #%d = %v, want nil", i, err)
		}
	}
	if !stored(t, db, "late") || !stored(t, db, "other") {
		t.Errorf("rows late, other stored = %v, %v; want both", stored(t, db, "late"), stored(t, db, "other"))
	}
}

// TestPanicFailsTheSharedTransaction checks that a panicking function
// panics on its own caller's goroutine and fails every call sharing its
// transaction, none of which keeps anything.
func TestPanicFailsTheSharedTransaction(t *testing.T) {
	db := openTest(t)
	errs := batch(t, db, []func() error{
		func() error { return db.Write(t.Context(), insert("a")) },
		func() (err error) {
			defer func() {
				if p := recover(); p != nil {
					err = fmt.Errorf("panicked: %v", p)
				}
			}()
			return db.Write(t.Context(), func(context.Context, *sql.Tx) error { panic("kaboom") })
		},
	}, nil)
	if errs[0] == nil {
		t.Errorf("Write sharing a panicking one = nil, want an error")
	}
	if errs[1] == nil || errs[1].Error() != "panicked: kaboom" {
		t.Errorf("panicking Write = %v, want the panic raised again", errs[1])
	}
	if stored(t, db, "a") {
		t.Errorf("row a committed in a transaction whose call panicked")
	}
	if err := db.Write(t.Context(), insert("b")); err != nil || !stored(t, db, "b") {
		t.Errorf("Write after a panic = %v, stored %v; want nil, true", err, stored(t, db, "b"))
	}
}

// TestWriteAfterClose checks that a closed database refuses writes.
func TestWriteAfterClose(t *testing.T) {
	db, err := Open(t.Context(), filepath.Join(t.TempDir(), "w.db"))
	if err != nil {
		t.Fatalf("Open() = %v", err)
	}
	if err := db.Write(t.Context(), func(context.Context, *sql.Tx) error { return nil }); err != nil {
		t.Fatalf("Write() = %v, want nil", err)
	}
	if err := db.Close(); err != nil {
		t.Fatalf("Close() = %v", err)
	}
	if err := db.Write(t.Context(), func(context.Context, *sql.Tx) error { return nil }); err == nil {
		t.Errorf("Write after Close = nil, want an error")
	}
}
