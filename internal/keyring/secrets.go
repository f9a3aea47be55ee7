package keyring

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/idvault/idvault/internal/secret"
	"github.com/idvault/idvault/internal/store"
)

// Admin-entered secrets (webhook signing secrets, engine credentials) are
// sealed directly by the primary root key, apart from the data keys that
// seal records: a copy of the database plus a leaked data key still does not
// reveal them. They live beside the data keys as key records "secret:<name>"
// of their tenant, so Status counts them, Rewrap re-seals them under a new
// primary root key and Retire waits for them. They are write-only: nothing
// returns a value to an API caller; only the platform reads one, to use it.

// MaxSecretBytes is the largest admin-entered secret.
const MaxSecretBytes = 4 << 10

var secretName = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,63}$`)

// ErrSecretName means a secret name is not 1 to 64 of [a-z0-9_.-] starting
// with a letter or digit.
var ErrSecretName = errors.New("keyring: secret names are 1 to 64 of a-z, 0-9, _, . and -, starting with a letter or digit")

// SecretInfo describes a stored secret without its value.
type SecretInfo struct {
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"createdAt"`
}

func secretID(name string) string { return "secret:" + name }

// PutSecret seals value under the primary root key and stores it as tenant's
// secret name, replacing an earlier value.
func (k *Keyring) PutSecret(ctx context.Context, tenant, name string, value []byte) error {
	if !secretName.MatchString(name) {
		return ErrSecretName
	}
	if len(value) == 0 || len(value) > MaxSecretBytes {
		return fmt.Errorf("keyring: a secret is 1 to %d bytes: %w", MaxSecretBytes, store.ErrInvalid)
	}
	root, err := k.primary(ctx)
	if err != nil {
		return err
	}
	id := secretID(name)
	wrapped, err := root.Wrap(ctx, wrapPlace(tenant, id), value)
	if err != nil {
		return err
	}
	body, err := json.Marshal(keyRecord{Root: root.ID(), Wrapped: wrapped, CreatedAt: k.now().UTC()})
	if err != nil {
		return err
	}
	rec := store.Record{Collection: Collection, Tenant: tenant, ID: id, Index: keyIndex(id, root.ID()), Body: body}
	for {
		cur, err := k.backend.Get(ctx, Collection, tenant, id)
		switch {
		case errors.Is(err, store.ErrNotFound):
			_, err = k.backend.Put(ctx, rec)
		case err != nil:
			return err
		default:
			rec.Version = cur.Version
			_, err = k.backend.Update(ctx, rec)
		}
		if errors.Is(err, store.ErrConflict) {
			continue
		}
		if err != nil {
			return fmt.Errorf("keyring: put secret: %w", err)
		}
		return nil
	}
}

// Secret returns tenant's secret name, for the platform's own use (signing a
// webhook, calling an engine). It is store.ErrNotFound when absent.
func (k *Keyring) Secret(ctx context.Context, tenant, name string) (secret.Value, error) {
	if !secretName.MatchString(name) {
		return secret.Value{}, ErrSecretName
	}
	id := secretID(name)
	rec, err := k.backend.Get(ctx, Collection, tenant, id)
	if err != nil {
		return secret.Value{}, err
	}
	var kr keyRecord
	if err := json.Unmarshal(rec.Body, &kr); err != nil {
		return secret.Value{}, fmt.Errorf("keyring: secret record: %w", err)
	}
	root, ok := k.root(kr.Root)
	if !ok {
		return secret.Value{}, fmt.Errorf("%w: %q seals secret %s", ErrUnknownKey, kr.Root, name)
	}
	plain, err := root.Unwrap(ctx, wrapPlace(tenant, id), kr.Wrapped)
	if err != nil {
		return secret.Value{}, fmt.Errorf("keyring: open secret %s: %w", name, err)
	}
	v := secret.New(plain)
	clear(plain)
	return v, nil
}

// DeleteSecret removes tenant's secret name; an absent one is
// store.ErrNotFound.
func (k *Keyring) DeleteSecret(ctx context.Context, tenant, name string) error {
	if !secretName.MatchString(name) {
		return ErrSecretName
	}
	return k.backend.Delete(ctx, Collection, tenant, secretID(name), 0)
}

// Secrets lists tenant's secrets, by name, without their values.
func (k *Keyring) Secrets(ctx context.Context, tenant string) ([]SecretInfo, error) {
	q := store.Query{Collection: Collection, Tenant: tenant, OrderBy: "secret", Limit: store.MaxLimit}
	out := []SecretInfo{}
	for {
		page, err := k.backend.Query(ctx, q)
		if err != nil {
			return nil, fmt.Errorf("keyring: list secrets: %w", err)
		}
		for _, rec := range page.Records {
			var kr keyRecord
			if err := json.Unmarshal(rec.Body, &kr); err != nil {
				return nil, fmt.Errorf("keyring: secret record: %w", err)
			}
			out = append(out, SecretInfo{Name: strings.TrimPrefix(rec.ID, "secret:"), CreatedAt: kr.CreatedAt})
		}
		if page.Next == "" {
			return out, nil
		}
		q.Cursor = page.Next
	}
}
