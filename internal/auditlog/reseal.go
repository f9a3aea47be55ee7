package auditlog

import (
	"context"
	"errors"
	"fmt"

	"github.com/idvault/idvault/internal/store"
)

// SealedCollections are the log's collections whose record bodies are sealed
// like any record body (for store.BodyPlace), so that a migration between
// sealing schemes (keyring.Migrate) re-seals them with the others. Batch
// records hold leaves sealed one by one: ResealLeaves re-seals those.
var SealedCollections = []string{collHead, collCheckpoint, collID, collTile, collTenant}

// ResealLeaves re-seals, in every retained batch of tenant's log, each leaf
// for which old reports true (sealed under a scheme being retired), with the
// barrier's current scheme. A leaf's bytes, and so the tree and every
// checkpoint, stay the same. It returns how many leaves it re-sealed; run it
// again after a conflict with a concurrent writer (batches are written once,
// so there is none in practice) until it returns 0.
func (l *Log) ResealLeaves(ctx context.Context, tenant string, old func(sealed []byte) bool) (int, error) {
	if err := checkTenant(tenant); err != nil {
		return 0, fmt.Errorf("reseal: %w: %w", store.ErrInvalid, err)
	}
	total := 0
	q := store.Query{Collection: collBatch, Tenant: tenant, Limit: 50}
	for {
		page, err := l.backend.Query(ctx, q)
		if err != nil {
			return total, fmt.Errorf("reseal: %w", err)
		}
		for _, rec := range page.Records {
			items, ok := splitBatch(rec.Body)
			if !ok {
				return total, fmt.Errorf("reseal batch %s: %w", rec.ID, ErrTampered)
			}
			n := 0
			body := make([]byte, 0, len(rec.Body))
			for _, sealed := range items {
				if old(sealed) {
					plain, err := l.barrier.Open(ctx, leafPlace(tenant), sealed)
					if err != nil {
						return total, fmt.Errorf("reseal batch %s: %w: %w", rec.ID, ErrTampered, err)
					}
					if sealed, err = l.barrier.Seal(ctx, leafPlace(tenant), plain); err != nil {
						return total, fmt.Errorf("reseal batch %s: %w", rec.ID, err)
					}
					n++
				}
				body = appendLen32(body, sealed)
			}
			if n == 0 {
				continue
			}
			rec.Body = body
			if _, err := l.backend.Update(ctx, rec); err != nil && !errors.Is(err, store.ErrConflict) {
				return total, fmt.Errorf("reseal batch %s: %w", rec.ID, err)
			}
			total += n
		}
		if page.Next == "" {
			return total, nil
		}
		q.Cursor = page.Next
	}
}
