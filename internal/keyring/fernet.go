package keyring

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/idvault/idvault/internal/barrier"
	"github.com/idvault/idvault/internal/fernet"
	"github.com/idvault/idvault/internal/store"
)

// Fernet compatibility. With SetFernet, values sealed as Fernet tokens (the
// "fernet" scheme of deployments that must keep their fernetKey) open with
// any of the Fernet keys, and with sealWith set new values are sealed as
// Fernet tokens. A Fernet token has no associated data, so the value's place
// is carried inside the token's plaintext, ahead of the value, and checked
// after decryption: a token moved to another record still fails. Fernet
// values are not under the key hierarchy: shredding a session's data key does
// not make its Fernet values unreadable, and root-key rotation does not
// touch them. `idvault keys migrate --to aes256gcm` re-seals them.

// fernetMarker is the first byte of every Fernet token (base64url of the
// version byte 0x80), which no barrier format starts with.
const fernetMarker = 'g'

// SetFernet configures the Fernet keys (the first encrypts, any decrypts)
// and whether new values are sealed as Fernet tokens. It must be called
// before the keyring is used concurrently.
func (k *Keyring) SetFernet(keys fernet.Keys, sealWith bool) {
	k.fernet, k.sealFernet = keys, sealWith && len(keys) > 0
}

func placePrefix(p barrier.Place) []byte {
	var b []byte
	for _, s := range []string{p.Tenant, p.Collection, p.ID, p.Field, p.Scope} {
		b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
		b = append(b, s...)
	}
	return b
}

func (k *Keyring) sealFernetValue(p barrier.Place, plaintext []byte) ([]byte, error) {
	tok, err := k.fernet.Encrypt(append(placePrefix(p), plaintext...), k.now())
	if err != nil {
		return nil, err
	}
	return []byte(tok), nil
}

func (k *Keyring) openFernetValue(p barrier.Place, sealed []byte) ([]byte, error) {
	if len(k.fernet) == 0 {
		return nil, barrier.ErrOpen
	}
	plain, err := k.fernet.Decrypt(string(sealed), 0, k.now())
	if err != nil {
		return nil, barrier.ErrOpen
	}
	prefix := placePrefix(p)
	if !bytes.HasPrefix(plain, prefix) {
		return nil, barrier.ErrOpen
	}
	return plain[len(prefix):], nil
}

// IsFernet reports whether a sealed value is a Fernet token.
func IsFernet(sealed []byte) bool { return len(sealed) > 0 && sealed[0] == fernetMarker }

// MigrateReport counts what Migrate did.
type MigrateReport struct {
	Scanned  int
	Resealed int
}

// Migrate re-seals, under the key hierarchy (AES-256-GCM data keys), every
// record body of the given collections that is a Fernet token, in every
// tenant. placeOf returns the place a record's body is sealed for. It is
// resumable: a re-sealed body is no longer a token, and each record is
// replaced with compare-and-swap.
func (k *Keyring) Migrate(ctx context.Context, tenants TenantLister, collections []string, placeOf func(tenant, collection, id string) barrier.Place, progress Progress) (MigrateReport, error) {
	var rep MigrateReport
	err := tenants(ctx, func(tenant string) error {
		for _, coll := range collections {
			q := store.Query{Collection: coll, Tenant: tenant, Limit: 200}
			for {
				page, err := k.backend.Query(ctx, q)
				if err != nil {
					return fmt.Errorf("keyring: migrate %s: %w", coll, err)
				}
				for _, rec := range page.Records {
					rep.Scanned++
					if !IsFernet(rec.Body) {
						continue
					}
					p := placeOf(tenant, coll, rec.ID)
					plain, err := k.openFernetValue(p, rec.Body)
					if err != nil {
						return fmt.Errorf("keyring: migrate %s/%s/%s: %w", tenant, coll, rec.ID, err)
					}
					c, err := k.dataKey(ctx, p.Tenant, dataKeyID(p.Scope), true)
					if err != nil {
						return err
					}
					if rec.Body, err = c.key.Seal(p, plain); err != nil {
						return err
					}
					if _, err := k.backend.Update(ctx, rec); err != nil && !errors.Is(err, store.ErrConflict) && !errors.Is(err, store.ErrNotFound) {
						return fmt.Errorf("keyring: migrate %s/%s/%s: %w", tenant, coll, rec.ID, err)
					}
					rep.Resealed++
					if progress != nil {
						progress(rep.Resealed, rep.Scanned)
					}
				}
				if page.Next == "" {
					break
				}
				q.Cursor = page.Next
			}
		}
		return nil
	})
	return rep, err
}
