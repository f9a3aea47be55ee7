package auditlog

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/idvault/idvault/internal/store"
)

func TestPrune(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, Options{CheckpointEvery: 100})
	f.appendN(t, "t1", 0, 1000, 70)
	saved, _ := f.checkpointRecord(t, "t1", 280)
	var savedBody checkpointBody
	plain, _ := f.log.open(ctx, saved)
	if err := json.Unmarshal(plain, &savedBody); err != nil {
		t.Fatal(err)
	}

	if n, err := f.log.Prune(ctx, "t1", baseTime); err != nil || n != 0 {
		t.Fatalf("Prune(before every event) = %d, %v, want 0", n, err)
	}
	// Event i happened at baseTime + i s: every event before the checkpoint
	// at 560 is older than 600 s, not so for 700.
	n, err := f.log.Prune(ctx, "t1", baseTime.Add(600*time.Second))
	if err != nil || n != 560 {
		t.Fatalf("Prune(600 s) = %d, %v, want 560", n, err)
	}
	if n, err := f.log.Prune(ctx, "t1", baseTime.Add(600*time.Second)); err != nil || n != 0 {
		t.Fatalf("Prune(600 s) again = %d, %v, want 0", n, err)
	}

	rep := f.wantVerified(t, "t1", VerifyOptions{Trusted: [][]byte{[]byte(savedBody.Note)}}, 440)
	if rep.From != 560 || rep.SkippedTrusted != 1 {
		t.Errorf("Verify() = from %d, skipped trusted %d; want 560, 1", rep.From, rep.SkippedTrusted)
	}
	f.wantVerified(t, "t1", VerifyOptions{From: 700}, 300)
	if _, err := f.log.Verify(ctx, "t1", VerifyOptions{From: 280}); !errors.Is(err, ErrPruned) {
		t.Errorf("Verify(from 280) = %v, want ErrPruned", err)
	}

	for _, i := range []int{560, 561, 700, 999} {
		p, err := f.log.Prove(ctx, "t1", entry(t, "t1", i).ID)
		if err != nil {
			t.Fatalf("Prove(retained %d) = %v", i, err)
		}
		if err := CheckInclusion(f.vkey, p); err != nil {
			t.Fatalf("CheckInclusion(retained %d) = %v", i, err)
		}
	}
	if _, err := f.log.Prove(ctx, "t1", entry(t, "t1", 10).ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Prove(pruned event) = %v, want ErrNotFound", err)
	}
	for _, pair := range [][2]int64{{560, 980}, {560, 1000}, {700, 0}} {
		p, err := f.log.Consistency(ctx, "t1", pair[0], pair[1])
		if err != nil {
			t.Fatalf("Consistency(%d, %d) = %v", pair[0], pair[1], err)
		}
		if err := CheckConsistency(f.vkey, p); err != nil {
			t.Fatalf("CheckConsistency(%d, %d) = %v", pair[0], pair[1], err)
		}
	}
	if _, err := f.log.Consistency(ctx, "t1", 280, 980); !errors.Is(err, ErrPruned) {
		t.Errorf("Consistency(pruned 280, 980) = %v, want ErrPruned", err)
	}
	evs, _, err := f.log.Events(ctx, "t1", Filter{}, "", 1)
	if err != nil || len(evs) != 1 || evs[0].Index != 560 {
		t.Fatalf("Events() first = %+v, %v, want position 560", evs, err)
	}

	// What is left: nothing of the pruned events, the tiles from 560's on.
	for _, rec := range f.records(t, collBatch, "t1") {
		if start, _ := parsePos20(rec.ID); start < 560 {
			t.Errorf("batch %s survived the prune", rec.ID)
		}
	}
	if _, err := f.env.Backend.Get(ctx, collID, "t1", entry(t, "t1", 10).ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("id record of a pruned event: %v, want ErrNotFound", err)
	}
	for _, rec := range f.records(t, collTile, "t1") {
		if level, n, _ := parseTileID(rec.ID); level == 0 && n < 560>>tileHeight {
			t.Errorf("tile %s survived the prune", rec.ID)
		}
	}
	if cps := f.records(t, collCheckpoint, "t1"); len(cps) == 0 || cps[0].ID != pos20(560) {
		t.Errorf("oldest checkpoint = %v, want %s", cps[0].ID, pos20(560))
	}

	// The log goes on after the prune.
	f.appendN(t, "t1", 1000, 100, 70)
	f.wantVerified(t, "t1", VerifyOptions{}, 540)
}

func TestPruneFinishesAnInterruptedPrune(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, Options{CheckpointEvery: 100})
	f.appendN(t, "t1", 0, 500, 70)
	// As if a Prune had recorded its new start and stopped before deleting.
	h, ver, err := f.log.loadHead(ctx, "t1")
	if err != nil {
		t.Fatal(err)
	}
	h.Start = 280
	w, err := f.log.headWrite(ctx, "t1", h, ver)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.env.Backend.Apply(ctx, []store.Write{w}); err != nil {
		t.Fatal(err)
	}
	if n, err := f.log.Prune(ctx, "t1", baseTime); err != nil || n != 280 {
		t.Fatalf("Prune() after an interrupted one = %d, %v, want 280", n, err)
	}
	f.wantVerified(t, "t1", VerifyOptions{}, 220)
}

func TestVerifyAfterPruneNamesAttacks(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, Options{CheckpointEvery: 100})
	f.appendN(t, "t1", 0, 1000, 70)
	if _, err := f.log.Prune(ctx, "t1", baseTime.Add(600*time.Second)); err != nil {
		t.Fatal(err)
	}
	rec, items, i := f.batchHolding(t, "t1", 600)
	items[i], items[i+1] = items[i+1], items[i]
	f.setItems(t, rec, items)
	f.wantProblem(t, "t1", VerifyOptions{}, KindReorder, 600)
	rec, _ = f.checkpointRecord(t, "t1", 560)
	rec.Body[len(rec.Body)-1] ^= 0x01
	f.update(t, rec)
	f.wantProblem(t, "t1", VerifyOptions{}, KindBadSignature, 560)
	if err := f.env.Backend.Delete(ctx, collCheckpoint, "t1", pos20(560), 0); err != nil {
		t.Fatal(err)
	}
	f.wantProblem(t, "t1", VerifyOptions{}, KindGap, 560)
	if _, err := f.log.Verify(ctx, "t1", VerifyOptions{From: 600}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Verify(from 600, not a checkpoint) = %v, want ErrNotFound", err)
	}
}
