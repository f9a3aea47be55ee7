package auditlog

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/idvault/idvault/internal/store"
)

// The attack log: 1000 events of tenant "t1" appended 70 per call, so
// batches start at multiples of 70 and, with CheckpointEvery 100,
// checkpoints are signed at 140, 280, 420, 560, 700, 840 and 980; the last
// 20 events are unsigned (the head counts them).
const (
	attackEvents = 1000
	attackPer    = 70
)

var attackCheckpoints = []int64{140, 280, 420, 560, 700, 840, 980}

func attackFixture(t *testing.T) *fixture {
	t.Helper()
	f := newFixture(t, Options{CheckpointEvery: 100})
	f.appendN(t, "t1", 0, attackEvents, attackPer)
	got := f.records(t, collCheckpoint, "t1")
	if len(got) != len(attackCheckpoints) {
		t.Fatalf("%d checkpoints stored, want %d", len(got), len(attackCheckpoints))
	}
	return f
}

// checkpointRecord returns the stored checkpoint of size and its body.
func (f *fixture) checkpointRecord(t *testing.T, tenant string, size int64) (store.Record, checkpointBody) {
	t.Helper()
	rec, err := f.env.Backend.Get(context.Background(), collCheckpoint, tenant, pos20(size))
	if err != nil {
		t.Fatal(err)
	}
	plain, err := f.log.open(context.Background(), rec)
	if err != nil {
		t.Fatal(err)
	}
	var body checkpointBody
	if err := json.Unmarshal(plain, &body); err != nil {
		t.Fatal(err)
	}
	return rec, body
}

// storeCheckpointBody seals body into rec with the barrier key (an
// insider) and writes it.
func (f *fixture) storeCheckpointBody(t *testing.T, rec store.Record, body checkpointBody) {
	t.Helper()
	plain, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Body, err = f.log.seal(context.Background(), rec.Tenant, collCheckpoint, rec.ID, plain); err != nil {
		t.Fatal(err)
	}
	f.update(t, rec)
}

// signWith signs a checkpoint body with signer.
func signWith(t *testing.T, signer note.Signer, origin string, size int64, root tlog.Hash) []byte {
	t.Helper()
	signed, err := note.Sign(&note.Note{Text: formatCheckpoint(origin, size, root)}, signer)
	if err != nil {
		t.Fatal(err)
	}
	return signed
}

func otherSigner(t *testing.T, name string) note.Signer {
	t.Helper()
	skey, _, err := GenerateKey(name)
	if err != nil {
		t.Fatal(err)
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// rewriteLeaf replaces the event at p with a rewritten leaf sealed with the
// barrier key, and returns the new leaf encoding.
func (f *fixture) rewriteLeaf(t *testing.T, p int64) []byte {
	t.Helper()
	rec, items, i := f.batchHolding(t, "t1", p)
	lf := f.openLeaf(t, "t1", items[i])
	lf.Index[IndexAction] = "nothing.happened"
	lf.Data = []byte(strings.Replace(string(lf.Data), "file.read", "user.signin", 1))
	plain, sealed := f.sealLeaf(t, lf)
	items[i] = sealed
	f.setItems(t, rec, items)
	return plain
}

// setStoredHash overwrites the stored level-0 hash of p (an insider).
func (f *fixture) setStoredHash(t *testing.T, p int64, h tlog.Hash) {
	t.Helper()
	ctx := context.Background()
	rec, err := f.env.Backend.Get(ctx, collTile, "t1", tileID(0, p>>tileHeight))
	if err != nil {
		t.Fatal(err)
	}
	data, err := f.log.open(ctx, rec)
	if err != nil {
		t.Fatal(err)
	}
	copy(data[(p&255)*tlog.HashSize:], h[:])
	if rec.Body, err = f.log.seal(ctx, "t1", collTile, rec.ID, data); err != nil {
		t.Fatal(err)
	}
	f.update(t, rec)
}

func TestVerifyNamesAttacks(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name string
		// attack changes the database and returns checkpoints an auditor
		// saved before (Trusted).
		attack func(t *testing.T, f *fixture) [][]byte
		kind   Kind
		pos    int64
	}{{
		name: "attacker flips a byte of one sealed event",
		attack: func(t *testing.T, f *fixture) [][]byte {
			rec, items, i := f.batchHolding(t, "t1", 333)
			items[i][len(items[i])/2] ^= 0x01
			f.setItems(t, rec, items)
			return nil
		},
		kind: KindEdit, pos: 333,
	}, {
		name: "insider with the barrier key changes one event's field",
		attack: func(t *testing.T, f *fixture) [][]byte {
			f.rewriteLeaf(t, 333)
			return nil
		},
		kind: KindEdit, pos: 333,
	}, {
		name: "insider with the barrier key changes one event and its stored hash",
		attack: func(t *testing.T, f *fixture) [][]byte {
			f.setStoredHash(t, 333, tlog.RecordHash(f.rewriteLeaf(t, 333)))
			return nil
		},
		kind: KindFork, pos: 420, // the first signed checkpoint after it
	}, {
		name: "attacker moves one sealed event over another",
		attack: func(t *testing.T, f *fixture) [][]byte {
			rec, items, i := f.batchHolding(t, "t1", 333)
			items[i] = items[i-3]
			f.setItems(t, rec, items)
			return nil
		},
		kind: KindGap, pos: 333,
	}, {
		name: "attacker deletes one event",
		attack: func(t *testing.T, f *fixture) [][]byte {
			rec, items, i := f.batchHolding(t, "t1", 333)
			f.setItems(t, rec, append(items[:i], items[i+1:]...))
			return nil
		},
		kind: KindGap, pos: 333,
	}, {
		name: "attacker deletes the last event of a batch",
		attack: func(t *testing.T, f *fixture) [][]byte {
			rec, items, _ := f.batchHolding(t, "t1", 349)
			f.setItems(t, rec, items[:len(items)-1])
			return nil
		},
		kind: KindGap, pos: 349,
	}, {
		name: "attacker deletes a whole batch",
		attack: func(t *testing.T, f *fixture) [][]byte {
			if err := f.env.Backend.Delete(ctx, collBatch, "t1", pos20(280), 0); err != nil {
				t.Fatal(err)
			}
			return nil
		},
		kind: KindGap, pos: 280,
	}, {
		name: "attacker swaps two events of different batches",
		attack: func(t *testing.T, f *fixture) [][]byte {
			recA, itemsA, i := f.batchHolding(t, "t1", 333)
			recB, itemsB, j := f.batchHolding(t, "t1", 555)
			itemsA[i], itemsB[j] = itemsB[j], itemsA[i]
			f.setItems(t, recA, itemsA)
			f.setItems(t, recB, itemsB)
			return nil
		},
		kind: KindReorder, pos: 333,
	}, {
		name: "attacker swaps two neighbouring events",
		attack: func(t *testing.T, f *fixture) [][]byte {
			rec, items, i := f.batchHolding(t, "t1", 300)
			items[i], items[i+1] = items[i+1], items[i]
			f.setItems(t, rec, items)
			return nil
		},
		kind: KindReorder, pos: 300,
	}, {
		name: "attacker moves a batch to the end",
		attack: func(t *testing.T, f *fixture) [][]byte {
			rec, err := f.env.Backend.Get(ctx, collBatch, "t1", pos20(280))
			if err != nil {
				t.Fatal(err)
			}
			if err := f.env.Backend.Delete(ctx, collBatch, "t1", rec.ID, 0); err != nil {
				t.Fatal(err)
			}
			rec.ID = pos20(5000)
			if _, err := f.env.Backend.Put(ctx, rec); err != nil {
				t.Fatal(err)
			}
			return nil
		},
		kind: KindReorder, pos: 280,
	}, {
		name: "attacker changes a batch's clear end field",
		attack: func(t *testing.T, f *fixture) [][]byte {
			rec, _, _ := f.batchHolding(t, "t1", 300)
			rec.Index[fieldEnd] = pos20(400)
			f.update(t, rec)
			return nil
		},
		kind: KindEdit, pos: 350,
	}, {
		name: "attacker cuts the unsigned tail",
		attack: func(t *testing.T, f *fixture) [][]byte {
			rec, items, _ := f.batchHolding(t, "t1", 999)
			f.setItems(t, rec, items[:len(items)-5])
			return nil
		},
		kind: KindTruncated, pos: 995,
	}, {
		name: "attacker deletes the last batches",
		attack: func(t *testing.T, f *fixture) [][]byte {
			for _, start := range []int64{840, 910, 980} {
				if err := f.env.Backend.Delete(ctx, collBatch, "t1", pos20(start), 0); err != nil {
					t.Fatal(err)
				}
			}
			return nil
		},
		kind: KindTruncated, pos: 840,
	}, {
		name: "attacker flips a byte of a stored checkpoint",
		attack: func(t *testing.T, f *fixture) [][]byte {
			rec, _ := f.checkpointRecord(t, "t1", 420)
			rec.Body[len(rec.Body)-1] ^= 0x01
			f.update(t, rec)
			return nil
		},
		kind: KindBadSignature, pos: 420,
	}, {
		name: "insider alters a stored checkpoint's root",
		attack: func(t *testing.T, f *fixture) [][]byte {
			rec, body := f.checkpointRecord(t, "t1", 420)
			lines := strings.SplitN(body.Note, "\n", 4)
			lines[2] = base64.StdEncoding.EncodeToString(make([]byte, 32))
			body.Note = strings.Join(lines, "\n")
			f.storeCheckpointBody(t, rec, body)
			return nil
		},
		kind: KindBadSignature, pos: 420,
	}, {
		name: "insider replaces a stored checkpoint with one signed by another key",
		attack: func(t *testing.T, f *fixture) [][]byte {
			rec, body := f.checkpointRecord(t, "t1", 420)
			v, _ := note.NewVerifier(f.vkey)
			cp, err := openCheckpoint([]byte(body.Note), v)
			if err != nil {
				t.Fatal(err)
			}
			body.Note = string(signWith(t, otherSigner(t, "idvault.test"), cp.Origin, cp.Size, cp.Root))
			f.storeCheckpointBody(t, rec, body)
			return nil
		},
		kind: KindBadSignature, pos: 420,
	}, {
		name: "auditor is handed a checkpoint forged with another key",
		attack: func(t *testing.T, f *fixture) [][]byte {
			return [][]byte{signWith(t, otherSigner(t, "idvault.test"), testOrigin+"/t1", 500, tlog.Hash{1})}
		},
		kind: KindBadSignature, pos: 500,
	}, {
		name: "auditor holds a checkpoint of another tenant's log",
		attack: func(t *testing.T, f *fixture) [][]byte {
			f.appendN(t, "t2", 0, 10, 10)
			signed, _ := f.signedCheckpoint(t, "t2")
			return [][]byte{signed}
		},
		kind: KindBadSignature, pos: 10,
	}, {
		name: "the real key signed a forking root (auditor's copy)",
		attack: func(t *testing.T, f *fixture) [][]byte {
			return [][]byte{signWith(t, f.signer, testOrigin+"/t1", 500, tlog.Hash{1})}
		},
		kind: KindFork, pos: 500,
	}, {
		name: "insider with the signing key stores a forking checkpoint",
		attack: func(t *testing.T, f *fixture) [][]byte {
			rec, body := f.checkpointRecord(t, "t1", 420)
			body.Note = string(signWith(t, f.signer, testOrigin+"/t1", 420, tlog.Hash{2}))
			f.storeCheckpointBody(t, rec, body)
			return nil
		},
		kind: KindFork, pos: 420,
	}, {
		name: "attacker copies another tenant's batch into this log",
		attack: func(t *testing.T, f *fixture) [][]byte {
			f.appendN(t, "t2", 0, attackPer, attackPer)
			rec, err := f.env.Backend.Get(ctx, collBatch, "t2", pos20(0))
			if err != nil {
				t.Fatal(err)
			}
			if err := f.env.Backend.Delete(ctx, collBatch, "t1", pos20(0), 0); err != nil {
				t.Fatal(err)
			}
			rec.Tenant = "t1"
			if _, err := f.env.Backend.Put(ctx, rec); err != nil {
				t.Fatal(err)
			}
			return nil
		},
		kind: KindEdit, pos: 0,
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := attackFixture(t)
			f.wantVerified(t, "t1", VerifyOptions{}, attackEvents)
			trusted := tc.attack(t, f)
			rep := f.wantProblem(t, "t1", VerifyOptions{Trusted: trusted}, tc.kind, tc.pos)
			if tc.kind != KindBadSignature && rep.Events != min(tc.pos, attackEvents) {
				t.Errorf("Verify() events = %d, want %d verified before the problem", rep.Events, tc.pos)
			}
		})
	}
}

// signedCheckpoint returns tenant's latest checkpoint, signing one first.
func (f *fixture) signedCheckpoint(t *testing.T, tenant string) ([]byte, int64) {
	t.Helper()
	ctx := context.Background()
	unlock := f.log.lock(tenant)
	_, err := f.log.signPending(ctx, tenant)
	unlock()
	if err != nil {
		t.Fatal(err)
	}
	signed, size, err := f.log.Checkpoint(ctx, tenant)
	if err != nil {
		t.Fatal(err)
	}
	return signed, size
}

// TestRollbackCaughtOnlyByTrustedCheckpoint shows the limit of what the
// database alone proves: an attacker who deletes the tail, the checkpoints
// after it and restores an old head leaves a log that verifies; a
// checkpoint an auditor saved earlier catches it.
func TestRollbackCaughtOnlyByTrustedCheckpoint(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, Options{CheckpointEvery: 100})
	f.appendN(t, "t1", 0, 700, attackPer)
	oldHead, err := f.env.Backend.Get(ctx, collHead, "t1", headID)
	if err != nil {
		t.Fatal(err)
	}
	f.appendN(t, "t1", 700, 300, attackPer)
	saved, size := f.signedCheckpoint(t, "t1")
	if size != 1000 {
		t.Fatalf("checkpoint size = %d, want 1000", size)
	}

	for _, start := range []int64{700, 770, 840, 910, 980} {
		if err := f.env.Backend.Delete(ctx, collBatch, "t1", pos20(start), 0); err != nil {
			t.Fatal(err)
		}
	}
	for _, size := range []int64{840, 980, 1000} {
		if err := f.env.Backend.Delete(ctx, collCheckpoint, "t1", pos20(size), 0); err != nil {
			t.Fatal(err)
		}
	}
	cur, err := f.env.Backend.Get(ctx, collHead, "t1", headID)
	if err != nil {
		t.Fatal(err)
	}
	oldHead.Version = cur.Version
	f.update(t, oldHead)

	f.wantVerified(t, "t1", VerifyOptions{}, 700)
	rep := f.wantProblem(t, "t1", VerifyOptions{Trusted: [][]byte{saved}}, KindTruncated, 700)
	if !strings.Contains(rep.Problem.Detail, "trusted checkpoint 0") {
		t.Errorf("problem detail = %q, want it to name the trusted checkpoint", rep.Problem.Detail)
	}
}

// TestRewrittenHistoryWithAllKeysForks: an insider holding every key builds
// a whole new, consistently signed history; the checkpoint an auditor saved
// from the real log shows the fork.
func TestRewrittenHistoryWithAllKeysForks(t *testing.T) {
	real := newFixture(t, Options{CheckpointEvery: 100})
	real.appendN(t, "t1", 0, 300, 100)
	saved, _ := real.signedCheckpoint(t, "t1")

	fake := newFixture(t, Options{CheckpointEvery: 100})
	fake.log.signer, fake.log.verifier = real.log.signer, real.log.verifier
	evs := entries(t, "t1", 0, 300)
	evs[150].Index[IndexAction] = "nothing.happened"
	if _, err := fake.log.Append(context.Background(), evs); err != nil {
		t.Fatal(err)
	}
	fake.wantVerified(t, "t1", VerifyOptions{}, 300)
	fake.wantProblem(t, "t1", VerifyOptions{Trusted: [][]byte{saved}}, KindFork, 300)
}

func TestEventsAndProveRefuseTamperedState(t *testing.T) {
	ctx := context.Background()
	f := attackFixture(t)
	rec, items, i := f.batchHolding(t, "t1", 333)
	items[i], items[i+1] = items[i+1], items[i]
	f.setItems(t, rec, items)
	if _, _, err := f.log.Events(ctx, "t1", Filter{}, encodeCursor(330), 10); !errors.Is(err, ErrTampered) {
		t.Errorf("Events(over swapped events) = %v, want ErrTampered", err)
	}
	if _, err := f.log.Prove(ctx, "t1", entry(t, "t1", 333).ID); !errors.Is(err, ErrTampered) {
		t.Errorf("Prove(swapped event) = %v, want ErrTampered", err)
	}
}
