package auditlog

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/idvault/idvault/internal/barrier"
	"github.com/idvault/idvault/internal/store"
)

// Kind names a problem Verify finds.
type Kind string

// Problem kinds, each with the position Verify reports.
const (
	// KindGap: no event at Position (deleted), the next stored event
	// belonging further on.
	KindGap Kind = "gap"
	// KindEdit: the event at Position is not the one appended: its sealed
	// leaf does not open or parse, or its hash differs from the hash
	// stored when it was appended (rewritten with the barrier key); or a
	// clear field of the record holding it was changed.
	KindEdit Kind = "edit"
	// KindReorder: Position holds another position's event, and its own
	// event is elsewhere in the log (events swapped or moved).
	KindReorder Kind = "reorder"
	// KindTruncated: the log ends at Position while a signed checkpoint
	// or the log's head counts more events.
	KindTruncated Kind = "truncated"
	// KindBadSignature: a checkpoint of size Position (stored, or given as
	// trusted) is not validly signed by the log's key for this tenant.
	KindBadSignature Kind = "bad-signature"
	// KindFork: a validly signed checkpoint of size Position commits to
	// another tree than the stored events make: the events before Position
	// were rewritten by someone holding the keys, or the key signed a
	// second history.
	KindFork Kind = "fork"
)

// Problem is the first thing wrong Verify found.
type Problem struct {
	Kind     Kind   `json:"kind"`
	Position int64  `json:"position"`
	EventID  string `json:"eventId,omitempty"`
	Detail   string `json:"detail"`
}

// Report is the result of Verify: either Problem is nil and Events events
// from position From on were verified up to Checkpoint (followed by
// Unsigned events that no checkpoint covers yet), or Problem is the first
// problem in log order and Events counts the events verified before it.
type Report struct {
	Tenant string `json:"tenant"`
	From   int64  `json:"from"`
	Events int64  `json:"events"`
	// Checkpoint is the latest stored checkpoint the events were verified
	// against; nil if none.
	Checkpoint *Checkpoint `json:"checkpoint,omitempty"`
	Unsigned   int64       `json:"unsigned"`
	// SkippedTrusted counts trusted checkpoints older than From, which
	// cannot be checked against the retained log.
	SkippedTrusted int      `json:"skippedTrusted,omitempty"`
	Problem        *Problem `json:"problem,omitempty"`
}

// Verified reports whether no problem was found.
func (r Report) Verified() bool { return r.Problem == nil }

// VerifyOptions selects what Verify checks.
type VerifyOptions struct {
	// From is the position to start at: the size of a retained stored
	// checkpoint. 0 starts at the oldest retained checkpoint.
	From int64
	// Trusted are signed checkpoints an auditor saved earlier (for
	// example from Checkpoint); the log must agree with each of them.
	Trusted [][]byte
}

// signedRoot is a checkpoint Verify checks the log against.
type signedRoot struct {
	cp     Checkpoint
	stored bool
	name   string
}

// Verify checks tenant's log from opts.From (or the oldest retained
// checkpoint) to its end and reports either how many events verified, or
// the first problem in log order. Every stored and trusted checkpoint at or
// after the start must be validly signed and agree with the tree the events
// make; no checkpoint or head may count more events than the log holds.
// Problems are reported in the Report; the error is for failures to read.
func (l *Log) Verify(ctx context.Context, tenant string, opts VerifyOptions) (Report, error) {
	if err := checkTenant(tenant); err != nil {
		return Report{}, fmt.Errorf("verify: %w: %w", store.ErrInvalid, err)
	}
	if opts.From < 0 {
		return Report{}, fmt.Errorf("verify: negative start: %w", store.ErrInvalid)
	}
	h, _, err := l.loadHead(ctx, tenant)
	if err != nil && !errors.Is(err, ErrTampered) {
		return Report{}, fmt.Errorf("verify: %w", err)
	}
	// An unreadable head counts as empty: the scan and the checkpoints
	// still show what was lost.
	start := h.Start
	if opts.From > 0 && opts.From != h.Start {
		if opts.From < h.Start {
			return Report{}, fmt.Errorf("verify %s from %d: the oldest retained checkpoint is %d: %w", tenant, opts.From, h.Start, ErrPruned)
		}
		if _, err := l.backend.Get(ctx, collCheckpoint, tenant, pos20(opts.From)); err != nil {
			return Report{}, fmt.Errorf("verify %s from %d: no checkpoint of that size: %w", tenant, opts.From, err)
		}
		start = opts.From
	}
	v := &verification{l: l, tenant: tenant, start: start, p: start, roots: map[int64][]signedRoot{}, badStored: map[int64]bool{}}
	v.fr = &frontier{n: start, hashes: map[int64]tlog.Hash{}}
	rep := Report{Tenant: tenant, From: start}
	var problems []Problem
	endSize, endName := h.Size, "the log's head"
	addRoot := func(r signedRoot) {
		v.roots[r.cp.Size] = append(v.roots[r.cp.Size], r)
		if r.cp.Size > endSize {
			endSize, endName = r.cp.Size, r.name
		}
	}

	err = l.eachRecord(ctx, store.Query{Collection: collCheckpoint, Tenant: tenant, Limit: store.MaxLimit}, func(rec store.Record) error {
		size, ok := parsePos20(rec.ID)
		if !ok {
			size = start
		}
		_, cp, err := l.openCheckpointRecord(ctx, rec)
		if err != nil {
			if ctx.Err() != nil {
				return err
			}
			if size >= start {
				problems = append(problems, Problem{Kind: KindBadSignature, Position: size, Detail: fmt.Sprintf("stored checkpoint %s: %v", rec.ID, err)})
				v.badStored[size] = true
			}
			return nil
		}
		if cp.Size >= start {
			addRoot(signedRoot{cp: cp, stored: true, name: "stored checkpoint " + rec.ID})
		}
		return nil
	})
	if err != nil {
		return Report{}, fmt.Errorf("verify %s: %w", tenant, err)
	}
	origin := originOf(l.opts.Origin, tenant)
	for i, signed := range opts.Trusted {
		cp, err := openCheckpoint(signed, l.verifier)
		if err == nil && cp.Origin != origin {
			err = fmt.Errorf("origin %q is not this log's %q", cp.Origin, origin)
		}
		if err != nil {
			pos, _ := unverifiedSize(signed)
			problems = append(problems, Problem{Kind: KindBadSignature, Position: pos, Detail: fmt.Sprintf("trusted checkpoint %d: %v", i, err)})
			continue
		}
		if cp.Size < start {
			rep.SkippedTrusted++
			continue
		}
		addRoot(signedRoot{cp: cp, name: fmt.Sprintf("trusted checkpoint %d", i)})
	}

	stopAt := int64(1<<63 - 1)
	for _, p := range problems {
		stopAt = min(stopAt, p.Position)
	}
	scanned, err := v.anchor(ctx)
	if err == nil && scanned == nil {
		scanned, err = v.run(ctx, stopAt)
	}
	if err != nil {
		return Report{}, fmt.Errorf("verify %s: %w", tenant, err)
	}
	if scanned == nil && v.complete && v.p < endSize {
		scanned = &Problem{Kind: KindTruncated, Position: v.p, Detail: fmt.Sprintf("the log ends after %d events; %s counts %d", v.p, endName, endSize)}
	}
	rep.Events = v.p - start
	rep.Checkpoint, rep.Unsigned = v.latest, v.p-start
	if v.latest != nil {
		rep.Unsigned = v.p - v.latest.Size
	}
	if v.endProblem != nil {
		problems = append([]Problem{*v.endProblem}, problems...)
	}
	if scanned != nil {
		// On equal positions the scan's finding comes first.
		problems = append([]Problem{*scanned}, problems...)
	}
	sort.SliceStable(problems, func(i, j int) bool { return problems[i].Position < problems[j].Position })
	if len(problems) > 0 {
		rep.Problem = &problems[0]
		rep.Events = max(0, min(v.p, rep.Problem.Position)-start)
	}
	return rep, nil
}

// eachRecord calls fn for every record of q, page by page.
func (l *Log) eachRecord(ctx context.Context, q store.Query, fn func(store.Record) error) error {
	for {
		page, err := l.backend.Query(ctx, q)
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

// verification is the state of one Verify scan.
type verification struct {
	l      *Log
	tenant string
	start  int64
	// p is the next position to verify; fr the tree of the p leaves.
	p     int64
	fr    *frontier
	roots map[int64][]signedRoot
	// badStored holds the sizes of stored checkpoints that do not verify.
	badStored map[int64]bool
	latest    *Checkpoint
	complete  bool // the scan reached the end of the log
	// endProblem is a batch end field found altered.
	endProblem *Problem

	tileN  int64
	tile   []byte
	tileOK bool
}

// anchor loads the tree state at a start after 0 from the stored checkpoint
// there and the tiles it authenticates.
func (v *verification) anchor(ctx context.Context) (*Problem, error) {
	if v.start == 0 {
		return v.checkRoots()
	}
	var anchor *Checkpoint
	for _, r := range v.roots[v.start] {
		if r.stored {
			anchor = &r.cp
			break
		}
	}
	switch {
	case anchor == nil && v.badStored[v.start]:
		return &Problem{Kind: KindBadSignature, Position: v.start, Detail: "the stored checkpoint at the start does not verify"}, nil
	case anchor == nil:
		return &Problem{Kind: KindGap, Position: v.start, Detail: fmt.Sprintf("no stored checkpoint at the start %d", v.start)}, nil
	}
	idx := frontierIndexes(v.start)
	hashes, err := tlog.TileHashReader(tlog.Tree{N: v.start, Hash: anchor.Root}, v.l.tileReader(ctx, v.tenant)).ReadHashes(idx)
	if err != nil {
		if ctx.Err() != nil {
			return nil, err
		}
		return &Problem{Kind: KindEdit, Position: v.start, Detail: fmt.Sprintf("stored hashes before the start do not match its checkpoint: %v", err)}, nil
	}
	for i, x := range idx {
		v.fr.hashes[x] = hashes[i]
	}
	return v.checkRoots()
}

// checkRoots compares the tree of the first p leaves with every checkpoint
// of size p.
func (v *verification) checkRoots() (*Problem, error) {
	rs := v.roots[v.p]
	if len(rs) == 0 {
		return nil, nil
	}
	root, err := v.fr.root()
	if err != nil {
		return nil, fmt.Errorf("tree hash at %d: %w", v.p, err)
	}
	for _, r := range rs {
		if r.cp.Root != root {
			return &Problem{Kind: KindFork, Position: v.p, Detail: fmt.Sprintf("%s of size %d has root %s, the stored events make %s", r.name, v.p, r.cp.Root, root)}, nil
		}
		if r.stored {
			cp := r.cp
			v.latest = &cp
		}
	}
	return nil, nil
}

// item is one stored leaf as the scan meets it: the position its batch
// record gives it and its sealed bytes. A negative pos marks a batch
// record whose id is not a position; broken marks a batch whose framing
// ends inside an item.
type item struct {
	pos    int64
	sealed []byte
	broken bool
}

// items iterates over tenant's stored leaves in batch id order.
type items struct {
	l    *Log
	q    store.Query
	recs []store.Record
	done bool
	cur  []item
	// endProblem is the first batch met whose clear end field does not
	// match the events it holds.
	endProblem *Problem
}

func (l *Log) items(tenant string) *items {
	// Batch bodies are large: read a few at a time.
	return &items{l: l, q: store.Query{Collection: collBatch, Tenant: tenant, Limit: 4}}
}

func (it *items) next(ctx context.Context) (item, bool, error) {
	for len(it.cur) == 0 {
		if len(it.recs) == 0 {
			if it.done {
				return item{}, false, nil
			}
			page, err := it.l.backend.Query(ctx, it.q)
			if err != nil {
				return item{}, false, fmt.Errorf("read batches: %w", err)
			}
			it.recs, it.q.Cursor, it.done = page.Records, page.Next, page.Next == ""
			continue
		}
		it.cur = batchItems(it.recs[0])
		if pr := endMismatch(it.recs[0], it.cur); pr != nil && it.endProblem == nil {
			it.endProblem = pr
		}
		it.recs = it.recs[1:]
	}
	x := it.cur[0]
	it.cur = it.cur[1:]
	return x, true, nil
}

// batchItems returns the items of a batch record.
func batchItems(rec store.Record) []item {
	s, ok := parsePos20(rec.ID)
	if !ok {
		return []item{{pos: -1}}
	}
	parts, ok := splitBatch(rec.Body)
	out := make([]item, len(parts), len(parts)+1)
	for i, b := range parts {
		out[i] = item{pos: s + int64(i), sealed: b}
	}
	if !ok {
		out = append(out, item{pos: s + int64(len(parts)), broken: true})
	}
	return out
}

// endMismatch returns the problem of a batch whose clear end field is not
// the position after its last event, placed at that position.
func endMismatch(rec store.Record, its []item) *Problem {
	if len(its) == 0 || its[0].pos < 0 || its[len(its)-1].broken {
		return nil
	}
	after := its[len(its)-1].pos + 1
	if rec.Index[fieldEnd] == pos20(after) {
		return nil
	}
	return &Problem{Kind: KindEdit, Position: after, Detail: fmt.Sprintf("the clear field end of the batch at %s is %q, it holds events up to %d", rec.ID, rec.Index[fieldEnd], after)}
}

// run verifies the stored leaves in order until the first problem, the end
// of the log, or a position past stopAt (where another problem is known).
func (v *verification) run(ctx context.Context, stopAt int64) (*Problem, error) {
	it := v.l.items(v.tenant)
	defer func() { v.endProblem = it.endProblem }()
	for v.p <= stopAt {
		x, ok, err := it.next(ctx)
		if err != nil {
			return nil, err
		}
		if !ok {
			v.complete = true
			return nil, nil
		}
		switch {
		case x.pos < 0:
			return &Problem{Kind: KindEdit, Position: v.p, Detail: "a batch record's id is not a position"}, nil
		case x.pos < v.start:
			continue
		case x.pos > v.p:
			return v.misplaced(ctx, it, x, fmt.Sprintf("no event is stored at position %d", v.p))
		case x.pos < v.p:
			return &Problem{Kind: KindReorder, Position: x.pos, Detail: fmt.Sprintf("a second stored event claims position %d", x.pos)}, nil
		case x.broken:
			return &Problem{Kind: KindEdit, Position: v.p, Detail: "the batch holding this position ends inside an event"}, nil
		}
		plain, err := v.l.barrier.Open(ctx, leafPlace(v.tenant), x.sealed)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return &Problem{Kind: KindEdit, Position: v.p, Detail: "the sealed event does not open"}, nil
		}
		lf, err := ParseLeaf(plain)
		if err != nil || lf.Tenant != v.tenant {
			return &Problem{Kind: KindEdit, Position: v.p, Detail: "the sealed event is not a leaf of this log"}, nil
		}
		if lf.Position != v.p {
			return v.misplaced(ctx, it, x, fmt.Sprintf("position %d holds the event of position %d", v.p, lf.Position))
		}
		hash := tlog.RecordHash(plain)
		stored, detail, err := v.storedHash(ctx)
		if err != nil {
			return nil, err
		}
		if detail == "" && stored != hash {
			detail = "the event differs from the one appended (its hash differs from the stored leaf hash)"
		}
		if detail != "" {
			return &Problem{Kind: KindEdit, Position: v.p, EventID: lf.ID, Detail: detail}, nil
		}
		if err := v.fr.push(hash); err != nil {
			return nil, fmt.Errorf("hash leaf %d: %w", v.p, err)
		}
		v.p++
		if pr, err := v.checkRoots(); pr != nil || err != nil {
			return pr, err
		}
	}
	return nil, nil
}

// storedHash returns the leaf hash stored for position p, or a detail
// saying why there is none.
func (v *verification) storedHash(ctx context.Context) (tlog.Hash, string, error) {
	n := v.p >> tileHeight
	if !v.tileOK || v.tileN != n {
		v.tileN, v.tileOK, v.tile = n, true, nil
		rec, err := v.l.backend.Get(ctx, collTile, v.tenant, tileID(0, n))
		switch {
		case errors.Is(err, store.ErrNotFound):
		case err != nil:
			return tlog.Hash{}, "", fmt.Errorf("read tile: %w", err)
		default:
			data, err := v.l.open(ctx, rec)
			if err != nil && !errors.Is(err, barrier.ErrOpen) {
				return tlog.Hash{}, "", err
			}
			v.tile = data
		}
	}
	off := int(v.p&(1<<tileHeight-1)) * tlog.HashSize
	if len(v.tile) < off+tlog.HashSize {
		return tlog.Hash{}, "the stored hash of this event is missing or does not open", nil
	}
	return tlog.Hash(v.tile[off : off+tlog.HashSize]), "", nil
}

// misplaced names the problem at v.p when the stored event there (from x
// on) is missing or belongs elsewhere: a reorder if the event of v.p is
// stored at another position, else a gap.
func (v *verification) misplaced(ctx context.Context, it *items, x item, detail string) (*Problem, error) {
	for {
		if x.pos >= 0 && !x.broken {
			plain, err := v.l.barrier.Open(ctx, leafPlace(v.tenant), x.sealed)
			if err == nil {
				if lf, err := ParseLeaf(plain); err == nil && lf.Tenant == v.tenant && lf.Position == v.p {
					return &Problem{Kind: KindReorder, Position: v.p, EventID: lf.ID,
						Detail: fmt.Sprintf("%s; its event is stored at position %d", detail, x.pos)}, nil
				}
			} else if ctx.Err() != nil {
				return nil, ctx.Err()
			}
		}
		var ok bool
		var err error
		if x, ok, err = it.next(ctx); err != nil {
			return nil, err
		}
		if !ok {
			return &Problem{Kind: KindGap, Position: v.p, Detail: detail + "; its event is not in the log"}, nil
		}
	}
}
