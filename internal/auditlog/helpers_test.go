package auditlog

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/idvault/idvault/internal/queue"
	"github.com/idvault/idvault/internal/store"
	"github.com/idvault/idvault/internal/testenv"
	"github.com/idvault/idvault/internal/testenv/testclock"
)

const testOrigin = "idvault.test/audit"

// fixture is one test's log on a real SQLite store.
type fixture struct {
	env    *testenv.Env
	log    *Log
	clock  *testclock.Clock
	skey   string
	vkey   string
	signer note.Signer
	opts   Options
}

func newFixture(tb testing.TB, opts Options) *fixture {
	tb.Helper()
	f := &fixture{env: testenv.Open(tb, queue.Options{}), clock: testclock.New(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))}
	var err error
	if f.skey, f.vkey, err = GenerateKey("idvault.test"); err != nil {
		tb.Fatal(err)
	}
	if f.signer, err = note.NewSigner(f.skey); err != nil {
		tb.Fatal(err)
	}
	v, err := note.NewVerifier(f.vkey)
	if err != nil {
		tb.Fatal(err)
	}
	opts.Origin, opts.Verifier, opts.Now = testOrigin, v, f.clock.Now
	f.opts = opts
	f.log = f.newLog(tb)
	return f
}

// newLog returns another Log over the fixture's store, as a second process
// or a restart would have.
func (f *fixture) newLog(tb testing.TB) *Log {
	tb.Helper()
	l, err := New(f.env.Backend, f.env.Barrier, f.signer, f.opts)
	if err != nil {
		tb.Fatalf("New() = %v", err)
	}
	return l
}

var baseTime = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)

// entry returns event i of tenant: about 400 bytes of JSON shaped like an
// audit event, with an address and user agent (personal data).
func entry(tb testing.TB, tenant string, i int) Entry {
	tb.Helper()
	type actor struct{ Type, ID, Address, UserAgent string }
	type resource struct{ Type, ID string }
	ev := struct {
		ID, Tenant string
		Time       time.Time
		Actor      actor
		Action     string
		Resource   resource
		Outcome    string
		RequestID  string
		Details    map[string]string
	}{
		ID:        fmt.Sprintf("evt-%s-%06d", tenant, i),
		Tenant:    tenant,
		Time:      baseTime.Add(time.Duration(i) * time.Second),
		Actor:     actor{Type: "user", ID: fmt.Sprintf("user-%d", i%5), Address: fmt.Sprintf("203.0.113.%d", i%250), UserAgent: "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/120.0"},
		Action:    []string{"session.read", "file.read", "user.signin", "profile.update"}[i%4],
		Resource:  resource{Type: []string{"session", "file", "user", "profile"}[i%4], ID: fmt.Sprintf("res-%d", i%7)},
		Outcome:   []string{"success", "denied"}[i%2],
		RequestID: fmt.Sprintf("req-%08d", i),
		Details:   map[string]string{"fields": "name,birthDate,documentNumber", "purpose": "kyc-review"},
	}
	data, err := json.Marshal(ev)
	if err != nil {
		tb.Fatal(err)
	}
	return Entry{
		Tenant: tenant, ID: ev.ID, Time: ev.Time, Data: data,
		Index: map[string]string{
			IndexAction: ev.Action, IndexOutcome: ev.Outcome, IndexActorType: ev.Actor.Type,
			IndexActorID: ev.Actor.ID, IndexResourceType: ev.Resource.Type, IndexResourceID: ev.Resource.ID,
		},
	}
}

func entries(tb testing.TB, tenant string, from, n int) []Entry {
	out := make([]Entry, n)
	for i := range out {
		out[i] = entry(tb, tenant, from+i)
	}
	return out
}

// appendN appends events [from, from+n) of tenant in calls of size per.
func (f *fixture) appendN(tb testing.TB, tenant string, from, n, per int) {
	tb.Helper()
	for i := from; i < from+n; i += per {
		k := min(per, from+n-i)
		got, err := f.log.Append(context.Background(), entries(tb, tenant, i, k))
		if err != nil || got != k {
			tb.Fatalf("Append(%d events from %d) = %d, %v, want %d, nil", k, i, got, err, k)
		}
	}
}

func (f *fixture) verify(tb testing.TB, tenant string, opts VerifyOptions) Report {
	tb.Helper()
	rep, err := f.log.Verify(context.Background(), tenant, opts)
	if err != nil {
		tb.Fatalf("Verify(%s) = %v", tenant, err)
	}
	return rep
}

// wantVerified fails unless Verify finds no problem in events events.
func (f *fixture) wantVerified(tb testing.TB, tenant string, opts VerifyOptions, events int64) Report {
	tb.Helper()
	rep := f.verify(tb, tenant, opts)
	if !rep.Verified() || rep.Events != events {
		tb.Fatalf("Verify(%s) = events %d, problem %+v; want %d events verified", tenant, rep.Events, rep.Problem, events)
	}
	return rep
}

// wantProblem fails unless Verify reports kind at pos.
func (f *fixture) wantProblem(tb testing.TB, tenant string, opts VerifyOptions, kind Kind, pos int64) Report {
	tb.Helper()
	rep := f.verify(tb, tenant, opts)
	if rep.Problem == nil || rep.Problem.Kind != kind || rep.Problem.Position != pos {
		tb.Fatalf("Verify(%s) problem = %+v, want %s at %d", tenant, rep.Problem, kind, pos)
	}
	return rep
}

// records returns every record of a collection of tenant, in id order.
func (f *fixture) records(tb testing.TB, collection, tenant string) []store.Record {
	tb.Helper()
	var out []store.Record
	if err := f.log.eachRecord(context.Background(), store.Query{Collection: collection, Tenant: tenant, Limit: 10}, func(r store.Record) error {
		out = append(out, r)
		return nil
	}); err != nil {
		tb.Fatal(err)
	}
	return out
}

func (f *fixture) update(tb testing.TB, rec store.Record) {
	tb.Helper()
	if _, err := f.env.Backend.Update(context.Background(), rec); err != nil {
		tb.Fatalf("Update(%s/%s) = %v", rec.Collection, rec.ID, err)
	}
}

// batchHolding returns the batch record holding position p and its items.
func (f *fixture) batchHolding(tb testing.TB, tenant string, p int64) (store.Record, [][]byte, int) {
	tb.Helper()
	for _, rec := range f.records(tb, collBatch, tenant) {
		start, _ := parsePos20(rec.ID)
		items, ok := splitBatch(rec.Body)
		if !ok {
			tb.Fatalf("batch %s does not split", rec.ID)
		}
		if p >= start && p < start+int64(len(items)) {
			return rec, items, int(p - start)
		}
	}
	tb.Fatalf("no batch holds position %d", p)
	return store.Record{}, nil, 0
}

// setItems rewrites a batch record's framing with items, as an attacker
// with write access to the database can.
func (f *fixture) setItems(tb testing.TB, rec store.Record, items [][]byte) {
	tb.Helper()
	var body []byte
	for _, it := range items {
		body = appendLen32(body, it)
	}
	rec.Body = body
	f.update(tb, rec)
}

// openLeaf opens a sealed leaf with the barrier key (an insider).
func (f *fixture) openLeaf(tb testing.TB, tenant string, sealed []byte) Leaf {
	tb.Helper()
	plain, err := f.env.Barrier.Open(context.Background(), leafPlace(tenant), sealed)
	if err != nil {
		tb.Fatal(err)
	}
	lf, err := ParseLeaf(plain)
	if err != nil {
		tb.Fatal(err)
	}
	return lf
}

// sealLeaf encodes and seals a leaf with the barrier key (an insider).
func (f *fixture) sealLeaf(tb testing.TB, lf Leaf) ([]byte, []byte) {
	tb.Helper()
	plain, err := lf.MarshalBinary()
	if err != nil {
		tb.Fatal(err)
	}
	sealed, err := f.env.Barrier.Seal(context.Background(), leafPlace(lf.Tenant), plain)
	if err != nil {
		tb.Fatal(err)
	}
	return plain, sealed
}
