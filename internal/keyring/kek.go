package keyring

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"

	"gocloud.dev/secrets"

	"github.com/idvault/idvault/internal/barrier"
)

// KEK is a root key (key-encryption key): it wraps data keys and never leaves
// its holder. Implementations MUST bind the place into the wrap, so a wrapped
// key moved to another place fails to unwrap, and MUST be safe for concurrent
// use.
type KEK interface {
	// ID names the key in key records and in the persisted keyring.
	ID() string
	Wrap(ctx context.Context, p barrier.Place, key []byte) ([]byte, error)
	Unwrap(ctx context.Context, p barrier.Place, wrapped []byte) ([]byte, error)
}

// rootKey is a customer-managed AES-256 root key held in memory.
type rootKey struct {
	id  string
	key *barrier.AESGCM
}

// NewRootKey returns the KEK of a 32-byte AES-256 root key named id. The key
// is copied into the cipher state; the caller may wipe key afterwards.
func NewRootKey(id string, key []byte) (KEK, error) {
	if id == "" {
		return nil, errors.New("keyring: root key with an empty id")
	}
	b, err := barrier.NewAESGCM(key)
	if err != nil {
		return nil, fmt.Errorf("keyring: root key %s: %w", id, err)
	}
	return &rootKey{id: id, key: b}, nil
}

func (k *rootKey) ID() string { return k.id }

func (k *rootKey) Wrap(ctx context.Context, p barrier.Place, key []byte) ([]byte, error) {
	return k.key.Seal(ctx, p, key)
}

func (k *rootKey) Unwrap(ctx context.Context, p barrier.Place, wrapped []byte) ([]byte, error) {
	return k.key.Open(ctx, p, wrapped)
}

// kmsKey is a root key held by a key-management service reached through Go
// Cloud secrets (HashiCorp Vault transit, AWS KMS, Azure Key Vault, GCP KMS,
// or the local NaCl keeper). A KMS takes no associated data, so the wrap
// binds the place by encrypting SHA-256(place) || key and checking the
// digest after decryption.
type kmsKey struct {
	id     string
	keeper *secrets.Keeper
}

// NewKMSKey returns the KEK of a Go Cloud secrets keeper named id. The
// keeper stays owned by the caller, who closes it.
func NewKMSKey(id string, keeper *secrets.Keeper) (KEK, error) {
	if id == "" {
		return nil, errors.New("keyring: KMS key with an empty id")
	}
	return &kmsKey{id: id, keeper: keeper}, nil
}

func (k *kmsKey) ID() string { return k.id }

func placeDigest(p barrier.Place) []byte {
	h := sha256.New()
	for _, s := range []string{"idvault kms wrap v1", p.Tenant, p.Collection, p.ID, p.Field, p.Scope} {
		fmt.Fprintf(h, "%d:%s;", len(s), s)
	}
	return h.Sum(nil)
}

func (k *kmsKey) Wrap(ctx context.Context, p barrier.Place, key []byte) ([]byte, error) {
	out, err := k.keeper.Encrypt(ctx, append(placeDigest(p), key...))
	if err != nil {
		return nil, fmt.Errorf("keyring: kms %s: wrap: %w", k.id, err)
	}
	return out, nil
}

func (k *kmsKey) Unwrap(ctx context.Context, p barrier.Place, wrapped []byte) ([]byte, error) {
	plain, err := k.keeper.Decrypt(ctx, wrapped)
	if err != nil {
		return nil, fmt.Errorf("keyring: kms %s: unwrap: %w", k.id, err)
	}
	d := placeDigest(p)
	if len(plain) < len(d) || subtle.ConstantTimeCompare(plain[:len(d)], d) != 1 {
		return nil, barrier.ErrOpen
	}
	return bytes.Clone(plain[len(d):]), nil
}
