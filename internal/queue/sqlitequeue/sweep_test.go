package sqlitequeue

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/idvault/idvault/internal/queue"
	"github.com/idvault/idvault/internal/sqlitedb"
)

// TestSweep checks when a lease that ran out on its last attempt is
// dead-lettered: never delivered again, moved by a claim on another topic
// only once the sweep is due, and at once by a claim on its own topic that
// finds nothing else ready. Leases are made to run out by moving
// available_at into the past, and the sweep is made due or not by setting
// sweepAt, so nothing waits on the clock.
func TestSweep(t *testing.T) {
	tests := []struct {
		name string
		// claimOn is the topic of the claim made after the lease ran out;
		// sweepDue whether the periodic sweep is due then.
		claimOn  string
		sweepDue bool
		want     bool // whether the message is in the dead-letter topic after it
	}{
		{"own topic, sweep not due", "t", false, true},
		{"other topic, sweep not due", "other", false, false},
		{"other topic, sweep due", "other", true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			db, err := sqlitedb.Open(ctx, filepath.Join(t.TempDir(), "idvault.db"))
			if err != nil {
				t.Fatalf("sqlitedb.Open() = %v", err)
			}
			defer db.Close()
			b, err := New(ctx, db, queue.Options{MaxAttempts: 1})
			if err != nil {
				t.Fatalf("New() = %v", err)
			}
			defer b.Close()
			if err := b.Publish(ctx, "t", []byte("stuck")); err != nil {
				t.Fatalf("Publish() = %v", err)
			}
			first, _, err := b.claim(ctx, "t")
			if err != nil || first == nil {
				t.Fatalf("claim(t) = %v, %v, want a delivery", first, err)
			}
			if _, err := db.ExecContext(ctx, `UPDATE queue_messages SET available_at = 0`); err != nil {
				t.Fatalf("expire the lease: %v", err)
			}

			sweepAt := int64(1 << 62) // not due
			if tt.sweepDue {
				sweepAt = 0
			}
			b.sweepAt.Store(sweepAt)
			d, next, err := b.claim(ctx, tt.claimOn)
			if err != nil || d != nil {
				t.Fatalf("claim(%q) = %v, %v, want no delivery", tt.claimOn, d, err)
			}
			if next.Valid {
				t.Errorf("claim(%q): next = %d, want none pending", tt.claimOn, next.Int64)
			}

			b.sweepAt.Store(1 << 62)
			dead, _, err := b.claim(ctx, queue.DeadLetter("t"))
			if err != nil {
				t.Fatalf("claim(%q) = %v", queue.DeadLetter("t"), err)
			}
			if got := dead != nil; got != tt.want {
				t.Fatalf("claim(%q) delivered = %t, want %t", queue.DeadLetter("t"), got, tt.want)
			}
			if dead != nil && (dead.ID() != first.ID() || dead.Attempt() != 1) {
				t.Errorf("dead letter = id %s attempt %d, want id %s attempt 1", dead.ID(), dead.Attempt(), first.ID())
			}
			if again, _, err := b.claim(ctx, "t"); err != nil || again != nil {
				t.Errorf("claim(t) after the last attempt = %v, %v, want no delivery", again, err)
			}
		})
	}
}
