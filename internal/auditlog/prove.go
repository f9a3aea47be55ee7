package auditlog

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/idvault/idvault/internal/store"
)

// Prove returns the proof that event eventID is in tenant's log, against
// tenant's latest checkpoint. If no checkpoint covers the event yet, Prove
// signs one first. The proof holds the event (personal data). It returns
// store.ErrNotFound for an event not in the log (or pruned).
func (l *Log) Prove(ctx context.Context, tenant, eventID string) (InclusionProof, error) {
	if err := checkTenant(tenant); err != nil || eventID == "" || len(eventID) > MaxIDLen {
		return InclusionProof{}, fmt.Errorf("prove: tenant %q, event %q: %w", tenant, eventID, store.ErrInvalid)
	}
	rec, err := l.backend.Get(ctx, collID, tenant, eventID)
	if err != nil {
		return InclusionProof{}, fmt.Errorf("prove event %s: %w", eventID, err)
	}
	plain, err := l.open(ctx, rec)
	if err != nil || len(plain) != 8 || int64(binary.BigEndian.Uint64(plain)) < 0 {
		return InclusionProof{}, fmt.Errorf("prove event %s: position record: %w", eventID, ErrTampered)
	}
	pos := int64(binary.BigEndian.Uint64(plain))
	b, ok, err := l.findBatch(ctx, tenant, pos, Filter{})
	if err != nil {
		return InclusionProof{}, fmt.Errorf("prove event %s: %w", eventID, err)
	}
	if !ok || pos < b.start {
		return InclusionProof{}, fmt.Errorf("prove event %s: position %d is not stored: %w", eventID, pos, store.ErrNotFound)
	}
	lf, leaf, err := l.openItem(ctx, tenant, b, int(pos-b.start))
	if err != nil {
		return InclusionProof{}, fmt.Errorf("prove event %s: %w", eventID, err)
	}
	if lf.ID != eventID {
		return InclusionProof{}, fmt.Errorf("prove event %s: position %d holds another event: %w", eventID, pos, ErrTampered)
	}
	signed, cp, err := l.covering(ctx, tenant, pos)
	if err != nil {
		return InclusionProof{}, fmt.Errorf("prove event %s: %w", eventID, err)
	}
	tree := tlog.Tree{N: cp.Size, Hash: cp.Root}
	proof, err := tlog.ProveRecord(cp.Size, pos, tlog.TileHashReader(tree, l.tileReader(ctx, tenant)))
	if err == nil {
		err = tlog.CheckRecord(proof, cp.Size, cp.Root, pos, tlog.RecordHash(leaf))
	}
	if err != nil {
		return InclusionProof{}, fmt.Errorf("prove event %s: %w: %w", eventID, ErrTampered, err)
	}
	return InclusionProof{Tenant: tenant, Index: pos, Leaf: leaf, Checkpoint: string(signed), Hashes: proof}, nil
}

// covering returns tenant's latest checkpoint, signing one first if it does
// not cover position pos.
func (l *Log) covering(ctx context.Context, tenant string, pos int64) ([]byte, Checkpoint, error) {
	h, _, err := l.loadHead(ctx, tenant)
	if err != nil {
		return nil, Checkpoint{}, err
	}
	if h.Checkpoint <= pos {
		unlock := l.lock(tenant)
		h, err = l.signPending(ctx, tenant)
		unlock()
		if err != nil {
			return nil, Checkpoint{}, err
		}
		if h.Checkpoint <= pos {
			return nil, Checkpoint{}, fmt.Errorf("position %d beyond the log's %d leaves: %w", pos, h.Size, ErrTampered)
		}
	}
	return l.storedCheckpoint(ctx, tenant, h.Checkpoint)
}

// signPending signs a checkpoint of tenant's head if leaves follow the last
// one, and returns the head; the caller holds the tenant's lock.
func (l *Log) signPending(ctx context.Context, tenant string) (head, error) {
	h, ver, err := l.loadHead(ctx, tenant)
	if err != nil || h.Size == h.Checkpoint {
		return h, err
	}
	h, err = l.signHead(ctx, tenant, h, ver)
	if err != nil {
		return head{}, err
	}
	l.noteDirty(tenant, h)
	return h, nil
}

// Consistency returns the proof that tenant's log at its stored checkpoint
// of size to (0: the latest) extends its log at the stored checkpoint of
// size from. It returns store.ErrNotFound if no checkpoint of either size
// is stored, and ErrPruned if from is older than the oldest retained one.
func (l *Log) Consistency(ctx context.Context, tenant string, from, to int64) (ConsistencyProof, error) {
	if err := checkTenant(tenant); err != nil {
		return ConsistencyProof{}, fmt.Errorf("consistency: %w: %w", store.ErrInvalid, err)
	}
	h, _, err := l.loadHead(ctx, tenant)
	if err != nil {
		return ConsistencyProof{}, fmt.Errorf("consistency: %w", err)
	}
	if to == 0 {
		to = h.Checkpoint
	}
	if from < 1 || to < from {
		return ConsistencyProof{}, fmt.Errorf("consistency of %s from %d to %d: %w", tenant, from, to, store.ErrInvalid)
	}
	if from < h.Start {
		return ConsistencyProof{}, fmt.Errorf("consistency of %s from %d: the oldest retained checkpoint is %d: %w", tenant, from, h.Start, ErrPruned)
	}
	oldSigned, old, err := l.storedCheckpoint(ctx, tenant, from)
	if err != nil {
		return ConsistencyProof{}, fmt.Errorf("consistency: %w", err)
	}
	newSigned, cur, err := l.storedCheckpoint(ctx, tenant, to)
	if err != nil {
		return ConsistencyProof{}, fmt.Errorf("consistency: %w", err)
	}
	tree := tlog.Tree{N: cur.Size, Hash: cur.Root}
	proof, err := tlog.ProveTree(cur.Size, old.Size, tlog.TileHashReader(tree, l.tileReader(ctx, tenant)))
	if err == nil {
		err = tlog.CheckTree(proof, cur.Size, cur.Root, old.Size, old.Root)
	}
	if err != nil {
		return ConsistencyProof{}, fmt.Errorf("consistency of %s from %d to %d: %w: %w", tenant, from, to, ErrTampered, err)
	}
	return ConsistencyProof{Tenant: tenant, Old: string(oldSigned), New: string(newSigned), Hashes: proof}, nil
}

// Prune applies retention to tenant's log: it finds the newest checkpoint
// whose every event is older than before, makes it the oldest retained
// checkpoint, and deletes the events before it (their batches and id
// records), the level-0 hash tiles wholly before it and the older
// checkpoints. It keeps the tiles that Verify, Prove and Consistency need
// from that checkpoint on. It returns how many events it deleted.
// Deletion runs in several atomic steps after the new start is recorded;
// a Prune cut short is finished by the next one.
func (l *Log) Prune(ctx context.Context, tenant string, before time.Time) (int, error) {
	if err := checkTenant(tenant); err != nil {
		return 0, fmt.Errorf("prune: %w: %w", store.ErrInvalid, err)
	}
	unlock := l.lock(tenant)
	defer unlock()
	h, ver, err := l.loadHead(ctx, tenant)
	if err != nil || ver == 0 {
		return 0, err
	}
	page, err := l.backend.Query(ctx, store.Query{
		Collection: collCheckpoint, Tenant: tenant, OrderBy: fieldCumMax, Desc: true, Limit: 1,
		Where: []store.Cond{{Field: fieldCumMax, Op: store.Lt, Value: before.UTC().Format(store.TimeFormat)}},
	})
	if err != nil {
		return 0, fmt.Errorf("prune %s: %w", tenant, err)
	}
	if len(page.Records) == 1 {
		body, cp, err := l.openCheckpointRecord(ctx, page.Records[0])
		if err != nil || !body.MaxTime.Before(before) || cp.Size > h.Size {
			return 0, fmt.Errorf("prune %s: checkpoint %s: %w", tenant, page.Records[0].ID, ErrTampered)
		}
		if cp.Size > h.Start {
			h.Start = cp.Size
			w, err := l.headWrite(ctx, tenant, h, ver)
			if err != nil {
				return 0, err
			}
			if _, err := l.backend.Apply(ctx, []store.Write{w}); err != nil {
				return 0, fmt.Errorf("prune %s: record start: %w", tenant, err)
			}
		}
	}
	n, err := l.deleteBefore(ctx, tenant, h.Start)
	if err != nil {
		return n, fmt.Errorf("prune %s: %w", tenant, err)
	}
	return n, nil
}

// deleteBefore deletes what lies before position start: batches ending at
// or before it with their id records, level-0 tiles wholly before start's
// tile, and checkpoints of smaller size. Each kind is read in id order,
// oldest first, up to the first record to keep.
func (l *Log) deleteBefore(ctx context.Context, tenant string, start int64) (int, error) {
	deleted := 0
	for done := false; !done; {
		page, err := l.backend.Query(ctx, store.Query{Collection: collBatch, Tenant: tenant, Limit: 4})
		if err != nil {
			return deleted, fmt.Errorf("read batches: %w", err)
		}
		done = len(page.Records) == 0
		for _, rec := range page.Records {
			if end, ok := parsePos20(rec.Index[fieldEnd]); !ok || end > start {
				done = true
				break
			}
			n, err := l.deleteBatch(ctx, tenant, rec)
			if err != nil {
				return deleted, err
			}
			deleted += n
		}
	}
	return deleted, l.deleteOld(ctx, tenant, start)
}

// deleteBatch deletes a batch record and the id records of its events, and
// returns how many events it held.
func (l *Log) deleteBatch(ctx context.Context, tenant string, rec store.Record) (int, error) {
	writes := []store.Write{{Op: store.OpDelete, Record: store.Record{Collection: collBatch, Tenant: tenant, ID: rec.ID, Version: rec.Version}}}
	parts, _ := splitBatch(rec.Body)
	for _, sealed := range parts {
		plain, err := l.barrier.Open(ctx, leafPlace(tenant), sealed)
		if err != nil {
			continue // an event that does not open names no id record
		}
		if lf, err := ParseLeaf(plain); err == nil {
			writes = append(writes, store.Write{Op: store.OpDelete, Record: store.Record{Collection: collID, Tenant: tenant, ID: lf.ID}})
		}
	}
	if err := l.applyDeletes(ctx, writes); err != nil {
		return 0, fmt.Errorf("delete batch %s: %w", rec.ID, err)
	}
	return len(parts), nil
}

// applyDeletes applies deletes, leaving out those of records already gone.
func (l *Log) applyDeletes(ctx context.Context, writes []store.Write) error {
	for len(writes) > 0 {
		_, err := l.backend.Apply(ctx, writes)
		var be *store.BatchError
		if err == nil || !errors.As(err, &be) || !errors.Is(be.Err, store.ErrNotFound) {
			return err
		}
		writes = append(writes[:be.Index:be.Index], writes[be.Index+1:]...)
	}
	return nil
}

// deleteOld deletes the level-0 tiles wholly before start's tile and the
// checkpoints smaller than start.
func (l *Log) deleteOld(ctx context.Context, tenant string, start int64) error {
	keep := map[string]func(id string) bool{
		collTile: func(id string) bool {
			level, n, ok := parseTileID(id)
			return !ok || level > 0 || n >= start>>tileHeight
		},
		collCheckpoint: func(id string) bool {
			size, ok := parsePos20(id)
			return !ok || size >= start
		},
	}
	for _, coll := range []string{collTile, collCheckpoint} {
		for {
			page, err := l.backend.Query(ctx, store.Query{Collection: coll, Tenant: tenant, Limit: store.MaxLimit})
			if err != nil {
				return fmt.Errorf("read %s: %w", coll, err)
			}
			var writes []store.Write
			for _, rec := range page.Records {
				if keep[coll](rec.ID) {
					break
				}
				writes = append(writes, store.Write{Op: store.OpDelete, Record: store.Record{Collection: coll, Tenant: tenant, ID: rec.ID}})
			}
			if err := l.applyDeletes(ctx, writes); err != nil {
				return fmt.Errorf("delete %s: %w", coll, err)
			}
			if len(writes) < len(page.Records) || page.Next == "" {
				break
			}
		}
	}
	return nil
}
