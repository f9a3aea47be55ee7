package auditlog

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/idvault/idvault/internal/barrier"
	"github.com/idvault/idvault/internal/store"
)

// Store collections of the log. See the package doc for their layout.
const (
	collBatch      = "auditlog.batch"
	collID         = "auditlog.id"
	collTile       = "auditlog.tile"
	collCheckpoint = "auditlog.checkpoint"
	collHead       = "auditlog.head"
	collTenant     = "auditlog.tenant"
	// collLeaf names the place every leaf of a tenant is sealed for; no
	// record lives in it.
	collLeaf = "auditlog.leaf"
	headID   = "head"
)

// Clear index fields of batch and checkpoint records.
const (
	fieldEnd     = "end"
	fieldMinTime = "mintime"
	fieldMaxTime = "maxtime"
	fieldCumMax  = "cummax"
)

// tileHeight is the height of the stored hash tiles: a full tile holds 256
// hashes.
const tileHeight = 8

// Defaults of Options.
const (
	DefaultCheckpointEvery    = 1000
	DefaultCheckpointInterval = time.Minute
)

// maxBatchBytes bounds the event bytes of one batch record (a single
// larger event gets a batch of its own).
const maxBatchBytes = 4 << 20

// maxAttempts bounds how often one append chunk is planned again after a
// concurrent writer (another process) changed the log under it; between
// attempts a writer that lost waits a random time of up to a millisecond,
// doubling each time (contendedWait), so that writers of one log do not
// keep planning against the same head.
const maxAttempts = 16

// contendedWait returns how long to wait before attempt attempt (from 1)
// after a concurrent writer changed the log: a random duration up to
// 2^(attempt-1) ms, capped at 256 ms.
func contendedWait(attempt int) time.Duration {
	ceiling := time.Millisecond << min(attempt-1, 8)
	return rand.N(ceiling) + 1
}

// Errors of the Log, besides store.ErrNotFound (no such event, checkpoint or
// log) and store.ErrInvalid (a malformed argument). Check them with
// errors.Is.
var (
	// ErrTampered means stored log state does not match itself (a sealed
	// value fails to open, a leaf is not where its record says, stored
	// hashes disagree with the signed root). Run Verify to locate it.
	ErrTampered = errors.New("auditlog: stored log state does not verify")
	// ErrPruned means the request reaches before the oldest retained
	// checkpoint.
	ErrPruned = errors.New("auditlog: pruned by retention")
)

// Entry is one event to append.
type Entry struct {
	// Tenant owns the event: each tenant has a log of its own.
	Tenant string
	// ID is the event id, unique within the tenant; appends are idempotent
	// by (Tenant, ID).
	ID string
	// Time is when the event happened.
	Time time.Time
	// Data is the canonical event (JSON). It holds personal data and is
	// only ever stored sealed.
	Data []byte
	// Index holds the filter values of the event under the names
	// IndexAction … IndexResourceID. They MUST NOT hold personal data.
	// They are bound into the leaf (and so authenticated) and sealed with
	// it; Events filters on them.
	Index map[string]string
}

// Options configures a Log.
type Options struct {
	// Origin is the checkpoint origin prefix: tenant t's checkpoints carry
	// the origin Origin+"/"+t (for example "idvault.example.com/audit").
	Origin string
	// Verifier checks the signatures of checkpoints; it MUST be the
	// verifier of the Log's signer key (New checks that it is).
	Verifier note.Verifier
	// CheckpointEvery is N: Append signs a checkpoint once N or more leaves
	// follow the last one (DefaultCheckpointEvery when <= 0).
	CheckpointEvery int
	// CheckpointInterval is T: Tick signs a checkpoint for a tenant whose
	// oldest unsigned leaf was appended T or longer ago
	// (DefaultCheckpointInterval when <= 0).
	CheckpointInterval time.Duration
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

// Log is the tamper-evident audit log of every tenant, kept in a
// store.Backend. It is safe for concurrent use; appends to one tenant are
// serialised within a Log and checked with compare-and-swap against other
// processes appending to the same store.
type Log struct {
	backend  store.Backend
	barrier  barrier.Barrier
	signer   note.Signer
	verifier note.Verifier
	opts     Options

	locks sync.Map // tenant -> *sync.Mutex

	mu         sync.Mutex
	dirty      map[string]bool // tenants that may hold unsigned leaves
	discovered bool            // dirty has been seeded from Tenants
}

// New returns the log kept in backend, sealing with b and signing
// checkpoints with signer. It does no I/O.
func New(backend store.Backend, b barrier.Barrier, signer note.Signer, opts Options) (*Log, error) {
	if backend == nil || b == nil || signer == nil || opts.Verifier == nil {
		return nil, fmt.Errorf("auditlog: new: backend, barrier, signer and verifier are required: %w", store.ErrInvalid)
	}
	if opts.Origin == "" || strings.ContainsFunc(opts.Origin, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) {
		return nil, fmt.Errorf("auditlog: new: origin %q must be non-empty without spaces: %w", opts.Origin, store.ErrInvalid)
	}
	probe, err := note.Sign(&note.Note{Text: "idvault audit key check\n"}, signer)
	if err != nil {
		return nil, fmt.Errorf("auditlog: new: sign: %w", err)
	}
	if _, err := note.Open(probe, note.VerifierList(opts.Verifier)); err != nil {
		return nil, fmt.Errorf("auditlog: new: verifier does not match signer: %w", store.ErrInvalid)
	}
	if opts.CheckpointEvery <= 0 {
		opts.CheckpointEvery = DefaultCheckpointEvery
	}
	if opts.CheckpointInterval <= 0 {
		opts.CheckpointInterval = DefaultCheckpointInterval
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Log{backend: backend, barrier: b, signer: signer, verifier: opts.Verifier, opts: opts, dirty: map[string]bool{}}, nil
}

// head is the sealed per-tenant state record.
type head struct {
	// Size is the number of leaves; Root the tree hash over them.
	Size int64     `json:"size"`
	Root tlog.Hash `json:"root"`
	// Start is the oldest retained position: the size of the checkpoint
	// Prune last cut at (0 before any prune).
	Start int64 `json:"start"`
	// Checkpoint is the size of the latest signed checkpoint.
	Checkpoint int64 `json:"checkpoint"`
	// Pending is when the oldest leaf after Checkpoint was appended.
	Pending time.Time `json:"pending,omitzero"`
	// MaxTime is the latest event time of all leaves.
	MaxTime time.Time `json:"maxTime,omitzero"`
}

// checkpointBody is the sealed body of a checkpoint record.
type checkpointBody struct {
	Note string `json:"note"`
	// MaxTime is the latest event time of the leaves before the
	// checkpoint's size.
	MaxTime time.Time `json:"maxTime,omitzero"`
}

// pos20 is the fixed-width decimal form of a position in ids and index
// fields, so that byte order is numeric order.
func pos20(p int64) string {
	s := strconv.FormatInt(p, 10)
	return strings.Repeat("0", 20-len(s)) + s
}

// parsePos20 parses a fixed-width position.
func parsePos20(s string) (int64, bool) {
	if len(s) != 20 {
		return 0, false
	}
	p, err := strconv.ParseInt(s, 10, 64)
	return p, err == nil && p >= 0
}

func tileID(level int, n int64) string { return strconv.Itoa(level) + "." + pos20(n) }

// parseTileID parses a tile record id.
func parseTileID(id string) (level int, n int64, ok bool) {
	l, rest, found := strings.Cut(id, ".")
	lv, err := strconv.Atoi(l)
	if !found || err != nil || lv < 0 || lv > 7 || strconv.Itoa(lv) != l {
		return 0, 0, false
	}
	n, ok = parsePos20(rest)
	return lv, n, ok
}

func leafPlace(tenant string) barrier.Place {
	return barrier.Place{Tenant: tenant, Collection: collLeaf, ID: "leaf", Field: "leaf"}
}

func (l *Log) seal(ctx context.Context, tenant, collection, id string, plain []byte) ([]byte, error) {
	sealed, err := l.barrier.Seal(ctx, store.BodyPlace(tenant, collection, id), plain)
	if err != nil {
		return nil, fmt.Errorf("seal %s/%s: %w", collection, id, err)
	}
	return sealed, nil
}

func (l *Log) open(ctx context.Context, rec store.Record) ([]byte, error) {
	plain, err := l.barrier.Open(ctx, store.BodyPlace(rec.Tenant, rec.Collection, rec.ID), rec.Body)
	if err != nil {
		return nil, fmt.Errorf("open %s/%s: %w", rec.Collection, rec.ID, err)
	}
	return plain, nil
}

// lock serialises work on one tenant's log within this Log.
func (l *Log) lock(tenant string) func() {
	m, _ := l.locks.LoadOrStore(tenant, &sync.Mutex{})
	mu := m.(*sync.Mutex)
	mu.Lock()
	return mu.Unlock
}

// loadHead returns tenant's head and its record version (0: no log yet).
func (l *Log) loadHead(ctx context.Context, tenant string) (head, int64, error) {
	rec, err := l.backend.Get(ctx, collHead, tenant, headID)
	if errors.Is(err, store.ErrNotFound) {
		return head{}, 0, nil
	}
	if err != nil {
		return head{}, 0, fmt.Errorf("load head of %s: %w", tenant, err)
	}
	plain, err := l.open(ctx, rec)
	if err != nil {
		return head{}, 0, fmt.Errorf("load head of %s: %w: %w", tenant, ErrTampered, err)
	}
	var h head
	if err := json.Unmarshal(plain, &h); err != nil {
		return head{}, 0, fmt.Errorf("load head of %s: %w: %w", tenant, ErrTampered, err)
	}
	return h, rec.Version, nil
}

// headWrite returns the write that stores h over the head of version ver.
func (l *Log) headWrite(ctx context.Context, tenant string, h head, ver int64) (store.Write, error) {
	plain, err := json.Marshal(h)
	if err != nil {
		return store.Write{}, fmt.Errorf("encode head: %w", err)
	}
	sealed, err := l.seal(ctx, tenant, collHead, headID, plain)
	if err != nil {
		return store.Write{}, err
	}
	w := store.Write{Op: store.OpUpdate, Record: store.Record{Collection: collHead, Tenant: tenant, ID: headID, Version: ver, Body: sealed}}
	if ver == 0 {
		w.Op = store.OpPut
	}
	return w, nil
}

// checkpointWrite signs the checkpoint of h and returns the write that stores
// it.
func (l *Log) checkpointWrite(ctx context.Context, tenant string, h head) (store.Write, error) {
	signed, err := note.Sign(&note.Note{Text: formatCheckpoint(originOf(l.opts.Origin, tenant), h.Size, h.Root)}, l.signer)
	if err != nil {
		return store.Write{}, fmt.Errorf("sign checkpoint: %w", err)
	}
	plain, err := json.Marshal(checkpointBody{Note: string(signed), MaxTime: h.MaxTime})
	if err != nil {
		return store.Write{}, fmt.Errorf("encode checkpoint: %w", err)
	}
	id := pos20(h.Size)
	sealed, err := l.seal(ctx, tenant, collCheckpoint, id, plain)
	if err != nil {
		return store.Write{}, err
	}
	return store.Write{Op: store.OpPut, Record: store.Record{
		Collection: collCheckpoint, Tenant: tenant, ID: id,
		Index: map[string]string{fieldCumMax: h.MaxTime.UTC().Format(store.TimeFormat)},
		Body:  sealed,
	}}, nil
}

// Append appends entries, in the given order, to their tenants' logs and
// returns how many it appended. An entry whose (Tenant, ID) is already in
// the log, or earlier in the same call, is skipped, so a redelivered batch
// is appended once. Entries are written per tenant in chunks of up to
// about store.MaxBatch, each chunk one atomic store.Apply holding its
// leaves, hashes, head and (once CheckpointEvery leaves follow the last
// one) a signed checkpoint; when Append returns nil every entry is durable.
// On an error, chunks before the failing one stay appended: retrying the
// same call appends the rest. Idempotency reaches back to the oldest
// retained checkpoint: an event pruned by retention is appended anew.
//
// Entry.Index values are stored only inside the sealed leaf; no event field
// is written to a clear index.
func (l *Log) Append(ctx context.Context, entries []Entry) (int, error) {
	var tenants []string
	byTenant := map[string][]Entry{}
	seen := make(map[[2]string]bool, len(entries))
	for i, e := range entries {
		if err := (Leaf{Tenant: e.Tenant, ID: e.ID, Time: e.Time, Index: e.Index, Data: e.Data}).check(); err != nil {
			return 0, fmt.Errorf("append: entry %d: %w: %w", i, store.ErrInvalid, err)
		}
		key := [2]string{e.Tenant, e.ID}
		if seen[key] {
			continue
		}
		seen[key] = true
		if _, ok := byTenant[e.Tenant]; !ok {
			tenants = append(tenants, e.Tenant)
		}
		byTenant[e.Tenant] = append(byTenant[e.Tenant], e)
	}
	total := 0
	for _, tenant := range tenants {
		n, err := l.appendTenant(ctx, tenant, byTenant[tenant])
		total += n
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

func (l *Log) appendTenant(ctx context.Context, tenant string, entries []Entry) (int, error) {
	unlock := l.lock(tenant)
	defer unlock()
	total := 0
	for len(entries) > 0 {
		n, consumed, err := l.appendChunk(ctx, tenant, entries[:min(len(entries), store.MaxBatch)])
		total += n
		if err != nil {
			return total, fmt.Errorf("append to %s: %w", tenant, err)
		}
		entries = entries[consumed:]
	}
	return total, nil
}

// appendChunk appends, in one store.Apply, the entries of one tenant that
// are not yet in the log, as many as fit one batch. It returns how many it
// appended and how many entries it consumed (appended or found present).
func (l *Log) appendChunk(ctx context.Context, tenant string, entries []Entry) (appended, consumed int, err error) {
	known := make([]bool, len(entries)) // already in the log
	tenantListed := false
	contended := false // the last attempt lost to another writer
	for attempt := range maxAttempts {
		if attempt > 0 && contended {
			t := time.NewTimer(contendedWait(attempt))
			select {
			case <-ctx.Done():
				t.Stop()
				return 0, 0, ctx.Err()
			case <-t.C:
			}
		}
		contended = false
		h, ver, err := l.loadHead(ctx, tenant)
		if err != nil {
			return 0, 0, err
		}
		k := fitBatch(h.Size, countFalse(known))
		todo := make([]Entry, 0, k)
		consumed = len(entries)
		size := 0
		for i, e := range entries {
			if known[i] {
				continue
			}
			if len(todo) == k || len(todo) > 0 && size+len(e.Data) > maxBatchBytes {
				consumed = i
				break
			}
			todo = append(todo, e)
			size += len(e.Data)
		}
		if len(todo) == 0 {
			return 0, consumed, nil
		}
		p, err := l.plan(ctx, tenant, h, ver, todo, ver == 0 && !tenantListed)
		if err != nil {
			return 0, 0, err
		}
		if _, err = l.backend.Apply(ctx, p.writes); err == nil {
			l.noteDirty(tenant, p.head)
			return len(todo), consumed, nil
		}
		var be *store.BatchError
		if !errors.As(err, &be) {
			return 0, 0, err
		}
		switch w := p.writes[be.Index].Record; {
		case errors.Is(be.Err, store.ErrConflict) && w.Collection == collID:
			// Some events are already in the log: find them all at once.
			for i, e := range entries {
				if known[i] {
					continue
				}
				_, err := l.backend.Get(ctx, collID, tenant, e.ID)
				switch {
				case err == nil:
					known[i] = true
				case !errors.Is(err, store.ErrNotFound):
					return 0, 0, fmt.Errorf("look up event: %w", err)
				}
			}
		case errors.Is(be.Err, store.ErrConflict) && w.Collection == collTenant:
			tenantListed = true
		case errors.Is(be.Err, store.ErrConflict), errors.Is(be.Err, store.ErrNotFound):
			// Another process appended to this log: plan again, after a
			// wait.
			contended = true
		default:
			return 0, 0, err
		}
	}
	return 0, 0, fmt.Errorf("log changed under %d attempts (concurrent writers, or head and records disagree: %w)", maxAttempts, ErrTampered)
}

func countFalse(b []bool) int {
	n := 0
	for _, v := range b {
		if !v {
			n++
		}
	}
	return n
}

// fitBatch returns how many of n leaves appended to a log of size old fit
// one store.Apply with their id records, batch, tiles, head, checkpoint and
// tenant records.
func fitBatch(old int64, n int) int {
	const fixed = 4 // batch, head, checkpoint, tenant
	k := min(n, store.MaxBatch-fixed)
	for k > 0 && k+fixed+len(tlog.NewTiles(tileHeight, old, old+int64(k))) > store.MaxBatch {
		k--
	}
	return k
}

// noteDirty records whether tenant holds leaves no checkpoint covers.
func (l *Log) noteDirty(tenant string, h head) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if h.Size > h.Checkpoint {
		l.dirty[tenant] = true
	} else {
		delete(l.dirty, tenant)
	}
}

// plan is the writes of one append chunk and the head they store.
type plan struct {
	writes []store.Write
	head   head
}

func (l *Log) plan(ctx context.Context, tenant string, h head, ver int64, todo []Entry, listTenant bool) (plan, error) {
	oldN := h.Size
	tr := l.tileReader(ctx, tenant)
	hr := &appendHashes{base: tlog.StoredHashIndex(0, oldN), cache: map[int64]tlog.Hash{}}
	if oldN > 0 {
		// Hashes of the existing tree are read from tiles checked against
		// the head's root, so altered tiles stop the append.
		hr.old = tlog.TileHashReader(tlog.Tree{N: oldN, Hash: h.Root}, tr)
	}
	writes := make([]store.Write, 1, len(todo)+16)
	body := make([]byte, 0, len(todo)*(barrier.Overhead+4+64+len(todo[0].Data)))
	nh := h
	var minT, maxT time.Time
	for i, e := range todo {
		pos := oldN + int64(i)
		leaf, err := Leaf{Position: pos, Tenant: tenant, ID: e.ID, Time: e.Time, Index: e.Index, Data: e.Data}.MarshalBinary()
		if err != nil {
			return plan{}, err
		}
		hashes, err := tlog.StoredHashes(pos, leaf, hr)
		if err != nil {
			return plan{}, fmt.Errorf("hash leaf %d: %w: %w", pos, ErrTampered, err)
		}
		hr.fresh = append(hr.fresh, hashes...)
		sealed, err := l.barrier.Seal(ctx, leafPlace(tenant), leaf)
		if err != nil {
			return plan{}, fmt.Errorf("seal leaf: %w", err)
		}
		body = appendLen32(body, sealed)
		sealedPos, err := l.seal(ctx, tenant, collID, e.ID, binary.BigEndian.AppendUint64(nil, uint64(pos)))
		if err != nil {
			return plan{}, err
		}
		writes = append(writes, store.Write{Op: store.OpPut, Record: store.Record{Collection: collID, Tenant: tenant, ID: e.ID, Body: sealedPos}})
		t := e.Time.UTC()
		if i == 0 || t.Before(minT) {
			minT = t
		}
		if i == 0 || t.After(maxT) {
			maxT = t
		}
	}
	newN := oldN + int64(len(todo))
	writes[0] = store.Write{Op: store.OpPut, Record: store.Record{
		Collection: collBatch, Tenant: tenant, ID: pos20(oldN),
		Index: map[string]string{
			fieldEnd:     pos20(newN),
			fieldMinTime: minT.Format(store.TimeFormat),
			fieldMaxTime: maxT.Format(store.TimeFormat),
		},
		Body: body,
	}}
	root, err := tlog.TreeHash(newN, hr)
	if err != nil {
		return plan{}, fmt.Errorf("tree hash: %w: %w", ErrTampered, err)
	}
	for _, t := range tlog.NewTiles(tileHeight, oldN, newN) {
		data, err := tlog.ReadTileData(t, hr)
		if err != nil {
			return plan{}, fmt.Errorf("tile %s: %w: %w", t.Path(), ErrTampered, err)
		}
		w, err := l.tileWrite(ctx, tenant, tr, t, data, oldN>>(tileHeight*t.L) > t.N<<tileHeight)
		if err != nil {
			return plan{}, err
		}
		writes = append(writes, w)
	}
	nh.Size, nh.Root = newN, root
	if maxT.After(nh.MaxTime) {
		nh.MaxTime = maxT
	}
	if h.Size == h.Checkpoint {
		nh.Pending = l.opts.Now().UTC()
	}
	if newN-nh.Checkpoint >= int64(l.opts.CheckpointEvery) {
		w, err := l.checkpointWrite(ctx, tenant, nh)
		if err != nil {
			return plan{}, err
		}
		writes = append(writes, w)
		nh.Checkpoint, nh.Pending = newN, time.Time{}
	}
	w, err := l.headWrite(ctx, tenant, nh, ver)
	if err != nil {
		return plan{}, err
	}
	writes = append(writes, w)
	if listTenant {
		sealed, err := l.seal(ctx, store.PlatformTenant, collTenant, tenant, []byte("{}"))
		if err != nil {
			return plan{}, err
		}
		writes = append(writes, store.Write{Op: store.OpPut, Record: store.Record{Collection: collTenant, Tenant: store.PlatformTenant, ID: tenant, Body: sealed}})
	}
	return plan{writes: writes, head: nh}, nil
}

// appendHashes serves the stored hashes an append needs: those of the new
// leaves from memory (fresh, starting at stored index base), older ones
// from the verified tiles (old).
type appendHashes struct {
	base  int64
	fresh []tlog.Hash
	old   tlog.HashReader
	cache map[int64]tlog.Hash
}

func (r *appendHashes) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	var miss []int64
	for i, x := range indexes {
		switch h, ok := r.cache[x]; {
		case x >= r.base:
			if x-r.base >= int64(len(r.fresh)) {
				return nil, fmt.Errorf("stored hash %d not yet computed", x)
			}
			out[i] = r.fresh[x-r.base]
		case ok:
			out[i] = h
		default:
			miss = append(miss, x)
		}
	}
	if len(miss) == 0 {
		return out, nil
	}
	if r.old == nil {
		return nil, fmt.Errorf("stored hashes %v before an empty log", miss)
	}
	hs, err := r.old.ReadHashes(miss)
	if err != nil {
		return nil, err
	}
	for i, x := range miss {
		r.cache[x] = hs[i]
	}
	for i, x := range indexes {
		if x < r.base {
			out[i] = r.cache[x]
		}
	}
	return out, nil
}

// Tick signs a checkpoint for every tenant whose oldest unsigned leaf was
// appended CheckpointInterval or longer ago. It looks at the tenants this
// Log appended to and, on its first call, at every tenant with a log (so
// leaves left unsigned before a restart get signed). Call it periodically,
// for example every CheckpointInterval/4. Errors of single tenants are
// joined; the others are still signed.
func (l *Log) Tick(ctx context.Context) error {
	l.mu.Lock()
	discovered := l.discovered
	l.mu.Unlock()
	if !discovered {
		tenants, err := l.Tenants(ctx)
		if err != nil {
			return fmt.Errorf("tick: %w", err)
		}
		l.mu.Lock()
		for _, t := range tenants {
			l.dirty[t] = true
		}
		l.discovered = true
		l.mu.Unlock()
	}
	l.mu.Lock()
	tenants := make([]string, 0, len(l.dirty))
	for t := range l.dirty {
		tenants = append(tenants, t)
	}
	l.mu.Unlock()
	var errs []error
	for _, tenant := range tenants {
		if err := l.tickTenant(ctx, tenant); err != nil {
			errs = append(errs, fmt.Errorf("tick %s: %w", tenant, err))
		}
	}
	return errors.Join(errs...)
}

func (l *Log) tickTenant(ctx context.Context, tenant string) error {
	unlock := l.lock(tenant)
	defer unlock()
	h, ver, err := l.loadHead(ctx, tenant)
	if err != nil {
		return err
	}
	if h.Size > h.Checkpoint && l.opts.Now().Sub(h.Pending) < l.opts.CheckpointInterval {
		return nil
	}
	if h.Size > h.Checkpoint {
		if h, err = l.signHead(ctx, tenant, h, ver); err != nil {
			return err
		}
	}
	l.noteDirty(tenant, h)
	return nil
}

// signHead signs a checkpoint of h and stores it with the head that records
// it; the caller holds the tenant's lock.
func (l *Log) signHead(ctx context.Context, tenant string, h head, ver int64) (head, error) {
	cw, err := l.checkpointWrite(ctx, tenant, h)
	if err != nil {
		return head{}, err
	}
	h.Checkpoint, h.Pending = h.Size, time.Time{}
	hw, err := l.headWrite(ctx, tenant, h, ver)
	if err != nil {
		return head{}, err
	}
	if _, err := l.backend.Apply(ctx, []store.Write{cw, hw}); err != nil {
		return head{}, fmt.Errorf("store checkpoint %d: %w", h.Size, err)
	}
	return h, nil
}

// Checkpoint returns tenant's latest signed checkpoint note and its size. It
// returns store.ErrNotFound when none has been signed yet.
func (l *Log) Checkpoint(ctx context.Context, tenant string) (signed []byte, size int64, err error) {
	if err := checkTenant(tenant); err != nil {
		return nil, 0, fmt.Errorf("checkpoint: %w: %w", store.ErrInvalid, err)
	}
	h, _, err := l.loadHead(ctx, tenant)
	if err != nil {
		return nil, 0, fmt.Errorf("checkpoint: %w", err)
	}
	if h.Checkpoint == 0 {
		return nil, 0, fmt.Errorf("checkpoint of %s: none signed yet: %w", tenant, store.ErrNotFound)
	}
	signed, cp, err := l.storedCheckpoint(ctx, tenant, h.Checkpoint)
	if err != nil {
		return nil, 0, fmt.Errorf("checkpoint: %w", err)
	}
	return signed, cp.Size, nil
}

// storedCheckpoint returns the stored checkpoint of tenant at size, checked:
// its body opens, its signature verifies with the Log's verifier, and it
// names tenant's origin and size.
func (l *Log) storedCheckpoint(ctx context.Context, tenant string, size int64) ([]byte, Checkpoint, error) {
	rec, err := l.backend.Get(ctx, collCheckpoint, tenant, pos20(size))
	if err != nil {
		return nil, Checkpoint{}, fmt.Errorf("checkpoint %d of %s: %w", size, tenant, err)
	}
	body, cp, err := l.openCheckpointRecord(ctx, rec)
	if err != nil {
		return nil, Checkpoint{}, fmt.Errorf("checkpoint %d of %s: %w: %w", size, tenant, ErrTampered, err)
	}
	return []byte(body.Note), cp, nil
}

// openCheckpointRecord opens a stored checkpoint record and checks it.
func (l *Log) openCheckpointRecord(ctx context.Context, rec store.Record) (checkpointBody, Checkpoint, error) {
	plain, err := l.open(ctx, rec)
	if err != nil {
		return checkpointBody{}, Checkpoint{}, err
	}
	var body checkpointBody
	if err := json.Unmarshal(plain, &body); err != nil {
		return checkpointBody{}, Checkpoint{}, fmt.Errorf("decode checkpoint: %w", err)
	}
	cp, err := openCheckpoint([]byte(body.Note), l.verifier)
	if err != nil {
		return checkpointBody{}, Checkpoint{}, err
	}
	if want := originOf(l.opts.Origin, rec.Tenant); cp.Origin != want {
		return checkpointBody{}, Checkpoint{}, fmt.Errorf("checkpoint origin %q, want %q", cp.Origin, want)
	}
	if pos20(cp.Size) != rec.ID {
		return checkpointBody{}, Checkpoint{}, fmt.Errorf("checkpoint of size %d stored as %s", cp.Size, rec.ID)
	}
	return body, cp, nil
}

// Tenants returns the tenants that have a log, in id order. They are listed
// under store.PlatformTenant when a tenant's first event is appended.
func (l *Log) Tenants(ctx context.Context) ([]string, error) {
	var out []string
	q := store.Query{Collection: collTenant, Tenant: store.PlatformTenant, Limit: store.MaxLimit}
	for {
		page, err := l.backend.Query(ctx, q)
		if err != nil {
			return nil, fmt.Errorf("list tenants: %w", err)
		}
		for _, rec := range page.Records {
			out = append(out, rec.ID)
		}
		if page.Next == "" {
			return out, nil
		}
		q.Cursor = page.Next
	}
}
