package store

import (
	"context"
	"errors"
	"fmt"
)

// StampsCollection holds the stamps of stamped collections: per tenant, one
// record per collection, whose id is the collection's name and whose
// version changes with every write to the collection made with Stamp. A
// reader that keeps what it derived from such a collection (the tenant's
// webhook subscriptions, its active workflow versions) keeps the stamp's
// version with it, and reads the stamp, one Get, instead of querying the
// collection again, until the version changes. The body holds nothing.
const StampsCollection = "stamps"

// Stamp returns ctx carrying the bump of the stamp of collection in v's
// tenant, which commits in the same transaction as the next write to
// collection made with ctx (Attach). The bump is a compare-and-swap on the
// stamp as read when that write is made: of two concurrent stamped writes,
// one commits and the other fails with a conflict that StampConflict
// reports, which the writer retries like any compare-and-swap. Every write
// to a stamped collection MUST carry its stamp, or readers keep what it
// changed out of date.
func Stamp(ctx context.Context, v *View, collection string) context.Context {
	ctx, _ = Attach(ctx, collection, func(Write) ([]Write, error) {
		rec, err := v.backend.Get(ctx, StampsCollection, v.tenant, collection)
		op, version := OpUpdate, rec.Version
		if errors.Is(err, ErrNotFound) {
			op, version = OpPut, 0
		} else if err != nil {
			return nil, fmt.Errorf("stamp %s: %w", collection, err)
		}
		w, err := v.Sealed(ctx, op, StampsCollection, collection, version, nil, struct{}{})
		if err != nil {
			return nil, fmt.Errorf("stamp %s: %w", collection, err)
		}
		return []Write{w}, nil
	})
	return ctx
}

// StampConflict reports whether err is the conflict of a stamp's bump, not
// of the write it rode with: a write in a batch after the first that lost
// its compare-and-swap.
func StampConflict(err error) bool {
	var be *BatchError
	return errors.As(err, &be) && be.Index > 0 && errors.Is(err, ErrConflict)
}

// StampOf returns the version of the stamp of collection in v's tenant: it
// changes with every write made with Stamp, and is 0 while none was made.
func StampOf(ctx context.Context, v *View, collection string) (int64, error) {
	rec, err := v.backend.Get(ctx, StampsCollection, v.tenant, collection)
	if errors.Is(err, ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("stamp %s: %w", collection, err)
	}
	return rec.Version, nil
}
