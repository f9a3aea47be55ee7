package keyring

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/idvault/idvault/internal/barrier"
)

// sealed is one value sealed through a keyring, with where and what.
type sealed struct {
	p     barrier.Place
	value []byte
	plain string
}

// sealMany creates, for each tenant, its tenant key and sessions session
// keys, and returns one value sealed under each.
func sealMany(tb testing.TB, k *Keyring, sessions int, tenants ...string) []sealed {
	tb.Helper()
	var out []sealed
	for _, t := range tenants {
		ps := []barrier.Place{userPlace(t, "u1")}
		for i := range sessions {
			ps = append(ps, sessionPlace(t, fmt.Sprint("s", i)))
		}
		for _, p := range ps {
			plain := fmt.Sprintf("%s/%s/%s", p.Tenant, p.Collection, p.ID)
			out = append(out, sealed{p, mustSeal(tb, k, p, plain), plain})
		}
	}
	return out
}

func openAll(tb testing.TB, k *Keyring, values []sealed) {
	tb.Helper()
	for _, v := range values {
		mustOpen(tb, k, v.p, v.value, v.plain)
	}
}

func TestRotate(t *testing.T) {
	for _, kind := range kekKinds {
		t.Run(kind.name, func(t *testing.T) {
			ctx := context.Background()
			s := newStore(t)
			r1, r2 := newRootKey(t, "r1"), kind.new(t, "r2")
			k := newKeyring(t, s, r1, r2)
			before := newKeyring(t, s, r1, r2)
			old := sealMany(t, k, 1, "A")
			if err := k.Rotate(ctx, "r2"); err != nil {
				t.Fatalf("Rotate(r2) = %v, want nil", err)
			}
			want := map[string]string{"r1": StateActive, "r2": StatePrimary}
			if got := states(t, k); !equalMaps(got, want) {
				t.Errorf("Roots() = %v, want %v", got, want)
			}
			fresh := sealMany(t, k, 1, "B")
			fresh = append(fresh, sealed{sessionPlace("A", "s9"), mustSeal(t, before, sessionPlace("A", "s9"), "by a keyring made before the rotation"), "by a keyring made before the rotation"})
			for _, id := range []string{"tenant", "session:s0"} {
				if kr := keyRecordOf(t, s, "B", id); kr.Root != "r2" {
					t.Errorf("B/%s wrapped by %q, want r2", id, kr.Root)
				}
			}
			if kr := keyRecordOf(t, s, "A", "session:s9"); kr.Root != "r2" {
				t.Errorf("A/session:s9 (made by a keyring opened before the rotation) wrapped by %q, want r2", kr.Root)
			}
			wantUse := map[string]int{"r1": 2, "r2": 3}
			if got := usage(t, k, lister("A", "B")); !equalMaps(got, wantUse) {
				t.Errorf("Status() data keys = %v, want %v", got, wantUse)
			}
			for name, kr := range map[string]*Keyring{"same keyring": k, "older keyring": before, "new keyring": newKeyring(t, s, r2, r1)} {
				t.Run(name, func(t *testing.T) {
					openAll(t, kr, old)
					openAll(t, kr, fresh)
				})
			}
		})
	}
}

func TestRotateRejects(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	k := newKeyring(t, s, newRootKey(t, "r1"), newRootKey(t, "r2"))
	if err := k.Rotate(ctx, "r3"); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("Rotate(unconfigured) error = %v, want ErrUnknownKey", err)
	}
	if err := k.Retire(ctx, "r2", lister()); err != nil {
		t.Fatal(err)
	}
	if err := k.Rotate(ctx, "r2"); err == nil {
		t.Error("Rotate(retired) = nil, want error")
	}
	want := map[string]string{"r1": StatePrimary, "r2": StateRetired}
	if got := states(t, k); !equalMaps(got, want) {
		t.Errorf("Roots() = %v, want %v", got, want)
	}
}

func TestStatus(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	r1, r2 := newRootKey(t, "r1"), newRootKey(t, "r2")
	k := newKeyring(t, s, r1, r2)
	sealMany(t, k, 2, "A", "B")
	if _, err := k.Blinder(ctx, "A"); err != nil {
		t.Fatal(err)
	}
	st, err := newKeyring(t, s, r1).Status(ctx, lister("A", "B"))
	if err != nil {
		t.Fatalf("Status() = %v, want nil", err)
	}
	got := map[string]string{}
	for _, u := range st {
		got[u.ID] = fmt.Sprintf("%s configured=%v keys=%d", u.State, u.Configured, u.DataKeys)
	}
	want := map[string]string{
		"r1": "primary configured=true keys=7",
		"r2": "active configured=false keys=0",
	}
	if !equalMaps(got, want) {
		t.Errorf("Status() = %v, want %v", got, want)
	}
	stop := errors.New("stop")
	if _, err := k.Status(ctx, func(context.Context, func(string) error) error { return stop }); !errors.Is(err, stop) {
		t.Errorf("Status(failing lister) error = %v, want %v", err, stop)
	}
}

func TestRewrap(t *testing.T) {
	for _, kind := range kekKinds {
		t.Run(kind.name, func(t *testing.T) {
			ctx := context.Background()
			s := newStore(t)
			r1, r2 := newRootKey(t, "r1"), kind.new(t, "r2")
			k := newKeyring(t, s, r1, r2)
			values := sealMany(t, k, 3, "A", "B")
			if _, err := k.Blinder(ctx, "A"); err != nil {
				t.Fatal(err)
			}
			if err := k.Rotate(ctx, "r2"); err != nil {
				t.Fatal(err)
			}
			var calls [][2]int
			n, err := k.Rewrap(ctx, lister("A", "B"), func(done, total int) { calls = append(calls, [2]int{done, total}) })
			if err != nil || n != 9 {
				t.Fatalf("Rewrap() = %d, %v, want 9, nil", n, err)
			}
			if len(calls) != 9 {
				t.Fatalf("progress calls = %v, want 9", calls)
			}
			for i, c := range calls {
				if c[0] != i+1 || c[1] < c[0] || c[1] > 9 {
					t.Errorf("progress call %d = %v, want done %d and done <= total <= 9", i, c, i+1)
				}
			}
			if last := calls[len(calls)-1]; last != [2]int{9, 9} {
				t.Errorf("last progress call = %v, want [9 9]", last)
			}
			wantUse := map[string]int{"r1": 0, "r2": 9}
			if got := usage(t, k, lister("A", "B")); !equalMaps(got, wantUse) {
				t.Errorf("Status() data keys = %v, want %v", got, wantUse)
			}
			t.Run("idempotent", func(t *testing.T) {
				n, err := k.Rewrap(ctx, lister("A", "B"), func(done, total int) { t.Errorf("progress(%d, %d) on a finished rewrap", done, total) })
				if err != nil || n != 0 {
					t.Errorf("second Rewrap() = %d, %v, want 0, nil", n, err)
				}
			})
			t.Run("only the new root key", func(t *testing.T) {
				openAll(t, newKeyring(t, s, r2), values)
			})
		})
	}
}

// TestRewrapResumes cancels a rewrap after three keys from its progress
// callback; the next call finishes the rest.
func TestRewrapResumes(t *testing.T) {
	s := newStore(t)
	r1, r2 := newRootKey(t, "r1"), newRootKey(t, "r2")
	k := newKeyring(t, s, r1, r2)
	values := sealMany(t, k, 3, "A", "B")
	if err := k.Rotate(context.Background(), "r2"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	n, err := k.Rewrap(ctx, lister("A", "B"), func(done, _ int) {
		if done == 3 {
			cancel()
		}
	})
	if n != 3 || !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted Rewrap() = %d, %v, want 3, context.Canceled", n, err)
	}
	want := map[string]int{"r1": 5, "r2": 3}
	if got := usage(t, k, lister("A", "B")); !equalMaps(got, want) {
		t.Errorf("Status() after interruption = %v, want %v", got, want)
	}
	openAll(t, newKeyring(t, s, r2, r1), values)
	if n, err := k.Rewrap(context.Background(), lister("A", "B"), nil); n != 5 || err != nil {
		t.Fatalf("resumed Rewrap() = %d, %v, want 5, nil", n, err)
	}
	want = map[string]int{"r1": 0, "r2": 8}
	if got := usage(t, k, lister("A", "B")); !equalMaps(got, want) {
		t.Errorf("Status() after resume = %v, want %v", got, want)
	}
	openAll(t, newKeyring(t, s, r2), values)
}

func TestRewrapSkipsShredded(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	r1, r2 := newRootKey(t, "r1"), newRootKey(t, "r2")
	k := newKeyring(t, s, r1, r2)
	values := sealMany(t, k, 2, "A")
	if err := k.Shred(ctx, "A", "s0"); err != nil {
		t.Fatal(err)
	}
	if err := k.Rotate(ctx, "r2"); err != nil {
		t.Fatal(err)
	}
	if n, err := k.Rewrap(ctx, lister("A"), nil); n != 2 || err != nil {
		t.Fatalf("Rewrap() = %d, %v, want 2, nil", n, err)
	}
	fresh := newKeyring(t, s, r2)
	for _, v := range values {
		if v.p.Scope == "s0" {
			wantErrOpen(t, fresh, v.p, v.value)
			continue
		}
		mustOpen(t, fresh, v.p, v.value, v.plain)
	}
}

func TestRetire(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	r1, r2 := newRootKey(t, "r1"), newRootKey(t, "r2")
	k := newKeyring(t, s, r1, r2)
	tenants := lister("A", "B")
	if err := k.Retire(ctx, "r1", tenants); err == nil {
		t.Error("Retire(primary, unused) = nil, want error")
	}
	values := sealMany(t, k, 1, "A", "B")
	if err := k.Retire(ctx, "r1", tenants); !errors.Is(err, ErrInUse) {
		t.Errorf("Retire(primary, in use) error = %v, want ErrInUse", err)
	}
	if err := k.Rotate(ctx, "r2"); err != nil {
		t.Fatal(err)
	}
	if err := k.Retire(ctx, "r1", tenants); !errors.Is(err, ErrInUse) {
		t.Errorf("Retire(active, in use) error = %v, want ErrInUse", err)
	}
	if err := k.Retire(ctx, "r9", tenants); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("Retire(unknown) error = %v, want ErrUnknownKey", err)
	}
	if n, err := k.Rewrap(ctx, tenants, nil); n != 4 || err != nil {
		t.Fatalf("Rewrap() = %d, %v, want 4, nil", n, err)
	}
	if err := k.Retire(ctx, "r1", tenants); err != nil {
		t.Fatalf("Retire(rewrapped) = %v, want nil", err)
	}
	want := map[string]string{"r1": StateRetired, "r2": StatePrimary}
	if got := states(t, k); !equalMaps(got, want) {
		t.Errorf("Roots() = %v, want %v", got, want)
	}
	if _, err := New(ctx, s, []KEK{r2, r1}, discard, nil); err == nil {
		t.Error("New(with the retired key) = nil, want error")
	}
	openAll(t, newKeyring(t, s, r2), values)
}

// TestRootKeyToKMS moves a deployment from a local root key to a KMS key:
// rotate, rewrap, retire, then run on the KMS key alone.
func TestRootKeyToKMS(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	root, kms := newRootKey(t, "local"), newKMSKey(t, "kms")
	k := newKeyring(t, s, root)
	values := sealMany(t, k, 2, "A", "B")
	k = newKeyring(t, s, root, kms)
	if err := k.Rotate(ctx, "kms"); err != nil {
		t.Fatal(err)
	}
	values = append(values, sealMany(t, k, 1, "C")...)
	if n, err := k.Rewrap(ctx, lister("A", "B", "C"), nil); n != 6 || err != nil {
		t.Fatalf("Rewrap() = %d, %v, want 6, nil", n, err)
	}
	if err := k.Retire(ctx, "local", lister("A", "B", "C")); err != nil {
		t.Fatalf("Retire(local) = %v, want nil", err)
	}
	only := newKeyring(t, s, kms)
	openAll(t, only, values)
	want := map[string]int{"local": 0, "kms": 8}
	if got := usage(t, only, lister("A", "B", "C")); !equalMaps(got, want) {
		t.Errorf("Status() = %v, want %v", got, want)
	}
}
