package engine

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/idvault/idvault/internal/barrier"
	"github.com/idvault/idvault/internal/store"
	"github.com/idvault/idvault/internal/workflow/definition"
)

// DefinitionsCollection is the store collection of workflow definitions.
// A record's id is the definition id, "@", and the version zero-padded to
// six digits ("retail-onboarding@000003"); its clear index fields are
// defId, version (zero-padded) and active ("1" or "0").
const DefinitionsCollection = "workflows"

// ErrVersion means a created definition's version is not the next version
// of its id (the latest stored version plus one).
var ErrVersion = errors.New("engine: definition version is not the next version")

// Stored is one stored version of a workflow definition.
type Stored struct {
	// Definition is the parsed definition.
	Definition definition.Definition
	// Hash is Definition.Hash(), checked when the version is read back.
	Hash string
	// Active says new sessions may start on this version.
	Active bool
	// CreatedAt is when the version was stored.
	CreatedAt time.Time

	version int64
}

type storedBody struct {
	Canonical string    `json:"canonical"`
	Hash      string    `json:"hash"`
	Active    bool      `json:"active"`
	CreatedAt time.Time `json:"createdAt"`
}

// Definitions stores workflow definitions per tenant, one record per
// version. Stored versions never change except for their active flag. It is
// safe for concurrent use.
type Definitions struct {
	backend store.Backend
	barrier barrier.Barrier
	now     func() time.Time
	// parsed caches parsed versions by tenant, record id and hash:
	// versions never change, and parsing compiles every rule.
	parsed sync.Map
	// latest keeps Latest's answers by tenant and id (Latest).
	latestMu sync.Mutex
	latest   map[string]cachedLatest
}

// NewDefinitions returns the definitions repository over backend, sealing
// with b; now is its clock (nil: time.Now).
func NewDefinitions(backend store.Backend, b barrier.Barrier, now func() time.Time) *Definitions {
	if now == nil {
		now = time.Now
	}
	return &Definitions{backend: backend, barrier: b, now: now, latest: map[string]cachedLatest{}}
}

func recordID(id string, version int) string { return id + "@" + pad(version) }

func pad(version int) string { return fmt.Sprintf("%06d", version) }

func (r *Definitions) view(tenant string) (*store.View, error) {
	return store.NewView(r.backend, r.barrier, tenant)
}

// Create parses data with definition.Parse and stores it as a new, active
// version. The definition's version MUST be the next one of its id: 1 for a
// new id, else the highest stored version plus one (ErrVersion otherwise).
// Two concurrent creates of the same version store one; the other gets
// store.ErrConflict. Parse errors are returned as Parse returns them.
func (r *Definitions) Create(ctx context.Context, tenant string, data []byte) (Stored, error) {
	def, err := definition.Parse(data)
	if err != nil {
		return Stored{}, err
	}
	v, err := r.view(tenant)
	if err != nil {
		return Stored{}, err
	}
	latest, err := r.highest(ctx, v, def.ID)
	if err != nil {
		return Stored{}, err
	}
	if def.Version != latest+1 {
		return Stored{}, fmt.Errorf("create definition %s: version %d, want %d: %w", def.ID, def.Version, latest+1, ErrVersion)
	}
	s := Stored{Definition: def, Hash: def.Hash(), Active: true, CreatedAt: r.now().UTC()}
	sctx := store.Stamp(ctx, v, DefinitionsCollection)
	for attempt := 0; ; attempt++ {
		rec, err := v.Put(sctx, DefinitionsCollection, recordID(def.ID, def.Version), s.index(), s.body())
		if store.StampConflict(err) && attempt < 50 {
			continue
		}
		if err != nil {
			return Stored{}, fmt.Errorf("create definition %s version %d: %w", def.ID, def.Version, err)
		}
		s.version = rec.Version
		return s, nil
	}
}

func (s Stored) body() storedBody {
	return storedBody{Canonical: string(s.Definition.Canonical()), Hash: s.Hash, Active: s.Active, CreatedAt: s.CreatedAt}
}

func (s Stored) index() map[string]string {
	active := "0"
	if s.Active {
		active = "1"
	}
	return map[string]string{"defId": s.Definition.ID, "version": pad(s.Definition.Version), "active": active}
}

// highest returns the highest stored version of id, active or not, or 0.
func (r *Definitions) highest(ctx context.Context, v *store.View, id string) (int, error) {
	page, err := v.Query(ctx, store.Query{Collection: DefinitionsCollection,
		Where: []store.Cond{{Field: "defId", Op: store.Eq, Value: id}}, OrderBy: "version", Desc: true, Limit: 1})
	if err != nil {
		return 0, fmt.Errorf("latest version of %s: %w", id, err)
	}
	if len(page.Records) == 0 {
		return 0, nil
	}
	n, err := strconv.Atoi(page.Records[0].Index["version"])
	if err != nil {
		return 0, fmt.Errorf("latest version of %s: bad version index: %w", id, err)
	}
	return n, nil
}

// Get returns version version of definition id, or store.ErrNotFound.
func (r *Definitions) Get(ctx context.Context, tenant, id string, version int) (Stored, error) {
	v, err := r.view(tenant)
	if err != nil {
		return Stored{}, err
	}
	var b storedBody
	rec, err := v.Get(ctx, DefinitionsCollection, recordID(id, version), &b)
	if err != nil {
		return Stored{}, fmt.Errorf("get definition %s version %d: %w", id, version, err)
	}
	return r.decode(tenant, rec, b)
}

// Pinned returns the content of version version of definition id whose
// hash is hash, as a run pinned to it needs it: from the cache of parsed
// versions when this process has read it before (the hash names the
// content, which never changes), else read and checked. A stored version
// whose hash differs is store.ErrInvalid.
func (r *Definitions) Pinned(ctx context.Context, tenant, id string, version int, hash string) (definition.Definition, error) {
	if def, ok := r.parsed.Load(tenant + "/" + recordID(id, version) + "/" + hash); ok {
		return def.(definition.Definition), nil
	}
	st, err := r.Get(ctx, tenant, id, version)
	if err != nil {
		return definition.Definition{}, err
	}
	if st.Hash != hash {
		return definition.Definition{}, fmt.Errorf("definition %s version %d changed: %w", id, version, store.ErrInvalid)
	}
	return st.Definition, nil
}

// decode returns the stored version rec of tenant, whose opened body is b.
func (r *Definitions) decode(tenant string, rec store.Record, b storedBody) (Stored, error) {
	key := tenant + "/" + rec.ID + "/" + b.Hash
	if def, ok := r.parsed.Load(key); ok {
		return Stored{Definition: def.(definition.Definition), Hash: b.Hash, Active: b.Active, CreatedAt: b.CreatedAt, version: rec.Version}, nil
	}
	def, err := definition.Parse([]byte(b.Canonical))
	if err != nil {
		return Stored{}, fmt.Errorf("stored definition %s: %w", rec.ID, err)
	}
	if def.Hash() != b.Hash || recordID(def.ID, def.Version) != rec.ID {
		return Stored{}, fmt.Errorf("stored definition %s: content does not match its hash or id: %w", rec.ID, store.ErrInvalid)
	}
	r.parsed.Store(key, def)
	return Stored{Definition: def, Hash: b.Hash, Active: b.Active, CreatedAt: b.CreatedAt, version: rec.Version}, nil
}

// Latest returns the highest active version of definition id, or
// store.ErrNotFound when it has none.
//
// The answer is kept with the version of the collection's stamp
// (store.Stamp, bumped by Create and Deactivate in the transaction of the
// change, whichever process makes it) and given again while the stamp has
// not moved: one read instead of a query for every session created.
func (r *Definitions) Latest(ctx context.Context, tenant, id string) (Stored, error) {
	v, err := r.view(tenant)
	if err != nil {
		return Stored{}, err
	}
	stamp, err := store.StampOf(ctx, v, DefinitionsCollection)
	if err != nil {
		return Stored{}, fmt.Errorf("latest definition %s: %w", id, err)
	}
	key := tenant + "/" + id
	r.latestMu.Lock()
	c, ok := r.latest[key]
	r.latestMu.Unlock()
	if !ok || c.stamp != stamp {
		if c, err = r.readLatest(ctx, v, id); err != nil {
			return Stored{}, err
		}
		c.stamp = stamp
		r.latestMu.Lock()
		if len(r.latest) >= maxCachedLatest {
			clear(r.latest)
		}
		r.latest[key] = c
		r.latestMu.Unlock()
	}
	if !c.found {
		return Stored{}, fmt.Errorf("latest definition %s: %w", id, store.ErrNotFound)
	}
	return c.st, nil
}

// maxCachedLatest bounds the answers of Latest kept.
const maxCachedLatest = 10000

// cachedLatest is an answer of Latest, at a version of the collection's
// stamp: the version, or that there is none (found false).
type cachedLatest struct {
	stamp int64
	st    Stored
	found bool
}

func (r *Definitions) readLatest(ctx context.Context, v *store.View, id string) (cachedLatest, error) {
	page, err := v.Query(ctx, store.Query{Collection: DefinitionsCollection,
		Where:   []store.Cond{{Field: "defId", Op: store.Eq, Value: id}, {Field: "active", Op: store.Eq, Value: "1"}},
		OrderBy: "version", Desc: true, Limit: 1})
	if err != nil {
		return cachedLatest{}, fmt.Errorf("latest definition %s: %w", id, err)
	}
	if len(page.Records) == 0 {
		return cachedLatest{}, nil
	}
	var b storedBody
	if err := v.Decode(ctx, page.Records[0], &b); err != nil {
		return cachedLatest{}, err
	}
	st, err := r.decode(v.Tenant(), page.Records[0], b)
	if err != nil {
		return cachedLatest{}, err
	}
	return cachedLatest{st: st, found: true}, nil
}

// List returns every stored version of definition id, or of every
// definition when id is "", ordered by id then version.
func (r *Definitions) List(ctx context.Context, tenant, id string) ([]Stored, error) {
	v, err := r.view(tenant)
	if err != nil {
		return nil, err
	}
	q := store.Query{Collection: DefinitionsCollection}
	if id != "" {
		q.Where = []store.Cond{{Field: "defId", Op: store.Eq, Value: id}}
	}
	var out []Stored
	err = v.Each(ctx, q, func(rec store.Record) error {
		var b storedBody
		if err := v.Decode(ctx, rec, &b); err != nil {
			return err
		}
		s, err := r.decode(tenant, rec, b)
		if err != nil {
			return err
		}
		out = append(out, s)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list definitions: %w", err)
	}
	return out, nil
}

// Deactivate clears the active flag of version version of definition id,
// so new sessions no longer start on it; sessions pinned to it run on. It
// is store.ErrNotFound for an unknown version and does nothing for an
// inactive one.
func (r *Definitions) Deactivate(ctx context.Context, tenant, id string, version int) error {
	v, err := r.view(tenant)
	if err != nil {
		return err
	}
	ctx = store.Stamp(ctx, v, DefinitionsCollection)
	for attempt := 0; ; attempt++ {
		s, err := r.Get(ctx, tenant, id, version)
		if err != nil {
			return err
		}
		if !s.Active {
			return nil
		}
		s.Active = false
		_, err = v.Update(ctx, DefinitionsCollection, recordID(id, version), s.version, s.index(), s.body())
		if errors.Is(err, store.ErrConflict) && attempt < 10 {
			continue
		}
		if err != nil {
			return fmt.Errorf("deactivate definition %s version %d: %w", id, version, err)
		}
		return nil
	}
}
