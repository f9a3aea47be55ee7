package auditlog

import (
	"context"
	"encoding/binary"
	"fmt"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/idvault/idvault/internal/store"
)

// tileRec is one stored tile: its record version and hashes.
type tileRec struct {
	version int64
	data    []byte
}

// tileStore is the tlog.TileReader over one tenant's tile records for the
// duration of one call; it caches every tile it reads.
type tileStore struct {
	load  func(level int, n int64) (tileRec, error)
	cache map[[2]int64]tileRec
}

var _ tlog.TileReader = (*tileStore)(nil)

// tileReader returns a tile reader of tenant's tiles. It lives for one call:
// it reads with ctx.
func (l *Log) tileReader(ctx context.Context, tenant string) *tileStore {
	return &tileStore{
		cache: map[[2]int64]tileRec{},
		load: func(level int, n int64) (tileRec, error) {
			rec, err := l.backend.Get(ctx, collTile, tenant, tileID(level, n))
			if err != nil {
				return tileRec{}, err
			}
			data, err := l.open(ctx, rec)
			if err != nil {
				return tileRec{}, fmt.Errorf("%w: %w", ErrTampered, err)
			}
			if len(data)%tlog.HashSize != 0 || len(data) > tlog.HashSize<<tileHeight {
				return tileRec{}, fmt.Errorf("tile %s of %d bytes: %w", rec.ID, len(data), ErrTampered)
			}
			return tileRec{version: rec.Version, data: data}, nil
		},
	}
}

func (ts *tileStore) get(level int, n int64) (tileRec, error) {
	key := [2]int64{int64(level), n}
	if rec, ok := ts.cache[key]; ok {
		return rec, nil
	}
	rec, err := ts.load(level, n)
	if err != nil {
		return tileRec{}, err
	}
	ts.cache[key] = rec
	return rec, nil
}

// Height returns the tile height.
func (ts *tileStore) Height() int { return tileHeight }

// ReadTiles returns the first t.W hashes of each stored tile t.
func (ts *tileStore) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(tiles))
	for i, t := range tiles {
		rec, err := ts.get(t.L, t.N)
		if err != nil {
			return nil, fmt.Errorf("read tile %s: %w", t.Path(), err)
		}
		if len(rec.data) < t.W*tlog.HashSize {
			return nil, fmt.Errorf("tile %s holds %d hashes, want %d: %w", t.Path(), len(rec.data)/tlog.HashSize, t.W, ErrTampered)
		}
		out[i] = rec.data[:t.W*tlog.HashSize]
	}
	return out, nil
}

// SaveTiles does nothing: tiles are stored by Append.
func (ts *tileStore) SaveTiles([]tlog.Tile, [][]byte) {}

// tileWrite returns the write that stores tile t with data; existed says
// whether a narrower version of it is stored already.
func (l *Log) tileWrite(ctx context.Context, tenant string, ts *tileStore, t tlog.Tile, data []byte, existed bool) (store.Write, error) {
	id := tileID(t.L, t.N)
	sealed, err := l.seal(ctx, tenant, collTile, id, data)
	if err != nil {
		return store.Write{}, err
	}
	rec := store.Record{Collection: collTile, Tenant: tenant, ID: id, Body: sealed}
	if !existed {
		return store.Write{Op: store.OpPut, Record: rec}, nil
	}
	cur, err := ts.get(t.L, t.N)
	if err != nil {
		return store.Write{}, fmt.Errorf("tile %s: %w", t.Path(), err)
	}
	rec.Version = cur.version
	return store.Write{Op: store.OpUpdate, Record: rec}, nil
}

// frontier holds the hashes of the maximal complete subtrees of a tree of
// n leaves (at most 64), enough for tlog to add the next leaf and to hash
// the tree. Verify streams leaves through it.
type frontier struct {
	n      int64
	hashes map[int64]tlog.Hash
}

// frontierIndexes returns the stored hash indexes of the maximal complete
// subtrees of a tree of n leaves: one per bit set in n.
func frontierIndexes(n int64) []int64 {
	var out []int64
	for level := 62; level >= 0; level-- {
		if n>>level&1 == 1 {
			out = append(out, tlog.StoredHashIndex(level, n>>level-1))
		}
	}
	return out
}

// ReadHashes returns frontier hashes.
func (f *frontier) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		h, ok := f.hashes[x]
		if !ok {
			return nil, fmt.Errorf("stored hash %d is not on the frontier of %d leaves", x, f.n)
		}
		out[i] = h
	}
	return out, nil
}

// push adds the leaf with record hash h.
func (f *frontier) push(h tlog.Hash) error {
	hs, err := tlog.StoredHashesForRecordHash(f.n, h, f)
	if err != nil {
		return err
	}
	// The subtrees the new leaf completed are no longer maximal.
	for level := 0; f.n>>level&1 == 1; level++ {
		delete(f.hashes, tlog.StoredHashIndex(level, f.n>>level-1))
	}
	f.hashes[tlog.StoredHashIndex(0, f.n)+int64(len(hs)-1)] = hs[len(hs)-1]
	f.n++
	return nil
}

// root returns the tree hash.
func (f *frontier) root() (tlog.Hash, error) { return tlog.TreeHash(f.n, f) }

// splitBatch splits a batch body into its sealed leaves (each a uint32
// big-endian length and that many bytes). ok is false if the body does not
// end on an item boundary; items then holds the whole items before.
func splitBatch(body []byte) (items [][]byte, ok bool) {
	for len(body) > 0 {
		if len(body) < 4 {
			return items, false
		}
		n := binary.BigEndian.Uint32(body)
		body = body[4:]
		if uint64(n) > uint64(len(body)) {
			return items, false
		}
		items = append(items, body[:n:n])
		body = body[n:]
	}
	return items, true
}
