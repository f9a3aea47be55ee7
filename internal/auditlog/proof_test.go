package auditlog

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/idvault/idvault/internal/store"
)

// roundTrip sends a proof through JSON, as it travels to an auditor.
func roundTrip[T any](t *testing.T, p T) T {
	t.Helper()
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	var out T
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func flipHash(hs []tlog.Hash, i, bit int) []tlog.Hash {
	out := append([]tlog.Hash(nil), hs...)
	out[i][bit/8] ^= 1 << (bit % 8)
	return out
}

func TestInclusionProofs(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, Options{CheckpointEvery: 100})
	f.appendN(t, "t1", 0, 777, 70)
	_, otherV, err := GenerateKey("idvault.test")
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{0, 1, 255, 256, 500, 699, 700, 776} {
		p, err := f.log.Prove(ctx, "t1", entry(t, "t1", i).ID)
		if err != nil {
			t.Fatalf("Prove(event %d) = %v", i, err)
		}
		p = roundTrip(t, p)
		if err := CheckInclusion(f.vkey, p); err != nil {
			t.Fatalf("CheckInclusion(proof of %d) = %v", i, err)
		}
		lf, err := ParseLeaf(p.Leaf)
		if err != nil || lf.ID != entry(t, "t1", i).ID || !bytes.Equal(lf.Data, entry(t, "t1", i).Data) || p.Index != int64(i) {
			t.Fatalf("proof of %d holds leaf %+v (%v) at %d", i, lf, err, p.Index)
		}
		if i != 776 {
			continue
		}
		// The last events were not in a checkpoint: Prove signed one.
		if _, size, err := f.log.Checkpoint(ctx, "t1"); err != nil || size != 777 {
			t.Fatalf("Checkpoint() after Prove = %d, %v, want 777", size, err)
		}
		if err := CheckInclusion(otherV, p); !errors.Is(err, ErrProof) {
			t.Errorf("CheckInclusion(another key) = %v, want ErrProof", err)
		}
		mutations := map[string]func(*InclusionProof){
			"tenant": func(p *InclusionProof) { p.Tenant = "t2" },
			"index":  func(p *InclusionProof) { p.Index-- },
		}
		for n := range p.Leaf {
			mutations["leaf byte "+itoa(n)] = func(p *InclusionProof) {
				p.Leaf = append([]byte(nil), p.Leaf...)
				p.Leaf[n] ^= 0x01
			}
		}
		for n := range p.Checkpoint {
			mutations["checkpoint byte "+itoa(n)] = func(p *InclusionProof) {
				b := []byte(p.Checkpoint)
				b[n] ^= 0x01
				p.Checkpoint = string(b)
			}
		}
		for h := range p.Hashes {
			for bit := 0; bit < 256; bit += 37 {
				mutations["hash "+itoa(h)+" bit "+itoa(bit)] = func(p *InclusionProof) { p.Hashes = flipHash(p.Hashes, h, bit) }
			}
		}
		mutations["hash dropped"] = func(p *InclusionProof) { p.Hashes = p.Hashes[1:] }
		mutations["hash added"] = func(p *InclusionProof) { p.Hashes = append(p.Hashes, tlog.Hash{}) }
		for name, mutate := range mutations {
			q := p
			mutate(&q)
			if err := CheckInclusion(f.vkey, q); err == nil {
				t.Errorf("CheckInclusion(proof with %s changed) = nil, want an error", name)
			}
		}
	}
	if _, err := f.log.Prove(ctx, "t1", "no-such-event"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Prove(unknown event) = %v, want ErrNotFound", err)
	}
}

func TestConsistencyProofs(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, Options{CheckpointEvery: 100})
	f.appendN(t, "t1", 0, 1000, 70)
	_, otherV, err := GenerateKey("idvault.test")
	if err != nil {
		t.Fatal(err)
	}
	pairs := [][2]int64{{140, 280}, {140, 980}, {280, 280}, {420, 0}, {560, 840}}
	for _, pair := range pairs {
		p, err := f.log.Consistency(ctx, "t1", pair[0], pair[1])
		if err != nil {
			t.Fatalf("Consistency(%d, %d) = %v", pair[0], pair[1], err)
		}
		p = roundTrip(t, p)
		if err := CheckConsistency(f.vkey, p); err != nil {
			t.Fatalf("CheckConsistency(%d, %d) = %v", pair[0], pair[1], err)
		}
	}
	p, err := f.log.Consistency(ctx, "t1", 140, 980)
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckConsistency(otherV, p); !errors.Is(err, ErrProof) {
		t.Errorf("CheckConsistency(another key) = %v, want ErrProof", err)
	}
	mutations := map[string]func(*ConsistencyProof){
		"tenant":       func(p *ConsistencyProof) { p.Tenant = "t2" },
		"old and new":  func(p *ConsistencyProof) { p.Old, p.New = p.New, p.Old },
		"hash dropped": func(p *ConsistencyProof) { p.Hashes = p.Hashes[1:] },
		"another tree": func(p *ConsistencyProof) { p.New = string(signWith(t, f.signer, testOrigin+"/t1", 980, tlog.Hash{7})) },
		"another log": func(p *ConsistencyProof) {
			p.Old = string(signWith(t, f.signer, testOrigin+"/x/t1", 140, tlog.Hash{7}))
		},
		"no signature":  func(p *ConsistencyProof) { p.Old = formatCheckpoint(testOrigin+"/t1", 140, tlog.Hash{}) },
		"hash appended": func(p *ConsistencyProof) { p.Hashes = append(p.Hashes, tlog.Hash{}) },
	}
	for _, side := range []string{"old", "new"} {
		text := p.Old
		if side == "new" {
			text = p.New
		}
		for n := range text {
			mutations[side+" checkpoint byte "+itoa(n)] = func(q *ConsistencyProof) {
				b := []byte(text)
				b[n] ^= 0x01
				if side == "old" {
					q.Old = string(b)
				} else {
					q.New = string(b)
				}
			}
		}
	}
	for h := range p.Hashes {
		for bit := 0; bit < 256; bit += 37 {
			mutations["hash "+itoa(h)+" bit "+itoa(bit)] = func(q *ConsistencyProof) { q.Hashes = flipHash(q.Hashes, h, bit) }
		}
	}
	for name, mutate := range mutations {
		q := p
		mutate(&q)
		if err := CheckConsistency(f.vkey, q); err == nil {
			t.Errorf("CheckConsistency(proof with %s changed) = nil, want an error", name)
		}
	}
	for _, bad := range [][2]int64{{0, 280}, {280, 140}, {150, 280}} {
		if _, err := f.log.Consistency(ctx, "t1", bad[0], bad[1]); err == nil {
			t.Errorf("Consistency(%d, %d) = nil error", bad[0], bad[1])
		}
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

func TestCrossTenant(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, Options{CheckpointEvery: 10})
	f.appendN(t, "ta", 0, 50, 25)
	f.appendN(t, "tb", 0, 50, 25)
	aEvent := entry(t, "ta", 7).ID
	if _, err := f.log.Prove(ctx, "tb", aEvent); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Prove(tb, event of ta) = %v, want ErrNotFound", err)
	}
	for cursor := ""; ; {
		evs, next, err := f.log.Events(ctx, "tb", Filter{}, cursor, 7)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range evs {
			if !strings.HasPrefix(e.ID, "evt-tb-") || bytes.Contains(e.Data, []byte(`"ta"`)) {
				t.Fatalf("Events(tb) returned %s", e.ID)
			}
		}
		if next == "" {
			break
		}
		cursor = next
	}
	// A proof of ta's event does not pass as tb's.
	p, err := f.log.Prove(ctx, "ta", aEvent)
	if err != nil {
		t.Fatal(err)
	}
	p.Tenant = "tb"
	if err := CheckInclusion(f.vkey, p); !errors.Is(err, ErrProof) {
		t.Errorf("CheckInclusion(ta's proof relabelled tb) = %v, want ErrProof", err)
	}
	// tb's checkpoint does not verify ta's log.
	tbCP, _, err := f.log.Checkpoint(ctx, "tb")
	if err != nil {
		t.Fatal(err)
	}
	f.wantProblem(t, "ta", VerifyOptions{Trusted: [][]byte{tbCP}}, KindBadSignature, 50)
}
