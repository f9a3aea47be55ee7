package store_test

import (
	"context"
	"errors"
	"testing"

	"github.com/idvault/idvault/internal/queue"
	"github.com/idvault/idvault/internal/store"
	"github.com/idvault/idvault/internal/testenv"
)

// TestStamp: every write to a stamped collection made with Stamp moves the
// stamp, in the same transaction (a failed write moves nothing); a write to
// another collection, or another tenant's, leaves it; of two writes that
// bumped the stamp from the same version, the second fails with
// StampConflict and commits nothing, and its retry succeeds.
func TestStamp(t *testing.T) {
	env := testenv.Open(t, queue.Options{})
	ctx := context.Background()
	v, err := store.NewView(env.Backend, env.Barrier, "acme")
	if err != nil {
		t.Fatal(err)
	}
	other, err := store.NewView(env.Backend, env.Barrier, "other")
	if err != nil {
		t.Fatal(err)
	}
	stamp := func(v *store.View) int64 {
		t.Helper()
		n, err := store.StampOf(ctx, v, "things")
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := stamp(v); n != 0 {
		t.Fatalf("stamp before any write = %d, want 0", n)
	}
	if _, err := v.Put(store.Stamp(ctx, v, "things"), "things", "a", nil, map[string]string{}); err != nil {
		t.Fatal(err)
	}
	first := stamp(v)
	if first == 0 {
		t.Fatal("stamp after a stamped create = 0, want moved")
	}
	rec, err := v.Put(ctx, "things", "taken", nil, map[string]string{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Put(store.Stamp(ctx, v, "things"), "things", "taken", nil, map[string]string{}); !errors.Is(err, store.ErrConflict) || store.StampConflict(err) {
		t.Fatalf("Put(taken) = %v, want the record's own conflict", err)
	}
	if n := stamp(v); n != first {
		t.Fatalf("stamp after a failed write = %d, want %d", n, first)
	}
	if _, err := v.Put(store.Stamp(ctx, v, "elsewhere"), "things", "b", nil, map[string]string{}); err != nil {
		t.Fatal(err)
	}
	if _, err := other.Put(store.Stamp(ctx, other, "things"), "things", "c", nil, map[string]string{}); err != nil {
		t.Fatal(err)
	}
	if n := stamp(v); n != first {
		t.Fatalf("stamp after writes to another collection and tenant = %d, want %d", n, first)
	}
	if _, err := v.Update(store.Stamp(ctx, v, "things"), "things", "taken", rec.Version, nil, map[string]string{"x": "1"}); err != nil {
		t.Fatal(err)
	}
	if err := v.Delete(store.Stamp(ctx, v, "things"), "things", "a", 0); err != nil {
		t.Fatal(err)
	}
	second := stamp(v)
	if second != first+2 {
		t.Fatalf("stamp after an update and a delete = %d, want %d", second, first+2)
	}

	// Two writers read the stamp at the same version: the one that commits
	// second conflicts on the stamp, and writes nothing.
	ctx1 := store.Stamp(ctx, v, "things")
	interfere := true
	ctx2, _ := store.Attach(ctx, "things", func(store.Write) ([]store.Write, error) {
		// The first writer commits between the second's stamp read (its
		// inner attachment, made first) and its commit.
		if interfere {
			interfere = false
			if _, err := v.Put(ctx1, "things", "d", nil, map[string]string{}); err != nil {
				t.Errorf("first writer: %v", err)
			}
		}
		return nil, nil
	})
	ctx2 = store.Stamp(ctx2, v, "things")
	_, err = v.Put(ctx2, "things", "e", nil, map[string]string{})
	if !store.StampConflict(err) {
		t.Fatalf("second writer = %v, want a stamp conflict", err)
	}
	var out map[string]string
	if _, err := v.Get(ctx, "things", "e", &out); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("record of the write that lost the stamp: %v, want none", err)
	}
	if _, err := v.Put(ctx2, "things", "e", nil, map[string]string{}); err != nil {
		t.Fatalf("retry = %v", err)
	}
	if n := stamp(v); n != second+2 {
		t.Fatalf("stamp after both writes = %d, want %d", n, second+2)
	}
}
