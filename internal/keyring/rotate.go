package keyring

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/idvault/idvault/internal/store"
)

// TenantLister calls fn with every tenant id whose data keys the keyring
// manages, store.PlatformTenant included, until fn returns an error.
type TenantLister func(ctx context.Context, fn func(tenant string) error) error

// RootUsage is one root key with its state and the number of data keys it
// wraps. Every record and file depends on a root key only through a data
// key, so a root key that wraps no data key protects nothing and can be
// retired.
type RootUsage struct {
	RootState
	Configured bool `json:"configured"`
	DataKeys   int  `json:"dataKeys"`
}

// Status returns every root key of the persisted keyring with the number of
// data keys, over all tenants, that it wraps.
func (k *Keyring) Status(ctx context.Context, tenants TenantLister) ([]RootUsage, error) {
	p, _, err := k.load(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]RootUsage, len(p.Keys))
	for i, r := range p.Keys {
		out[i] = RootUsage{RootState: r, Configured: k.Configured(r.ID)}
		n := 0
		err := tenants(ctx, func(tenant string) error {
			c, err := k.count(ctx, tenant, r.ID)
			n += c
			return err
		})
		if err != nil {
			return nil, err
		}
		out[i].DataKeys = n
	}
	return out, nil
}

func (k *Keyring) count(ctx context.Context, tenant, root string) (int, error) {
	q := store.Query{Collection: Collection, Tenant: tenant, Where: []store.Cond{{Field: "root", Op: store.Eq, Value: root}}, Limit: store.MaxLimit}
	n := 0
	for {
		page, err := k.backend.Query(ctx, q)
		if err != nil {
			return 0, fmt.Errorf("keyring: count keys: %w", err)
		}
		n += len(page.Records)
		if page.Next == "" {
			return n, nil
		}
		q.Cursor = page.Next
	}
}

// Progress is called by Rewrap after each re-wrapped data key with the
// number done so far and the number found to do (which grows as tenants
// are visited).
type Progress func(done, total int)

// Rewrap re-wraps every data key that is wrapped by a root key other than
// the primary one under the primary, and returns how many it re-wrapped. It
// is resumable by construction: a re-wrapped key no longer matches the query
// for its old root key, so a rewrap interrupted at any point continues where
// it stopped. Values sealed under the data keys are untouched. Concurrent
// rewraps are safe (each key is replaced with compare-and-swap).
func (k *Keyring) Rewrap(ctx context.Context, tenants TenantLister, progress Progress) (int, error) {
	primary, err := k.primary(ctx)
	if err != nil {
		return 0, err
	}
	p, _, err := k.load(ctx)
	if err != nil {
		return 0, err
	}
	done, total := 0, 0
	err = tenants(ctx, func(tenant string) error {
		for _, r := range p.Keys {
			if r.ID == primary.ID() {
				continue
			}
			n, err := k.count(ctx, tenant, r.ID)
			if err != nil {
				return err
			}
			total += n
			for {
				page, err := k.backend.Query(ctx, store.Query{Collection: Collection, Tenant: tenant,
					Where: []store.Cond{{Field: "root", Op: store.Eq, Value: r.ID}}, Limit: 100})
				if err != nil {
					return fmt.Errorf("keyring: rewrap: %w", err)
				}
				if len(page.Records) == 0 {
					break
				}
				for _, rec := range page.Records {
					if err := k.rewrapOne(ctx, rec, primary); err != nil {
						return err
					}
					done++
					if progress != nil {
						progress(done, total)
					}
				}
			}
		}
		return nil
	})
	return done, err
}

func (k *Keyring) rewrapOne(ctx context.Context, rec store.Record, to KEK) error {
	var kr keyRecord
	if err := json.Unmarshal(rec.Body, &kr); err != nil {
		return fmt.Errorf("keyring: key record %s/%s: %w", rec.Tenant, rec.ID, err)
	}
	from, ok := k.root(kr.Root)
	if !ok {
		return fmt.Errorf("%w: %q wraps key %s/%s", ErrUnknownKey, kr.Root, rec.Tenant, rec.ID)
	}
	place := wrapPlace(rec.Tenant, rec.ID)
	raw, err := from.Unwrap(ctx, place, kr.Wrapped)
	if err != nil {
		return fmt.Errorf("keyring: unwrap key %s/%s: %w", rec.Tenant, rec.ID, err)
	}
	kr.Wrapped, err = to.Wrap(ctx, place, raw)
	clear(raw)
	if err != nil {
		return err
	}
	kr.Root = to.ID()
	body, err := json.Marshal(kr)
	if err != nil {
		return err
	}
	rec.Body, rec.Index = body, keyIndex(rec.ID, to.ID())
	_, err = k.backend.Update(ctx, rec)
	if errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound) {
		return nil // re-wrapped or shredded meanwhile
	}
	if err != nil {
		return fmt.Errorf("keyring: rewrap %s/%s: %w", rec.Tenant, rec.ID, err)
	}
	return nil
}

// Retire marks root key id retired. It refuses the primary key and a key
// that still wraps any data key (ErrInUse). A retired key may be removed
// from the configuration; configuring it again is refused.
func (k *Keyring) Retire(ctx context.Context, id string, tenants TenantLister) error {
	n := 0
	err := tenants(ctx, func(tenant string) error {
		c, err := k.count(ctx, tenant, id)
		n += c
		return err
	})
	if err != nil {
		return err
	}
	if n > 0 {
		return fmt.Errorf("%w: %q wraps %d data keys; run idvault keys rewrap first", ErrInUse, id, n)
	}
	_, err = k.update(ctx, func(p *persisted) error {
		for i := range p.Keys {
			if p.Keys[i].ID != id {
				continue
			}
			if p.Keys[i].State == StatePrimary {
				return fmt.Errorf("keyring: %q is the primary root key; rotate to another first", id)
			}
			p.Keys[i].State = StateRetired
			return nil
		}
		return fmt.Errorf("%w: %q is not in the keyring", ErrUnknownKey, id)
	})
	return err
}
