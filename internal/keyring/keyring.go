// Package keyring is idvault's key hierarchy (envelope encryption) and the
// Barrier that every record body, file key and audit event is sealed with.
//
//   - Root keys (KEKs) are customer-managed AES-256 keys or KMS keys (see
//     KEK). They are never stored by the platform; they only wrap data keys.
//   - Data keys (DEKs) are random AES-256 keys, one per tenant and one per
//     session (the scope), created on first use (or with the session, see
//     NewScope) and stored only wrapped by
//     the primary root key, in key records of the collection "keys" of their
//     tenant. A wrapped key is bound to its tenant and scope, so a key record
//     moved elsewhere does not unwrap.
//   - Blind-index keys are random per tenant and wrapped the same way, so a
//     root-key rotation does not change any blind index.
//
// The persisted keyring (record "keyring" of collection "keys" of the
// platform tenant) lists every root key by id with its state: primary (wraps
// new data keys), active (still unwraps), retired (nothing depends on it; may
// be removed from the configuration). It is an immutable value replaced with
// compare-and-swap, so concurrent rotations cannot both win.
//
// Crypto-shredding: Shred deletes a scope's data key; values sealed under it
// can then never be opened again, from the live store or from any backup that
// lacks the key record.
//
// Rotation: Rotate makes another configured root key primary at once; new
// data keys are wrapped under it, and Rewrap re-wraps existing data keys in
// the background (resumable: a re-wrapped key no longer matches the query for
// the old root key). Values sealed under data keys are never re-encrypted by
// a root-key rotation; old data stays readable throughout.
//
// Unwrapped data keys are cached in memory for CacheTTL; a data key shredded
// by another process stays usable in this one for at most that long.
package keyring

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/idvault/idvault/internal/barrier"
	"github.com/idvault/idvault/internal/fernet"
	"github.com/idvault/idvault/internal/store"
)

// Collection is the store collection of key records and of the keyring.
const Collection = "keys"

// keyringID is the id of the persisted keyring under store.PlatformTenant.
const keyringID = "keyring"

// Root key states in the persisted keyring.
const (
	StatePrimary = "primary"
	StateActive  = "active"
	StateRetired = "retired"
)

// CacheTTL is how long an unwrapped data key stays in memory.
const CacheTTL = 10 * time.Minute

// maxCached bounds the number of unwrapped data keys in memory.
const maxCached = 10000

// Sentinel errors.
var (
	// ErrUnknownKey means a root key named by the keyring or a key record is
	// not configured in this process.
	ErrUnknownKey = errors.New("keyring: root key not configured")
	// ErrInUse means a root key still wraps data keys and cannot be retired.
	ErrInUse = errors.New("keyring: root key still in use")
)

// RootState is one root key in the persisted keyring.
type RootState struct {
	ID      string    `json:"id"`
	State   string    `json:"state"`
	AddedAt time.Time `json:"addedAt"`
}

// persisted is the keyring record.
type persisted struct {
	Keys []RootState `json:"keys"`
}

func (p persisted) primary() string {
	for _, k := range p.Keys {
		if k.State == StatePrimary {
			return k.ID
		}
	}
	return ""
}

// keyRecord is the body of a data key record. It is stored as is: the key in
// it is wrapped by the root key it names.
type keyRecord struct {
	KeyID     uint32    `json:"kid"`
	Root      string    `json:"root"`
	Wrapped   []byte    `json:"wrapped"`
	CreatedAt time.Time `json:"createdAt"`
}

type cacheKey struct{ tenant, id string }

type cached struct {
	key     *barrier.DataKey
	raw     []byte
	expires time.Time
}

// Keyring is the key hierarchy of one process. It implements
// barrier.Barrier and is safe for concurrent use.
type Keyring struct {
	backend store.Backend
	roots   atomic.Pointer[map[string]KEK]
	log     *slog.Logger
	now     func() time.Time

	mu    sync.Mutex
	cache map[cacheKey]cached
	// shreds counts Shred calls; a lookup that raced with one does not
	// cache what it read (see dataKey).
	shreds uint64

	fernet     fernet.Keys
	sealFernet bool
}

var _ barrier.Barrier = (*Keyring)(nil)

// New returns the keyring over backend with the configured root keys. On a
// store without a persisted keyring the first root key becomes primary;
// configured keys the keyring does not list yet are added as active. It
// fails if the keyring's primary key is not configured, or if a retired key
// is configured again.
func New(ctx context.Context, backend store.Backend, roots []KEK, log *slog.Logger, now func() time.Time) (*Keyring, error) {
	if len(roots) == 0 {
		return nil, errors.New("keyring: no root key configured")
	}
	if now == nil {
		now = time.Now
	}
	k := &Keyring{backend: backend, log: log, now: now, cache: map[cacheKey]cached{}}
	if err := k.Reload(ctx, roots); err != nil {
		return nil, err
	}
	return k, nil
}

// Reload replaces the configured root keys (on SIGHUP, after an operator
// added a key for rotation) with the same checks as New. The keys in use
// stay until the new set passes them.
func (k *Keyring) Reload(ctx context.Context, roots []KEK) error {
	if len(roots) == 0 {
		return errors.New("keyring: no root key configured")
	}
	m := make(map[string]KEK, len(roots))
	for _, r := range roots {
		if _, dup := m[r.ID()]; dup {
			return fmt.Errorf("keyring: root key id %q configured twice", r.ID())
		}
		m[r.ID()] = r
	}
	p, err := k.update(ctx, func(p *persisted) error {
		known := map[string]bool{}
		for _, s := range p.Keys {
			known[s.ID] = true
			if s.State == StateRetired && m[s.ID] != nil {
				return fmt.Errorf("keyring: root key %q is retired; remove it from the configuration", s.ID)
			}
		}
		for i, r := range roots {
			if known[r.ID()] {
				continue
			}
			state := StateActive
			if len(p.Keys) == 0 && i == 0 {
				state = StatePrimary
			}
			p.Keys = append(p.Keys, RootState{ID: r.ID(), State: state, AddedAt: k.now().UTC()})
		}
		return nil
	})
	if err != nil {
		return err
	}
	if primary := p.primary(); m[primary] == nil {
		return fmt.Errorf("%w: the primary root key %q", ErrUnknownKey, primary)
	}
	k.roots.Store(&m)
	return nil
}

// root returns the configured root key id.
func (k *Keyring) root(id string) (KEK, bool) {
	r, ok := (*k.roots.Load())[id]
	return r, ok
}

// load reads the persisted keyring and its version (0 when absent).
func (k *Keyring) load(ctx context.Context) (persisted, int64, error) {
	rec, err := k.backend.Get(ctx, Collection, store.PlatformTenant, keyringID)
	if errors.Is(err, store.ErrNotFound) {
		return persisted{}, 0, nil
	}
	if err != nil {
		return persisted{}, 0, fmt.Errorf("keyring: load: %w", err)
	}
	var p persisted
	if err := json.Unmarshal(rec.Body, &p); err != nil {
		return persisted{}, 0, fmt.Errorf("keyring: load: %w", err)
	}
	return p, rec.Version, nil
}

// update applies fn to the persisted keyring and writes it back with
// compare-and-swap, retrying on conflict. It returns the new keyring.
func (k *Keyring) update(ctx context.Context, fn func(*persisted) error) (persisted, error) {
	for {
		p, version, err := k.load(ctx)
		if err != nil {
			return persisted{}, err
		}
		if err := fn(&p); err != nil {
			return persisted{}, err
		}
		body, err := json.Marshal(p)
		if err != nil {
			return persisted{}, err
		}
		rec := store.Record{Collection: Collection, Tenant: store.PlatformTenant, ID: keyringID, Body: body, Version: version}
		if version == 0 {
			_, err = k.backend.Put(ctx, rec)
		} else {
			_, err = k.backend.Update(ctx, rec)
		}
		if errors.Is(err, store.ErrConflict) {
			continue
		}
		if err != nil {
			return persisted{}, fmt.Errorf("keyring: save: %w", err)
		}
		return p, nil
	}
}

// primary returns the primary root key, read from the persisted keyring.
func (k *Keyring) primary(ctx context.Context) (KEK, error) {
	p, _, err := k.load(ctx)
	if err != nil {
		return nil, err
	}
	id := p.primary()
	r, ok := k.root(id)
	if !ok {
		return nil, fmt.Errorf("%w: the primary root key %q", ErrUnknownKey, id)
	}
	return r, nil
}

// Roots returns the persisted keyring: every root key and its state.
func (k *Keyring) Roots(ctx context.Context) ([]RootState, error) {
	p, _, err := k.load(ctx)
	return p.Keys, err
}

// Configured reports whether root key id is configured in this process.
func (k *Keyring) Configured(id string) bool {
	_, ok := k.root(id)
	return ok
}

// Rotate makes the configured root key id primary at once; the former
// primary stays active, so everything it wraps stays readable.
func (k *Keyring) Rotate(ctx context.Context, id string) error {
	if !k.Configured(id) {
		return fmt.Errorf("%w: %q", ErrUnknownKey, id)
	}
	_, err := k.update(ctx, func(p *persisted) error {
		found := false
		for i := range p.Keys {
			switch {
			case p.Keys[i].ID == id:
				if p.Keys[i].State == StateRetired {
					return fmt.Errorf("keyring: root key %q is retired", id)
				}
				p.Keys[i].State, found = StatePrimary, true
			case p.Keys[i].State == StatePrimary:
				p.Keys[i].State = StateActive
			}
		}
		if !found {
			p.Keys = append(p.Keys, RootState{ID: id, State: StatePrimary, AddedAt: k.now().UTC()})
		}
		return nil
	})
	return err
}

// dataKeyID is the key record id of a scope: "tenant" for the tenant's data
// key, "session:<id>" for a session's, "blind" for the blind-index key.
func dataKeyID(scope string) string {
	if scope == "" {
		return "tenant"
	}
	return "session:" + scope
}

const blindID = "blind"

// keyIndex is the index of a key record: the root key that wraps it; for a
// session's key the session id, so the scheduler can find keys whose
// session is gone; for an admin secret its name.
func keyIndex(id, root string) map[string]string {
	idx := map[string]string{"root": root}
	if scope, ok := strings.CutPrefix(id, "session:"); ok {
		idx["session"] = scope
	}
	if name, ok := strings.CutPrefix(id, "secret:"); ok {
		idx["secret"] = name
	}
	return idx
}

// SessionKeys calls fn with the session id and creation time of every
// session data key of tenant, in order, until fn returns an error.
func (k *Keyring) SessionKeys(ctx context.Context, tenant string, fn func(session string, created time.Time) error) error {
	q := store.Query{Collection: Collection, Tenant: tenant, OrderBy: "session", Limit: store.MaxLimit}
	for {
		page, err := k.backend.Query(ctx, q)
		if err != nil {
			return fmt.Errorf("keyring: list session keys: %w", err)
		}
		for _, rec := range page.Records {
			var kr keyRecord
			if err := json.Unmarshal(rec.Body, &kr); err != nil {
				return fmt.Errorf("keyring: key record %s/%s: %w", tenant, rec.ID, err)
			}
			if err := fn(strings.TrimPrefix(rec.ID, "session:"), kr.CreatedAt); err != nil {
				return err
			}
		}
		if page.Next == "" {
			return nil
		}
		q.Cursor = page.Next
	}
}

func wrapPlace(tenant, id string) barrier.Place {
	return barrier.Place{Tenant: tenant, Collection: Collection, ID: id, Field: "key"}
}

// dataKey returns the data key of (tenant, id), creating it when create is
// set and it does not exist. An absent key without create is
// store.ErrNotFound.
func (k *Keyring) dataKey(ctx context.Context, tenant, id string, create bool) (cached, error) {
	if p, ok := ctx.Value(pendingKeyCtx{}).(*pendingKey); ok && p.tenant == tenant && p.id == id {
		return p.c, nil
	}
	ck := cacheKey{tenant, id}
	now := k.now()
	k.mu.Lock()
	c, ok := k.cache[ck]
	epoch := k.shreds
	k.mu.Unlock()
	if ok && now.Before(c.expires) {
		return c, nil
	}
	rec, err := k.backend.Get(ctx, Collection, tenant, id)
	if errors.Is(err, store.ErrNotFound) && create {
		rec, err = k.createKey(ctx, tenant, id)
	}
	if err != nil {
		return cached{}, err
	}
	var kr keyRecord
	if err := json.Unmarshal(rec.Body, &kr); err != nil {
		return cached{}, fmt.Errorf("keyring: key record %s/%s: %w", tenant, id, err)
	}
	root, ok := k.root(kr.Root)
	if !ok {
		return cached{}, fmt.Errorf("%w: %q wraps key %s/%s", ErrUnknownKey, kr.Root, tenant, id)
	}
	raw, err := root.Unwrap(ctx, wrapPlace(tenant, id), kr.Wrapped)
	if err != nil {
		return cached{}, fmt.Errorf("keyring: unwrap key %s/%s: %w", tenant, id, err)
	}
	dk, err := barrier.NewDataKey(raw, kr.KeyID)
	if err != nil {
		return cached{}, err
	}
	c = cached{key: dk, raw: raw, expires: now.Add(CacheTTL)}
	if !k.remember(ck, c, epoch) {
		// A Shred ran while this lookup read the key record: the record
		// may be gone now. Look again rather than cache a shredded key.
		return k.dataKey(ctx, tenant, id, create)
	}
	return c, nil
}

// remember caches c under ck unless a Shred ran since epoch was read, and
// reports whether it did.
func (k *Keyring) remember(ck cacheKey, c cached, epoch uint64) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.shreds != epoch {
		return false
	}
	if len(k.cache) >= maxCached {
		for old := range k.cache {
			delete(k.cache, old)
			if len(k.cache) < maxCached/2 {
				break
			}
		}
	}
	k.cache[ck] = c
	return true
}

// pendingKey is a data key made by NewScope whose record is not committed
// yet; pendingKeyCtx is its context key.
type pendingKey struct {
	tenant, id string
	c          cached
}

type pendingKeyCtx struct{}

// NewScope makes the data key of scope, a scope of tenant that has no key
// yet (a session being created), without storing it: one write less than
// creating it on first use, which stores it in a transaction of its own. It
// returns ctx carrying the key, which Seal and Open called with that ctx
// use; the write that stores the key's record, to commit in the same
// transaction as the first record sealed under it (store.Attach); and
// committed, to call once that transaction has committed, which caches the
// key as if it had been read. Until then the key exists only in ctx: should
// the transaction fail, what was sealed under it is lost with it, as it
// should be, and the scope has no key. If the scope has a key already, the
// write fails with store.ErrConflict. With Fernet sealing (SetFernet) there
// is no data key to make: ctx comes back as it is, with no write.
func (k *Keyring) NewScope(ctx context.Context, tenant, scope string) (context.Context, []store.Write, func(), error) {
	if k.sealFernet {
		return ctx, nil, func() {}, nil
	}
	if scope == "" {
		return nil, nil, nil, fmt.Errorf("keyring: new scope needs a scope: %w", store.ErrInvalid)
	}
	id := dataKeyID(scope)
	k.mu.Lock()
	epoch := k.shreds
	k.mu.Unlock()
	rec, raw, kid, err := k.newKeyRecord(ctx, tenant, id)
	if err != nil {
		return nil, nil, nil, err
	}
	dk, err := barrier.NewDataKey(raw, kid)
	if err != nil {
		return nil, nil, nil, err
	}
	p := &pendingKey{tenant: tenant, id: id, c: cached{key: dk, raw: raw}}
	committed := func() {
		c := p.c
		c.expires = k.now().Add(CacheTTL)
		k.remember(cacheKey{tenant, id}, c, epoch)
	}
	return context.WithValue(ctx, pendingKeyCtx{}, p), []store.Write{{Op: store.OpPut, Record: rec}}, committed, nil
}

// createKey generates a data key, wraps it under the primary root key and
// stores its record. If another process created it first, that one wins.
func (k *Keyring) createKey(ctx context.Context, tenant, id string) (store.Record, error) {
	rec, raw, _, err := k.newKeyRecord(ctx, tenant, id)
	clear(raw)
	if err != nil {
		return store.Record{}, err
	}
	rec, err = k.backend.Put(ctx, rec)
	if errors.Is(err, store.ErrConflict) {
		return k.backend.Get(ctx, Collection, tenant, id)
	}
	return rec, err
}

// newKeyRecord generates a data key and returns the record that stores it
// wrapped under the primary root key, the key and its key id.
func (k *Keyring) newKeyRecord(ctx context.Context, tenant, id string) (store.Record, []byte, uint32, error) {
	root, err := k.primary(ctx)
	if err != nil {
		return store.Record{}, nil, 0, err
	}
	raw, kid, err := barrier.GenerateDataKey()
	if err != nil {
		return store.Record{}, nil, 0, err
	}
	wrapped, err := root.Wrap(ctx, wrapPlace(tenant, id), raw)
	if err != nil {
		clear(raw)
		return store.Record{}, nil, 0, err
	}
	body, err := json.Marshal(keyRecord{KeyID: kid, Root: root.ID(), Wrapped: wrapped, CreatedAt: k.now().UTC()})
	if err != nil {
		clear(raw)
		return store.Record{}, nil, 0, err
	}
	return store.Record{Collection: Collection, Tenant: tenant, ID: id, Index: keyIndex(id, root.ID()), Body: body}, raw, kid, nil
}

// Seal seals plaintext for p under the data key of p's tenant and scope,
// creating the key on first use (or as a Fernet token, see SetFernet).
func (k *Keyring) Seal(ctx context.Context, p barrier.Place, plaintext []byte) ([]byte, error) {
	if k.sealFernet {
		return k.sealFernetValue(p, plaintext)
	}
	c, err := k.dataKey(ctx, p.Tenant, dataKeyID(p.Scope), true)
	if err != nil {
		return nil, err
	}
	return c.key.Seal(p, plaintext)
}

// Open opens a value sealed for p. A value whose data key was shredded, or
// that fails authentication, is barrier.ErrOpen; a store or KMS failure is
// returned as is.
func (k *Keyring) Open(ctx context.Context, p barrier.Place, sealed []byte) ([]byte, error) {
	if IsFernet(sealed) {
		return k.openFernetValue(p, sealed)
	}
	version, _, ok := barrier.Header(sealed)
	if !ok || version != barrier.VersionData {
		return nil, barrier.ErrOpen
	}
	c, err := k.dataKey(ctx, p.Tenant, dataKeyID(p.Scope), false)
	if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrInvalid) || errors.Is(err, barrier.ErrOpen) {
		return nil, barrier.ErrOpen
	}
	if err != nil {
		return nil, err
	}
	return c.key.Open(p, sealed)
}

// Shred destroys the data key of tenant's scope (a session id), so that
// every value sealed under it is unreadable for good. Shredding an absent
// key is not an error.
func (k *Keyring) Shred(ctx context.Context, tenant, scope string) error {
	if scope == "" {
		return fmt.Errorf("keyring: shred needs a scope: %w", store.ErrInvalid)
	}
	id := dataKeyID(scope)
	// Delete first, then evict and count the shred under the lock: a
	// lookup that read the record before the delete sees the count change
	// and looks again (see dataKey).
	err := k.backend.Delete(ctx, Collection, tenant, id, 0)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("keyring: shred %s/%s: %w", tenant, id, err)
	}
	k.mu.Lock()
	k.shreds++
	delete(k.cache, cacheKey{tenant, id})
	k.mu.Unlock()
	return nil
}

// Blinder returns tenant's blind indexer, under a random per-tenant key that
// survives root-key rotation.
func (k *Keyring) Blinder(ctx context.Context, tenant string) (*barrier.Blinder, error) {
	c, err := k.dataKey(ctx, tenant, blindID, true)
	if err != nil {
		return nil, err
	}
	return barrier.NewBlinder(c.raw)
}
