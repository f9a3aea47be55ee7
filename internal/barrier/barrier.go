// Package barrier seals record bodies before they reach a storage backend and
// opens them after they come back.
//
// Threat model: the storage backend, its files and its backups are untrusted.
// A sealed value reveals nothing but its length; changing any byte, or moving
// it to another tenant, collection, record or field, makes Open fail.
//
// Wire format, version 1 (all integers big-endian):
//
//	0x01 | key id (4 bytes) | nonce (12 bytes) | AES-256-GCM ciphertext and tag
//
// The associated data is the 5-byte header followed by the place: tenant,
// collection, id and field, each as a 4-byte length and its bytes. The key id
// names the root key that sealed the value (the first four bytes of SHA-256 of
// the key), so a keyring with several keys opens values of any of them.
// Nonces are random (crypto/rand); under one key that is safe for well over
// 2^32 seals.
package barrier

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
)

// Version1 is the format byte of AES-256-GCM sealed values.
const Version1 = 0x01

const (
	headerLen = 1 + 4
	nonceLen  = 12
	// Overhead is the number of bytes Seal adds to a plaintext.
	Overhead = headerLen + nonceLen + 16
)

// ErrOpen is the one error Open returns for any value it cannot open: a wrong
// key, a flipped byte, a truncated value or a value moved from another place.
// Callers get no detail on purpose.
var ErrOpen = errors.New("barrier: cannot open sealed value")

// Place is where a sealed value lives. It is bound into every seal as
// associated data.
type Place struct {
	Tenant     string
	Collection string
	ID         string
	Field      string
}

// Barrier seals and opens values bound to their place. Implementations MUST be
// safe for concurrent use.
type Barrier interface {
	Seal(p Place, plaintext []byte) ([]byte, error)
	Open(p Place, sealed []byte) ([]byte, error)
}

// AESGCM is the Barrier that seals with AES-256-GCM under root keys. The first
// key seals; any key opens values it sealed. It is immutable and safe for
// concurrent use.
type AESGCM struct {
	primary uint32
	aeads   map[uint32]cipher.AEAD
}

var _ Barrier = (*AESGCM)(nil)

// KeyID returns the id under which a 32-byte key appears in sealed values.
func KeyID(key []byte) uint32 {
	sum := sha256.Sum256(key)
	return binary.BigEndian.Uint32(sum[:4])
}

// NewAESGCM returns a barrier over the given 32-byte root keys; keys[0] is the
// primary key. The keys are copied into the cipher state; the caller may wipe
// its slices afterwards.
func NewAESGCM(keys ...[]byte) (*AESGCM, error) {
	if len(keys) == 0 {
		return nil, errors.New("barrier: no root key")
	}
	b := &AESGCM{aeads: make(map[uint32]cipher.AEAD, len(keys))}
	for i, k := range keys {
		if len(k) != 32 {
			return nil, fmt.Errorf("barrier: root key %d is %d bytes, want 32", i, len(k))
		}
		id := KeyID(k)
		if _, dup := b.aeads[id]; dup {
			return nil, fmt.Errorf("barrier: root key %d duplicates an earlier key", i)
		}
		block, err := aes.NewCipher(k)
		if err != nil {
			return nil, fmt.Errorf("barrier: root key %d: %w", i, err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("barrier: root key %d: %w", i, err)
		}
		if i == 0 {
			b.primary = id
		}
		b.aeads[id] = aead
	}
	return b, nil
}

// Seal encrypts plaintext for place p under the primary key.
func (b *AESGCM) Seal(p Place, plaintext []byte) ([]byte, error) {
	out := make([]byte, headerLen+nonceLen, Overhead+len(plaintext))
	out[0] = Version1
	binary.BigEndian.PutUint32(out[1:5], b.primary)
	if _, err := rand.Read(out[headerLen:]); err != nil {
		return nil, fmt.Errorf("barrier: nonce: %w", err)
	}
	ad := associatedData(out[:headerLen], p)
	return b.aeads[b.primary].Seal(out, out[headerLen:headerLen+nonceLen], plaintext, ad), nil
}

// Open decrypts a value sealed for place p. Any failure returns ErrOpen.
func (b *AESGCM) Open(p Place, sealed []byte) ([]byte, error) {
	if len(sealed) < Overhead || sealed[0] != Version1 {
		return nil, ErrOpen
	}
	aead, ok := b.aeads[binary.BigEndian.Uint32(sealed[1:5])]
	if !ok {
		return nil, ErrOpen
	}
	ad := associatedData(sealed[:headerLen], p)
	plain, err := aead.Open(nil, sealed[headerLen:headerLen+nonceLen], sealed[headerLen+nonceLen:], ad)
	if err != nil {
		return nil, ErrOpen
	}
	return plain, nil
}

func associatedData(header []byte, p Place) []byte {
	ad := make([]byte, 0, len(header)+16+len(p.Tenant)+len(p.Collection)+len(p.ID)+len(p.Field))
	ad = append(ad, header...)
	for _, s := range []string{p.Tenant, p.Collection, p.ID, p.Field} {
		ad = binary.BigEndian.AppendUint32(ad, uint32(len(s)))
		ad = append(ad, s...)
	}
	return ad
}
