package store

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/idvault/idvault/internal/barrier"
)

// BodyField is the field name bound into the seal of every record body.
const BodyField = "body"

// ScopedCollections lists the collections whose records are each sealed
// under a data key of their own, scoped by the record id (a session's key),
// so that shredding that key makes the record unreadable for good. Records
// of other collections are sealed under their tenant's data key.
var ScopedCollections = map[string]bool{"sessions": true, "workflowruns": true} // session.Collection and session.RunsCollection

// BodyPlace returns the place a record body is sealed for.
func BodyPlace(tenant, collection, id string) barrier.Place {
	p := barrier.Place{Tenant: tenant, Collection: collection, ID: id, Field: BodyField}
	if ScopedCollections[collection] {
		p.Scope = id
	}
	return p
}

// View is a tenant-scoped, sealing view of a Backend: the only way handlers
// and roles reach stored records. Bodies are JSON-encoded and sealed by the
// barrier with the record's place (tenant, collection, id, "body") before
// they reach the backend, and opened after they come back; the tenant is fixed
// when the view is made, like a chroot. A View is safe for concurrent use.
type View struct {
	backend Backend
	barrier barrier.Barrier
	tenant  string
}

// NewView returns the view of tenant over backend, sealing with b.
func NewView(backend Backend, b barrier.Barrier, tenant string) (*View, error) {
	if tenant == "" {
		return nil, fmt.Errorf("new view: empty tenant: %w", ErrInvalid)
	}
	return &View{backend: backend, barrier: b, tenant: tenant}, nil
}

// Tenant returns the tenant id the view is bound to.
func (v *View) Tenant() string { return v.tenant }

// Get opens the body of the record (collection, id) into out and returns the
// stored record (its Body still sealed).
func (v *View) Get(ctx context.Context, collection, id string, out any) (Record, error) {
	rec, err := v.backend.Get(ctx, collection, v.tenant, id)
	if err != nil {
		return Record{}, err
	}
	return rec, v.Decode(ctx, rec, out)
}

// Put, Update and Delete commit the writes attached to ctx (Attach) in the
// same atomic batch as their own.

// Put seals body and creates the record; it returns ErrConflict if id exists.
func (v *View) Put(ctx context.Context, collection, id string, index map[string]string, body any) (Record, error) {
	rec, err := v.seal(ctx, collection, id, index, body)
	if err != nil {
		return Record{}, err
	}
	return apply(ctx, v.backend, Write{Op: OpPut, Record: rec})
}

// Update seals body and replaces the record if its stored version is version.
func (v *View) Update(ctx context.Context, collection, id string, version int64, index map[string]string, body any) (Record, error) {
	rec, err := v.seal(ctx, collection, id, index, body)
	if err != nil {
		return Record{}, err
	}
	rec.Version = version
	return apply(ctx, v.backend, Write{Op: OpUpdate, Record: rec})
}

// Delete removes the record if its stored version is version (0: any).
func (v *View) Delete(ctx context.Context, collection, id string, version int64) error {
	_, err := apply(ctx, v.backend, Write{Op: OpDelete, Record: Record{Collection: collection, Tenant: v.tenant, ID: id, Version: version}})
	return err
}

// Sealed returns the write that Put (op OpPut) or Update (OpUpdate, at
// version) would make, without making it: for writes that must commit with
// another change (Attach), in the same batch.
func (v *View) Sealed(ctx context.Context, op WriteOp, collection, id string, version int64, index map[string]string, body any) (Write, error) {
	if op != OpPut && op != OpUpdate {
		return Write{}, fmt.Errorf("seal %s/%s: op %v: %w", collection, id, op, ErrInvalid)
	}
	rec, err := v.seal(ctx, collection, id, index, body)
	if err != nil {
		return Write{}, err
	}
	rec.Version = version
	return Write{Op: op, Record: rec}, nil
}

// Query runs q within the view's tenant (q.Tenant is overwritten). Open each
// record's body with Decode.
func (v *View) Query(ctx context.Context, q Query) (Page, error) {
	q.Tenant = v.tenant
	return v.backend.Query(ctx, q)
}

// Each runs q within the view's tenant and calls fn for every matching
// record, page after page, until the last page or until fn returns an
// error (which Each returns). Open each record's body with Decode.
func (v *View) Each(ctx context.Context, q Query, fn func(Record) error) error {
	for {
		page, err := v.Query(ctx, q)
		if err != nil {
			return fmt.Errorf("query %s: %w", q.Collection, err)
		}
		for _, rec := range page.Records {
			if err := fn(rec); err != nil {
				return err
			}
		}
		if page.Next == "" {
			return nil
		}
		q.Cursor = page.Next
	}
}

// Decode opens the sealed body of rec, which must belong to the view's tenant,
// into out. A body that fails to open yields barrier.ErrOpen.
func (v *View) Decode(ctx context.Context, rec Record, out any) error {
	if rec.Tenant != v.tenant {
		return fmt.Errorf("decode %s/%s: record of another tenant: %w", rec.Collection, rec.ID, ErrInvalid)
	}
	plain, err := v.barrier.Open(ctx, BodyPlace(v.tenant, rec.Collection, rec.ID), rec.Body)
	if err != nil {
		return fmt.Errorf("open %s/%s: %w", rec.Collection, rec.ID, err)
	}
	if err := json.Unmarshal(plain, out); err != nil {
		return fmt.Errorf("decode %s/%s: %w", rec.Collection, rec.ID, err)
	}
	return nil
}

func (v *View) seal(ctx context.Context, collection, id string, index map[string]string, body any) (Record, error) {
	plain, err := json.Marshal(body)
	if err != nil {
		return Record{}, fmt.Errorf("encode %s/%s: %w", collection, id, err)
	}
	sealed, err := v.barrier.Seal(ctx, BodyPlace(v.tenant, collection, id), plain)
	if err != nil {
		return Record{}, fmt.Errorf("seal %s/%s: %w", collection, id, err)
	}
	return Record{Collection: collection, Tenant: v.tenant, ID: id, Index: index, Body: sealed}, nil
}
