package store

import (
	"context"
	"sync"
)

// Attached holds writes that ride along with a View write, so that they
// commit in the same atomic batch as it. This is how an audit event reaches
// the outbox in the same transaction as the change it describes.
//
// The writes are made once, by the first View write (Put, Update or Delete)
// to the attachment's collection made with a context carrying it that
// succeeds; a write that fails leaves the attachment pending, so a
// compare-and-swap retry carries it again. A caller whose change wrote no
// such record commits the attachment on its own with Commit.
//
// Attachments nest: a context may carry several (an audit event attached
// by the request, the webhook deliveries attached by the handler), and a
// write carries every pending one that matches its collection, all in the
// same batch.
type Attached struct {
	mu         sync.Mutex
	collection string
	make       func(main Write) ([]Write, error)
	carried    bool
	// outer is the attachment the context carried before this one.
	outer *Attached
}

type attachedKey struct{}

// Attach returns ctx carrying an attachment for the next View write to
// collection (to any collection when empty). make returns the writes to
// commit with it; it gets that write, so that an event can name the record a
// create made (Commit passes the zero Write).
func Attach(ctx context.Context, collection string, make func(main Write) ([]Write, error)) (context.Context, *Attached) {
	outer, _ := ctx.Value(attachedKey{}).(*Attached)
	a := &Attached{collection: collection, make: make, outer: outer}
	return context.WithValue(ctx, attachedKey{}, a), a
}

// Commit writes the attachment on its own, in one batch, unless a View write
// has already carried it.
func (a *Attached) Commit(ctx context.Context, backend Backend) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.carried {
		return nil
	}
	writes, err := a.make(Write{})
	if err != nil {
		return err
	}
	if _, err := backend.Apply(ctx, writes); err != nil {
		return err
	}
	a.carried = true
	return nil
}

// apply performs w, with every attachment of ctx still pending for w's
// collection, and returns the record w wrote. The attachments are locked
// from the innermost outwards, always in that order, so writes sharing an
// outer attachment cannot deadlock.
func apply(ctx context.Context, backend Backend, w Write) (Record, error) {
	var pending []*Attached
	defer func() {
		for _, a := range pending {
			a.mu.Unlock()
		}
	}()
	for a, _ := ctx.Value(attachedKey{}).(*Attached); a != nil; a = a.outer {
		a.mu.Lock()
		if a.carried || (a.collection != "" && a.collection != w.Record.Collection) {
			a.mu.Unlock()
			continue
		}
		pending = append(pending, a)
	}
	if len(pending) == 0 {
		return applyOne(ctx, backend, w)
	}
	writes := []Write{w}
	for _, a := range pending {
		extra, err := a.make(w)
		if err != nil {
			return Record{}, err
		}
		writes = append(writes, extra...)
	}
	recs, err := backend.Apply(ctx, writes)
	if err != nil {
		return Record{}, err
	}
	for _, a := range pending {
		a.carried = true
	}
	return recs[0], nil
}

func applyOne(ctx context.Context, backend Backend, w Write) (Record, error) {
	switch w.Op {
	case OpPut:
		return backend.Put(ctx, w.Record)
	case OpUpdate:
		return backend.Update(ctx, w.Record)
	default:
		r := w.Record
		return r, backend.Delete(ctx, r.Collection, r.Tenant, r.ID, r.Version)
	}
}
