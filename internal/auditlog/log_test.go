package auditlog

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/idvault/idvault/internal/store"
)

func TestAppendVerify(t *testing.T) {
	f := newFixture(t, Options{CheckpointEvery: 100})
	f.appendN(t, "t1", 0, 1000, 64)
	rep := f.wantVerified(t, "t1", VerifyOptions{}, 1000)
	if rep.Checkpoint == nil || rep.Checkpoint.Size != 1000 || rep.Unsigned != 0 {
		t.Fatalf("Verify() checkpoint = %+v, unsigned %d, want size 1000, 0 unsigned", rep.Checkpoint, rep.Unsigned)
	}
	signed, size, err := f.log.Checkpoint(context.Background(), "t1")
	if err != nil || size != 1000 {
		t.Fatalf("Checkpoint() = %d, %v, want 1000", size, err)
	}
	v, _ := note.NewVerifier(f.vkey)
	cp, err := openCheckpoint(signed, v)
	if err != nil || cp.Origin != testOrigin+"/t1" || cp.Size != 1000 || cp.Root != rep.Checkpoint.Root {
		t.Fatalf("checkpoint = %+v, %v; want origin %s/t1, size 1000, root %s", cp, err, testOrigin, rep.Checkpoint.Root)
	}
	tenants, err := f.log.Tenants(context.Background())
	if err != nil || len(tenants) != 1 || tenants[0] != "t1" {
		t.Fatalf("Tenants() = %v, %v, want [t1]", tenants, err)
	}
}

func TestAppendLargeCallSplitsIntoBatches(t *testing.T) {
	f := newFixture(t, Options{CheckpointEvery: 10000})
	got, err := f.log.Append(context.Background(), entries(t, "t1", 0, 2500))
	if err != nil || got != 2500 {
		t.Fatalf("Append(2500) = %d, %v", got, err)
	}
	if n := len(f.records(t, collBatch, "t1")); n != 3 {
		t.Errorf("batches = %d, want 3 (at most %d events each)", n, store.MaxBatch)
	}
	rep := f.wantVerified(t, "t1", VerifyOptions{}, 2500)
	if rep.Checkpoint != nil || rep.Unsigned != 2500 {
		t.Errorf("Verify() = checkpoint %+v, unsigned %d; want none, 2500", rep.Checkpoint, rep.Unsigned)
	}
}

func TestAppendLargeEventsSplitBatches(t *testing.T) {
	f := newFixture(t, Options{})
	evs := entries(t, "t1", 0, 9)
	for i := range evs {
		evs[i].Data = bytes.Repeat([]byte{'x'}, MaxDataLen)
	}
	if got, err := f.log.Append(context.Background(), evs); err != nil || got != 9 {
		t.Fatalf("Append(9 events of 1 MiB) = %d, %v", got, err)
	}
	if n := len(f.records(t, collBatch, "t1")); n != 3 {
		t.Errorf("batches = %d, want 3 of at most %d bytes", n, maxBatchBytes)
	}
	f.wantVerified(t, "t1", VerifyOptions{}, 9)
}

func TestAppendIdempotent(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, Options{CheckpointEvery: 50})
	f.appendN(t, "t1", 0, 100, 100)
	if got, err := f.log.Append(ctx, entries(t, "t1", 0, 100)); err != nil || got != 0 {
		t.Fatalf("Append(same 100 again) = %d, %v, want 0, nil", got, err)
	}
	// A redelivered batch overlapping new events appends only the new.
	mixed := append(entries(t, "t1", 90, 20), entry(t, "t1", 95), entry(t, "t1", 120))
	if got, err := f.log.Append(ctx, mixed); err != nil || got != 11 {
		t.Fatalf("Append(10 old, 10 new, 1 repeated, 1 new) = %d, %v, want 11", got, err)
	}
	// A fresh Log (a restarted process) also skips them.
	if got, err := f.newLog(t).Append(ctx, append(entries(t, "t1", 0, 110), entry(t, "t1", 120))); err != nil || got != 0 {
		t.Fatalf("restarted Append(all) = %d, %v, want 0", got, err)
	}
	f.wantVerified(t, "t1", VerifyOptions{}, 111)
	evs, _, err := f.log.Events(ctx, "t1", Filter{}, "", store.MaxLimit)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for i, e := range evs {
		if seen[e.ID] || e.Index != int64(i) {
			t.Fatalf("event %d: %s at %d (seen before: %v)", i, e.ID, e.Index, seen[e.ID])
		}
		seen[e.ID] = true
	}
	if want := entry(t, "t1", 120).ID; evs[110].ID != want {
		t.Errorf("last event = %s, want %s", evs[110].ID, want)
	}
}

func TestAppendRejectsInvalid(t *testing.T) {
	f := newFixture(t, Options{})
	good := entry(t, "t1", 0)
	for name, mutate := range map[string]func(*Entry){
		"empty tenant":    func(e *Entry) { e.Tenant = "" },
		"slash in tenant": func(e *Entry) { e.Tenant = "a/b" },
		"space in tenant": func(e *Entry) { e.Tenant = "a b" },
		"empty id":        func(e *Entry) { e.ID = "" },
		"zero time":       func(e *Entry) { e.Time = time.Time{} },
		"unknown index":   func(e *Entry) { e.Index = map[string]string{"email": "x"} },
		"empty value":     func(e *Entry) { e.Index = map[string]string{IndexAction: ""} },
	} {
		t.Run(name, func(t *testing.T) {
			e := good
			mutate(&e)
			if n, err := f.log.Append(context.Background(), []Entry{good, e}); !errors.Is(err, store.ErrInvalid) || n != 0 {
				t.Fatalf("Append() = %d, %v, want 0, ErrInvalid", n, err)
			}
		})
	}
	if recs := f.records(t, collBatch, "t1"); len(recs) != 0 {
		t.Errorf("a call with an invalid entry stored %d batches, want 0", len(recs))
	}
}

func TestConcurrentLogsAppendOnce(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, Options{CheckpointEvery: 100})
	logs := []*Log{f.log, f.newLog(t), f.newLog(t)}
	var wg sync.WaitGroup
	errs := make(chan error, 30)
	for w, l := range logs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Every process delivers every event, in overlapping batches.
			for i := 0; i < 300; i += 30 {
				batch := make([]Entry, 30)
				for j := range batch {
					batch[j] = entry(t, "t1", (i+w*10+j)%300)
				}
				if _, err := l.Append(ctx, batch); err != nil {
					errs <- fmt.Errorf("log %d: %w", w, err)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	f.wantVerified(t, "t1", VerifyOptions{}, 300)
}

func TestTickSignsAfterInterval(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, Options{CheckpointEvery: 1000, CheckpointInterval: time.Minute})
	f.appendN(t, "t1", 0, 10, 10)
	if _, _, err := f.log.Checkpoint(ctx, "t1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Checkpoint() before any = %v, want ErrNotFound", err)
	}
	f.clock.Advance(30 * time.Second)
	if err := f.log.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.log.Checkpoint(ctx, "t1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Checkpoint() before the interval = %v, want ErrNotFound", err)
	}
	f.clock.Advance(31 * time.Second)
	if err := f.log.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	if _, size, err := f.log.Checkpoint(ctx, "t1"); err != nil || size != 10 {
		t.Fatalf("Checkpoint() after the interval = %d, %v, want 10", size, err)
	}

	// Leaves appended by a process that stopped before signing them are
	// signed by the next process's first Tick.
	f.appendN(t, "t1", 10, 5, 5)
	f.appendN(t, "t2", 0, 3, 3)
	restarted := f.newLog(t)
	f.clock.Advance(2 * time.Minute)
	if err := restarted.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	for tenant, want := range map[string]int64{"t1": 15, "t2": 3} {
		if _, size, err := restarted.Checkpoint(ctx, tenant); err != nil || size != want {
			t.Errorf("Checkpoint(%s) after restart = %d, %v, want %d", tenant, size, err, want)
		}
	}
}

func TestAppendAfterTileTamperingFails(t *testing.T) {
	f := newFixture(t, Options{CheckpointEvery: 1000})
	f.appendN(t, "t1", 0, 300, 300)
	// An insider replaces a stored hash: the next append reads the tiles
	// against the head's root and refuses to build on them.
	tiles := f.records(t, collTile, "t1")
	ctx := context.Background()
	rec := tiles[len(tiles)-1]
	plain, err := f.log.open(ctx, rec)
	if err != nil {
		t.Fatal(err)
	}
	plain[len(plain)-1] ^= 1
	if rec.Body, err = f.log.seal(ctx, "t1", collTile, rec.ID, plain); err != nil {
		t.Fatal(err)
	}
	f.update(t, rec)
	if _, err := f.log.Append(ctx, entries(t, "t1", 300, 10)); !errors.Is(err, ErrTampered) {
		t.Fatalf("Append() over an altered tile = %v, want ErrTampered", err)
	}
}

func TestNewChecksKeys(t *testing.T) {
	f := newFixture(t, Options{})
	_, otherV, err := GenerateKey("idvault.test")
	if err != nil {
		t.Fatal(err)
	}
	v, _ := note.NewVerifier(otherV)
	opts := f.opts
	opts.Verifier = v
	if _, err := New(f.env.Backend, f.env.Barrier, f.signer, opts); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("New(mismatched verifier) = %v, want ErrInvalid", err)
	}
	got, err := VerifierFromSigner(f.skey)
	if err != nil || got != f.vkey {
		t.Fatalf("VerifierFromSigner() = %q, %v, want %q", got, err, f.vkey)
	}
	if _, err := VerifierFromSigner(f.vkey); err == nil {
		t.Fatal("VerifierFromSigner(a verifier key) = nil error")
	}
}

func TestLeafRoundTrip(t *testing.T) {
	e := entry(t, "t1", 3)
	lf := Leaf{Position: 42, Tenant: e.Tenant, ID: e.ID, Time: e.Time, Index: e.Index, Data: e.Data}
	b, err := lf.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseLeaf(b)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := got.MarshalBinary()
	if !bytes.Equal(again, b) || got.Position != 42 || !got.Time.Equal(e.Time) || got.Index[IndexAction] != e.Index[IndexAction] {
		t.Fatalf("ParseLeaf(MarshalBinary(%+v)) = %+v", lf, got)
	}
	for n := range b {
		if _, err := ParseLeaf(b[:n]); err == nil {
			t.Fatalf("ParseLeaf(first %d of %d bytes) = nil error", n, len(b))
		}
	}
	if _, err := ParseLeaf(append(b, 0)); err == nil {
		t.Fatal("ParseLeaf(trailing byte) = nil error")
	}
}
