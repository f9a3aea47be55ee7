package auditlog

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/idvault/idvault/internal/store"
)

// Filter selects events; empty fields match everything. From is inclusive,
// To exclusive.
type Filter struct {
	Action       string
	Outcome      string
	ActorID      string
	ResourceType string
	ResourceID   string
	From, To     time.Time
}

func (f Filter) match(lf Leaf) bool {
	eq := func(name, want string) bool { return want == "" || lf.Index[name] == want }
	return eq(IndexAction, f.Action) && eq(IndexOutcome, f.Outcome) && eq(IndexActorID, f.ActorID) &&
		eq(IndexResourceType, f.ResourceType) && eq(IndexResourceID, f.ResourceID) &&
		(f.From.IsZero() || !lf.Time.Before(f.From)) && (f.To.IsZero() || lf.Time.Before(f.To))
}

// Stored is one event read back from the log.
type Stored struct {
	// Index is the event's position in its tenant's log.
	Index int64
	ID    string
	Time  time.Time
	// Data is the canonical event as appended.
	Data []byte
}

// ScanBudget is the most events one Events call opens; a page may hold fewer
// than its limit, even none, while its next cursor is not empty.
const ScanBudget = 20000

// Events returns, in log order, up to limit events of tenant that match f,
// starting at cursor ("" for the start of the retained log), and the
// cursor of the next page ("" after the last). limit <= 0 means
// store.DefaultLimit; more than store.MaxLimit means store.MaxLimit.
//
// Events reads the log's batches in order, skipping those whose event
// times lie outside [f.From, f.To), opens each event and filters on its
// authenticated leaf; it opens at most ScanBudget events per call. A
// stored event that is not where its record says fails with ErrTampered.
func (l *Log) Events(ctx context.Context, tenant string, f Filter, cursor string, limit int) ([]Stored, string, error) {
	if err := checkTenant(tenant); err != nil {
		return nil, "", fmt.Errorf("events: %w: %w", store.ErrInvalid, err)
	}
	p, err := decodeCursor(cursor)
	if err != nil {
		return nil, "", fmt.Errorf("events: %w", err)
	}
	if limit <= 0 {
		limit = store.DefaultLimit
	}
	limit = min(limit, store.MaxLimit)
	h, _, err := l.loadHead(ctx, tenant)
	if err != nil {
		return nil, "", fmt.Errorf("events: %w", err)
	}
	p = max(p, h.Start)
	var out []Stored
	opened := 0
	for {
		b, ok, err := l.findBatch(ctx, tenant, p, f)
		if err != nil {
			return nil, "", fmt.Errorf("events of %s: %w", tenant, err)
		}
		if !ok {
			return out, "", nil
		}
		for i := max(0, int(p-b.start)); i < len(b.items); i++ {
			lf, _, err := l.openItem(ctx, tenant, b, i)
			if err != nil {
				return nil, "", fmt.Errorf("events of %s: %w", tenant, err)
			}
			p, opened = lf.Position+1, opened+1
			if f.match(lf) {
				out = append(out, Stored{Index: lf.Position, ID: lf.ID, Time: lf.Time, Data: lf.Data})
			}
			if len(out) == limit || opened >= ScanBudget {
				return out, encodeCursor(p), nil
			}
		}
		p = max(p, b.end)
	}
}

// batch is one stored batch record, split.
type batch struct {
	start, end int64
	items      [][]byte
}

// findBatch returns the first batch of tenant that holds a position at or
// after p and, when f has a time range, holds an event time in it.
func (l *Log) findBatch(ctx context.Context, tenant string, p int64, f Filter) (batch, bool, error) {
	q := store.Query{
		Collection: collBatch, Tenant: tenant, OrderBy: fieldEnd, Limit: 1,
		Where: []store.Cond{{Field: fieldEnd, Op: store.Gt, Value: pos20(p)}},
	}
	if !f.From.IsZero() {
		q.Where = append(q.Where, store.Cond{Field: fieldMaxTime, Op: store.Gte, Value: f.From.UTC().Format(store.TimeFormat)})
	}
	if !f.To.IsZero() {
		q.Where = append(q.Where, store.Cond{Field: fieldMinTime, Op: store.Lt, Value: f.To.UTC().Format(store.TimeFormat)})
	}
	page, err := l.backend.Query(ctx, q)
	if err != nil {
		return batch{}, false, fmt.Errorf("find batch: %w", err)
	}
	if len(page.Records) == 0 {
		return batch{}, false, nil
	}
	rec := page.Records[0]
	start, ok1 := parsePos20(rec.ID)
	end, ok2 := parsePos20(rec.Index[fieldEnd])
	items, ok3 := splitBatch(rec.Body)
	if !ok1 || !ok2 || !ok3 || end-start != int64(len(items)) {
		return batch{}, false, fmt.Errorf("batch %s: %w", rec.ID, ErrTampered)
	}
	return batch{start: start, end: end, items: items}, true, nil
}

// openItem opens item i of b and checks that it is tenant's leaf of that
// position. It returns the leaf and its encoding.
func (l *Log) openItem(ctx context.Context, tenant string, b batch, i int) (Leaf, []byte, error) {
	pos := b.start + int64(i)
	plain, err := l.barrier.Open(ctx, leafPlace(tenant), b.items[i])
	if err != nil {
		return Leaf{}, nil, fmt.Errorf("event at %d: %w: %w", pos, ErrTampered, err)
	}
	lf, err := ParseLeaf(plain)
	if err != nil {
		return Leaf{}, nil, fmt.Errorf("event at %d: %w: %w", pos, ErrTampered, err)
	}
	if lf.Tenant != tenant || lf.Position != pos {
		return Leaf{}, nil, fmt.Errorf("event at %d is stored at %d: %w", lf.Position, pos, ErrTampered)
	}
	return lf, plain, nil
}

// cursorVersion is the first byte of a cursor.
const cursorVersion = 0x01

// CursorAfter returns the cursor at which Events continues after the event
// at position p, for a reader that keeps its own place in the log.
func CursorAfter(p int64) string { return encodeCursor(p + 1) }

// encodeCursor returns the cursor of position p: base64url (no padding) of
// 0x01 and p as a big-endian uint64.
func encodeCursor(p int64) string {
	b := binary.BigEndian.AppendUint64([]byte{cursorVersion}, uint64(p))
	return base64.RawURLEncoding.EncodeToString(b)
}

// decodeCursor parses a cursor; "" is position 0. A cursor is not
// authenticated: a forged one only moves the start within the caller's own
// tenant and filter.
func decodeCursor(c string) (int64, error) {
	if c == "" {
		return 0, nil
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(c)
	if err != nil || len(b) != 9 || b[0] != cursorVersion || b[1]&0x80 != 0 {
		return 0, fmt.Errorf("malformed cursor: %w", store.ErrInvalid)
	}
	return int64(binary.BigEndian.Uint64(b[1:])), nil
}
