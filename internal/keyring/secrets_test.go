package keyring_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/idvault/idvault/internal/keyring"
	"github.com/idvault/idvault/internal/sqlitedb"
	"github.com/idvault/idvault/internal/store"
	"github.com/idvault/idvault/internal/store/sqlite"
)

// TestSecretsFollowRotation stores an admin-entered secret, rotates the
// root key and re-wraps: the secret is re-sealed under the new root key,
// keeps its listing, and opens in a keyring that has only the new key.
func TestSecretsFollowRotation(t *testing.T) {
	ctx := context.Background()
	db, err := sqlitedb.Open(ctx, filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	backend, err := sqlite.New(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	k1, _ := keyring.NewRootKey("k1", make32(1))
	k2, _ := keyring.NewRootKey("k2", make32(2))
	kr, err := keyring.New(ctx, backend, []keyring.KEK{k1, k2}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := kr.PutSecret(ctx, "t1", "hook", []byte("s3cr3t")); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"", "Hook", "../x", string(make([]byte, 65))} {
		if err := kr.PutSecret(ctx, "t1", bad, []byte("v")); !errors.Is(err, keyring.ErrSecretName) {
			t.Errorf("PutSecret(name %q) = %v, want ErrSecretName", bad, err)
		}
	}
	if err := kr.PutSecret(ctx, "t1", "big", make([]byte, keyring.MaxSecretBytes+1)); err == nil {
		t.Error("PutSecret(oversized) succeeded")
	}
	tenants := func(ctx context.Context, fn func(string) error) error { return fn("t1") }
	if err := kr.Rotate(ctx, "k2"); err != nil {
		t.Fatal(err)
	}
	if n, err := kr.Rewrap(ctx, tenants, nil); err != nil || n != 1 {
		t.Fatalf("Rewrap = %d, %v; want the secret re-wrapped", n, err)
	}
	if err := kr.Retire(ctx, "k1", tenants); err != nil {
		t.Fatalf("Retire(k1) = %v", err)
	}
	only2, err := keyring.New(ctx, backend, []keyring.KEK{k2}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	v, err := only2.Secret(ctx, "t1", "hook")
	if err != nil || string(v.Bytes()) != "s3cr3t" {
		t.Errorf("Secret after rotation = %v", err)
	}
	list, err := only2.Secrets(ctx, "t1")
	if err != nil || len(list) != 1 || list[0].Name != "hook" {
		t.Errorf("Secrets after rotation = %+v, %v", list, err)
	}
	if _, err := only2.Secret(ctx, "t2", "hook"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Secret of another tenant = %v, want store.ErrNotFound", err)
	}
	if err := only2.DeleteSecret(ctx, "t1", "hook"); err != nil {
		t.Fatal(err)
	}
	if _, err := only2.Secret(ctx, "t1", "hook"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Secret after delete = %v, want store.ErrNotFound", err)
	}
}

func make32(b byte) []byte {
	k := make([]byte, 32)
	for i := range k {
		k[i] = b
	}
	return k
}
