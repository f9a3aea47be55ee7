package engine_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/idvault/idvault/internal/session"
	"github.com/idvault/idvault/internal/store"
	"github.com/idvault/idvault/internal/workflow/definition"
	"github.com/idvault/idvault/internal/workflow/engine"
)

// kycV2 is version 2 of kyc: it rejects every session.
const kycV2 = `
id: kyc
version: 2
name: KYC reject all
start: no
steps:
  - id: no
    type: decision
    decision: rejected
    reason: closed
`

func TestDefinitionsVersioning(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	v1 := f.define(t, kycYAML)
	if v1.Definition.Version != 1 || !v1.Active || v1.Hash != v1.Definition.Hash() {
		t.Fatalf("Create() = version %d active %t", v1.Definition.Version, v1.Active)
	}
	if _, err := f.defs.Create(ctx, tenant, []byte(kycYAML)); !errors.Is(err, engine.ErrVersion) {
		t.Errorf("Create(version 1 again) = %v, want ErrVersion", err)
	}
	if _, err := f.defs.Create(ctx, tenant, []byte(strings.Replace(kycV2, "version: 2", "version: 3", 1))); !errors.Is(err, engine.ErrVersion) {
		t.Errorf("Create(version 3 after 1) = %v, want ErrVersion", err)
	}
	if _, err := f.defs.Create(ctx, tenant, []byte("id: kyc\nversion: 2\n")); len(definition.Problems(err)) == 0 {
		t.Errorf("Create(invalid) = %v, want parse problems", err)
	}

	// A session that started on version 1 stays on it.
	id := f.newSession(t, "kyc", nil)
	if err := f.eng.Handle(ctx, message(id)); err != nil {
		t.Fatal(err)
	}
	v2 := f.define(t, kycV2)
	latest, err := f.defs.Latest(ctx, tenant, "kyc")
	if err != nil || latest.Definition.Version != 2 || latest.Hash != v2.Hash {
		t.Fatalf("Latest() = %d, %v, want version 2", latest.Definition.Version, err)
	}
	f.addFiles(t, id, docAndSelfie...)
	handleUntilDone(t, f.eng, id)
	if s := f.session(t, id); s.Status != session.StatusApproved {
		t.Errorf("pinned session = %s %q, want approved by version 1", s.Status, s.Reason)
	}
	// A new session takes version 2.
	id2 := f.newSession(t, "kyc", nil)
	handleUntilDone(t, f.eng, id2)
	if s, r := f.session(t, id2), f.run(t, id2); s.Status != session.StatusRejected || r.Version != 2 {
		t.Errorf("new session = %s on version %d, want rejected on 2", s.Status, r.Version)
	}

	// Deactivating version 2 makes version 1 the latest; version 2 stays readable.
	if err := f.defs.Deactivate(ctx, tenant, "kyc", 2); err != nil {
		t.Fatal(err)
	}
	if err := f.defs.Deactivate(ctx, tenant, "kyc", 2); err != nil {
		t.Errorf("second Deactivate() = %v", err)
	}
	if latest, err := f.defs.Latest(ctx, tenant, "kyc"); err != nil || latest.Definition.Version != 1 {
		t.Errorf("Latest() after deactivate = %d, %v, want 1", latest.Definition.Version, err)
	}
	if got, err := f.defs.Get(ctx, tenant, "kyc", 2); err != nil || got.Active || got.Hash != v2.Hash {
		t.Errorf("Get(2) = active %t, %v, want inactive", got.Active, err)
	}
	if err := f.defs.Deactivate(ctx, tenant, "kyc", 9); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Deactivate(unknown) = %v, want ErrNotFound", err)
	}
	if err := f.defs.Deactivate(ctx, tenant, "kyc", 1); err != nil {
		t.Fatal(err)
	}
	if _, err := f.defs.Latest(ctx, tenant, "kyc"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Latest() with none active = %v, want ErrNotFound", err)
	}
	list, err := f.defs.List(ctx, tenant, "kyc")
	if err != nil || len(list) != 2 || list[0].Definition.Version != 1 || list[1].Definition.Version != 2 {
		t.Errorf("List() = %d versions, %v, want 1 and 2", len(list), err)
	}
	if all, err := f.defs.List(ctx, tenant, ""); err != nil || len(all) != 2 {
		t.Errorf("List(all) = %d, %v, want 2", len(all), err)
	}
	if other, err := f.defs.List(ctx, "other-tenant", ""); err != nil || len(other) != 0 {
		t.Errorf("List(other tenant) = %d, %v, want none", len(other), err)
	}
}

func TestDefinitionsConcurrentCreate(t *testing.T) {
	f := newFixture(t)
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() {
			_, errs[i] = f.defs.Create(context.Background(), tenant, []byte(kycYAML))
		})
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, store.ErrConflict) && !errors.Is(err, engine.ErrVersion):
			t.Errorf("Create() = %v", err)
		}
	}
	list, err := f.defs.List(context.Background(), tenant, "kyc")
	if ok != 1 || err != nil || len(list) != 1 {
		t.Errorf("%d creates of version 1 succeeded, %d stored (%v), want 1", ok, len(list), err)
	}
}

// TestPinned checks the version a run is pinned to: its content comes back
// for the right hash, read (a process that never read it) or cached, and a
// hash the stored version does not have is refused either way.
func TestPinned(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	v1 := f.define(t, kycYAML)
	for _, name := range []string{"read", "cached"} {
		def, err := f.defs.Pinned(ctx, tenant, "kyc", 1, v1.Hash)
		if err != nil || def.Hash() != v1.Hash {
			t.Errorf("%s: Pinned(right hash) = %v, want the stored version", name, err)
		}
	}
	fresh := engine.NewDefinitions(f.env.Backend, f.env.Barrier, nil)
	other := strings.Repeat("0", len(v1.Hash))
	for _, defs := range []*engine.Definitions{f.defs, fresh} {
		if _, err := defs.Pinned(ctx, tenant, "kyc", 1, other); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("Pinned(another hash) = %v, want store.ErrInvalid", err)
		}
	}
	if _, err := fresh.Pinned(ctx, tenant, "kyc", 2, v1.Hash); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Pinned(version not stored) = %v, want store.ErrNotFound", err)
	}
}

// definitionQueries counts the queries of the definitions collection.
type definitionQueries struct {
	store.Backend
	mu sync.Mutex
	n  int
}

func (b *definitionQueries) Query(ctx context.Context, q store.Query) (store.Page, error) {
	if q.Collection == engine.DefinitionsCollection {
		b.mu.Lock()
		b.n++
		b.mu.Unlock()
	}
	return b.Backend.Query(ctx, q)
}

// TestLatestKept: Latest answers from what it read last while the
// definitions' stamp stays, so a run of session creates queries once; a
// version created or deactivated through another Definitions (another
// process) moves the stamp, and the next Latest follows it, absence
// included.
func TestLatestKept(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	counted := &definitionQueries{Backend: f.env.Backend}
	defs := engine.NewDefinitions(counted, f.env.Barrier, nil)
	latest := func() int {
		t.Helper()
		st, err := defs.Latest(ctx, tenant, "kyc")
		if errors.Is(err, store.ErrNotFound) {
			return 0
		}
		if err != nil {
			t.Fatal(err)
		}
		return st.Definition.Version
	}
	if v := latest(); v != 0 {
		t.Fatalf("Latest() before any version = %d, want none", v)
	}
	f.define(t, kycYAML) // f.defs: another process
	for range 3 {
		if v := latest(); v != 1 {
			t.Fatalf("Latest() = %d, want 1", v)
		}
	}
	counted.mu.Lock()
	queries := counted.n
	counted.mu.Unlock()
	if queries != 2 {
		t.Errorf("definition queries = %d, want 2 (before and after the create)", queries)
	}
	f.define(t, kycV2)
	if v := latest(); v != 2 {
		t.Fatalf("Latest() after another process stored version 2 = %d, want 2", v)
	}
	if err := f.defs.Deactivate(ctx, tenant, "kyc", 2); err != nil {
		t.Fatal(err)
	}
	if v := latest(); v != 1 {
		t.Fatalf("Latest() after another process deactivated version 2 = %d, want 1", v)
	}
	if err := f.defs.Deactivate(ctx, tenant, "kyc", 1); err != nil {
		t.Fatal(err)
	}
	if v := latest(); v != 0 {
		t.Fatalf("Latest() with every version inactive = %d, want none", v)
	}
}
